"""What a node is and when it changed: creation numbers, the freed marker, version epochs for in-place checks
(``mark_modified``), and ``DataView``, the array ``Tensor.data`` hands out.

The ``Tensor`` class is defined a layer up (chainrule.tensor), which fills in :data:`Tensor` here."""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Optional

import numpy as np

from .primitive import Primitive
from .rng import REFUSE, draw_into, get_rng

ndarray = np.ndarray
Tensor: type = type(None)  # chainrule.tensor puts its Tensor class here once it is defined


# The primitive of a node whose saved values were released by backward().
FREED = Primitive("<freed by backward>", lambda *a: None, plain=True)


class _Unary:
    """Marks ``_b`` of a one-input node."""

    def __repr__(self) -> str:
        return "UNARY"


UNARY = _Unary()


_next_seq = itertools.count(1).__next__


class _Epoch:
    """The global count of in-place modifications (shared by all threads)."""

    value = 0


EPOCHS = _Epoch()


_EPOCH_LOCK = threading.Lock()


def mark_modified(t: Tensor) -> None:
    """Record that ``t``'s value changed in place: graphs that saved it become stale.

    A ``detach()``ed tensor shares memory with its source, so the change marks
    the source too (as torch shares the version counter): a detached leaf keeps
    a weak reference to its source in the otherwise unused ``_a`` slot, so it
    never keeps the source's graph alive.

    A view made by indexing, reshaping or transposing shares memory with its
    source too, so writing into the view marks the source (and its sources), and
    writing into a graph node marks the recorded views of it (see :func:`note_view`).
    """
    if REFUSE.reason is not None:
        raise RuntimeError(
            f"{REFUSE.reason}: in-place writes (x += y, x[i] = v, fill_, zero_, .data = ...) are not supported "
            f"under vmap (a tensor of shape {t.shape} was written); use out-of-place operations"
        )
    with _EPOCH_LOCK:
        EPOCHS.value += 1
        now = EPOCHS.value
        todo = [t]
        seen: set[int] = set()
        while todo:
            x = todo.pop()
            if id(x) in seen:
                continue
            seen.add(id(x))
            x._version = now
            entry = _VIEWS.get(id(x))  # recorded views of x see the change too (torch: one version counter)
            if entry is not None and entry[0]() is x:
                for ref in entry[1]:
                    view = ref()
                    if view is not None and _shares(view._data, x._data):
                        todo.append(view)
            node = x._node
            if node is None:
                for ref in getattr(x, "_a", None) or ():
                    source = ref()
                    if source is not None:
                        todo.append(source)
            elif node.name in VIEW_PRIMITIVES and node is not FREED:
                source = x._a[0] if type(x._a) is tuple else x._a
                if source is not None and _shares(x._data, source._data):
                    todo.append(source)


# Primitives whose NumPy forward may return a view of the first input (writes to it reach the input).
VIEW_PRIMITIVES = frozenset({"getitem", "reshape", "transpose", "broadcast_to"})


def _shares(a: Any, b: Any) -> bool:
    return type(a) is ndarray and type(b) is ndarray and np.may_share_memory(a, b)


_WRITING_FUNCTIONS = frozenset({"copyto", "putmask", "place", "put", "put_along_axis", "fill_diagonal"})


class DataView(np.ndarray):
    """The array ``Tensor.data`` hands out: it shares the tensor's memory, and a write through it
    (``[...] =``, ``-=``, ``fill``, ``np.copyto``, a ufunc's ``out=``) marks the tensor modified in
    place, so a graph that saved the old value raises at ``backward()`` instead of giving a stale
    gradient.  Results of arithmetic on it are plain NumPy arrays.
    """

    _owner: Optional[Tensor] = None
    _from_float = False  # made by Tensor.data from a tensor whose value was a Python float

    def __array_finalize__(self, obj: Any) -> None:
        # A view (slice, transpose) still writes into the tensor; a copy does not.
        self._owner = getattr(obj, "_owner", None) if self.base is not None else None

    def _touch(self) -> None:
        owner = self._owner
        if owner is not None:
            mark_modified(owner)

    def __setitem__(self, index: Any, value: Any) -> None:
        if type(value) is Tensor:
            value = value._data
        np.ndarray.__setitem__(self.view(np.ndarray), _raw_index(index), value)
        self._touch()

    def fill(self, value: Any) -> None:
        self.view(np.ndarray).fill(value)
        self._touch()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.view(np.ndarray).sort(*args, **kwargs)
        self._touch()

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain = tuple(_plain(a) for a in inputs)
        out = kwargs.get("out")
        written = [o for o in (out or ()) if type(o) is DataView]
        if method == "at" and type(inputs[0]) is DataView:
            written.append(inputs[0])
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        for view in written:
            view._touch()
        if out is not None and len(out) == 1:
            return out[0]
        return result

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        plain_args = tuple(_plain(a) for a in args)
        plain_kwargs = {k: _plain(v) for k, v in kwargs.items()}
        result = func(*plain_args, **plain_kwargs)
        if func.__name__ in _WRITING_FUNCTIONS and args and type(args[0]) is DataView:
            args[0]._touch()
        return result

    def numpy(self) -> np.ndarray:
        """``t.data.numpy()`` (old tutorials): the values as a plain array sharing the tensor's memory."""
        return self.view(np.ndarray)

    def cpu(self) -> DataView:
        """``t.data.cpu().numpy()``: already on the CPU, so the same values."""
        return self

    # torch's in-place methods, for the old idioms ``p.grad.data.zero_()`` and ``w.data.normal_(0, 0.02)``
    def _write(self, values: Any) -> DataView:
        np.copyto(self.view(np.ndarray), _plain(values), casting="same_kind")
        self._touch()
        return self

    def zero_(self) -> DataView:
        return self._write(0)

    def fill_(self, value: Any) -> DataView:
        return self._write(value)

    def copy_(self, src: Any) -> DataView:
        return self._write(src)

    def add_(self, other: Any, alpha: Any = 1) -> DataView:
        return self._write(self.view(np.ndarray) + alpha * np.asarray(_plain(other)))

    def sub_(self, other: Any, alpha: Any = 1) -> DataView:
        return self._write(self.view(np.ndarray) - alpha * np.asarray(_plain(other)))

    def mul_(self, other: Any) -> DataView:
        return self._write(self.view(np.ndarray) * _plain(other))

    def div_(self, other: Any) -> DataView:
        return self._write(self.view(np.ndarray) / _plain(other))

    def clamp_(self, min: Any = None, max: Any = None) -> DataView:  # noqa: A002
        return self._write(np.clip(self.view(np.ndarray), min, max))

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> DataView:
        torch_values = draw_into(self.view(np.ndarray), "normal_", (mean, std), {}, generator)
        if torch_values is not None:  # after chainrule.torch.manual_seed: torch's stream, in memory order
            return self._write(torch_values)
        return self._write(get_rng(generator).normal(mean, std, self.shape))

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator: Any = None) -> DataView:
        torch_values = draw_into(self.view(np.ndarray), "uniform_", (a, b), {}, generator)
        if torch_values is not None:
            return self._write(torch_values)
        return self._write(get_rng(generator).uniform(a, b, self.shape))

    def __repr__(self) -> str:
        return repr(self.view(np.ndarray))

    def __str__(self) -> str:
        return str(self.view(np.ndarray))

    def __reduce__(self) -> Any:
        return self.view(np.ndarray).__reduce__()


def _plain(a: Any) -> Any:
    """A DataView as a plain ndarray, a Tensor as its value; anything else unchanged."""
    t = type(a)
    if t is DataView:
        return a.view(np.ndarray)
    if t is Tensor:
        return a._data
    if t is tuple:
        return tuple(_plain(x) for x in a)
    if t is list:
        return [_plain(x) for x in a]
    return a


def _raw_index(index: Any) -> Any:
    """An index with any tensors in it replaced by their arrays (a 0-d integer tensor by its int, as torch
    reads it: ``a[torch.tensor(1)]`` is a view, where a 0-d index array would make NumPy copy)."""
    if type(index) is Tensor:
        return _index_part(index)
    if type(index) is tuple:
        return tuple(_index_part(i) if type(i) is Tensor else i for i in index)
    if type(index) is list:
        return np.asarray(index)
    return index


def _is_int(i: Any) -> bool:
    return (type(i) is int or isinstance(i, np.integer)) and type(i) is not bool


def torch_order(index: Any) -> Optional[tuple[tuple, tuple]]:
    """``(first, rest)`` when ``index`` (a raw index, see :func:`_raw_index`) mixes integers with advanced indices
    (arrays, lists, boolean masks), else None.

    torch applies the integers first, as selections, and only then the advanced indices, by NumPy's rule (advanced
    dimensions go first when slices separate them). NumPy instead counts an integer among the advanced indices, so
    ``x[0, :, [0, 1]]`` of a (3, 4, 5) array has shape (2, 4) in NumPy and (4, 2) in torch. ``x[first][rest]``
    gives torch's result: ``first`` holds the integers (and slices for every other dimension) and is a view,
    ``rest`` is the index without the integers."""
    if type(index) is not tuple:
        return None
    for i in index:  # (most indices have no advanced part: they leave here)
        ti = type(i)
        if ti is ndarray or ti is list or ti is DataView or ti is tuple:
            break
    else:
        return None
    if not any(_is_int(i) for i in index):
        return None
    first: list = []
    rest: list = []
    for i in index:
        if _is_int(i):
            first.append(i)
        elif i is None or type(i) is bool:
            rest.append(i)
        elif i is Ellipsis:
            first.append(i)
            rest.append(i)
        else:
            arr = np.asarray(i)
            first.extend([slice(None)] * (arr.ndim if arr.dtype == np.bool_ else 1))
            rest.append(i)
    return tuple(first), tuple(rest)


def _index_part(i: Tensor) -> Any:
    d = i._data
    if type(d) is ndarray and d.ndim == 0 and d.dtype.kind in "iu" and REFUSE.reason is None:
        return int(d)  # (under vmap, .data: its tracer refuses an index that depends on a batched input)
    return i.data


# --- history of tensors rebased by an in-place operation ------------------------------------------
# An in-place operation that is recorded makes the tensor a new node (chainrule.inplace); its previous record
# moves to a fresh tensor (the "history copy"). A node recorded earlier still names the tensor itself as its
# input, so at backward it must read the record the tensor had then, as torch's edges point at the grad_fn of
# the version they saw. id(tensor) -> (weak reference to it, [(seq of the new record, history copy, region)])
# where region is the array that was written (the whole tensor, or the view written through).
_REBASED: dict[int, tuple[Any, list]] = {}
# History copies whose value was overwritten in place: id -> (weak reference, version after the write).
_OVERWRITTEN: dict[int, tuple[Any, int]] = {}


def _forget(table: dict, key: int) -> Any:
    def drop(_ref: Any) -> None:
        entry = table.get(key)
        if entry is not None and entry[0]() is None:
            del table[key]

    return drop


def note_rebase(t: Tensor, seq: int, old: Tensor, region: Any) -> None:
    """Record that ``t`` got a new record numbered ``seq``; nodes recorded before read ``old``'s record."""
    entry = _REBASED.get(id(t))
    if entry is None or entry[0]() is not t:
        entry = _REBASED[id(t)] = (weakref.ref(t, _forget(_REBASED, id(t))), [])
    entry[1].append((seq, old, region))
    _OVERWRITTEN[id(old)] = (weakref.ref(old, _forget(_OVERWRITTEN, id(old))), t._version)


def rebases_after(t: Tensor, seq: int) -> list:
    """The rebases of ``t`` after node number ``seq`` was recorded, oldest first: ``[(seq, old, region)]``."""
    entry = _REBASED.get(id(t))
    if entry is None or entry[0]() is not t:
        return []
    return [e for e in entry[1] if e[0] > seq]


def overwritten_version(t: Tensor) -> int:
    """The version at which a history copy's value was overwritten in place (0 if it was not)."""
    entry = _OVERWRITTEN.get(id(t))
    return entry[1] if entry is not None and entry[0]() is t else 0


# Recorded views of graph nodes: id(source) -> (weak reference to it, [weak references to its views]). An in-place
# change that rebases the source takes these views again from its new record (torch regenerates a view's
# history when its base changed), so uses of a view before the change and after it each get the right history.
_VIEWS: dict[int, tuple[Any, list]] = {}


def note_view(source: Tensor, view: Tensor) -> None:
    """Remember that recorded node ``view`` views ``source``'s memory (``source`` a graph node)."""
    entry = _VIEWS.get(id(source))
    if entry is None or entry[0]() is not source:
        entry = _VIEWS[id(source)] = (weakref.ref(source, _forget(_VIEWS, id(source))), [])
    views = entry[1]
    views.append(weakref.ref(view))
    n = len(views)
    if n >= 16 and n & (n - 1) == 0:  # now and then, forget the views that are gone
        views[:] = [r for r in views if r() is not None]


def views_of(source: Tensor) -> list:
    """The live recorded views whose record still reads ``source``."""
    entry = _VIEWS.get(id(source))
    if entry is None or entry[0]() is not source:
        return []
    found = []
    for ref in entry[1]:
        v = ref()
        if v is not None and v._node is not None and v._node is not FREED and v._node.name in VIEW_PRIMITIVES:
            if (v._a[0] if type(v._a) is tuple else v._a) is source:
                found.append(v)
    return found
