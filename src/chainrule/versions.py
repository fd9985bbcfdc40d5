"""What a node is and when it changed: creation numbers, the freed marker, version epochs for in-place checks
(``mark_modified``), and ``DataView``, the array ``Tensor.data`` hands out.

The ``Tensor`` class is defined a layer up (chainrule.tensor), which fills in :data:`Tensor` here."""

from __future__ import annotations

import itertools
import threading
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
    source too, so writing into the view marks the source (and its sources).
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


def _index_part(i: Tensor) -> Any:
    d = i._data
    if type(d) is ndarray and d.ndim == 0 and d.dtype.kind in "iu" and REFUSE.reason is None:
        return int(d)  # (under vmap, .data: its tracer refuses an index that depends on a batched input)
    return i.data


# --- torch's order for an index mixing integers with advanced indices ------------------------------------------
# torch applies integer indices first (as basic indexing) and lays out the advanced ones among themselves;
# NumPy counts integers as advanced indices, so x[0, :, [1, 2]] is (2, 3) in NumPy and (3, 2) in torch.


def _is_int_item(i: Any) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _is_array_item(i: Any) -> bool:
    return isinstance(i, (ndarray, list))


def mixed_index(index: Any) -> bool:
    """An index (already raw, see :func:`_raw_index`) where NumPy's layout can differ from torch's."""
    if type(index) is not tuple:
        return False
    return any(_is_int_item(i) for i in index) and any(_is_array_item(i) for i in index)


def _dims_of(i: Any) -> int:
    a = np.asarray(i)
    return a.ndim if a.dtype == np.bool_ else 1


def torch_split(index: tuple) -> tuple[tuple, tuple]:
    """``(basic, rest)`` with torch's ``x[index]`` equal to NumPy's ``x[basic][rest]``."""
    basic: list = []
    rest: list = []
    for i in index:
        if _is_int_item(i):
            basic.append(i)
        elif _is_array_item(i):
            basic.extend([slice(None)] * _dims_of(i))
            rest.append(i)
        elif i is Ellipsis:
            basic.append(Ellipsis)
            rest.append(Ellipsis)
        else:  # a slice, or None (its new axis exists after the first step)
            basic.append(i)
            rest.append(slice(None))
    return tuple(basic), tuple(rest)


def _tokens(items: list, advanced: Any) -> list:
    """Result layout: one token per dim-producing item (its position), the advanced block as 'A'."""
    adv = [k for k, (_, it) in enumerate(items) if advanced(it)]
    together = adv == list(range(adv[0], adv[-1] + 1)) if adv else True
    out: list = []
    placed = False
    if not together:
        out.append("A")
        placed = True
    for pos, it in items:
        if advanced(it):
            if not placed:
                out.append("A")
                placed = True
        elif not _is_int_item(it):
            out.append(pos)
    return out


def numpy_layout_of_torch(index: tuple, ndim: int) -> tuple[int, ...]:
    """The axes permutation taking torch's result of ``x[index]`` to NumPy's (for writes at a mixed index)."""
    if not any(i is Ellipsis for i in index):
        index = (*index, Ellipsis)  # the dims not indexed follow, as slices
    consumed = sum(_dims_of(i) if _is_array_item(i) else 1 for i in index if i is not None and i is not Ellipsis)
    items: list = []
    for pos, i in enumerate(index):
        if i is Ellipsis:
            items.extend(((pos, j), slice(None)) for j in range(ndim - consumed))
        else:
            items.append((pos, i))
    torch_t = _tokens([(p, i) for p, i in items if not _is_int_item(i)], _is_array_item)
    numpy_t = _tokens(items, lambda i: _is_array_item(i) or _is_int_item(i))
    shapes = [
        (int(np.count_nonzero(i)),) if np.asarray(i).dtype == np.bool_ else np.shape(i)
        for i in index
        if _is_array_item(i)
    ]
    block = len(np.broadcast_shapes(*shapes))
    where: dict = {}
    axis = 0
    for t in torch_t:
        n = block if t == "A" else 1
        where[t] = list(range(axis, axis + n))
        axis += n
    return tuple(a for t in numpy_t for a in where[t])
