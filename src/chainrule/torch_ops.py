"""More of torch's tensor functions, composed from chainrule's primitives (so gradients need no new rules).

Indexing (``index_select``, ``masked_select``, ``nonzero``, ``scatter``, ``scatter_add``, ``index_add``),
counting (``unique``, ``bincount``, ``histc``), ``%``/``//``/``fmod``, shape helpers (``narrow``,
``unflatten``, ``movedim``, ``repeat_interleave``, ``meshgrid``, ``broadcast_tensors``), and small
reductions (``median``, ``var_mean``, ``nanmean``, ``diff``, ``addmm``).  Importing this module also
attaches the torch-named methods to ``Tensor``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from . import ops
from .inplace import history_copy, inplace
from .ops.base import _t
from .tensor import Tensor

ValuesIndices = ops.ValuesIndices


def _axis(x: Tensor, dim: int, op: str) -> int:
    nd = builtins.max(x.ndim, 1)
    if not -nd <= int(dim) < nd:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of shape {x.shape} (valid: {-nd}..{nd - 1})")
    return int(dim) % nd


def _ints(index: Any, op: str, what: str = "index") -> np.ndarray:
    arr = np.asarray(index._data if isinstance(index, Tensor) else index)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: {what} must be an integer tensor (torch.long), got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _raw(x: Any) -> np.ndarray:
    return np.asarray(x._data if isinstance(x, Tensor) else x)


def _in_range(idx: np.ndarray, n: int, op: str, dim: int) -> None:
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"{op}: index out of range for dimension {dim} of size {n} (got {idx.min()}..{idx.max()})")


# --- selecting and scattering ------------------------------------------------------------------------------


def index_select(input: Any, dim: int, index: Any) -> Tensor:  # noqa: A002
    """The slices ``index`` (1-D int) of ``input`` along ``dim``; the gradient adds back (repeats accumulate)."""
    x = _t(input)
    axis = _axis(x, dim, "index_select")
    idx = _ints(index, "index_select")
    if idx.ndim > 1:
        raise IndexError(f"index_select: index must be 0-d or 1-d, got shape {idx.shape}")
    if x.ndim == 0:
        _in_range(idx, 1, "index_select", 0)
        return x.reshape(1)[np.zeros(idx.reshape(-1).shape, np.int64)].reshape(idx.shape if idx.ndim else ())
    _in_range(idx, x.shape[axis], "index_select", axis)
    return x[(slice(None),) * axis + (idx.reshape(-1),)]


def masked_select(input: Any, mask: Any) -> Tensor:  # noqa: A002
    """The elements where ``mask`` (bool, broadcastable) is True, as a 1-D tensor."""
    x = _t(input)
    m = _raw(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"masked_select: mask must be a bool tensor, got dtype {m.dtype}")
    shape = np.broadcast_shapes(x.shape, m.shape)
    xb = x if x.shape == shape else ops.broadcast_to(x, shape)
    return xb[np.broadcast_to(m, shape)]


def nonzero(input: Any, *, as_tuple: bool = False) -> Any:  # noqa: A002
    """Indices of the non-zero elements: an ``(n, ndim)`` int64 tensor, or a tuple of 1-D ones (``as_tuple``)."""
    d = _raw(input)
    if as_tuple:
        if d.ndim == 0:
            return (Tensor(np.flatnonzero(d.reshape(1)).astype(np.int64)),)
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(d))
    return Tensor(np.argwhere(d).astype(np.int64))


def argwhere(input: Any) -> Tensor:  # noqa: A002
    return nonzero(input)


def where(condition: Any, input: Any = None, other: Any = None) -> Any:  # noqa: A002
    """``where(c, x, y)`` picks elementwise; ``where(c)`` is ``nonzero(c, as_tuple=True)``, as in torch."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if input is None or other is None:
        raise TypeError("where: give both input and other, or neither (where(condition) lists the indices)")
    return ops.where(condition, input, other)


def _scatter_index(x: Tensor, dim: int, index: Any, src: Any, op: str) -> tuple[int, np.ndarray, Any]:
    axis = _axis(x, dim, op)
    idx = _ints(index, op)
    if idx.ndim != x.ndim:
        raise ValueError(f"{op}: index has {idx.ndim} dims but self has {x.ndim} (shape {x.shape})")
    _in_range(idx, x.shape[axis] if x.ndim else 1, op, axis)
    for d, (i, s) in enumerate(zip(idx.shape, x.shape)):
        if d != axis and i > s:
            raise ValueError(f"{op}: index shape {idx.shape} is larger than self's {x.shape} in dim {d}")
    if isinstance(src, Tensor) or (not np.isscalar(src) and np.ndim(src) > 0):
        s = _t(src)
        if s.ndim != idx.ndim or builtins.any(i > n for i, n in zip(idx.shape, s.shape)):
            raise ValueError(f"{op}: src of shape {s.shape} must have the index's dims, each at least as large")
        part = s[tuple(slice(0, n) for n in idx.shape)] if s.shape != idx.shape else s
    else:
        part = np.full(idx.shape, src, dtype=x.dtype)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return axis, tuple(grid), part


def scatter(input: Any, dim: int, index: Any, src: Any = None, *, value: Any = None, reduce: Any = None) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``src`` (a tensor or a number) written at ``index`` along ``dim``.

    ``reduce='add'`` adds instead (as ``scatter_add``), ``'multiply'`` is refused.  With repeated
    indices the written value is one of the candidates (torch does not define which either).
    """
    x = _t(input)
    src = value if src is None else src
    if src is None:
        raise TypeError("scatter: give src (a tensor) or value (a number)")
    if reduce is not None:
        if reduce == "add":
            return scatter_add(x, dim, index, src)
        raise NotImplementedError(f"scatter: reduce={reduce!r} is not supported in chainrule; use reduce='add'")
    _, where_, part = _scatter_index(x, dim, index, src, "scatter")
    out = ops.clone(x)
    out[where_] = part
    return out


def scatter_add(input: Any, dim: int, index: Any, src: Any) -> Tensor:  # noqa: A002
    """``input`` with ``src`` added at ``index`` along ``dim``; repeated indices accumulate."""
    x = _t(input)
    _, where_, part = _scatter_index(x, dim, index, src, "scatter_add")
    added = ops.scatter_add(part, where_, x.shape)
    return x + (added if added.dtype == x.dtype else added.astype(x.dtype))


def index_add(input: Any, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:  # noqa: A002
    """``input`` with ``alpha * source`` added to the slices ``index`` along ``dim`` (repeats accumulate)."""
    x = _t(input)
    axis = _axis(x, dim, "index_add")
    idx = _ints(index, "index_add")
    if idx.ndim != 1:
        raise IndexError(f"index_add: index must be 1-d, got shape {idx.shape}")
    _in_range(idx, x.shape[axis], "index_add", axis)
    src = _t(source)
    want = x.shape[:axis] + (idx.shape[0],) + x.shape[axis + 1 :]
    if src.shape != want:
        raise ValueError(f"index_add: source has shape {src.shape}; with {idx.shape[0]} indices it must be {want}")
    if alpha != 1:
        src = src * alpha
    added = ops.scatter_add(src, (slice(None),) * axis + (idx,), x.shape)
    return x + (added if added.dtype == x.dtype else added.astype(x.dtype))


def index_fill(input: Any, dim: int, index: Any, value: Any) -> Tensor:  # noqa: A002
    x = _t(input)
    axis = _axis(x, dim, "index_fill")
    idx = _ints(index, "index_fill").reshape(-1)
    _in_range(idx, x.shape[axis], "index_fill", axis)
    mask = np.zeros(x.shape[axis], bool)
    mask[idx] = True
    mask = mask.reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return ops.where(mask, value if isinstance(value, Tensor) else np.asarray(value, x.dtype), x)


# --- counting (no gradient, as in torch) ------------------------------------------------------------------


def unique(
    input: Any,  # noqa: A002
    sorted: bool = True,  # noqa: A002
    return_inverse: bool = False,
    return_counts: bool = False,
    dim: Optional[int] = None,
) -> Any:
    """The distinct values, sorted (torch sorts on the CPU whatever ``sorted`` says), as ``torch.unique``."""
    d = _raw(input)
    axis = None if dim is None else _axis(_t(input), dim, "unique")
    vals, inverse, counts = np.unique(d, return_inverse=True, return_counts=True, axis=axis)
    out: list[Tensor] = [Tensor(vals)]
    if return_inverse:
        out.append(Tensor(inverse.reshape(d.shape if axis is None else (d.shape[axis],)).astype(np.int64)))
    if return_counts:
        out.append(Tensor(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input: Any, weights: Any = None, minlength: int = 0) -> Tensor:  # noqa: A002
    """How often each non-negative int occurs (weighted sums with ``weights``), as ``torch.bincount``."""
    d = _ints(input, "bincount", "input")
    if d.ndim != 1:
        raise ValueError(f"bincount: input must be 1-d, got shape {d.shape}")
    if d.size and d.min() < 0:
        raise ValueError(f"bincount: input must be non-negative, got the value {d.min()}")
    if weights is None:
        return Tensor(np.bincount(d, minlength=minlength).astype(np.int64))
    w = _raw(weights)
    out = np.bincount(d, weights=w, minlength=minlength)
    return Tensor(out.astype(w.dtype if w.dtype.kind == "f" else np.float64))


def histc(input: Any, bins: int = 100, min: float = 0.0, max: float = 0.0) -> Tensor:  # noqa: A002
    """A histogram of ``bins`` equal bins over ``[min, max]`` (the data's range when both are 0)."""
    d = _raw(input).astype(np.float64).reshape(-1)
    lo, hi = float(min), float(max)
    if lo == hi:
        lo, hi = (float(d.min()), float(d.max())) if d.size else (0.0, 0.0)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    inside = d[(d >= lo) & (d <= hi)]
    counts, _ = np.histogram(inside, bins=int(bins), range=(lo, hi))
    return Tensor(counts.astype(_raw(input).dtype if _raw(input).dtype.kind == "f" else np.float32))


# --- %, //, fmod ----------------------------------------------------------------------------------------------


def _with_exact_values(out: Tensor, values: np.ndarray) -> Tensor:
    """``out`` (its graph gives the gradient) holding ``values``, the forward as torch computes it.  The
    graph's last step is ``a - b * q``, whose rules read only the inputs, so the output's value is free."""
    values = np.asarray(values, dtype=out.dtype)
    if type(out._data) is np.ndarray and out._data.shape == values.shape:
        out._data[...] = values
    return out


def _is_int(v: Any) -> bool:
    if isinstance(v, bool) or isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, Tensor) and v.dtype.kind in "biu"


def _int_result(a: Any, b: Any, np_fn: Any, op: str) -> Tensor:
    av, bv = _raw(a), _raw(b)
    if np.any(bv == 0):
        raise ZeroDivisionError(f"{op}: integer division by zero (torch raises too)")
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        dtype = np.result_type(av, bv)
    else:
        dtype = (a if isinstance(a, Tensor) else b).dtype
    return Tensor(np.asarray(np_fn(av, bv)).astype(dtype))


def _division_like(a: Any, b: Any, np_fn: Any, q_fn: str, op: str) -> Tensor:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return Tensor(np.asarray(np_fn(a, b)))
    if _is_int(a) and _is_int(b):
        return _int_result(a, b, np_fn, op)
    q = ops.floor(a / b) if q_fn == "floor" else ops.trunc(a / b)
    out = a - b * q.detach()
    with np.errstate(all="ignore"):
        return _with_exact_values(out, np_fn(_raw(a), _raw(b)))


def remainder(input: Any, other: Any) -> Tensor:  # noqa: A002
    """Python's ``%``: the result has the divisor's sign; the gradient is 1 to ``input``, -floor(a/b) to ``other``."""
    return _division_like(input, other, np.remainder, "floor", "remainder")


def fmod(input: Any, other: Any) -> Tensor:  # noqa: A002
    """C's ``fmod``: the result has the dividend's sign; the gradient is 1 and -trunc(a/b)."""
    return _division_like(input, other, np.fmod, "trunc", "fmod")


def floor_divide(input: Any, other: Any) -> Tensor:  # noqa: A002
    """``//``: floor(a / b) (torch since 1.13); integers stay integers, the gradient is zero."""
    if _is_int(input) and _is_int(other):
        return _int_result(input, other, np.floor_divide, "floor_divide")
    return ops.floor(_t(input) / other if isinstance(input, Tensor) else input / _t(other))


# --- shapes ---------------------------------------------------------------------------------------------------


def narrow(input: Any, dim: int, start: int, length: int) -> Tensor:  # noqa: A002
    x = _t(input)
    axis = _axis(x, dim, "narrow")
    n = x.shape[axis]
    start = int(start._data if isinstance(start, Tensor) else start)
    start = start + n if start < 0 else start
    if not 0 <= start <= n or length < 0 or start + length > n:
        raise IndexError(f"narrow: start {start} and length {length} do not fit dim {dim} of size {n}")
    return x[(slice(None),) * axis + (slice(start, start + int(length)),)]


def unflatten(input: Any, dim: int, sizes: Sequence[int]) -> Tensor:  # noqa: A002
    x = _t(input)
    axis = _axis(x, dim, "unflatten")
    sizes = tuple(int(s) for s in sizes)
    return x.reshape(x.shape[:axis] + sizes + x.shape[axis + 1 :])


def movedim(input: Any, source: Any, destination: Any) -> Tensor:  # noqa: A002
    x = _t(input)
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim: source {source} and destination {destination} must have the same length")
    src = [_axis(x, s, "movedim") for s in src]
    dst = [_axis(x, d, "movedim") for d in dst]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.permute(x, order)


def repeat_interleave(input: Any, repeats: Any = None, dim: Optional[int] = None, *, output_size: Any = None) -> Tensor:  # noqa: A002
    """Each element (or slice along ``dim``) repeated ``repeats`` times in a row."""
    if repeats is None:  # torch.repeat_interleave(repeats): the indices repeated
        r = _ints(input, "repeat_interleave", "repeats")
        return Tensor(np.repeat(np.arange(r.shape[0]), r).astype(np.int64))
    x = _t(input)
    if dim is None:
        x, axis = x.reshape(-1), 0
    else:
        axis = _axis(x, dim, "repeat_interleave")
    r = _ints(repeats, "repeat_interleave", "repeats") if not isinstance(repeats, int) else np.int64(repeats)
    idx = np.repeat(np.arange(x.shape[axis]), r)
    return x[(slice(None),) * axis + (idx,)]


def meshgrid(*tensors: Any, indexing: Optional[str] = None) -> tuple[Tensor, ...]:
    """Coordinate grids of 1-D tensors; ``indexing='ij'`` (torch's default) or ``'xy'``."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    indexing = indexing or "ij"
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    ts = [_t(t).reshape(-1) for t in tensors]
    n = len(ts)
    sizes = [t.shape[0] for t in ts]
    if indexing == "xy" and n >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(ts):
        pos = i
        if indexing == "xy" and n >= 2 and i < 2:
            pos = 1 - i
        shape = [1] * n
        shape[pos] = t.shape[0]
        out.append(ops.broadcast_to(t.reshape(shape), tuple(sizes)))
    return tuple(out)


def broadcast_tensors(*tensors: Any) -> tuple[Tensor, ...]:
    ts = [_t(t) for t in tensors]
    shape = np.broadcast_shapes(*(t.shape for t in ts))
    return tuple(t if t.shape == shape else ops.broadcast_to(t, shape) for t in ts)


# --- small reductions and products ----------------------------------------------------------------------------


def median(input: Any, dim: Optional[int] = None, keepdim: bool = False) -> Any:  # noqa: A002
    """The lower median (torch's): of all elements, or ``(values, indices)`` along ``dim``."""
    x = _t(input)
    if dim is None:
        flat = x.reshape(-1)
        if flat.shape[0] == 0:
            return Tensor(np.array(np.nan, x.dtype))
        order = np.argsort(_raw(flat), kind="stable")
        return flat[int(order[(flat.shape[0] - 1) // 2])]
    axis = _axis(x, dim, "median")
    order = np.argsort(_raw(x), axis=axis, kind="stable")
    k = (x.shape[axis] - 1) // 2
    idx = np.take(order, [k], axis=axis)
    values = ops.gather(x, axis, idx)
    if not keepdim:
        values, idx = values.squeeze(axis), np.squeeze(idx, axis)
    return ValuesIndices(values, Tensor(idx.astype(np.int64)))


def var_mean(
    input: Any, dim: Any = None, *, correction: Any = None, unbiased: Any = None, keepdim: bool = False
) -> tuple:  # noqa: A002
    x = _t(input)
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    return ops.var(x, dim=dim, correction=correction, keepdim=keepdim), ops.mean(x, dim=dim, keepdim=keepdim)


def std_mean(
    input: Any, dim: Any = None, *, correction: Any = None, unbiased: Any = None, keepdim: bool = False
) -> tuple:  # noqa: A002
    x = _t(input)
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    return ops.std(x, dim=dim, correction=correction, keepdim=keepdim), ops.mean(x, dim=dim, keepdim=keepdim)


def nanmean(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A002
    x = _t(input)
    nan = np.isnan(_raw(x))
    kept = ops.where(nan, np.zeros((), x.dtype), x)
    count = Tensor((~nan).sum(axis=dim if dim is None else tuple(np.atleast_1d(dim)), keepdims=keepdim).astype(x.dtype))
    return ops.sum(kept, dim=dim, keepdim=keepdim) / count


def nansum(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A002
    x = _t(input)
    return ops.sum(ops.where(np.isnan(_raw(x)), np.zeros((), x.dtype), x), dim=dim, keepdim=keepdim)


def diff(input: Any, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> Tensor:  # noqa: A002
    x = _t(input)
    axis = _axis(x, dim, "diff")
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, x, append) if p is not None]
        x = ops.cat([_t(p) for p in parts], dim=axis)
    for _ in range(int(n)):
        hi = x[(slice(None),) * axis + (slice(1, None),)]
        lo = x[(slice(None),) * axis + (slice(None, -1),)]
        x = hi - lo if x.dtype != np.bool_ else Tensor(_raw(hi) != _raw(lo))
    return x


def addmm(input: Any, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (mat1 @ mat2)``."""
    prod = ops.matmul(mat1, mat2)
    prod = prod if alpha == 1 else prod * alpha
    if beta == 0:
        return prod
    return (input if beta == 1 else _t(input) * beta) + prod


def baddbmm(input: Any, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:  # noqa: A002
    return addmm(input, batch1, batch2, beta=beta, alpha=alpha)


def addmv(input: Any, mat: Any, vec: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:  # noqa: A002
    return addmm(input, mat, vec, beta=beta, alpha=alpha)


def logical_and(input: Any, other: Any) -> Tensor:  # noqa: A002
    return Tensor(np.logical_and(_raw(input), _raw(other)))


def logical_or(input: Any, other: Any) -> Tensor:  # noqa: A002
    return Tensor(np.logical_or(_raw(input), _raw(other)))


def logical_xor(input: Any, other: Any) -> Tensor:  # noqa: A002
    return Tensor(np.logical_xor(_raw(input), _raw(other)))


def isin(elements: Any, test_elements: Any, *, invert: bool = False) -> Tensor:
    return Tensor(np.isin(_raw(elements), _raw(test_elements), invert=invert))


def searchsorted(
    sorted_sequence: Any, values: Any, *, right: bool = False, side: Optional[str] = None, out_int32: bool = False
) -> Tensor:
    """Insertion points of ``values`` in the last dim of ``sorted_sequence`` (row by row when it is N-d)."""
    seq, v = _raw(sorted_sequence), _raw(values)
    side = side or ("right" if right else "left")
    if seq.ndim <= 1:
        out = np.searchsorted(seq, v, side=side)
    else:
        if seq.shape[:-1] != v.shape[:-1]:
            raise ValueError(f"searchsorted: leading dims of {seq.shape} and {v.shape} must match")
        rows = [
            np.searchsorted(s, w, side=side) for s, w in zip(seq.reshape(-1, seq.shape[-1]), v.reshape(-1, v.shape[-1]))
        ]
        out = np.stack(rows).reshape(v.shape)
    return Tensor(np.asarray(out).astype(np.int32 if out_int32 else np.int64))


# --- Tensor methods ----------------------------------------------------------------------------------------


def _in_place(name: str, fn: Any) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        # computed from a copy of this tensor's value and record (see torch_more's in-place twins)
        return inplace(self, name, lambda: fn(history_copy(self) if self._node is not None else self, *args, **kwargs))

    method.__name__ = name
    return method


def _attach() -> None:
    for name, fn in {
        "index_select": index_select,
        "masked_select": masked_select,
        "nonzero": nonzero,
        "argwhere": argwhere,
        "scatter": scatter,
        "scatter_add": scatter_add,
        "index_add": index_add,
        "index_fill": index_fill,
        "unique": unique,
        "bincount": bincount,
        "histc": histc,
        "remainder": remainder,
        "fmod": fmod,
        "floor_divide": floor_divide,
        "narrow": narrow,
        "unflatten": unflatten,
        "movedim": movedim,
        "moveaxis": movedim,
        "repeat_interleave": repeat_interleave,
        "median": median,
        "nanmean": nanmean,
        "nansum": nansum,
        "diff": diff,
        "addmm": addmm,
        "logical_and": logical_and,
        "logical_or": logical_or,
        "logical_xor": logical_xor,
        "isin": lambda self, test, invert=False: isin(self, test, invert=invert),
    }.items():
        if not hasattr(Tensor, name):
            setattr(Tensor, name, fn)
    for name, fn in {
        "scatter_": scatter,
        "scatter_add_": scatter_add,
        "index_add_": index_add,
        "index_fill_": index_fill,
        "remainder_": remainder,
        "fmod_": fmod,
    }.items():
        if not hasattr(Tensor, name):
            setattr(Tensor, name, _in_place(name, fn))
    Tensor.__mod__ = remainder  # type: ignore[attr-defined]
    Tensor.__rmod__ = lambda self, other: remainder(other, self)  # type: ignore[attr-defined]
    Tensor.__floordiv__ = floor_divide  # type: ignore[attr-defined]
    Tensor.__rfloordiv__ = lambda self, other: floor_divide(other, self)  # type: ignore[attr-defined]
    Tensor.__imod__ = _in_place("__imod__", remainder)  # type: ignore[attr-defined]
    Tensor.__ifloordiv__ = _in_place("__ifloordiv__", floor_divide)  # type: ignore[attr-defined]


_attach()


class CpuDevice(str):
    """What ``Tensor.device`` gives for NumPy data: the string ``'cpu'`` with torch.device's ``type``/``index``."""

    @property
    def type(self) -> str:
        return str(self).partition(":")[0]

    @property
    def index(self) -> Optional[int]:
        idx = str(self).partition(":")[2]
        return int(idx) if idx else None

    def __repr__(self) -> str:
        return f"device(type='{self.type}')"


_CPU = CpuDevice("cpu")
_plain_device = Tensor.device


def _device(self: Tensor) -> Any:
    d = _plain_device.fget(self)
    return _CPU if isinstance(d, str) and d == "cpu" else d


Tensor.device = property(_device, doc=_plain_device.__doc__)  # type: ignore[attr-defined]
