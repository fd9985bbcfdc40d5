"""More of torch's functions: inverse trigonometry (primitives in ``primitives/trig``), ``cumprod``,
``cdist``, ``quantile``, ``logaddexp``, ``hypot``, ``xlogy``, ``logit``, matrix helpers (``trace``,
``diagonal``, ``diag_embed``, ``kron``, ``cross``, ``tensordot``, ``block_diag``, ``cartesian_prod``,
``tril_indices``), shape helpers (``rot90``, ``fliplr``, ``atleast_*d``, ``column_stack``, ``dstack``,
``tensor_split``), and counting (``aminmax``, ``kthvalue``, ``mode``, bitwise operations).
Each is composed from chainrule's primitives or is non-differentiable, as in torch."""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from . import ops
from .ops.base import _t
from .primitives import trig as P
from .tensor import Tensor, apply
from .torch_ops import ValuesIndices, _axis, _raw, index_select, movedim


def _unary(prim: Any) -> Any:
    def fn(input: Any) -> Tensor:  # noqa: A002
        x = _t(input)
        if x.dtype.kind in "biu":
            x = x.astype(np.float32)
        return apply(prim, x)

    fn.__name__ = prim.name
    return fn


asin, acos, atan = _unary(P.asin), _unary(P.acos), _unary(P.atan)
asinh, acosh, atanh = _unary(P.asinh), _unary(P.acosh), _unary(P.atanh)
expm1 = _unary(P.expm1)


def atan2(input: Any, other: Any) -> Tensor:  # noqa: A002
    """The angle of ``(other, input)`` (x, y), in ``(-π, π]``."""
    return apply(P.atan2, input, other)


def cumprod(input: Any, dim: int, *, dtype: Any = None) -> Tensor:  # noqa: A002
    """Running products along ``dim``: each is the product of a masked row (so zeros need no special case)."""
    x = _t(input) if dtype is None else _t(input).astype(dtype)
    axis = _axis(x, dim, "cumprod")
    if x.dtype.kind in "biu":
        return Tensor(np.cumprod(_raw(x), axis=axis).astype(np.int64))
    n = x.shape[axis] if x.ndim else 1
    if x.ndim == 0:
        return x
    moved = ops.swapaxes(x, axis, -1).unsqueeze(-2)  # (..., 1, n)
    keep = np.tril(np.ones((n, n), bool))  # row i keeps entries j <= i
    rows = ops.where(keep, moved, np.ones((), x.dtype))  # (..., n, n)
    return ops.swapaxes(ops.prod(rows, dim=-1), axis, -1)


def logaddexp(input: Any, other: Any) -> Tensor:  # noqa: A002
    a, b = _t(input), _t(other)
    shape = np.broadcast_shapes(a.shape, b.shape)
    return ops.logsumexp(ops.stack([ops.broadcast_to(a, shape), ops.broadcast_to(b, shape)]), dim=0)


def hypot(input: Any, other: Any) -> Tensor:  # noqa: A002
    return ops.sqrt(_t(input) ** 2 + _t(other) ** 2)


def xlogy(input: Any, other: Any) -> Tensor:  # noqa: A002
    """``x * log(y)``, and 0 where ``x == 0`` (also where ``y == 0``), as torch."""
    x, y = _t(input), _t(other)
    zero = _raw(x) == 0
    safe = ops.where(zero, np.ones((), y.dtype), y)
    return ops.where(zero, np.zeros((), x.dtype), x * ops.log(safe))


def logit(input: Any, eps: Optional[float] = None) -> Tensor:  # noqa: A002
    x = _t(input)
    if eps is not None:
        x = ops.clip(x, eps, 1 - eps)
    return ops.log(x / (1 - x))


def frac(input: Any) -> Tensor:  # noqa: A002
    x = _t(input)
    return x - ops.trunc(x)


def deg2rad(input: Any) -> Tensor:  # noqa: A002
    return _t(input) * (np.pi / 180)


def rad2deg(input: Any) -> Tensor:  # noqa: A002
    return _t(input) * (180 / np.pi)


def cdist(x1: Any, x2: Any, p: float = 2.0, compute_mode: Any = None) -> Tensor:
    """Distances between the rows of ``x1`` (…, P, M) and ``x2`` (…, R, M); the gradient at distance 0 is 0."""
    a, b = _t(x1), _t(x2)
    d = a.unsqueeze(-2) - b.unsqueeze(-3)  # (..., P, R, M)
    if p == 2:
        sq = (d * d).sum(-1)
        zero = _raw(sq) == 0
        return ops.where(zero, np.zeros((), sq.dtype), ops.sqrt(ops.where(zero, np.ones((), sq.dtype), sq)))
    if p == 1:
        return ops.abs(d).sum(-1)
    if p == float("inf"):
        return ops.amax(ops.abs(d), dim=-1)
    s = (ops.abs(d) ** p).sum(-1)
    zero = _raw(s) == 0
    return ops.where(zero, np.zeros((), s.dtype), ops.where(zero, np.ones((), s.dtype), s) ** (1.0 / p))


def dist(input: Any, other: Any, p: float = 2.0) -> Tensor:  # noqa: A002
    return _pnorm(_t(input) - _t(other), p)


def _pnorm(d: Tensor, p: float) -> Tensor:
    flat = d.reshape(-1)
    if p == 2:
        return ops.sqrt((flat * flat).sum())
    if p == float("inf"):
        return ops.amax(ops.abs(flat))
    return (ops.abs(flat) ** p).sum() ** (1.0 / p)


def quantile(
    input: Any, q: Any, dim: Optional[int] = None, keepdim: bool = False, *, interpolation: str = "linear"
) -> Tensor:  # noqa: A002
    """torch.quantile: the sorted values interpolated at ``q * (n - 1)``; ``q`` a number or a 1-D tensor."""
    x = _t(input)
    if dim is None:
        x, axis = x.reshape(-1), 0
    else:
        axis = _axis(x, dim, "quantile")
    qs = np.atleast_1d(np.asarray(_raw(q), np.float64))
    if qs.ndim > 1 or (qs < 0).any() or (qs > 1).any():
        raise ValueError("quantile: q must be a number or a 1-D tensor of values in [0, 1]")
    srt = ops.sort(x, dim=axis).values
    n = x.shape[axis]
    pos = qs * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.ceil(pos).astype(np.int64)
    if interpolation == "lower":
        hi = lo
    elif interpolation == "higher":
        lo = hi
    elif interpolation == "nearest":
        lo = hi = np.round(pos).astype(np.int64)
    a, b = index_select(srt, axis, lo), index_select(srt, axis, hi)
    if interpolation == "midpoint":
        out = (a + b) * 0.5
    elif interpolation == "linear":
        w = (pos - lo).astype(x.dtype).reshape((1,) * axis + (-1,) + (1,) * (x.ndim - axis - 1))
        out = a + (b - a) * w
    else:
        out = a
    out = movedim(out, axis, 0)
    if keepdim and dim is not None:
        out = out.unsqueeze(axis + 1)
    elif keepdim:
        out = out.reshape((len(qs),) + (1,) * _t(input).ndim)
    if np.ndim(_raw(q)) == 0:
        out = out[0]
    return out


# --- matrices ----------------------------------------------------------------------------------------------


def trace(input: Any) -> Tensor:  # noqa: A002
    """The sum of the main diagonal of a matrix (torch.trace; ``cr.trace`` is chainrule's trace tool)."""
    x = _t(input)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, got shape {x.shape}")
    n = builtins.min(x.shape)
    return x[np.arange(n), np.arange(n)].sum()


def diagonal(input: Any, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:  # noqa: A002
    x = _t(input)
    a, b = _axis(x, dim1, "diagonal"), _axis(x, dim2, "diagonal")
    rest = [i for i in range(x.ndim) if i not in (a, b)]
    y = ops.permute(x, rest + [a, b])
    n1, n2 = y.shape[-2], y.shape[-1]
    i = np.arange(builtins.max(0, builtins.min(n1 - builtins.max(0, -offset), n2 - builtins.max(0, offset))))
    return y[..., i + builtins.max(0, -offset), i + builtins.max(0, offset)]


def diag_embed(input: Any, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:  # noqa: A002
    x = _t(input)
    if (dim1, dim2) != (-2, -1):
        raise NotImplementedError("diag_embed: only dim1=-2, dim2=-1 are supported in chainrule.torch")
    n = x.shape[-1] + abs(offset)
    i = np.arange(x.shape[-1])
    rows, cols = i + builtins.max(0, -offset), i + builtins.max(0, offset)
    idx = np.zeros((n, n), np.int64)
    mask = np.zeros((n, n), bool)
    idx[rows, cols] = i
    mask[rows, cols] = True
    return ops.where(mask, x[..., idx], np.zeros((), x.dtype))


def kron(input: Any, other: Any) -> Tensor:  # noqa: A002
    a, b = _t(input), _t(other)
    nd = builtins.max(a.ndim, b.ndim)
    a = a.reshape((1,) * (nd - a.ndim) + a.shape)
    b = b.reshape((1,) * (nd - b.ndim) + b.shape)
    ea = a.reshape(sum(((s, 1) for s in a.shape), ()))
    eb = b.reshape(sum(((1, s) for s in b.shape), ()))
    return (ea * eb).reshape(tuple(s * t for s, t in zip(a.shape, b.shape)))


def cross(input: Any, other: Any, dim: Optional[int] = None) -> Tensor:  # noqa: A002
    a, b = _t(input), _t(other)
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = ops.broadcast_to(a, shape), ops.broadcast_to(b, shape)
    axis = (
        _axis(a, -1 if dim is None else dim, "cross")
        if dim is not None
        else next(i for i, s in enumerate(shape) if s == 3)
    )
    if shape[axis] != 3:
        raise RuntimeError(f"cross: dimension {axis} must have size 3, got shape {shape}")

    def c(t: Tensor, k: int) -> Tensor:
        return t[(slice(None),) * axis + (k,)]

    parts = [
        c(a, 1) * c(b, 2) - c(a, 2) * c(b, 1),
        c(a, 2) * c(b, 0) - c(a, 0) * c(b, 2),
        c(a, 0) * c(b, 1) - c(a, 1) * c(b, 0),
    ]
    return ops.stack(parts, axis)


def tensordot(a: Any, b: Any, dims: Any = 2) -> Tensor:
    x, y = _t(a), _t(b)
    if isinstance(dims, int):
        ax, bx = list(range(x.ndim - dims, x.ndim)), list(range(dims))
    else:
        ax, bx = [list(np.atleast_1d(d)) for d in dims]
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sx = [next(letters) for _ in range(x.ndim)]
    sy = [next(letters) for _ in range(y.ndim)]
    for i, j in zip(ax, bx):
        sy[j] = sx[i]
    out = [s for i, s in enumerate(sx) if i not in ax] + [s for j, s in enumerate(sy) if j not in bx]
    return ops.einsum(f"{''.join(sx)},{''.join(sy)}->{''.join(out)}", x, y)


def block_diag(*tensors: Any) -> Tensor:
    ts = [_t(t) for t in tensors]
    ts = [t.reshape(1, -1) if t.ndim < 2 else t for t in ts]
    cols = sum(t.shape[1] for t in ts)
    dtype = np.result_type(*(t.dtype for t in ts))
    rows, c0 = [], 0
    for t in ts:
        left = Tensor(np.zeros((t.shape[0], c0), dtype))
        right = Tensor(np.zeros((t.shape[0], cols - c0 - t.shape[1]), dtype))
        rows.append(ops.cat([left, t.astype(dtype), right], dim=1))
        c0 += t.shape[1]
    return ops.cat(rows, dim=0)


def cartesian_prod(*tensors: Any) -> Tensor:
    ts = [_t(t) for t in tensors]
    if len(ts) == 1:
        return ts[0]
    idx = np.array(list(itertools.product(*(range(t.shape[0]) for t in ts)))).T
    return ops.stack([t[i] for t, i in zip(ts, idx)], 1)


def tril_indices(
    row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None, layout: Any = None
) -> Tensor:
    return Tensor(np.stack(np.tril_indices(row, offset, col)).astype(np.int64 if dtype is None else dtype))


def triu_indices(
    row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None, layout: Any = None
) -> Tensor:
    return Tensor(np.stack(np.triu_indices(row, offset, col)).astype(np.int64 if dtype is None else dtype))


# --- shapes -----------------------------------------------------------------------------------------------------


def rot90(input: Any, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:  # noqa: A002
    x = _t(input)
    a, b = (_axis(x, d, "rot90") for d in dims)
    k %= 4
    if k == 1:
        return ops.flip(x, [b]).transpose(a, b)
    if k == 2:
        return ops.flip(x, [a, b])
    if k == 3:
        return ops.flip(x, [a]).transpose(a, b)
    return x


def fliplr(input: Any) -> Tensor:  # noqa: A002
    return ops.flip(_t(input), [1])


def flipud(input: Any) -> Tensor:  # noqa: A002
    return ops.flip(_t(input), [0])


def _atleast(n: int, tensors: tuple) -> Any:
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    out = []
    for t in tensors:
        t = _t(t)
        if t.ndim < n:
            shape = {
                0: (1,) * n,
                1: (1,) * (n - 1) + t.shape if n < 3 else (1,) + t.shape + (1,),
                2: t.shape + (1,) * (n - 2),
            }[t.ndim]
            t = t.reshape(shape)
        out.append(t)
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*tensors: Any) -> Any:
    return _atleast(1, tensors)


def atleast_2d(*tensors: Any) -> Any:
    return _atleast(2, tensors)


def atleast_3d(*tensors: Any) -> Any:
    return _atleast(3, tensors)


def column_stack(tensors: Sequence[Any]) -> Tensor:
    ts = [_t(t) for t in tensors]
    return ops.cat([t.reshape(-1, 1) if t.ndim < 2 else t for t in ts], dim=1)


def dstack(tensors: Sequence[Any]) -> Tensor:
    return ops.cat(list(atleast_3d(*tensors)) if len(tensors) > 1 else [atleast_3d(*tensors)], dim=2)


def tensor_split(input: Any, indices_or_sections: Any, dim: int = 0) -> tuple:  # noqa: A002
    x = _t(input)
    axis = _axis(x, dim, "tensor_split")
    n = x.shape[axis]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        cuts = list(itertools.accumulate(sizes))[:-1]
    else:
        cuts = [int(i) for i in indices_or_sections]
    bounds = [0] + cuts + [n]
    return tuple(x[(slice(None),) * axis + (slice(a, builtins.max(a, b)),)] for a, b in zip(bounds[:-1], bounds[1:]))


# --- counting and integers (no gradient, as torch) -------------------------------------------------------------


def aminmax(input: Any, *, dim: Optional[int] = None, keepdim: bool = False) -> Any:  # noqa: A002
    from collections import namedtuple  # noqa: PLC0415

    pair = namedtuple("aminmax", ["min", "max"])
    x = _t(input)
    return pair(ops.amin(x, dim=dim, keepdim=keepdim), ops.amax(x, dim=dim, keepdim=keepdim))


def kthvalue(input: Any, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:  # noqa: A002
    x = _t(input)
    axis = _axis(x, dim, "kthvalue")
    order = np.argsort(_raw(x), axis=axis, kind="stable")
    idx = np.take(order, [k - 1], axis=axis)
    values = ops.gather(x, axis, idx)
    if not keepdim:
        values, idx = values.squeeze(axis), np.squeeze(idx, axis)
    return ValuesIndices(values, Tensor(idx.astype(np.int64)))


def msort(input: Any) -> Tensor:  # noqa: A002
    return ops.sort(_t(input), dim=0).values


def _bitwise(fn: Any, name: str) -> Any:
    def op(input: Any, other: Any) -> Tensor:  # noqa: A002
        a, b = _raw(input), _raw(other)
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            raise TypeError(f"{name}: bitwise operations need integer or bool tensors")
        return Tensor(np.asarray(fn(a, b)))

    op.__name__ = name
    return op


bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")
gcd = _bitwise(np.gcd, "gcd")
lcm = _bitwise(np.lcm, "lcm")


def bitwise_not(input: Any) -> Tensor:  # noqa: A002
    return Tensor(np.asarray(np.invert(_raw(input))))


def signbit(input: Any) -> Tensor:  # noqa: A002
    return Tensor(np.signbit(_raw(input)))


def fmax(input: Any, other: Any) -> Tensor:  # noqa: A002
    """The larger value, ignoring NaN (a NaN loses); the gradient goes to the chosen side."""
    a, b = _t(input), _t(other)
    pick_a = np.fmax(_raw(a), _raw(b)) == _raw(a)
    return ops.where(pick_a, a, b)


def fmin(input: Any, other: Any) -> Tensor:  # noqa: A002
    a, b = _t(input), _t(other)
    pick_a = np.fmin(_raw(a), _raw(b)) == _raw(a)
    return ops.where(pick_a, a, b)


NAMES = (
    "asin acos atan asinh acosh atanh expm1 atan2 cumprod logaddexp hypot xlogy logit frac deg2rad rad2deg cdist "
    "dist quantile trace diagonal diag_embed kron cross tensordot block_diag cartesian_prod tril_indices "
    "triu_indices rot90 fliplr flipud atleast_1d atleast_2d atleast_3d column_stack dstack tensor_split aminmax "
    "kthvalue msort bitwise_and bitwise_or bitwise_xor bitwise_not gcd lcm signbit fmax fmin"
).split()

_METHODS = (
    "asin acos atan asinh acosh atanh expm1 atan2 cumprod logaddexp hypot xlogy logit frac deg2rad rad2deg dist "
    "quantile diagonal diag_embed kron cross rot90 fliplr flipud tensor_split aminmax kthvalue msort bitwise_and "
    "bitwise_or bitwise_xor bitwise_not gcd lcm signbit fmax fmin"
).split()

for _name in _METHODS:
    if _name not in Tensor.__dict__:
        setattr(Tensor, _name, globals()[_name])
for _alias, _name in (("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"), ("arctan2", "atan2")):
    if _alias not in Tensor.__dict__:
        setattr(Tensor, _alias, globals()[_name])


# --- torch's remaining everyday Tensor methods: aliases, in-place twins, small predicates --------------------------
def _alias_methods() -> None:
    from . import linalg  # noqa: PLC0415  (the public face's linalg, a sibling)

    def cmp(np_fn: Any) -> Any:
        return lambda self, other: Tensor(np.asarray(np_fn(_raw(self), _raw(other))))

    aliases = {
        "greater": cmp(np.greater),
        "greater_equal": cmp(np.greater_equal),
        "less": cmp(np.less),
        "less_equal": cmp(np.less_equal),
        "not_equal": cmp(np.not_equal),
        "positive": lambda self: self,
        "negative": lambda self: -self,
        "fix": lambda self: ops.trunc(self),
        "sgn": lambda self: ops.sign(self),
        "erf": lambda self: _erf(self),
        "arcsinh": asinh,
        "arccosh": acosh,
        "arctanh": atanh,
        "ger": lambda self, vec2: ops.outer(self, vec2),
        "inner": lambda self, other: (self * other).sum(-1) if _t(self).ndim <= 1 else ops.matmul(self, _t(other).mT),
        "vdot": lambda self, other: (self * other).sum(),
        "addmv": lambda self, mat, vec, *, beta=1, alpha=1: _addmm(self, mat, vec, beta=beta, alpha=alpha),
        "addr": lambda self, v1, v2, *, beta=1, alpha=1: _addmm(
            self, _t(v1).unsqueeze(-1), _t(v2).unsqueeze(0), beta=beta, alpha=alpha
        ),
        "baddbmm": lambda self, b1, b2, *, beta=1, alpha=1: _addmm(self, b1, b2, beta=beta, alpha=alpha),
        "inverse": lambda self: linalg.inv(self),
        "det": lambda self: linalg.det(self),
        "logdet": lambda self: ops.log(linalg.det(self)),
        "matrix_power": _matrix_power,
        "mH": property(lambda self: self.mT),
        "adjoint": lambda self: self.mT,
        "real": property(lambda self: self),
        "isreal": lambda self: Tensor(np.ones(self.shape, bool)),
        "is_complex": lambda self: False,
        "is_signed": lambda self: self.dtype.kind in "fi",
        "is_cpu": property(lambda self: self.device == "cpu"),
        "is_contiguous": lambda self, memory_format=None: bool(np.asarray(self._data).flags.c_contiguous),
        "is_nonzero": lambda self: _is_nonzero(self),
        "is_same_size": lambda self, other: tuple(self.shape) == tuple(other.shape),
        "is_inference": lambda self: False,
        "get_device": lambda self: -1,
        "stride": _stride,
        "isposinf": lambda self: Tensor(np.isposinf(_raw(self))),
        "isneginf": lambda self: Tensor(np.isneginf(_raw(self))),
        "float_power": lambda self, exponent: (
            _t(self).astype(np.float64) ** (exponent.astype(np.float64) if isinstance(exponent, Tensor) else exponent)
        ),
        "copysign": lambda self, other: (
            ops.abs(self)
            * Tensor(np.where(np.signbit(_raw(other)), -1.0, 1.0).astype(np.result_type(_raw(self).dtype, np.float32)))
        ),
        "heaviside": lambda self, values: Tensor(np.heaviside(_raw(self), _raw(values)).astype(_raw(self).dtype)),
        "logaddexp2": lambda self, other: logaddexp(self * np.log(2), _t(other) * np.log(2)) / np.log(2),
        "sinc": _sinc,
        "char": lambda self: self.astype(np.int8),
        "split_with_sizes": lambda self, split_sizes, dim=0: ops.split(self, list(split_sizes), dim),
        "hsplit": lambda self, sections: tensor_split(self, sections, 1 if _t(self).ndim > 1 else 0),
        "vsplit": lambda self, sections: tensor_split(self, sections, 0),
        "dsplit": lambda self, sections: tensor_split(self, sections, 2),
        "diagflat": lambda self, offset=0: diag_embed(_t(self).reshape(-1), offset),
        "take": lambda self, index: self.reshape(-1)[np.asarray(_raw(index), np.int64)],
        "select": lambda self, dim, index: self[(slice(None),) * _axis(_t(self), dim, "select") + (int(index),)],
        "sum_to_size": _sum_to_size,
        "unique_consecutive": _unique_consecutive,
        "nanmedian": lambda self, *a, **k: _nanmedian(self, *a, **k),
        "cov": lambda self, *, correction=1, fweights=None, aweights=None: _cov(self, correction),
        "corrcoef": lambda self: _corrcoef(self),
    }
    for name, fn in aliases.items():
        if name not in Tensor.__dict__ and not hasattr(Tensor, name):
            setattr(Tensor, name, fn)
    from .inplace import history_copy, inplace  # noqa: PLC0415

    def twin(base: str) -> Any:
        fn = getattr(Tensor, base)

        def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            # computed from a copy of this tensor's value and record: a composed operation reads it several
            # times, and none of those reads may be the tensor that is then overwritten
            return inplace(
                self, base + "_", lambda: fn(history_copy(self) if self._node is not None else self, *args, **kwargs)
            )

        method.__name__ = base + "_"
        return method

    for base in (
        "acos asin atan acosh asinh atanh arccos arcsin arctan arccosh arcsinh arctanh atan2 arctan2 cosh sinh tan "
        "exp2 expm1 log2 log10 rsqrt erf frac deg2rad rad2deg cumsum cumprod tril triu hypot logit xlogy fix sgn "
        "absolute negative multiply divide subtract true_divide floor_divide eq ne ge gt le lt greater greater_equal "
        "less less_equal not_equal logical_and logical_or logical_xor logical_not bitwise_and bitwise_or "
        "bitwise_xor bitwise_not gcd lcm copysign heaviside float_power"
    ).split():
        if hasattr(Tensor, base) and not hasattr(Tensor, base + "_"):
            setattr(Tensor, base + "_", twin(base))


def _erf(x: Any) -> Tensor:
    from .primitives.nn import erf  # noqa: PLC0415

    t = _t(x)
    return apply(erf, t if t.dtype.kind == "f" else t.astype(np.float32))


def _addmm(input: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:  # noqa: A002
    from .torch_ops import addmm  # noqa: PLC0415

    return addmm(input, a, b, beta=beta, alpha=alpha)


def _matrix_power(self: Tensor, n: int) -> Tensor:
    from . import linalg  # noqa: PLC0415

    x = _t(self)
    if n < 0:
        x, n = linalg.inv(x), -n
    out = Tensor(np.broadcast_to(np.eye(x.shape[-1], dtype=x.dtype), x.shape).copy())
    for _ in range(n):
        out = ops.matmul(out, x)
    return out


def _is_nonzero(self: Tensor) -> bool:
    if self.numel() != 1:
        raise RuntimeError(f"is_nonzero: expected a tensor with one element, got shape {tuple(self.shape)}")
    return bool(np.asarray(self._data).reshape(()) != 0)


def _stride(self: Tensor, dim: Optional[int] = None) -> Any:
    arr = np.asarray(self._data)
    st = tuple(s // arr.itemsize for s in arr.strides)
    return st if dim is None else st[_axis(self, dim, "stride")]


def _sinc(self: Tensor) -> Tensor:
    x = _t(self)
    zero = _raw(x) == 0
    px = ops.where(zero, np.ones((), x.dtype), x) * np.pi
    return ops.where(zero, np.ones((), x.dtype), ops.sin(px) / px)


def _sum_to_size(self: Tensor, *size: Any) -> Tensor:
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    x = _t(self)
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    return ops.sum(x, dim=axes, keepdim=True).reshape(shape) if axes else x


def _unique_consecutive(
    self: Tensor, return_inverse: bool = False, return_counts: bool = False, dim: Any = None
) -> Any:
    d = _raw(self).reshape(-1) if dim is None else None
    if d is None:
        raise NotImplementedError("unique_consecutive(dim=...) is not supported in chainrule.torch")
    starts = np.concatenate([[True], d[1:] != d[:-1]]) if d.size else np.zeros(0, bool)
    out = [Tensor(d[starts])]
    if return_inverse:
        out.append(Tensor((np.cumsum(starts) - 1).reshape(_t(self).shape).astype(np.int64)))
    if return_counts:
        idx = np.flatnonzero(starts)
        out.append(Tensor(np.diff(np.append(idx, d.size)).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def _nanmedian(self: Tensor, dim: Optional[int] = None, keepdim: bool = False) -> Any:
    from .torch_ops import median  # noqa: PLC0415

    x = _t(self)
    if dim is None:
        flat = x.reshape(-1)
        keep = np.flatnonzero(~np.isnan(_raw(flat)))
        return median(flat[keep]) if keep.size else Tensor(np.array(np.nan, x.dtype))
    raise NotImplementedError("nanmedian(dim=...) is not supported in chainrule.torch; use nanmedian() or median(dim)")


def _cov(self: Tensor, correction: int = 1) -> Tensor:
    x = _t(self)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    n = x.shape[1]
    c = x - x.mean(1, keepdim=True)
    out = ops.matmul(c, c.mT) / (n - correction)
    return out.reshape(()) if _t(self).ndim == 1 or out.shape == (1, 1) and _t(self).ndim == 1 else out


def _corrcoef(self: Tensor) -> Tensor:
    c = _cov(self)
    if c.ndim == 0:
        return c / c
    d = ops.sqrt(ops.diag(c))
    return c / d.unsqueeze(1) / d.unsqueeze(0)


_alias_methods()
