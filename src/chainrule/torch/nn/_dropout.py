"""``F.dropout`` with torch's CPU mask: ``bernoulli_(1 - p) / (1 - p)`` from the default generator, so after
``torch.manual_seed(s)`` a training step drops the same elements as torch's."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...nn import functional as _F
from ...ops.base import _t
from ...tensor import Tensor
from .. import _random


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """``torch.nn.functional.dropout``: ``input * mask`` in training (torch's draws), ``input`` otherwise."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _t(input)
    if not training or p == 0.0 or x.numel() == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating point tensor, got {x.dtype}")
    mask = _random.dropout_mask(tuple(x.shape), float(p), x.dtype)
    return _F._maybe_in_place(x, "dropout", inplace, lambda v: v * np.asarray(mask, x.dtype))
