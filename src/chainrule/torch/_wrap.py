"""Results of chainrule's transforms as tensors (torch.func and torch.autograd.functional return tensors)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


def as_tensors(x: Any) -> Any:
    """Arrays and numbers inside tuples/lists/dicts become tensors; tensors and other objects stay."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, tuple):
        return tuple(as_tensors(v) for v in x)
    if isinstance(x, list):
        return [as_tensors(v) for v in x]
    if isinstance(x, dict):
        return {k: as_tensors(v) for k, v in x.items()}
    if isinstance(x, (np.ndarray, np.generic, float)):
        return Tensor(np.asarray(x))
    return x
