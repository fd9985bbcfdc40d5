"""Reductions (sum, mean, max, softmax ...) and the matrix product."""

from __future__ import annotations

import builtins
import warnings
from typing import Any, Optional

import numpy as np

from ..grad_mode import MODE
from ..primitives import linalg as L
from ..primitives import reduction as R
from ..tensor import Tensor, _off_graph, apply, binary
from .base import Axis, _axes, _t
from .elementwise import maximum, minimum, pick
from .shapes import squeeze


def _no_empty_dim(op: str, dim: Any) -> Any:
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        raise ValueError(f"{op}: dim=() is refused (torch fails on it); give dim=None to reduce every dim")
    return dim


def _all_if_empty(dim: Any) -> Any:
    """torch reads ``dim=()`` in sum, mean, amax, amin, var, std as every dim (NumPy's ``axis=()``: none)."""
    return None if isinstance(dim, (tuple, list)) and len(dim) == 0 else dim


def sum(  # noqa: A001
    x: Any,
    dim: Axis = None,
    keepdim: Optional[bool] = None,
    *,
    axis: Axis = None,
    keepdims: Optional[bool] = None,
    dtype: Any = None,
) -> Tensor:
    """Sum over ``dim`` (all elements when None); ``keepdim`` keeps the reduced axes as size 1.

    torch's names and NumPy's both work: ``dim``/``axis``, ``keepdim``/``keepdims``.
    """
    x = _t(x)
    if dtype is not None:
        x = x.astype(dtype)
    dim = pick("sum", "dim", _all_if_empty(dim), "axis", axis)
    keep = bool(pick("sum", "keepdim", keepdim, "keepdims", keepdims, False))
    if x.dtype.kind in "biu" and x.dtype != np.int64:
        x = x.astype(np.int64)  # torch: booleans and every integer type sum to int64 (uint8 too)
    return apply(R.sum_, x, _axes(x, dim, "sum"), keep)


def mean(
    x: Any,
    dim: Axis = None,
    keepdim: Optional[bool] = None,
    *,
    axis: Axis = None,
    keepdims: Optional[bool] = None,
    dtype: Any = None,
) -> Tensor:
    """Average over ``dim``; over an empty axis the result is NaN, as in torch."""
    x = _t(x)
    if dtype is not None:
        x = x.astype(dtype)
    if x.dtype.kind not in "fc":  # torch refuses integer input; NumPy averages in float64
        from ..creation import get_default_dtype

        x = x.astype(get_default_dtype())
    dim = pick("mean", "dim", _all_if_empty(dim), "axis", axis)
    keep = bool(pick("mean", "keepdim", keepdim, "keepdims", keepdims, False))
    axes = _axes(x, dim, "mean")
    if x.size == 0:  # an empty axis averages to NaN, as torch, without NumPy's warning
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return apply(R.mean, x, axes, keep)
    return apply(R.mean, x, axes, keep)


def _extremum(prim: Any, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    x = _t(x)
    axes = _axes(x, axis, prim.name)
    if x.size == 0 and (axes is None or builtins.any(x.shape[a] == 0 for a in axes)):
        raise ValueError(f"{prim.name}: the reduction has no identity; the input of shape {x.shape} is empty")
    return apply(prim, x, axes, keepdims)


class ValuesIndices(tuple):
    """What ``max(x, dim)`` / ``min(x, dim)`` return, as torch: ``(values, indices)`` with those names."""

    __slots__ = ()

    def __new__(cls, values: Tensor, indices: Tensor) -> ValuesIndices:
        return tuple.__new__(cls, (values, indices))

    @property
    def values(self) -> Tensor:
        return self[0]

    @property
    def indices(self) -> Tensor:
        return self[1]

    def __repr__(self) -> str:
        return f"(values={self[0]!r}, indices={self[1]!r})"


def _arg_extremum(op: str, x: Tensor, dim: Any, keepdim: bool) -> Tensor:
    fn = np.argmax if op == "argmax" else np.argmin
    d = np.asarray(x._data)
    if dim is None:
        if d.size == 0:
            raise ValueError(f"{op}: the input of shape {x.shape} is empty")
        idx = np.asarray(fn(d))
        return Tensor(idx.reshape((1,) * d.ndim) if keepdim else idx)
    (axis,) = _axes(x, int(dim), op) or (0,)
    if d.ndim == 0:
        return Tensor(np.asarray(0))
    if d.shape[axis] == 0:
        raise ValueError(f"{op}: dimension {axis} of the input of shape {x.shape} is empty")
    return Tensor(np.asarray(fn(d, axis=axis, keepdims=keepdim)))


def argmax(
    x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    """Index of the largest value (over the flattened tensor when ``dim`` is None); first one on ties."""
    x = _t(x)
    idx = _arg_extremum(
        "argmax",
        x,
        pick("argmax", "dim", dim, "axis", axis),
        bool(pick("argmax", "keepdim", keepdim, "keepdims", keepdims, False)),
    )
    return _off_graph(idx, "argmax", (x,))  # (cr.vmap refuses to batch it: an index computed from data)


def argmin(
    x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    """Index of the smallest value (over the flattened tensor when ``dim`` is None); first one on ties."""
    x = _t(x)
    idx = _arg_extremum(
        "argmin",
        x,
        pick("argmin", "dim", dim, "axis", axis),
        bool(pick("argmin", "keepdim", keepdim, "keepdims", keepdims, False)),
    )
    return _off_graph(idx, "argmin", (x,))


def _with_indices(op: str, x: Tensor, dim: Any, keepdim: bool) -> ValuesIndices:
    """torch's ``max(x, dim)``: the values (gradient to the one chosen index) and their indices."""
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int when indices are returned, got {type(dim).__name__}")
    idx = _arg_extremum("argmax" if op == "max" else "argmin", x, dim, True)
    if x.ndim == 0:
        return ValuesIndices(x, Tensor(np.asarray(0)))
    (axis,) = _axes(x, int(dim), op) or (0,)
    grid = list(np.indices(idx.shape, sparse=True))
    if MODE.batch is not None:  # cr.vmap traces: indices computed from a batched value cannot be batched
        MODE.batch.read(x, "max/min with indices", None)
    grid[axis] = idx._data
    values = x[tuple(grid)]
    if not keepdim:
        values = squeeze(values, axis)
        idx = Tensor(np.squeeze(idx._data, axis))
    return ValuesIndices(values, idx)


def _along(prim: Any, op: str, x: Any, dim: Any, keepdim: Any, axis: Axis, keepdims: Any) -> Tensor:
    """``prim`` reduced along torch's ``dim``/``keepdim`` or NumPy's ``axis``/``keepdims`` (one spelling of each)."""
    return _extremum(
        prim, x, pick(op, "dim", dim, "axis", axis), bool(pick(op, "keepdim", keepdim, "keepdims", keepdims, False))
    )


def _max_or_min(op: str, elementwise: Any, x: Any, dim: Any, keepdim: Any, axis: Any, keepdims: Any) -> Any:
    x = _t(x)
    if isinstance(dim, (Tensor, np.ndarray)) or (
        dim is not None and not isinstance(dim, (int, np.integer, tuple, list))
    ):
        return elementwise(x, dim)  # torch.max(a, b): the elementwise maximum
    prim = R.max_ if op == "max" else R.min_
    if axis is not None or keepdims is not None or dim is None or isinstance(dim, (tuple, list)):
        # NumPy's meaning (also torch.amax): the values only; exact ties share the gradient
        return _along(prim, op, x, dim, keepdim, axis, keepdims)
    return _with_indices(op, x, dim, bool(keepdim))


def max(  # noqa: A001
    x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Optional[bool] = None
) -> Any:
    """The largest value, as torch and NumPy both mean it:

    - ``max(x)``: the largest element; ``max(x, axis=1)``: the largest along an axis (NumPy, or
      torch's ``amax``; the gradient is split evenly among exact ties);
    - ``max(x, dim)``/``max(x, dim=1)``: torch's ``(values, indices)`` pair (the gradient goes to the index);
    - ``max(x, y)`` with a tensor ``y``: the elementwise maximum.
    """
    return _max_or_min("max", maximum, x, dim, keepdim, axis, keepdims)


def min(  # noqa: A001
    x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Optional[bool] = None
) -> Any:
    """The smallest value; the same forms as :func:`max`."""
    return _max_or_min("min", minimum, x, dim, keepdim, axis, keepdims)


def amax(
    x: Any, dim: Axis = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Any = None
) -> Tensor:
    """The largest values along ``dim`` (torch.amax / np.max); exact ties share the gradient."""
    return _along(R.max_, "amax", x, _all_if_empty(dim), keepdim, axis, keepdims)


def amin(
    x: Any, dim: Axis = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Any = None
) -> Tensor:
    """The smallest values along ``dim`` (torch.amin / np.min); exact ties share the gradient."""
    return _along(R.min_, "amin", x, _all_if_empty(dim), keepdim, axis, keepdims)


def logsumexp(
    x: Any, dim: Axis = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Any = None
) -> Tensor:
    return _along(R.logsumexp, "logsumexp", x, _no_empty_dim("logsumexp", dim), keepdim, axis, keepdims)


def _one_dim(op: str, x: Tensor, dim: Any) -> tuple[int, ...]:
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}: dim must be one int, got {dim!r}")
    return _axes(x, dim, op)  # type: ignore[return-value]


def softmax(x: Any, dim: Optional[int] = None, *, axis: Optional[int] = None, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (default: the last axis)."""
    x = _t(x) if dtype is None else _t(x).astype(dtype)
    return apply(R.softmax, x, _one_dim("softmax", x, pick("softmax", "dim", dim, "axis", axis, -1)))


def log_softmax(x: Any, dim: Optional[int] = None, *, axis: Optional[int] = None, dtype: Any = None) -> Tensor:
    """log(softmax(x)) along ``dim`` (default: the last axis), computed stably."""
    x = _t(x) if dtype is None else _t(x).astype(dtype)
    return apply(R.log_softmax, x, _one_dim("log_softmax", x, pick("log_softmax", "dim", dim, "axis", axis, -1)))


def matmul(x: Any, y: Any) -> Tensor:
    """Matrix product with NumPy's rules (1-D operands, batched stacks broadcast)."""
    x, y = _t(x), _t(y)
    xs, ys = x.shape, y.shape
    if not xs or not ys:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {xs} @ {ys}; use * for scalars")
    inner_x = xs[-1]
    inner_y = ys[0] if len(ys) == 1 else ys[-2]
    if inner_x != inner_y:
        ydim = "0" if len(ys) == 1 else str(len(ys) - 2)
        raise ValueError(
            f"matmul: shapes {xs} @ {ys} do not align: dimension {len(xs) - 1} of the left operand "
            f"({inner_x}) must equal dimension {ydim} of the right operand ({inner_y})"
        )
    return binary(L.matmul, x, y)


def dot(x: Any, y: Any) -> Tensor:
    return matmul(x, y)
