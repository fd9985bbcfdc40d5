"""The differentiable functions of chainrule (``cr.exp``, ``cr.sum``, ``cr.matmul`` ...).

Each is a thin call of a registered primitive.  Together they also form the
``TENSOR`` namespace: VJP rules run against it when ``create_graph=True``, so
the backward pass is itself recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from .numeric import normalize_axes, unbroadcast_axes
from .primitives import elementwise as E
from .primitives import linalg as L
from .primitives import reduction as R
from .primitives import shape as S
from .tensor import Tensor, apply, as_value, binary, tensor, unary

Axis = Optional[int | Sequence[int]]


def _t(x: Any) -> Tensor:
    return x if type(x) is Tensor else Tensor(x)


# --- elementwise ------------------------------------------------------------------
add = Tensor.__add__


subtract = Tensor.__sub__


multiply = Tensor.__mul__


divide = Tensor.__truediv__


power = Tensor.__pow__


negative = Tensor.__neg__


exp = Tensor.exp


log = Tensor.log


log1p = Tensor.log1p


sqrt = Tensor.sqrt


sin = Tensor.sin


cos = Tensor.cos


tanh = Tensor.tanh


sigmoid = Tensor.sigmoid


relu = Tensor.relu


def abs(x: Any) -> Tensor:  # noqa: A001
    return unary(E.absolute, x)


maximum = Tensor.maximum


minimum = Tensor.minimum


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
    """The sign of each element (not differentiable: its gradient is zero almost everywhere)."""
    return Tensor(np.asarray(np.sign(_t(x)._data)))


# --- reductions ---------------------------------------------------------------------
def _axes(x: Tensor, axis: Axis, op: str) -> Optional[tuple[int, ...]]:
    if axis is None:
        return None
    try:
        return normalize_axes(axis, x.ndim)
    except ValueError as exc:
        raise ValueError(f"{op}: {exc} (input shape {x.shape})") from None


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    x = _t(x)
    return apply(R.sum_, x, _axes(x, axis, "sum"), keepdims)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    axes = _axes(x, axis, "mean")
    if x.size == 0 or (axes is not None and any(x.shape[a] == 0 for a in axes)):
        raise ValueError(f"mean: cannot average over an empty axis (input shape {x.shape})")
    return apply(R.mean, x, axes, keepdims)


def _extremum(prim: Any, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    x = _t(x)
    axes = _axes(x, axis, prim.name)
    if x.size == 0 and (axes is None or any(x.shape[a] == 0 for a in axes)):
        raise ValueError(f"{prim.name}: the reduction has no identity; the input of shape {x.shape} is empty")
    return apply(prim, x, axes, keepdims)


def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value; the gradient goes to the winner (split evenly among exact ties)."""
    return _extremum(R.max_, x, axis, keepdims)


def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value; the gradient goes to the winner (split evenly among exact ties)."""
    return _extremum(R.min_, x, axis, keepdims)


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _extremum(R.logsumexp, x, axis, keepdims)


def softmax(x: Any, axis: int = -1) -> Tensor:
    x = _t(x)
    return apply(R.softmax, x, _axes(x, axis, "softmax"))


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    x = _t(x)
    return apply(R.log_softmax, x, _axes(x, axis, "log_softmax"))


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
def reshape(x: Any, shape: Any) -> Tensor:
    x = _t(x)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    return apply(S.reshape, x, shape)


def transpose(x: Any, axes: Optional[Sequence[int]] = None) -> Tensor:
    """Permute axes (reverse them when ``axes`` is None), as ``numpy.transpose``."""
    x = _t(x)
    nd = x.ndim
    if axes is None:
        axes = tuple(range(nd - 1, -1, -1))
    else:
        axes = tuple(int(a) % nd if nd else int(a) for a in axes)
        if sorted(axes) != list(range(nd)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {nd} axes of shape {x.shape}")
    if nd < 2 or axes == tuple(range(nd)):
        return x
    return apply(S.transpose, x, axes)


def swapaxes(x: Any, a: int, b: int) -> Tensor:
    x = _t(x)
    nd = x.ndim
    try:
        (a,), (b,) = normalize_axes(a, nd), normalize_axes(b, nd)
    except ValueError as exc:
        raise ValueError(f"swapaxes: {exc} (input shape {x.shape})") from None
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    x = _t(x)
    shape = tuple(int(s) for s in shape)
    if x.shape == shape:
        return x
    return apply(S.broadcast_to, x, shape)


def expand_dims(x: Any, axis: int) -> Tensor:
    x = _t(x)
    return reshape(x, np.expand_dims(np.empty(x.shape, dtype=bool), axis).shape)


def squeeze(x: Any, axis: Axis = None) -> Tensor:
    x = _t(x)
    return reshape(x, np.squeeze(np.empty(x.shape, dtype=bool), axis).shape)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    if len(tensors) == 0:
        raise ValueError("concatenate: need at least one tensor")
    ts = [_t(t) for t in tensors]
    nd = ts[0].ndim
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; use stack")
    return apply(S.concatenate, *ts, int(axis) % nd)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    if len(tensors) == 0:
        raise ValueError("stack: need at least one tensor")
    ts = [_t(t) for t in tensors]
    return apply(S.stack, *ts, int(axis) % (ts[0].ndim + 1))


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


def zeros(shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    return tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    return tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def zeros_like(x: Any, requires_grad: bool = False) -> Tensor:
    return tensor(np.zeros_like(np.asarray(_t(x).data)), requires_grad=requires_grad)


def ones_like(x: Any, requires_grad: bool = False) -> Tensor:
    return tensor(np.ones_like(np.asarray(_t(x).data)), requires_grad=requires_grad)


def arange(*args: Any, dtype: Any = None) -> Tensor:
    return tensor(np.arange(*args, dtype=dtype))


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if type(x) is Tensor else np.shape(x)


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
    transpose=transpose,
    swapaxes=swapaxes,
    getitem=getitem,
    scatter_add=scatter_add,
    astype=astype,
    matmul=matmul,
    unbroadcast=unbroadcast,
)
