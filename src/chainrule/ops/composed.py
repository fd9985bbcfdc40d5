"""More of torch's everyday functions, composed from the primitives."""

from __future__ import annotations

import builtins
from typing import Any, Optional

import numpy as np

from ..primitives import elementwise as E
from ..primitives import linalg as L
from ..primitives import linear as _linear_prim
from ..tensor import Tensor, _off_graph, apply, make_unary
from .base import Axis, _axes, _t
from .elementwise import _raw_fn, _zero_grad_values, clip, cos, divide, exp, pick, power, sin, sqrt, where
from .reductions import ValuesIndices, _all_if_empty, matmul, mean, sum
from .shapes import _own_memory, concatenate, reshape, scatter_add, swapaxes


def linear(x: Any, weight: Any, bias: Any) -> Tensor:
    """``x @ weightᵀ + bias`` as one recorded operation (``torch.nn.functional.linear``; exported as ``cr.linear``)."""
    return apply(_linear_prim.linear, x, weight, bias)


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


def add(x: Any, y: Any, *, alpha: Any = 1) -> Tensor:  # (torch.add with alpha)
    return _t(x) + (y if alpha == 1 else alpha * _t(y))


def sub(x: Any, y: Any, *, alpha: Any = 1) -> Tensor:
    return _t(x) - (y if alpha == 1 else alpha * _t(y))


subtract = sub


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
        return _off_graph(Tensor(q), "integer division", (xt, y))
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


def floor(x: Any) -> Tensor:
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "floor"), np.floor)


def ceil(x: Any) -> Tensor:
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "ceil"), np.ceil)


def round(x: Any, decimals: int = 0) -> Tensor:  # noqa: A001
    """Round half to even, as torch and NumPy; the gradient is zero."""
    x = _t(x)
    return _zero_grad_values(x, np.round(x._data, decimals), lambda d: np.round(d, decimals))


def trunc(x: Any) -> Tensor:
    x = _t(x)
    return _zero_grad_values(x, _raw_fn(x, "trunc"), np.trunc)


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


def _bool_reduce(op: str, fn: Any, x: Any, dim: Any, keepdim: bool) -> Tensor:
    x = _t(x)
    axes = _axes(x, dim, op)
    return _off_graph(Tensor(np.asarray(fn(np.asarray(x._data), axis=axes, keepdims=bool(keepdim)))), op, (x,))


def all(x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None) -> Tensor:  # noqa: A001
    """Whether every element is true (nonzero); a bool tensor."""
    return _bool_reduce("all", np.all, x, pick("all", "dim", dim, "axis", axis), keepdim)


def any(x: Any, dim: Any = None, keepdim: Optional[bool] = None, *, axis: Any = None) -> Tensor:  # noqa: A001
    """Whether some element is true (nonzero); a bool tensor."""
    return _bool_reduce("any", np.any, x, pick("any", "dim", dim, "axis", axis), keepdim)


def count_nonzero(x: Any, dim: Any = None) -> Tensor:
    x = _t(x)
    counts = np.count_nonzero(np.asarray(x._data), axis=_axes(x, dim, "count_nonzero"))
    return _off_graph(Tensor(np.asarray(counts)), "count_nonzero", (x,))


def _values(x: Any) -> np.ndarray:
    return np.asarray(x._data if type(x) is Tensor else x)


def isclose(x: Any, y: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    close = np.isclose(_values(x), _values(y), rtol=rtol, atol=atol, equal_nan=equal_nan)
    return _off_graph(
        Tensor(np.asarray(close)), lambda a, b: np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan), (x, y)
    )


def allclose(x: Any, y: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether ``|x - y| <= atol + rtol * |y|`` everywhere (a Python bool, as torch)."""
    return builtins.bool(np.allclose(_values(x), _values(y), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(x: Any, y: Any) -> bool:
    """Whether both have the same shape and elements (a Python bool, as torch.equal)."""
    a, b = _values(x), _values(y)
    return a.shape == b.shape and builtins.bool(np.array_equal(a, b))


def isnan(x: Any) -> Tensor:
    return _off_graph(Tensor(np.asarray(np.isnan(_values(x)))), np.isnan, (x,))


def isinf(x: Any) -> Tensor:
    return _off_graph(Tensor(np.asarray(np.isinf(_values(x)))), np.isinf, (x,))


def isfinite(x: Any) -> Tensor:
    return _off_graph(Tensor(np.asarray(np.isfinite(_values(x)))), np.isfinite, (x,))


def logical_not(x: Any) -> Tensor:
    return _off_graph(Tensor(np.asarray(np.logical_not(_values(x)))), np.logical_not, (x,))


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
    from ..primitives.linalg import parse_einsum

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
        sums = np.cumsum(np.asarray(x._data), axis=axis if x.ndim else None, dtype=np.int64).reshape(x.shape)
        return _off_graph(Tensor(sums), "cumsum of integers", (x,))
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
