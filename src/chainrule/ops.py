"""The differentiable functions of chainrule (``cr.exp``, ``cr.sum``, ``cr.matmul`` ...).

Each is a thin call of a registered primitive.  Together they also form the
``TENSOR`` namespace: VJP rules run against it when ``create_graph=True``, so
the backward pass is itself recorded.
"""

from __future__ import annotations

import builtins
import warnings
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from . import autodiff as _autodiff
from .backend import device_of, namespace_of
from .numeric import normalize_axes, unbroadcast_axes
from .primitives import elementwise as E
from .primitives import linalg as L
from .primitives import linear as _linear_prim
from .primitives import reduction as R
from .primitives import shape as S
from .tensor import Tensor, apply, as_value, binary, copy_value, make_binary, make_unary, unary

Axis = Optional[int | Sequence[int]]
builtins_sum = builtins.sum


def _t(x: Any) -> Tensor:
    return x if type(x) is Tensor else Tensor(x)


# --- elementwise ------------------------------------------------------------------
add = Tensor.__add__


subtract = Tensor.__sub__


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
    return _zero_grad_values(x, _raw_fn(x, "sign"))


# --- torch's and NumPy's argument names ---------------------------------------------
def pick(op: str, torch_name: str, torch_value: Any, numpy_name: str, numpy_value: Any, default: Any = None) -> Any:
    """Merge an argument given under torch's name (``dim``) or NumPy's (``axis``); both at once must agree."""
    if numpy_value is None:
        return default if torch_value is None else torch_value
    if torch_value is not None and torch_value != numpy_value:
        raise TypeError(f"{op}: got {torch_name}={torch_value!r} and {numpy_name}={numpy_value!r}; give one of them")
    return numpy_value


# --- reductions ---------------------------------------------------------------------
def _no_empty_dim(op: str, dim: Any) -> Any:
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        raise ValueError(f"{op}: dim=() is refused (torch fails on it); give dim=None to reduce every dim")
    return dim


def _all_if_empty(dim: Any) -> Any:
    """torch reads ``dim=()`` in sum, mean, amax, amin, var, std as every dim (NumPy's ``axis=()``: none)."""
    return None if isinstance(dim, (tuple, list)) and len(dim) == 0 else dim


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
        from .creation import get_default_dtype

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
    return _arg_extremum(
        "argmax",
        x,
        pick("argmax", "dim", dim, "axis", axis),
        bool(pick("argmax", "keepdim", keepdim, "keepdims", keepdims, False)),
    )


def argmin(
    x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    """Index of the smallest value (over the flattened tensor when ``dim`` is None); first one on ties."""
    x = _t(x)
    return _arg_extremum(
        "argmin",
        x,
        pick("argmin", "dim", dim, "axis", axis),
        bool(pick("argmin", "keepdim", keepdim, "keepdims", keepdims, False)),
    )


def _with_indices(op: str, x: Tensor, dim: Any, keepdim: bool) -> ValuesIndices:
    """torch's ``max(x, dim)``: the values (gradient to the one chosen index) and their indices."""
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int when indices are returned, got {type(dim).__name__}")
    idx = _arg_extremum("argmax" if op == "max" else "argmin", x, dim, True)
    if x.ndim == 0:
        return ValuesIndices(x, Tensor(np.asarray(0)))
    (axis,) = _axes(x, int(dim), op) or (0,)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx._data
    values = x[tuple(grid)]
    if not keepdim:
        values = squeeze(values, axis)
        idx = Tensor(np.squeeze(idx._data, axis))
    return ValuesIndices(values, idx)


def _max_or_min(op: str, elementwise: Any, x: Any, dim: Any, keepdim: Any, axis: Any, keepdims: Any) -> Any:
    x = _t(x)
    if isinstance(dim, (Tensor, np.ndarray)) or (
        dim is not None and not isinstance(dim, (int, np.integer, tuple, list))
    ):
        return elementwise(x, dim)  # torch.max(a, b): the elementwise maximum
    prim = R.max_ if op == "max" else R.min_
    if axis is not None or keepdims is not None or dim is None or isinstance(dim, (tuple, list)):
        # NumPy's meaning (also torch.amax): the values only; exact ties share the gradient
        return _extremum(
            prim, x, pick(op, "dim", dim, "axis", axis), bool(pick(op, "keepdim", keepdim, "keepdims", keepdims, False))
        )
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
    return _extremum(
        R.max_,
        x,
        pick("amax", "dim", _all_if_empty(dim), "axis", axis),
        bool(pick("amax", "keepdim", keepdim, "keepdims", keepdims, False)),
    )


def amin(
    x: Any, dim: Axis = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Any = None
) -> Tensor:
    """The smallest values along ``dim`` (torch.amin / np.min); exact ties share the gradient."""
    return _extremum(
        R.min_,
        x,
        pick("amin", "dim", _all_if_empty(dim), "axis", axis),
        bool(pick("amin", "keepdim", keepdim, "keepdims", keepdims, False)),
    )


def logsumexp(
    x: Any, dim: Axis = None, keepdim: Optional[bool] = None, *, axis: Axis = None, keepdims: Any = None
) -> Tensor:
    return _extremum(
        R.logsumexp,
        x,
        pick("logsumexp", "dim", _no_empty_dim("logsumexp", dim), "axis", axis),
        bool(pick("logsumexp", "keepdim", keepdim, "keepdims", keepdims, False)),
    )


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


# --- linear algebra -------------------------------------------------------------------
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


# --- shapes ----------------------------------------------------------------------------
def _shape_args(op: str, shape: tuple) -> tuple[int, ...]:
    """Shapes given as varargs (``2, 3``) or one sequence (``(2, 3)``), as torch accepts both."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    elif len(shape) == 1 and type(shape[0]) is Tensor:
        shape = tuple(int(v) for v in np.ravel(shape[0]._data))
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: a shape is ints, or one tuple of ints; got {shape!r}") from None


def reshape(x: Any, *shape: Any) -> Tensor:
    """The same elements in a new shape (one entry may be -1); ``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``."""
    x = _t(x)
    return apply(S.reshape, x, _shape_args("reshape", shape))


def permute_dims(x: Any, axes: Optional[Sequence[int]] = None) -> Tensor:
    """NumPy's ``transpose``: permute the axes (reverse them when ``axes`` is None).

    The array-API name; torch spells it ``permute``.  (``transpose`` follows torch: it swaps two dims.)
    """
    x = _t(x)
    nd = x.ndim
    if axes is None:
        axes = tuple(range(nd - 1, -1, -1))
    else:
        axes = tuple(int(a) % nd if nd else int(a) for a in axes)
        if sorted(axes) != list(range(nd)):
            raise ValueError(f"permute: dims {axes} are not a permutation of the {nd} dims of shape {x.shape}")
    if nd < 2 or axes == tuple(range(nd)):
        return x
    return apply(S.transpose, x, axes)


def permute(x: Any, *dims: Any) -> Tensor:
    """Reorder all dims: ``permute(x, 2, 0, 1)`` or ``permute(x, (2, 0, 1))`` (torch.permute)."""
    x = _t(x)
    dims = _shape_args("permute", dims)
    if len(dims) != x.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor with {x.ndim} dims (shape {x.shape})")
    return permute_dims(x, dims)


def transpose(x: Any, dim0: Any = None, dim1: Optional[int] = None) -> Tensor:
    """Swap two dims, as ``torch.transpose(x, dim0, dim1)``.

    Without dims, reverse all axes (``x.T``).  NumPy's permutation form
    ``transpose(x, (2, 0, 1))`` is ``permute`` / ``permute_dims`` here.
    """
    x = _t(x)
    if dim0 is None and dim1 is None:
        return permute_dims(x)
    if isinstance(dim0, (tuple, list)) or dim1 is None:
        raise TypeError(
            f"transpose: takes two dims to swap, as torch.transpose(x, dim0, dim1); got {dim0!r}. "
            "For NumPy's permutation meaning use cr.permute(x, dims) or x.permute(*dims)"
        )
    return swapaxes(x, dim0, dim1)


def swapaxes(x: Any, a: int, b: int) -> Tensor:
    """Swap dims ``a`` and ``b`` (also ``swapdims``, and torch's ``transpose``)."""
    x = _t(x)
    nd = x.ndim
    if nd == 0:
        if int(a) in (0, -1) and int(b) in (0, -1):
            return x
    try:
        (a,), (b,) = normalize_axes(a, nd), normalize_axes(b, nd)
    except ValueError as exc:
        raise ValueError(f"swapaxes: {exc} (input shape {x.shape})") from None
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return permute_dims(x, perm)


swapdims = swapaxes


def t(x: Any) -> Tensor:
    """Transpose a matrix (a 0-d or 1-D tensor is returned as is), as ``torch.t``."""
    x = _t(x)
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dims, got shape {x.shape}; use x.mT or x.transpose(a, b)")
    return permute_dims(x)


def broadcast_to(x: Any, *shape: Any) -> Tensor:
    x = _t(x)
    shape = _shape_args("broadcast_to", shape)
    if x.shape == shape:
        return x
    return apply(S.broadcast_to, x, shape)


def expand(x: Any, *sizes: Any) -> Tensor:
    """Broadcast to ``sizes`` (-1 keeps a dim), as ``torch.Tensor.expand``; new dims go in front."""
    x = _t(x)
    sizes = _shape_args("expand", sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes {sizes} are fewer than the tensor's dims (shape {x.shape})")
    target = tuple(x.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
    for i, s in enumerate(sizes):
        if s == -1 and i < lead:
            raise ValueError(f"expand: -1 is not allowed for the new leading dim {i} (sizes {sizes})")
    try:
        np.broadcast_shapes(x.shape, target)
        if np.broadcast_shapes(x.shape, target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(f"expand: cannot expand shape {x.shape} to {target}: only dims of size 1 can grow") from None
    return broadcast_to(x, target)


def expand_as(x: Any, other: Any) -> Tensor:
    return expand(x, _t(other).shape)


def repeat(x: Any, *sizes: Any) -> Tensor:
    """Tile the tensor ``sizes[i]`` times along each dim (``torch.Tensor.repeat``; ``np.tile``)."""
    x = _t(x)
    sizes = _shape_args("repeat", sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} repeats {sizes} are fewer than the tensor's dims (shape {x.shape})")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    inter = []  # (1, s0, 1, s1, ...) broadcast to (r0, s0, r1, s1, ...)
    big = []
    for r, s in zip(sizes, shape):
        inter += [1, s]
        big += [r, s]
    y = broadcast_to(reshape(x, tuple(inter)), tuple(big))
    return _own_memory(reshape(y, tuple(r * s for r, s in zip(sizes, shape))), x)


def _own_memory(y: Tensor, x: Tensor) -> Tensor:
    """``y``, or a copy of it where it is still a view of ``x`` or read-only (torch's repeat and flip copy)."""
    d = y._data
    if type(d) is float:
        return y
    if type(d) is np.ndarray and type(x._data) is np.ndarray:
        if d.flags.writeable and not np.may_share_memory(d, x._data):
            return y
    return clone(y)


def tile(x: Any, reps: Any) -> Tensor:
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    x = _t(x)
    reps = (1,) * (x.ndim - len(reps)) + reps
    return repeat(x, reps)


def expand_dims(x: Any, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis`` (NumPy's name; torch's is ``unsqueeze``)."""
    x = _t(x)
    nd = x.ndim + 1
    if not -nd <= int(axis) < nd:
        raise ValueError(f"unsqueeze: dim {axis} is out of range for a result with {nd} dims (input shape {x.shape})")
    a = int(axis) % nd
    return reshape(x, x.shape[:a] + (1,) + x.shape[a:])


def unsqueeze(x: Any, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim`` (torch.unsqueeze)."""
    return expand_dims(x, dim)


def squeeze(x: Any, dim: Axis = None, *, axis: Axis = None) -> Tensor:
    """Remove size-1 dims (only those in ``dim`` when given); a named dim whose size is not 1 stays, as torch."""
    x = _t(x)
    dim = pick("squeeze", "dim", dim, "axis", axis)
    axes = _axes(x, dim, "squeeze")
    if axes is None:
        axes = tuple(range(x.ndim))
    shape = tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1))
    return x if shape == x.shape else reshape(x, shape)


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (torch.flatten; a 0-d tensor becomes shape (1,))."""
    x = _t(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    (a,), (b,) = _axes(x, start_dim, "flatten"), _axes(x, end_dim, "flatten")
    if a > b:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    merged = int(np.prod(x.shape[a : b + 1]))
    return reshape(x, x.shape[:a] + (merged,) + x.shape[b + 1 :])


def ravel(x: Any) -> Tensor:
    return reshape(x, -1)


def _tensor_list(op: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, (Tensor, np.ndarray)):
        raise TypeError(
            f"{op}: expects a list or tuple of tensors, got a single {type(tensors).__name__}; "
            f"write cr.{op}([a, b], dim=...)"
        )
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expects a list or tuple of tensors, got {type(tensors).__name__}")
    if len(tensors) == 0:
        raise ValueError(f"{op}: need at least one tensor")
    return [_t(t) for t in tensors]


def _dim_in(op: str, dim: Any, nd: int, shape: tuple) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -nd <= int(dim) < nd:
        raise ValueError(
            f"{op}: dim {int(dim)} is out of range for {nd} dims (first input shape {shape}); valid: {-nd} to {nd - 1}"
        )
    return int(dim) % nd


def concatenate(tensors: Sequence[Any], dim: Any = None, *, axis: Any = None) -> Tensor:
    """Join tensors along an existing dim (``cat``/``concat`` are the same function)."""
    ts = _tensor_list("cat", tensors)
    nd = ts[0].ndim
    if nd == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    d = _dim_in("cat", pick("cat", "dim", dim, "axis", axis, 0), nd, ts[0].shape)
    return apply(S.concatenate, *ts, d)


cat = concat = concatenate


def stack(tensors: Sequence[Any], dim: Any = None, *, axis: Any = None) -> Tensor:
    """Join tensors of one shape along a new dim."""
    ts = _tensor_list("stack", tensors)
    d = _dim_in("stack", pick("stack", "dim", dim, "axis", axis, 0), ts[0].ndim + 1, ts[0].shape)
    return apply(S.stack, *ts, d)


def hstack(tensors: Sequence[Any]) -> Tensor:
    ts = _tensor_list("hstack", tensors)
    return concatenate(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors: Sequence[Any]) -> Tensor:
    ts = [reshape(t, (1, -1)) if t.ndim < 2 else t for t in _tensor_list("vstack", tensors)]
    return concatenate(ts, 0)


def _slices(x: Tensor, axis: int, bounds: list[tuple[int, int]]) -> tuple[Tensor, ...]:
    lead = (slice(None),) * axis
    return tuple(x[lead + (slice(a, b),)] for a, b in bounds)


def split(x: Any, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.split: pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes.

    (NumPy's ``np.split`` takes a number of sections instead; that is ``chunk`` here.)
    """
    x = _t(x)
    (axis,) = _axes(x, dim, "split") or (0,)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if builtins_sum(sizes) != n or builtins.any(s < 0 for s in sizes):
            raise ValueError(
                f"split: sizes {sizes} must be non-negative and sum to {n} (dim {axis} of shape {x.shape})"
            )
    else:
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        if n == 0:
            sizes = [0]
    bounds, at = [], 0
    for s in sizes:
        bounds.append((at, at + s))
        at += s
    return _slices(x, axis, bounds)


def chunk(x: Any, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.chunk: at most ``chunks`` pieces of equal size ceil(n / chunks) along ``dim``."""
    x = _t(x)
    if int(chunks) <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    (axis,) = _axes(x, dim, "chunk") or (0,)
    n = x.shape[axis]
    size = -(-n // int(chunks)) if n else 1
    return split(x, size, axis)


def unbind(x: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, each without that dim."""
    x = _t(x)
    (axis,) = _axes(x, dim, "unbind") or (0,)
    lead = (slice(None),) * axis
    return tuple(x[lead + (i,)] for i in range(x.shape[axis]))


def getitem(x: Any, index: Any) -> Tensor:
    return _t(x)[index]


def scatter_add(g: Any, index: Any, shape: Sequence[int]) -> Tensor:
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate)."""
    return apply(S.scatter_add, g, index, tuple(shape))


def astype(x: Any, dtype: Any) -> Tensor:
    return _t(x).astype(dtype)


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum a gradient over the axes that broadcasting added or stretched."""
    if g.shape == shape:
        return g
    axes, _ = unbroadcast_axes(g.shape, shape)
    return reshape(sum(g, axes), shape)


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if type(x) is Tensor else np.shape(x)


def _indicator(cond: Any, like: Any) -> Any:
    """A comparison as 0/1 numbers: NumPy does arithmetic on bools; the Array API standard does not."""
    d = cond._data if type(cond) is Tensor else cond
    if type(d) is np.ndarray or type(d) is bool or type(d) is float:
        return cond
    return cond.astype(like.dtype if type(like) is Tensor else np.result_type(like))


def linear(x: Any, weight: Any, bias: Any) -> Tensor:
    """``x @ weightᵀ + bias`` as one recorded operation (``torch.nn.functional.linear``; exported as ``cr.linear``)."""
    return apply(_linear_prim.linear, x, weight, bias)


# The namespace the VJP rules see when the backward pass is recorded (create_graph=True).
TENSOR = SimpleNamespace(
    name="tensor",
    exp=exp,
    log=log,
    sin=sin,
    cos=cos,
    sign=sign,
    sqrt=sqrt,
    power=power,
    where=where,
    shape=_shape,
    sum=sum,
    reshape=reshape,
    broadcast_to=broadcast_to,
    transpose=permute_dims,
    swapaxes=swapaxes,
    getitem=getitem,
    scatter_add=scatter_add,
    astype=astype,
    matmul=matmul,
    unbroadcast=unbroadcast,
    indicator=lambda cond, like: _indicator(cond, like),
    dtype_of=lambda x: x.dtype if type(x) is Tensor else np.result_type(x),
    einsum=lambda equation, *operands: einsum(equation, *operands),
    apply=apply,
    guarded=lambda mask, safe, x: where(mask, safe, x),
)
_autodiff.ABOVE.tensor_namespace = TENSOR  # the walk runs the rules on it for create_graph=True


# --- more of torch's everyday functions, composed from the primitives above --------------
def neg(x: Any) -> Tensor:
    return -_t(x)


def pow(x: Any, exponent: Any) -> Tensor:  # noqa: A001
    """``x ** exponent`` (torch.pow)."""
    return _t(x) ** exponent if type(x) is Tensor or type(exponent) is not Tensor else exponent.__rpow__(x)


def square(x: Any) -> Tensor:
    x = _t(x)
    if x.dtype == np.bool_:
        x = x.astype(np.int64)  # torch: the square of a bool tensor is int64 (x * x would stay bool)
    return x * x


def reciprocal(x: Any) -> Tensor:
    return 1.0 / _t(x)


def rsqrt(x: Any) -> Tensor:
    return 1.0 / sqrt(x)


def tan(x: Any) -> Tensor:
    return sin(x) / cos(x)


def sinh(x: Any) -> Tensor:
    x = _t(x)
    return (exp(x) - exp(-x)) * 0.5


def cosh(x: Any) -> Tensor:
    x = _t(x)
    return (exp(x) + exp(-x)) * 0.5


log2 = make_unary(E.log2)  # (its own forward: log2(8) is 3.0 exactly, as torch)
log10 = make_unary(E.log10)


def exp2(x: Any) -> Tensor:
    return power(2.0, _t(x))


def add(x: Any, y: Any, *, alpha: Any = 1) -> Tensor:  # noqa: F811  (torch.add with alpha)
    return _t(x) + (y if alpha == 1 else alpha * _t(y))


def sub(x: Any, y: Any, *, alpha: Any = 1) -> Tensor:
    return _t(x) - (y if alpha == 1 else alpha * _t(y))


subtract = sub  # noqa: F811


def mul(x: Any, y: Any) -> Tensor:
    return _t(x) * y


def div(x: Any, y: Any, *, rounding_mode: Optional[str] = None) -> Tensor:
    """``x / y``; ``rounding_mode="floor"`` or ``"trunc"`` rounds the quotient (gradient zero, as torch).

    With a rounding mode, integer operands give an integer result computed in integers, as torch's does
    (``div(tensor([-7, 7]), 2, rounding_mode="floor")`` is ``[-4, 3]`` in int64, exactly)."""
    xt = _t(x)
    yv = y._data if isinstance(y, Tensor) else y
    if rounding_mode in ("floor", "trunc") and xt.dtype.kind in "biu" and np.result_type(yv).kind in "biu":
        a, b = np.asarray(xt._data), np.asarray(yv)
        if np.any(b == 0):
            raise ZeroDivisionError(f"div: integer division by zero (rounding_mode={rounding_mode!r}), as in torch")
        q = np.floor_divide(a, b)
        if rounding_mode == "trunc":  # floor rounds towards -inf; trunc towards 0 differs where the signs differ
            q = q + ((q < 0) & (q * b != a))
        return Tensor(q)
    q = xt / y
    if rounding_mode is None:
        return q
    if rounding_mode == "floor":
        return floor(q)
    if rounding_mode == "trunc":
        return trunc(q)
    raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


true_divide = divide  # noqa: F811


def clamp_min(x: Any, min: Any) -> Tensor:  # noqa: A002
    return clip(x, min, None)


def clamp_max(x: Any, max: Any) -> Tensor:  # noqa: A002
    return clip(x, None, max)


def _raw_fn(x: Tensor, name: str) -> Any:
    """``name`` (sign, floor, ceil, trunc) applied to ``x``'s raw values, in ``x``'s array library."""
    d = x._data
    if type(d) is not np.ndarray and type(d) is not float:
        return getattr(namespace_of(d).xp, name)(d)
    return getattr(np, name)(np.asarray(d))


def _zero_grad_values(x: Tensor, values: Any) -> Tensor:
    """``values`` (computed from ``x``) as a tensor whose gradient to ``x`` is zero, as torch's floor/round."""
    d = x._data
    if type(d) is not np.ndarray and type(d) is not float:
        ns = namespace_of(d)
        if x.requires_grad:
            never = ns.xp.zeros(tuple(d.shape), dtype=ns.xp.bool, device=device_of(d))
            return where(never, x, ns.xp.astype(values, d.dtype))
        return Tensor(values)
    if x.requires_grad:
        return where(np.zeros(x.shape, dtype=bool), x, values.astype(x.dtype))
    return Tensor(np.asarray(values))


def floor(x: Any) -> Tensor:
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "floor"))


def ceil(x: Any) -> Tensor:
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "ceil"))


def round(x: Any, decimals: int = 0) -> Tensor:  # noqa: A001
    """Round half to even, as torch and NumPy; the gradient is zero."""
    x = _t(x)
    return _zero_grad_values(x, np.round(x._data, decimals))


def trunc(x: Any) -> Tensor:
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "trunc"))


def frac(x: Any) -> Tensor:
    x = _t(x)
    return x - trunc(x)


def var(
    x: Any,
    dim: Axis = None,
    *,
    correction: Any = None,
    unbiased: Optional[bool] = None,
    keepdim: bool = False,
    axis: Axis = None,
    keepdims: Optional[bool] = None,
    ddof: Optional[int] = None,
) -> Tensor:
    """Variance over ``dim``; torch's default ``correction=1`` (unbiased).  NumPy's ``ddof`` is the same knob."""
    x = _t(x)
    dim = pick("var", "dim", _all_if_empty(dim), "axis", axis)
    keep = bool(pick("var", "keepdim", keepdim or None, "keepdims", keepdims, False))
    if unbiased is not None:
        corr = 1 if unbiased else 0
    else:
        corr = pick("var", "correction", correction, "ddof", ddof, 1)
    axes = _axes(x, dim, "var")
    n = x.size if axes is None else int(np.prod([x.shape[a] for a in axes]))
    centered = x - mean(x, axes, keepdim=True)
    total = sum(centered * centered, axes, keep)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / float(builtins.max(n - corr, 0))


def std(
    x: Any,
    dim: Axis = None,
    *,
    correction: Any = None,
    unbiased: Optional[bool] = None,
    keepdim: bool = False,
    axis: Axis = None,
    keepdims: Optional[bool] = None,
    ddof: Optional[int] = None,
) -> Tensor:
    """Standard deviation (square root of :func:`var`, same arguments)."""
    return sqrt(
        var(x, dim, correction=correction, unbiased=unbiased, keepdim=keepdim, axis=axis, keepdims=keepdims, ddof=ddof)
    )


def masked_fill(x: Any, mask: Any, value: Any) -> Tensor:
    """``value`` where ``mask`` is true, else ``x`` (torch.masked_fill); the gradient skips the filled places."""
    x = _t(x)
    m = _t(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"masked_fill: the mask must be a bool tensor, got dtype {m.dtype}; compare first (x > 0)")
    v = value if type(value) is Tensor else np.asarray(value, dtype=x.dtype)
    return where(m, v, x)


def clone(x: Any) -> Tensor:
    """A copy with its own memory; the gradient passes through unchanged."""
    x = _t(x)
    out = apply(S.astype, x, x.dtype)  # the identity's gradient; the forward hands back the same array, so:
    out._data = copy_value(out._data)  # (its rule reads no value, so the node may hold the copy)
    return out


def _bool_reduce(op: str, fn: Any, x: Any, dim: Any, keepdim: bool) -> Tensor:
    x = _t(x)
    axes = _axes(x, dim, op)
    return Tensor(np.asarray(fn(np.asarray(x._data), axis=axes, keepdims=bool(keepdim))))


def all(x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None) -> Tensor:  # noqa: A001
    """Whether every element is true (nonzero); a bool tensor."""
    return _bool_reduce("all", np.all, x, pick("all", "dim", dim, "axis", axis), keepdim)


def any(x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None) -> Tensor:  # noqa: A001
    """Whether some element is true (nonzero); a bool tensor."""
    return _bool_reduce("any", np.any, x, pick("any", "dim", dim, "axis", axis), keepdim)


def count_nonzero(x: Any, dim: Any = None) -> Tensor:
    x = _t(x)
    return Tensor(np.asarray(np.count_nonzero(np.asarray(x._data), axis=_axes(x, dim, "count_nonzero"))))


def _values(x: Any) -> np.ndarray:
    return np.asarray(x._data if type(x) is Tensor else x)


def isclose(x: Any, y: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    return Tensor(np.asarray(np.isclose(_values(x), _values(y), rtol=rtol, atol=atol, equal_nan=equal_nan)))


def allclose(x: Any, y: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether ``|x - y| <= atol + rtol * |y|`` everywhere (a Python bool, as torch)."""
    return builtins.bool(np.allclose(_values(x), _values(y), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(x: Any, y: Any) -> bool:
    """Whether both have the same shape and elements (a Python bool, as torch.equal)."""
    a, b = _values(x), _values(y)
    return a.shape == b.shape and builtins.bool(np.array_equal(a, b))


def isnan(x: Any) -> Tensor:
    return Tensor(np.asarray(np.isnan(_values(x))))


def isinf(x: Any) -> Tensor:
    return Tensor(np.asarray(np.isinf(_values(x))))


def isfinite(x: Any) -> Tensor:
    return Tensor(np.asarray(np.isfinite(_values(x))))


def logical_not(x: Any) -> Tensor:
    return Tensor(np.asarray(np.logical_not(_values(x))))


def eq(x: Any, y: Any) -> Tensor:
    return _t(x) == y


def ne(x: Any, y: Any) -> Tensor:
    return _t(x) != y


def lt(x: Any, y: Any) -> Tensor:
    return _t(x) < y


def le(x: Any, y: Any) -> Tensor:
    return _t(x) <= y


def gt(x: Any, y: Any) -> Tensor:
    return _t(x) > y


def ge(x: Any, y: Any) -> Tensor:
    return _t(x) >= y


def nan_to_num(x: Any, nan: float = 0.0, posinf: Optional[float] = None, neginf: Optional[float] = None) -> Tensor:
    """Replace NaN and infinities; the gradient is zero at the replaced places."""
    x = _t(x)
    fixed = np.nan_to_num(np.asarray(x._data), nan=nan, posinf=posinf, neginf=neginf)
    return where(np.isfinite(np.asarray(x._data)), x, fixed.astype(x.dtype))


def lerp(x: Any, end: Any, weight: Any) -> Tensor:
    """``x + weight * (end - x)``."""
    x = _t(x)
    return x + weight * (_t(end) - x)


def addcmul(x: Any, t1: Any, t2: Any, *, value: Any = 1) -> Tensor:
    return _t(x) + value * (_t(t1) * t2)


def addcdiv(x: Any, t1: Any, t2: Any, *, value: Any = 1) -> Tensor:
    return _t(x) + value * (_t(t1) / t2)


def outer(x: Any, y: Any) -> Tensor:
    x, y = _t(x), _t(y)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"outer: expects two 1-D tensors, got shapes {x.shape} and {y.shape}")
    return reshape(x, (-1, 1)) * reshape(y, (1, -1))


def mm(x: Any, y: Any) -> Tensor:
    """Matrix times matrix (both 2-D), as torch.mm."""
    x, y = _t(x), _t(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"mm: expects two 2-D tensors, got shapes {x.shape} and {y.shape}; use matmul for others")
    return matmul(x, y)


def mv(x: Any, v: Any) -> Tensor:
    x, v = _t(x), _t(v)
    if x.ndim != 2 or v.ndim != 1:
        raise ValueError(f"mv: expects a 2-D matrix and a 1-D vector, got shapes {x.shape} and {v.shape}")
    return matmul(x, v)


def bmm(x: Any, y: Any) -> Tensor:
    x, y = _t(x), _t(y)
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"bmm: expects two 3-D tensors with the same batch size, got shapes {x.shape} and {y.shape}")
    return matmul(x, y)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation, as ``torch.einsum("ij,jk->ik", a, b)`` (NumPy's spelling too); differentiable.

    Operands may also be given as one list.  An index repeated inside one operand (a diagonal) is refused.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument is the equation string, got {type(equation).__name__}")
    ts = [_t(o) for o in operands]
    from .primitives.linalg import parse_einsum

    eq = parse_einsum(equation, [t.ndim for t in ts])
    sizes: dict[str, tuple[int, int]] = {}
    for k, (term, t) in enumerate(zip(eq.split("->")[0].split(","), ts)):
        for c, n in zip(term, t.shape):
            if c in sizes and sizes[c][0] != n and 1 not in (n, sizes[c][0]):
                shapes = ", ".join(str(x.shape) for x in ts)
                raise ValueError(
                    f"einsum: {equation!r}: index {c!r} has size {sizes[c][0]} in operand {sizes[c][1]} "
                    f"but {n} in operand {k} (shapes {shapes})"
                )
            sizes.setdefault(c, (n, k))
    return apply(L.einsum, *ts, eq)


def diag(x: Any, diagonal: int = 0) -> Tensor:
    """A 1-D tensor's diagonal matrix, or a 2-D tensor's diagonal (torch.diag)."""
    x = _t(x)
    if x.ndim == 1:
        n = x.shape[0] + builtins.abs(diagonal)
        idx = np.arange(x.shape[0])
        rows, cols = (idx, idx + diagonal) if diagonal >= 0 else (idx - diagonal, idx)
        return scatter_add(x, (rows, cols), (n, n))
    if x.ndim == 2:
        rows = np.arange(x.shape[0])
        cols = rows + diagonal
        keep = (cols >= 0) & (cols < x.shape[1])
        return x[rows[keep], cols[keep]]
    raise ValueError(f"diag: expects a 1-D or 2-D tensor, got shape {x.shape}")


def trace(x: Any) -> Tensor:
    x = _t(x)
    if x.ndim != 2:
        raise ValueError(f"trace: expects a 2-D tensor, got shape {x.shape}")
    return sum(diag(x))


def _tri(x: Any, diagonal: int, lower: bool) -> Tensor:
    x = _t(x)
    if x.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'}: expects at least 2 dims, got shape {x.shape}")
    n, m = x.shape[-2:]
    keep = np.tri(n, m, diagonal, dtype=bool) if lower else ~np.tri(n, m, diagonal - 1, dtype=bool)
    return where(keep, x, np.zeros((), x.dtype))


def tril(x: Any, diagonal: int = 0) -> Tensor:
    return _tri(x, diagonal, True)


def triu(x: Any, diagonal: int = 0) -> Tensor:
    return _tri(x, diagonal, False)


def _along(x: Tensor, index: np.ndarray, axis: int) -> tuple:
    grid = list(np.indices(index.shape, sparse=True))
    grid[axis] = index
    return tuple(grid)


def gather(x: Any, dim: int, index: Any) -> Tensor:
    """``out[i][j] = x[index[i][j]][j]`` for ``dim=0`` and so on (torch.gather); differentiable in ``x``."""
    x = _t(x)
    (axis,) = _axes(x, dim, "gather") or (0,)
    idx = _values(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    if idx.ndim != x.ndim:
        raise ValueError(f"gather: index has {idx.ndim} dims but the input has {x.ndim} (shape {x.shape})")
    return x[_along(x, idx, axis)]


def take_along_dim(x: Any, indices: Any, dim: Optional[int] = None) -> Tensor:
    x = _t(x)
    if dim is None:
        return reshape(x, -1)[_values(indices).reshape(-1)]
    (axis,) = _axes(x, dim, "take_along_dim") or (0,)
    idx = np.broadcast_to(
        _values(indices), x.shape[:axis] + _values(indices).shape[axis : axis + 1] + x.shape[axis + 1 :]
    )
    return x[_along(x, idx, axis)]


def flip(x: Any, dims: Any) -> Tensor:
    x = _t(x)
    axes = _axes(x, tuple(dims) if isinstance(dims, (list, tuple)) else dims, "flip") or ()
    index = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim))
    return _own_memory(x[index], x)


def roll(x: Any, shifts: Any, dims: Any = None) -> Tensor:
    x = _t(x)
    if dims is None:
        return reshape(roll(reshape(x, -1), shifts, 0), x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    out = x
    for s, d in zip(shifts, dims):
        (axis,) = _axes(x, d, "roll") or (0,)
        n = x.shape[axis]
        idx = (np.arange(n) - s) % n
        out = out[(slice(None),) * axis + (idx,)]
    return out


def sort(x: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
    """``(values, indices)`` sorted along ``dim`` (torch.sort); the gradient follows the values."""
    x = _t(x)
    (axis,) = _axes(x, dim, "sort") or (0,)
    d = np.asarray(x._data)
    if descending:
        # Sort the reversed array ascending (stable), map the positions back and reverse the result: the
        # largest first, equal values in their original order, NaN first (torch's largest), and no negation
        # (which wraps unsigned and the smallest int64, and refuses bools).
        n = d.shape[axis] if d.ndim else 1
        idx = np.flip(n - 1 - np.argsort(np.flip(d, axis), axis=axis, kind="stable"), axis)
    else:
        idx = np.argsort(d, axis=axis, kind="stable")
    return ValuesIndices(x[_along(x, idx, axis)], Tensor(idx))


def argsort(x: Any, dim: int = -1, descending: bool = False) -> Tensor:
    return sort(x, dim, descending).indices


def topk(x: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:  # noqa: A002
    """The ``k`` largest (or smallest) ``(values, indices)`` along ``dim``."""
    x = _t(x)
    (axis,) = _axes(x, dim, "topk") or (0,)
    if not 0 <= int(k) <= x.shape[axis]:
        raise ValueError(f"topk: k={k} is out of range for dim {axis} of size {x.shape[axis]}")
    v, i = sort(x, axis, descending=largest)
    lead = (slice(None),) * axis + (slice(0, int(k)),)
    return ValuesIndices(v[lead], Tensor(i._data[lead]))


def cumsum(x: Any, dim: int) -> Tensor:
    """Running sums along ``dim`` (composed as a product with a triangular matrix of ones)."""
    x = _t(x)
    (axis,) = _axes(x, dim, "cumsum") or (0,)
    n = x.shape[axis] if x.ndim else 1
    if x.dtype.kind in "biu":  # integers (no gradient): exact running sums in int64, as torch
        return Tensor(np.cumsum(np.asarray(x._data), axis=axis if x.ndim else None, dtype=np.int64).reshape(x.shape))
    if x.ndim == 0:
        return x
    tri = np.triu(np.ones((n, n), dtype=x.dtype if x.dtype.kind == "f" else np.float64))
    moved = swapaxes(x, axis, -1)
    return swapaxes(matmul(moved, tri), axis, -1)


def prod(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    """The product of the elements, multiplied pairwise in ``log2(n)`` rounds of elementwise products.

    Every value is an exact product of its inputs rounded once per multiplication (``[3, 5, 7]`` is 105
    in float32, not the 104.99998 that ``exp(sum(log|x|))`` gave), zeros need no special case, and the
    gradient is mul's rule, so it is exact too.  Integer and bool tensors give int64, as in torch.
    """
    x = _t(x)
    axes = _axes(x, dim, "prod")
    if x.dtype.kind in "biu" and x.dtype != np.int64:
        x = x.astype(np.int64)
    if axes is None:
        out = reshape(_pairwise_product(reshape(x, (-1,))), ())
        return reshape(out, (1,) * x.ndim) if keepdim else out
    if x.ndim == 0:
        return x
    (axis,) = axes
    out = swapaxes(_pairwise_product(swapaxes(x, axis, -1)), axis, -1)  # size 1 along ``axis``
    return out if keepdim else reshape(out, x.shape[:axis] + x.shape[axis + 1 :])


def _pairwise_product(m: Tensor) -> Tensor:
    """The product along the last axis, kept as a size-1 axis: pad with ones to a power of two, then halve."""
    n = m.shape[-1]
    lead = m.shape[:-1]
    if n == 0:
        return Tensor(np.ones(lead + (1,), m.dtype))
    width = 1 << (n - 1).bit_length()
    if width > n:
        m = concatenate([m, Tensor(np.ones(lead + (width - n,), m.dtype))], -1)
    while m.shape[-1] > 1:
        m = m[..., 0::2] * m[..., 1::2]
    return m
