"""Max pooling over non-overlapping windows (stride = kernel, no padding, no dilation), without index arrays.

Max pooling picks, in each ``kh × kw`` window of ``x``, the first maximum in row-major order
(a NaN wins, the first NaN), as torch does.  Two primitives carry it:

* ``max_pool2d_pick(v, x, kernel)``: for each window, ``v``'s entry at the place where ``x``
  has its first maximum.  Max pooling is ``pick(x, x)``; linear in ``v``; ``x`` only chooses
  the places, so it has no gradient (as torch's indices);
* ``max_pool2d_unpool(g, x, kernel)``: the adjoint: ``g``'s entries put back at those places of
  an array shaped like ``x``, zeros elsewhere (rows and columns past the last whole window
  included).

Each one's VJP rule is the other, so gradients of any order stay in the pair.  The places
are never materialized as indices: the ``kh·kw`` window offsets are strided views of ``x``
(``x[:, :, i::kh, j::kw]``, cropped to the whole windows); the maximum is their running
``maximum``, and "first maximum" is the first offset equal to it (or NaN), found with one
comparison per offset (one boolean mask per offset, disjoint).  Max pooling itself is the running
maximum (met last offset first, so ties keep the first one's bits); picking another array copies
each offset's strided slab through its mask (``np.copyto(..., where=)``), and unpooling writes each
slab as ``g``'s bits and-ed with the mask (``np.where(hit, g, 0)`` bit for bit, several times faster
than a masked copy into a strided view): no ``argmax`` over copied windows, no index array, no
scatter.  :func:`first_max_offsets` gives eager ``max_pool2d`` its indices the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..primitive import defbatch, defjvp, defprim, defvjp
from .batching import images_folded

Pair = tuple[int, int]


def _offsets(xp: Any, x: Any, kernel: Pair) -> list[Any]:
    """The window offsets as strided views, row-major: ``x[:, :, i::kh, j::kw]`` cut to the whole windows."""
    kh, kw = kernel
    h, w = xp.shape(x)[2:]
    oh, ow = h // kh, w // kw
    return [
        x[:, :, i : i + kh * (oh - 1) + 1 : kh, j : j + kw * (ow - 1) + 1 : kw] for i in range(kh) for j in range(kw)
    ]


def _first_max(xp: Any, x: Any, kernel: Pair) -> list[Any]:
    """One boolean array per window offset: where that offset holds its window's first maximum (or first NaN)."""
    views = _offsets(xp, x, kernel)
    best = views[0]
    for v in views[1:]:
        best = xp.maximum(best, v)  # NaN propagates
    hits, taken = [], None
    for v in views:
        eq = (v == best) | (v != v)
        hit = eq if taken is None else eq & ~taken
        taken = hit if taken is None else taken | hit
        hits.append(hit)
    return hits


def _pick(xp: Any, v: Any, x: Any, kernel: Pair) -> Any:
    hits = _first_max(xp, x, kernel)
    views = _offsets(xp, v, kernel)
    out = views[-1]
    for hit, view in zip(hits[-2::-1], views[-2::-1]):
        out = xp.where(hit, view, out)
    return out


def _unpool(xp: Any, g: Any, x: Any, kernel: Pair) -> Any:
    kh, kw = kernel
    n, c, h, w = xp.shape(x)
    oh, ow = h // kh, w // kw
    hits = _first_max(xp, x, kernel)
    zero = xp.zeros_as((n, c, oh, ow), g)
    pieces = [xp.where(hit, g, zero) for hit in hits]
    rows = [xp.stack(pieces[i * kw : (i + 1) * kw], axis=-1) for i in range(kh)]  # (N, C, OH, OW, kw) each
    block = xp.reshape(xp.stack(rows, axis=3), (n, c, oh * kh, ow * kw))  # (N, C, OH, kh, OW, kw) -> image
    if (oh * kh, ow * kw) == (h, w):
        return block
    out = xp.zeros_as((n, c, h, w), g)
    return xp.add_at(out, (slice(None), slice(None), slice(0, oh * kh), slice(0, ow * kw)), block)


# --- NumPy: strided views, one mask per window offset -------------------------------------------------------------
def _running_max(views: list[np.ndarray]) -> np.ndarray:
    """The windows' maxima, met from the last offset to the first: ``np.maximum(a, b)`` gives ``b`` when they are
    equal (``-0.0`` against ``0.0`` included), so the result carries the first maximum's value bit for bit (its
    zero's sign too; tests/test_nn_pool.py checks this against torch); NaN propagates."""
    best = np.array(views[-1])
    for v in views[-2::-1]:
        np.maximum(best, v, out=best)
    return best


def _first_hits(x: np.ndarray, kernel: Pair) -> list[np.ndarray]:
    """One boolean array ``(N, C, OH, OW)`` per window offset, row-major: where that offset holds its window's
    first maximum (or first NaN).  Exactly one is true per window."""
    views = _offsets(np, x, kernel)
    best = _running_max(views)
    nan = best.dtype.kind == "f" and bool(np.isnan(best).any())
    hits: list[np.ndarray] = []
    taken: Any = None
    for v in views[:-1]:
        hit = v == best
        if nan:
            hit |= np.isnan(v)
        if taken is None:
            taken = hit.copy()
        else:
            hit &= ~taken
            taken |= hit
        hits.append(hit)
    hits.append(~taken if taken is not None else np.ones(best.shape, bool))
    return hits


def first_max_offsets(x: np.ndarray, kernel: Pair) -> np.ndarray:
    """For each whole window of ``x``, the offset ``i·kw + j`` of its first maximum (or first NaN), as intp:
    ``argmax`` over each window's entries in row-major order, without copying the windows out."""
    hits = _first_hits(x, kernel)
    small = np.int8 if len(hits) <= 127 else np.int32
    code = np.zeros(hits[0].shape, small)
    for k in range(1, len(hits)):  # exactly one hit per window: the sum of k·hit_k is its offset
        code += hits[k].view(np.int8).astype(small, copy=False) * small(k)
    return code.astype(np.intp)


def _check(op: str, first: str, a: np.ndarray, x: np.ndarray, want: tuple) -> None:
    if x.ndim != 4 or a.shape != want:
        raise ValueError(f"{op}: {first} of shape {a.shape} does not fit x of shape {x.shape}: it must be {want}")


def _pick_numpy(v: Any, x: Any, kernel: Pair) -> np.ndarray:
    v, x = np.asarray(v), np.asarray(x)
    _check("max_pool2d_pick", "v", v, x, x.shape)
    if v is x:  # max pooling itself: the maxima are the first maxima's values
        return _running_max(_offsets(np, x, kernel))
    hits = _first_hits(x, kernel)
    views = _offsets(np, v, kernel)
    out = np.array(views[-1])
    for hit, view in zip(hits[:-1], views[:-1]):  # (disjoint places: the order does not matter)
        np.copyto(out, view, where=hit)
    return out


def _unpool_numpy(g: Any, x: Any, kernel: Pair) -> np.ndarray:
    g, x = np.asarray(g), np.asarray(x)
    _check("max_pool2d_unpool", "g", g, x, _pick_shape((x.shape,), kernel) if x.ndim == 4 else ())
    bits = _SAME_SIZE_INT.get(g.dtype.itemsize) if g.dtype.kind == "f" else None
    kh, kw = kernel
    whole = x.shape[2] % kh == 0 and x.shape[3] % kw == 0
    out = np.empty(x.shape, g.dtype) if whole and bits is not None else np.zeros(x.shape, g.dtype)
    for hit, view in zip(_first_hits(x, kernel), _offsets(np, out, kernel)):
        # each offset's strided slab of the windows: no index array, no scatter
        if bits is None:
            np.copyto(view, g, where=hit)
        else:  # g's bits where hit, else +0.0's (all zero): np.where(hit, g, 0) exactly, NaN and -0.0 kept
            np.bitwise_and(g.view(bits), np.negative(hit.view(np.int8)), out=view.view(bits))
    return out


# (a masked copy, np.copyto(..., where=), into a strided slab ran 6x slower than this and-with-a-mask)
_SAME_SIZE_INT = {2: np.int16, 4: np.int32, 8: np.int64}


def _pick_shape(shapes: tuple, kernel: Pair) -> tuple[int, ...]:
    vs = shapes[0]
    return (vs[0], vs[1], vs[2] // kernel[0], vs[3] // kernel[1])


def _unpool_shape(shapes: tuple, kernel: Pair) -> tuple[int, ...]:
    return tuple(shapes[1])


max_pool2d_pick = defprim(
    "max_pool2d_pick", _pick, nin=2, symbol="maxpool_pick", numpy_fwd=_pick_numpy, shape=_pick_shape
)
max_pool2d_unpool = defprim(
    "max_pool2d_unpool",
    _unpool,
    nin=2,
    symbol="maxpool_unpool",
    numpy_fwd=_unpool_numpy,
    shape=_unpool_shape,
)
defvjp(max_pool2d_pick, lambda xp, g, out, v, x, k: xp.apply(max_pool2d_unpool, g, x, k), None)
defvjp(max_pool2d_unpool, lambda xp, h, out, g, x, k: xp.apply(max_pool2d_pick, h, x, k), None)
# forward mode: linear in the first input; the second only chooses the places (no tangent flows from it)
for _prim in (max_pool2d_pick, max_pool2d_unpool):
    defjvp(_prim, lambda xp, ts, out, v, x, k, _p=_prim: None if ts[0] is None else xp.apply(_p, ts[0], x, k))

__all__ = ["first_max_offsets", "max_pool2d_pick", "max_pool2d_unpool"]

# vmap: both inputs are images; the batch joins their batch axis
defbatch(max_pool2d_pick, images_folded(max_pool2d_pick, (0, 1)))
defbatch(max_pool2d_unpool, images_folded(max_pool2d_unpool, (0, 1)))
