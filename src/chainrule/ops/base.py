"""What every part of the public functions shares: tensors from anything, axis types."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Optional

from ..numeric import normalize_axes
from ..tensor import Tensor

Axis = Optional[int | Sequence[int]]


builtins_sum = builtins.sum


def _t(x: Any) -> Tensor:
    return x if type(x) is Tensor else Tensor(x)


def _axes(x: Tensor, axis: Axis, op: str) -> Optional[tuple[int, ...]]:
    if axis is None:
        return None
    if isinstance(axis, list):
        axis = tuple(axis)
    try:
        return normalize_axes(axis, x.ndim)
    except ValueError as exc:
        raise ValueError(f"{op}: {exc} (input shape {x.shape})") from None
    except TypeError:
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {type(axis).__name__}") from None
