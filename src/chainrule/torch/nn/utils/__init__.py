"""``torch.nn.utils``: gradient clipping and parameter vectors; ``clip_grad_norm_`` returns the norm in the
gradients' dtype (float32 for float32 parameters), as torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from ....nn import utils as _U
from ....tensor import Tensor
from ....torch_names import module_getattr

clip_grad_value_ = _U.clip_grad_value_
parameters_to_vector = _U.parameters_to_vector
vector_to_parameters = _U.vector_to_parameters


def clip_grad_norm_(
    parameters: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach: Any = None
) -> Tensor:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = _U.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite, foreach)
    dtypes = [p.grad.dtype for p in params if p.grad is not None]
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float32)
    return Tensor(np.asarray(total._data if isinstance(total, Tensor) else total, dtype))


from . import rnn  # noqa: E402, F401

__getattr__ = module_getattr("torch.nn.utils")
