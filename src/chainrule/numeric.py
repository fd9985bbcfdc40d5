"""The numeric array namespaces that VJP rules run against.

``NUMPY`` serves NumPy arrays; ``SCALAR`` serves Python floats with the math
module (a few times faster than NumPy on scalars).  Both expose the same small
vocabulary as :mod:`chainrule.ops` (the differentiable namespace) and the
symbolic namespace used by ``derive``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np


def normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """Axis argument (None, int or tuple) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    if ndim == 0:  # as in torch: axis 0 or -1 of a scalar is the scalar itself (nothing to reduce)
        for a in axis:
            if int(a) not in (0, -1):
                raise ValueError(f"axis {int(a)} is out of bounds for a 0-d array (use 0, -1 or None)")
        return ()
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {tuple(axis)}")
    return tuple(sorted(out))


def keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape a reduction over ``axis`` of ``shape`` has with ``keepdims=True``."""
    axes = normalize_axes(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def unbroadcast_axes(gshape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Axes to sum so a gradient of ``gshape`` reduces to ``shape``; and the leading count."""
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    return axes, lead


def _np_unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    gshape = np.shape(g)
    if gshape == shape:
        return g
    axes, _ = unbroadcast_axes(gshape, shape)
    summed = np.sum(g, axis=axes)
    # reshape only where needed (size-1 axes): a reshaped view would be copied again when stored in .grad
    return summed if np.shape(summed) == shape else np.reshape(summed, shape)


def _np_scatter_add(g: Any, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    g = np.asarray(g)
    out = np.zeros(shape, dtype=g.dtype)
    if is_basic_index(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


def is_basic_index(index: Any) -> bool:
    """True for indices made only of ints, slices, None and Ellipsis (no repeats possible)."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if item is None or item is Ellipsis or isinstance(item, (slice, int, np.integer)):
            continue
        return False
    return True


def _np_swapaxes(x: Any, a: int, b: int) -> Any:
    return np.swapaxes(x, a, b)


def _np_getitem(x: Any, index: Any) -> Any:
    if type(x) is not np.ndarray:
        return np.asarray(x)[index]  # a Python float indexes as a 0-d array
    out = x[index]
    if type(out) is not np.ndarray:  # one element by integers: NumPy gives a scalar copy, torch a 0-d view
        out = x[(*index, Ellipsis) if type(index) is tuple else (index, Ellipsis)]
    return out


def _np_add_fresh(y: Any, b: Any) -> Any:
    """``y + b`` where ``y`` is a fresh array the caller owns: added in place when the result fits ``y``."""
    if type(y) is np.ndarray and np.result_type(y, b) == y.dtype and np.shape(b) == y.shape[-1:]:
        np.add(y, b, out=y)  # the same values as y + b, without a second array
        return y
    return y + b


def _np_add_at(out: Any, index: Any, values: Any) -> Any:
    out[index] += values
    return out


def _np_widesum(x: Any, axis: Any) -> Any:
    """A sum keeping dims; float16 accumulates in float32 (70,000 float16 ones sum to inf), as torch does."""
    if x.dtype == np.float16:
        return np.sum(x, axis=axis, keepdims=True, dtype=np.float32)
    return np.sum(x, axis=axis, keepdims=True)


_ERF = np.frompyfunc(math.erf, 1, 1)


def _np_erf(x: Any) -> np.ndarray:
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return np.asarray(_ERF(x), dtype=dtype)


class _Defaults:
    """Process-wide defaults: ``float`` is the dtype of new float tensors (``cr.set_default_dtype``);
    ``promotion``, where set, names the dtype an integer tensor takes when it meets a Python float or is divided
    (``chainrule.torch`` sets it to its own default, float32, as torch does)."""

    float = np.dtype(np.float64)
    promotion: Optional[Callable[[], np.dtype]] = None

    def promoted(self) -> np.dtype:
        """The float dtype of an integer tensor's float result (no float array took part)."""
        return self.float if self.promotion is None else self.promotion()


DEFAULTS = _Defaults()


def _np_apply(prim: Any, *args: Any) -> Any:
    """Run a primitive's forward on raw arrays (a rule that needs another primitive: fold inside unfold's VJP)."""
    return prim.fwd(*args)


NUMPY = SimpleNamespace(
    name="numpy",
    # forwards (the Array API's names)
    add=np.add,
    subtract=np.subtract,
    multiply=np.multiply,
    divide=np.true_divide,
    negative=np.negative,
    pow=np.power,
    abs=np.abs,
    log1p=np.log1p,
    log2=np.log2,
    log10=np.log10,
    tanh=np.tanh,
    maximum=np.maximum,
    minimum=np.minimum,
    clip=np.clip,
    isfinite=np.isfinite,
    mean=lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    max=lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
    min=lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
    concat=lambda arrays, axis=0: np.concatenate(arrays, axis=axis),
    stack=lambda arrays, axis=0: np.stack(arrays, axis=axis),
    einsum=np.einsum,
    inv=np.linalg.inv,
    det=np.linalg.det,
    erf=_np_erf,
    add_fresh=_np_add_fresh,
    widesum=_np_widesum,
    add_at=_np_add_at,
    zeros_as=lambda shape, like: np.zeros(shape, dtype=like.dtype),
    contiguous=np.ascontiguousarray,
    pad=lambda x, ph, pw: np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))),
    # the rules' vocabulary (shared with SCALAR, TENSOR and the symbolic namespace)
    indicator=lambda cond, like: cond,
    dtype_of=np.result_type,
    exp=np.exp,
    log=np.log,
    sin=np.sin,
    cos=np.cos,
    sign=np.sign,
    sqrt=np.sqrt,
    power=np.power,
    where=np.where,
    shape=np.shape,
    sum=lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    reshape=np.reshape,
    broadcast_to=np.broadcast_to,
    transpose=np.transpose,
    swapaxes=_np_swapaxes,
    getitem=_np_getitem,
    scatter_add=_np_scatter_add,
    astype=lambda x, dtype: np.asarray(x).astype(dtype, copy=False),
    matmul=np.matmul,
    unbroadcast=_np_unbroadcast,
    apply=_np_apply,
    # ``x`` with ``safe`` where ``mask`` holds: a rule's guard against 0 * inf (the formula shows ``x``)
    guarded=lambda mask, safe, x: np.where(mask, safe, x),
)


def _guard(fn: Any) -> Any:
    """Math-module function that reports domain or range trouble as ArithmeticError."""

    def guarded(*args: Any) -> Any:
        try:
            return fn(*args)
        except (ValueError, OverflowError) as exc:  # math.log(0), math.exp(1000)
            raise ArithmeticError(str(exc)) from None

    return guarded


def _scalar_sign(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else (0.0 if x == 0 else x))


SCALAR = SimpleNamespace(
    name="scalar",
    exp=_guard(math.exp),
    log=_guard(math.log),
    sin=math.sin,
    cos=math.cos,
    sign=_scalar_sign,
    sqrt=_guard(math.sqrt),
    power=_guard(math.pow),
    where=lambda c, a, b: a if c else b,
    shape=lambda x: (),
    sum=lambda x, axis=None, keepdims=False: x,
    reshape=lambda x, shape: x,
    broadcast_to=lambda x, shape: x if shape == () else np.broadcast_to(x, shape),
    transpose=lambda x, axes=None: x,
    swapaxes=lambda x, a, b: x,
    getitem=NUMPY.getitem,
    scatter_add=_np_scatter_add,
    astype=NUMPY.astype,
    indicator=lambda cond, like: cond,
    dtype_of=np.result_type,
    matmul=np.matmul,
    unbroadcast=_np_unbroadcast,
    apply=_np_apply,
    guarded=lambda mask, safe, x: safe if mask else x,
)
