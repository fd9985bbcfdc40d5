"""In-place writes (``t += x``, ``t.add_(x)``, ``t[i] = v``): the result computed out of place, written into the
tensor's memory, and the graph rebased so that backward sees the history (see :func:`inplace`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import is_foreign, namespace_of, numpy_dtype
from .grad_mode import MODE
from .primitives import elementwise as E
from .primitives import shape as S
from .tensor import Tensor, _Released, apply, node_parts
from .versions import (
    _EPOCH_LOCK,
    EPOCHS,
    FREED,
    UNARY,
    VIEW_PRIMITIVES,
    _shares,
    mark_modified,
    note_rebase,
    views_of,
)
from .walk import Hooked, _viewed_version, hooked

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
    chain: list = []  # t and the tensors whose memory it views, when t is a recorded view
    if MODE.enabled and t._node is not None and t._node is not FREED and t._node.name in VIEW_PRIMITIVES:
        chain = _view_chain(t)
        if len(chain) == 1:  # (advanced indexing made a copy: no memory is shared)
            chain = []
        elif (
            chain[-1]._node is None and chain[-1].requires_grad
        ):  # torch refuses this too: the write would reach the leaf
            raise RuntimeError(
                f"{op}: this tensor is a view of a leaf tensor that requires grad (shape {chain[-1].shape}), and an "
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
    if recorded and t._node is None and _unrecorded_view(t):
        raise RuntimeError(
            f"{op}: this tensor is a view of a tensor that does not require grad, and the in-place change is "
            "recorded (an operand requires grad); torch would make the viewed tensor require grad, chainrule "
            "cannot follow an unrecorded view back. Write through the tensor itself (base[index] = ... or "
            "base[index] *= ...), or clone() the view first"
        )
    if recorded:
        old = history_copy(t)
        _redirect(result, t, d, old)
        chain_olds = [history_copy(x) for x in chain[1:]]  # the viewed tensors' values and records, before the write
        others = _other_views(chain or [t], t._data)  # views taken earlier that see the write, with their copies
    if type(d) is float:
        t._data = float(new)
    elif foreign:
        _write_foreign(t, d, new)
    else:
        d[...] = new
    mark_modified(t)
    if recorded:
        before = result._epoch
        _take_record(t, result, old, t._data)
        _operands_written(t, old, before)
        if chain:
            _rebase_views(chain, chain_olds)
        for view, old_view in others:  # (sources before their views)
            source = view._a[0] if type(view._a) is tuple else view._a
            _take_record(view, apply(_plain(old_view._node), source, *old_view._args[1:]), old_view, t._data)
            view._version = EPOCHS.value  # (its memory changed: torch's views share the version counter)
    return t


def _operands_written(t: Tensor, old: Tensor, before: int) -> None:
    """Operands of ``t``'s new node (other than its old value) whose memory this write changed, as ``y`` in
    ``h[:, :2].mul_(h[:, 2:])`` (a view of the same tensor): torch saw them change after they were saved, so
    backward raises if the node needs their value. Each is replaced by a stand-in with the same record and a
    version after the node's, which the check at backward finds stale."""
    inputs = node_parts(t)[0]
    if not any(x is not None and x is not old and _viewed_version(x) > before for x in inputs):
        return
    swapped = []
    for x in inputs:
        if x is None or x is old or _viewed_version(x) <= before:
            swapped.append(x)
            continue
        stand_in = Tensor(x._data, x.requires_grad and x._node is None)
        if x._node is not None:
            for slot in _GRAPH_SLOTS:
                setattr(stand_in, slot, getattr(x, slot))
            stand_in.requires_grad = True
        swapped.append(stand_in)
    with _EPOCH_LOCK:  # a new epoch, so that backward checks this node (it checks nodes older than the epoch)
        EPOCHS.value += 1
        for stand_in, x in zip(swapped, inputs):
            if stand_in is not x:
                stand_in._version = EPOCHS.value
    if t._args is None:
        t._a = swapped[0]
        if t._b is not UNARY:
            t._b = swapped[1]
    else:
        t._a = tuple(swapped)


def _plain(prim: Any) -> Any:
    """A node's primitive without hooks (a view taken again gets none of the old record's hooks)."""
    return prim.original if type(prim) is Hooked else prim


def _other_views(rebased: list, region: Any) -> list:
    """``[(view, its history copy)]`` for the recorded views of the tensors in ``rebased`` (and views of those)
    that are not in ``rebased`` and share memory with ``region``; sources come before their views."""
    if type(region) is not ndarray:
        return []
    skip = {id(x) for x in rebased}
    found: list = []
    todo = list(rebased)
    while todo:
        source = todo.pop(0)
        for view in views_of(source):
            if id(view) in skip or type(view._data) is not ndarray or type(view._args) is not tuple:
                continue
            if not np.shares_memory(view._data, region):
                continue
            skip.add(id(view))
            found.append((view, history_copy(view)))
            todo.append(view)
    return found


def _take_record(t: Tensor, node: Tensor, old: Tensor, region: Any) -> None:
    """``t`` becomes ``node`` (its graph slots; the value stays ``t``'s memory); nodes recorded earlier read ``old``."""
    for slot in _GRAPH_SLOTS:
        setattr(t, slot, getattr(node, slot))
    t._epoch = EPOCHS.value
    t.requires_grad = True
    note_rebase(t, t._seq, old, region)
    kept = old._node
    if type(kept) is Hooked and kept.retain is not None:  # retain_grad follows the tensor to its new value, as
        keeper, kept.retain = kept.retain, None  # in torch (register_hook's hooks stay with the old value)
        new = hooked(t)
        if new is not None:
            new.retain = keeper


def _view_chain(t: Tensor) -> list:
    """``[t, its source, ...]`` following recorded views while they share memory; the last is the viewed base."""
    chain = [t]
    x = t
    while x._node is not None and x._node is not FREED and x._node.name in VIEW_PRIMITIVES:
        parent = x._a[0] if type(x._a) is tuple else x._a
        if parent is None or not _shares(x._data, parent._data):
            break
        chain.append(parent)
        x = parent
    return chain


def _unrecorded_view(t: Tensor) -> bool:
    """Whether leaf ``t`` is a view (not a detach()) of another tensor's memory, made while nothing was recorded."""
    refs = getattr(t, "_a", None)
    if type(refs) is not tuple or not refs:
        return False
    source = refs[0]()
    return source is not None and source._data is not t._data and _shares(t._data, source._data)


def _rebase_views(chain: list, olds: list) -> None:
    """After an in-place change of view ``chain[0]`` (now its new node), rebase what it views, as torch's
    CopySlices: the base becomes ``where(written, the view's new value put back in place, its old value)``,
    and each view in between is taken again from its rebased source."""
    t, base, old_base = chain[0], chain[-1], olds[-1]
    bd = base._data
    positions = _positions(t._data, bd)
    written = np.zeros(bd.size, dtype=bool)
    written[positions.ravel()] = True
    flat = apply(S.reshape, t, (-1,))
    put = apply(S.reshape, apply(S.scatter_add, flat, positions.ravel(), (bd.size,)), bd.shape)
    _take_record(base, apply(E.where, written.reshape(bd.shape), put, old_base), old_base, t._data)
    for k in range(len(chain) - 2, 0, -1):  # the views between, from the base down
        view, old_view = chain[k], olds[k - 1]
        again = apply(_plain(old_view._node), chain[k + 1], *old_view._args[1:])
        _take_record(view, again, old_view, t._data)


def _positions(view: ndarray, base: ndarray) -> ndarray:
    """For each element of ``view`` (an array viewing ``base``'s memory), its flat index in ``base``."""
    start = base.__array_interface__["data"][0]

    def offsets(a: ndarray) -> ndarray:
        off = np.full(a.shape, a.__array_interface__["data"][0] - start, dtype=np.intp)
        for k, (n, stride) in enumerate(zip(a.shape, a.strides)):
            off += (np.arange(n, dtype=np.intp) * stride).reshape((1,) * k + (n,) + (1,) * (a.ndim - k - 1))
        return off

    ob = offsets(base).ravel()
    order = np.argsort(ob, kind="stable")
    ordered = ob[order]
    ov = offsets(view)
    at = np.clip(np.searchsorted(ordered, ov), 0, len(ordered) - 1)
    if not np.array_equal(ordered[at], ov):  # (a view always lies inside its base's memory)
        raise RuntimeError("in-place write through a view: the view's elements are not all elements of its base")
    return order[at]


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
