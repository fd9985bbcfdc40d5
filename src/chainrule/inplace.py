"""In-place writes (``t += x``, ``t.add_(x)``, ``t[i] = v``): the result computed out of place, written into the
tensor's memory, and the graph rebased so that backward sees the history (see :func:`inplace`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import is_foreign, namespace_of, numpy_dtype
from .grad_mode import MODE
from .tensor import Tensor, _Released
from .versions import EPOCHS, FREED, VIEW_PRIMITIVES, _shares, mark_modified

ndarray = np.ndarray


_GRAPH_SLOTS = ("_node", "_seq", "_epoch", "_a", "_b", "_av", "_bv", "_args")


_LEAF_MESSAGE = (
    "{op}: a leaf tensor that requires grad is being used in an in-place operation while gradients are "
    "recorded (torch: 'a leaf Variable that requires grad is being used in an in-place operation'). "
    "Update parameters inside `with cr.no_grad():`, e.g. `with cr.no_grad(): w -= lr * w.grad`."
)


def inplace(t: Tensor, op: str, compute: Callable[[], Tensor]) -> Tensor:
    """Overwrite ``t``'s memory with ``compute()`` (the out-of-place result), as torch's in-place ops do.

    - A leaf that requires grad may change in place only with grad mode off
      (``cr.no_grad()``), and keeps ``requires_grad``.
    - The dtype stays ``t``'s: a result that cannot be cast safely (``int += 0.5``) raises.
    - The change bumps ``t``'s version, so a graph that saved the old value raises at backward().
    - If the result was recorded (``t`` or the operand is in a graph), ``t`` becomes that node:
      the old value lives on in a fresh tensor the new node reads, as torch rebases history.
    """
    if MODE.batch is not None:
        raise RuntimeError(
            f"vmap: {op}: in-place writes are not supported under vmap (a tensor of shape {t.shape}); "
            "use the out-of-place operation"
        )
    if t.requires_grad and t._node is None and MODE.enabled:
        raise RuntimeError(_LEAF_MESSAGE.format(op=op))
    if MODE.enabled and t._node is not None and t._node is not FREED and t._node.name in VIEW_PRIMITIVES:
        base = _view_base(t)
        if base._node is None and base.requires_grad:  # torch refuses this too: the write would reach the leaf
            raise RuntimeError(
                f"{op}: this tensor is a view of a leaf tensor that requires grad (shape {base.shape}), and an "
                "in-place change would change the leaf; do it inside `with cr.no_grad():`, or modify a clone()"
            )
    result = compute()
    new = result._data
    d = t._data
    if type(d) is float:
        if np.shape(new) != () or not np.can_cast(np.result_type(new), np.float64, "same_kind"):
            raise RuntimeError(
                f"{op}: a result of shape {np.shape(new)} and dtype {np.result_type(new)} cannot be written "
                "into a float64 scalar tensor"
            )
    else:
        if np.broadcast_shapes(np.shape(new), d.shape) != d.shape:
            raise RuntimeError(
                f"{op}: the result has shape {np.shape(new)}, which does not fit the tensor's shape {d.shape} "
                "(an in-place operation cannot change the shape); write t = t op x instead"
            )
        rtype = _numpy_dtype_of(new)
        if not np.can_cast(rtype, _numpy_dtype_of(d), "same_kind"):
            raise RuntimeError(
                f"{op}: the result type {rtype} cannot be cast to the tensor's dtype {d.dtype} in place "
                f"(torch refuses too); write t = t op x, or convert first with t.to(...)"
            )
        if type(d) is ndarray and not d.flags.writeable:
            raise RuntimeError(f"{op}: this tensor's memory is read-only (a broadcast view?); clone() it first")
    foreign = type(d) is not ndarray and type(d) is not float
    recorded = result._node is not None
    if recorded:
        old = history_copy(t)
        _redirect(result, t, d, old)
    if type(d) is float:
        t._data = float(new)
    elif foreign:
        _write_foreign(t, d, new)
    else:
        d[...] = new
    mark_modified(t)
    if recorded:
        for slot in _GRAPH_SLOTS:
            setattr(t, slot, getattr(result, slot))
        t._epoch = EPOCHS.value
        t.requires_grad = True
    return t


def history_copy(t: Tensor) -> Tensor:
    """A fresh tensor holding a copy of ``t``'s value and ``t``'s graph record: what an in-place overwrite of
    ``t`` computed by several operations reads, so none of them reads the tensor being overwritten."""
    old = Tensor(copy_value(t._data), t.requires_grad)
    if t._node is not None:
        for slot in _GRAPH_SLOTS:
            setattr(old, slot, getattr(t, slot))
    old._version = t._version
    return old


def copy_value(d: Any) -> Any:
    """A copy of a tensor's value with memory of its own (a Python float is immutable: itself)."""
    if type(d) is ndarray:
        return np.array(d)
    if type(d) is float:
        return d
    return namespace_of(d).xp.asarray(d, copy=True)


def _view_base(t: Tensor) -> Tensor:
    """The tensor whose memory view ``t`` writes into (following views while they share memory)."""
    x = t
    while x._node is not None and x._node is not FREED and x._node.name in VIEW_PRIMITIVES:
        parent = x._a[0] if type(x._a) is tuple else x._a
        if parent is None or not _shares(x._data, parent._data):
            break
        x = parent
    return x


def _numpy_dtype_of(v: Any) -> np.dtype:
    if type(v) is ndarray:
        return v.dtype
    if type(v) is not float and is_foreign(v):
        return numpy_dtype(v.dtype)
    return np.result_type(v)


def _write_foreign(t: Tensor, d: Any, new: Any) -> None:
    """``d[...] = new`` for another library's array; a library without item assignment (JAX) gets a new array."""
    xp = namespace_of(d).xp
    if not is_foreign(new) or namespace_of(new).xp is not xp:
        new = xp.asarray(np.asarray(new), device=namespace_of(d).device_of(d))
    if new.dtype != d.dtype:
        new = xp.astype(new, d.dtype)
    try:
        d[...] = new
    except (TypeError, ValueError, NotImplementedError):
        t._data = xp.broadcast_to(new, tuple(d.shape))


def _redirect(node: Tensor, t: Tensor, d: Any, old: Tensor) -> None:
    """In ``node``'s record, make the inputs that were ``t`` (and its saved value ``d``) point at ``old``."""
    if node._args is None:
        if node._a is t:
            node._a = old
        if _saved_as(node._av, d):
            node._av = _moved(node._av, old)
        if node._b is t:
            node._b = old
        if _saved_as(node._bv, d):
            node._bv = _moved(node._bv, old)
        return
    node._a = tuple(old if x is t else x for x in node._a)
    node._args = tuple(_moved(v, old) if _saved_as(v, d) else v for v in node._args)


def _saved_as(v: Any, d: Any) -> bool:
    """Whether a node's saved value ``v`` is array ``d`` (or a stand-in for it, see chainrule.saved)."""
    return v is d or (type(v) is _Released and v.value() is d)


def _moved(v: Any, old: Tensor) -> Any:
    """``old``'s value in place of the saved value ``v`` (a stand-in stays a stand-in, now for ``old``'s array)."""
    return _Released(old._data) if type(v) is _Released else old._data


# --- the augmented assignments, each an in-place write -------------------------------------------
def _iadd(self: Tensor, other: Any) -> Tensor:
    return inplace(self, "+=", lambda: self + other)


def _isub(self: Tensor, other: Any) -> Tensor:
    return inplace(self, "-=", lambda: self - other)


def _imul(self: Tensor, other: Any) -> Tensor:
    return inplace(self, "*=", lambda: self * other)


def _itruediv(self: Tensor, other: Any) -> Tensor:
    return inplace(self, "/=", lambda: self / other)


def _ipow(self: Tensor, other: Any) -> Tensor:
    return inplace(self, "**=", lambda: self**other)


Tensor.__iadd__ = _iadd  # type: ignore[method-assign]
Tensor.__isub__ = _isub  # type: ignore[method-assign]
Tensor.__imul__ = _imul  # type: ignore[method-assign]
Tensor.__itruediv__ = _itruediv  # type: ignore[method-assign]
Tensor.__ipow__ = _ipow  # type: ignore[method-assign]
