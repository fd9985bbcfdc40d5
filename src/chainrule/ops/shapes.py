"""Shapes and indexing: reshape, transpose, cat, stack, getitem, where ..."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..inplace import copy_value
from ..numeric import normalize_axes
from ..primitives import shape as S
from ..tensor import Tensor, apply
from .base import Axis, _axes, _t, builtins_sum
from .elementwise import pick


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


def clone(x: Any) -> Tensor:
    """A copy with its own memory; the gradient passes through unchanged."""
    x = _t(x)
    out = apply(S.astype, x, x.dtype)  # the identity's gradient; the forward hands back the same array, so:
    out._data = copy_value(out._data)  # (its rule reads no value, so the node may hold the copy)
    return out
