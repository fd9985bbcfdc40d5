"""Elementwise functions and torch's/NumPy's argument names."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import device_of, namespace_of
from ..grad_mode import MODE
from ..primitives import elementwise as E
from ..tensor import Tensor, _off_graph, apply, as_value, make_binary, make_unary, unary
from .base import _t

multiply = Tensor.__mul__


divide = Tensor.__truediv__


power = Tensor.__pow__


negative = Tensor.__neg__


exp = make_unary(E.exp)


log = make_unary(E.log)


log1p = make_unary(E.log1p)


sqrt = make_unary(E.sqrt)


sin = make_unary(E.sin)


cos = make_unary(E.cos)


tanh = make_unary(E.tanh)


sigmoid = make_unary(E.sigmoid)


relu = make_unary(E.relu)


def abs(x: Any) -> Tensor:  # noqa: A001
    return unary(E.absolute, x)


maximum = make_binary(E.maximum)


minimum = make_binary(E.minimum)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` holds, else ``y``; the gradient follows the chosen branch."""
    return apply(E.where, condition, x, y)


def clip(x: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """Limit values to ``[min, max]``; the gradient passes where ``min <= x <= max``."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return apply(
        E.clip,
        x,
        as_value(min, "clip") if min is not None else None,
        as_value(max, "clip") if max is not None else None,
    )


def sign(x: Any) -> Tensor:
    """The sign of each element; its gradient is zero (as torch's), also at 0."""
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "sign"), np.sign)


def pick(op: str, torch_name: str, torch_value: Any, numpy_name: str, numpy_value: Any, default: Any = None) -> Any:
    """Merge an argument given under torch's name (``dim``) or NumPy's (``axis``); both at once must agree."""
    if numpy_value is None:
        return default if torch_value is None else torch_value
    if torch_value is not None and torch_value != numpy_value:
        raise TypeError(f"{op}: got {torch_name}={torch_value!r} and {numpy_name}={numpy_value!r}; give one of them")
    return numpy_value


def _raw_fn(x: Tensor, name: str) -> Any:
    """``name`` (sign, floor, ceil, trunc) applied to ``x``'s raw values, in ``x``'s array library."""
    d = x._data
    if type(d) is not np.ndarray and type(d) is not float:
        return getattr(namespace_of(d).xp, name)(d)
    return getattr(np, name)(np.asarray(d))


def _zero_grad_values(x: Tensor, values: Any, fn: Any = None) -> Tensor:
    """``values`` (computed from ``x``) as a tensor whose gradient to ``x`` is zero, as torch's floor/round.

    ``fn`` computes ``values`` from ``x``'s NumPy array, for ``cr.vmap`` (which batches it); ``None``: vmap
    refuses to batch the result."""
    d = x._data
    if MODE.batch is not None and (type(d) is np.ndarray or type(d) is float):
        derived = _off_graph(Tensor(np.asarray(values)), fn, (x,))
        if not x.requires_grad:
            return derived
        return where(np.zeros(x.shape, dtype=bool), x, derived.astype(x.dtype))
    if type(d) is not np.ndarray and type(d) is not float:
        ns = namespace_of(d)
        if x.requires_grad:
            never = ns.xp.zeros(tuple(d.shape), dtype=ns.xp.bool, device=device_of(d))
            return where(never, x, ns.xp.astype(values, d.dtype))
        return Tensor(values)
    if x.requires_grad:
        return where(np.zeros(x.shape, dtype=bool), x, values.astype(x.dtype))
    return Tensor(np.asarray(values))
