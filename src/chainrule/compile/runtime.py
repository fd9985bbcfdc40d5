"""What a replay schedule calls at run time, and the small tests on values the other modules share.

A schedule is plain Python over arrays; besides NumPy (or torch) it calls only these
helpers: the engine's reduction of a gradient to its input (``fit``), the delivery into
``.grad`` (``deliver``), the seed of ``backward()``, another library's forward as eager runs
it, and the buffer bookkeeping (``rec`` for recycled leaf gradients, ``unshare`` for values
handed out).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..autodiff import _DELIVERY_LOCK
from ..autodiff import _deliver as _engine_deliver
from ..backend import device_of, is_foreign, library_name, namespace_of
from ..primitive import Primitive
from ..values import foreign_forward
from ..walk import _fit

ndarray = np.ndarray


# --- what values are --------------------------------------------------------------------------------


def is_array(v: Any) -> bool:
    """A NumPy array or another Array API library's array (not a Python or NumPy number)."""
    return type(v) is ndarray or (type(v) is not float and type(v) is not int and is_foreign(v))


def is_torch(v: Any) -> bool:
    return type(v) is not ndarray and type(v) is not float and is_foreign(v) and library_name(v) == "torch"


def int_array(v: Any) -> bool:
    if type(v) is ndarray:
        return v.dtype.kind in "iu"
    return is_array(v) and namespace_of(v).xp.isdtype(v.dtype, "integral")


def has_negative(v: Any) -> bool:
    if type(v) is ndarray:
        return bool(v.size and v.min() < 0)
    n = 1
    for s in v.shape:
        n *= s
    return bool(n and namespace_of(v).xp.min(v) < 0)


def describe(v: Any) -> str:
    """A value's kind for the schedule's comments: ``(16, 8) float32``, ``float``."""
    if type(v) is float:
        return "float"
    if type(v) is ndarray:
        return f"{tuple(v.shape)} {v.dtype}"
    if is_array(v):
        return f"{tuple(v.shape)} {library_name(v)} {str(v.dtype).replace('torch.', '')} on {device_of(v)}"
    return type(v).__name__


# --- called by the schedules ------------------------------------------------------------------------


def fit(gi: Any, v: Any) -> Any:
    """The engine's reduction of a gradient to its input's shape and dtype, called where it changes something
    (as ``_walk_numeric`` calls it)."""
    if type(v) is float:
        return gi if type(gi) is float else _fit(gi, v)
    if type(gi) is not type(v) or gi.shape != v.shape or gi.dtype != v.dtype:  # any library's arrays
        return _fit(gi, v)
    return gi


def deliver(pairs: list) -> None:
    """Accumulate finished leaf gradients into ``.grad`` exactly as eager backward does."""
    once = {id(leaf): (leaf, g) for leaf, g in pairs}
    with _DELIVERY_LOCK:
        _engine_deliver(list(once.values()), False)


def seed(out: Any) -> Any:
    """The gradient ``backward()`` starts from: 1 in the output's kind (as ``autodiff._seed`` makes it)."""
    if type(out) is float:
        return 1.0
    if type(out) is ndarray:
        return np.ones((), out.dtype)
    return namespace_of(out).xp.ones((), dtype=out.dtype, device=device_of(out))


def call_foreign(prim: Primitive, nin: int, *values: Any) -> Any:
    """A replayed operation on another library's arrays: the engine's own foreign forward, as eager runs it."""
    return foreign_forward(prim, values, nin)


def empty(shape: tuple, dtype: Any) -> Any:
    """A buffer: ``dtype`` is a NumPy dtype, or ``(library dtype, device)`` for a torch buffer."""
    if type(dtype) is tuple:
        import torch

        return torch.empty(shape, dtype=dtype[0], device=dtype[1])
    return np.empty(shape, dtype)


def buffer_dtype(like: Any, kind: Any = None) -> Any:
    """What :func:`empty` needs for a buffer like the array ``like`` (or of the dtype ``like``)."""
    if is_torch(like):
        return (like.dtype, like.device)
    return np.dtype(kind if kind is not None else like.dtype if type(like) is ndarray else like)


def _recycled_refs() -> int:
    """The reference count :func:`recycle` sees for an array that nothing outside its slot list holds."""
    slots = [np.empty(1)]
    return recycle(slots, 0, probe=True)


def recycle(slots: list, k: int, probe: bool = False) -> Any:
    """Slot ``k``'s array if nothing else holds it (a ``.grad`` or a view of it), else a fresh one in its place.

    A leaf gradient is stored in ``.grad`` as the array itself, as eager backward stores it.  The
    next replay may write into it again only if nobody can see it any more: ``zero_grad()``
    dropped it and no ``p.grad`` the caller kept, no view and no optimizer state refers to it.
    """
    a = slots[k]
    n = sys.getrefcount(a)
    if probe:
        return n
    if n > FREE_REFS:
        a = slots[k] = np.empty_like(a)
    return a


FREE_REFS = _recycled_refs()


def unshare(x: Any, bufs: tuple) -> Any:
    """A copy of ``x`` if it is (a view of) one of the schedule's buffers, which the next replay overwrites."""
    if type(x) is ndarray:
        for b in bufs:
            if x is b or x.base is b:
                return x.copy()
    elif type(x) is not float and is_torch(x):
        for b in bufs:
            if type(b) is not ndarray and x.untyped_storage().data_ptr() == b.untyped_storage().data_ptr():
                return x.clone()
    return x
