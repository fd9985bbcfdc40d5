"""``cr.derive(output, batch="x")``: which axes of a recorded graph are the batch axis, and the graph at other sizes.

The batch axis is followed through the operations, never guessed from equal numbers: each operation ties
the axes of its operands and of its output that are one axis (an elementwise operation the aligned axes of
equal length, a matrix product the rows of its left operand to the rows of its output, a reshape the axes
it keeps whole, an index array its axes to the axes it makes, ...).  The axes tied to the named input's
axis are the batch; two unrelated axes that are both 32 long stay apart.

Two kinds of constants are tied too, by the operation they are in, not by their value alone:

* an index ``range(n)`` (or ``arange(n)``) over the whole of an axis it indexes is that axis (the rows of
  ``logprobs[range(n), Y]``);
* a scalar that divides a sum (or multiplies it by its inverse) and equals the number of entries the sum
  adds up is that count: ``Σ loss / n`` is a mean, and ``n`` is the batch size when the sum runs over it.

:func:`resize` replays the graph with the batch axis at another length: the recorded leaves and arrays with
a batch axis are repeated along it (row ``i`` is recorded row ``i mod n``; rows past the recorded ones are
scaled by a random factor so that they are not copies), shapes in reshapes and broadcasts, ranges and counts
follow, and every other value (the parameters) is the recorded one itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..grad_mode import enable_grad
from ..graph import node_of
from ..tensor import Tensor, apply
from .derive_graph import DeriveError

ELEMENTWISE = frozenset(
    "add sub mul div neg pow abs exp log log1p log2 log10 sqrt sin cos tanh sigmoid relu clip maximum minimum "
    "where".split()
)
REDUCTIONS = frozenset("sum mean max min logsumexp".split())


class BatchError(DeriveError):
    """``batch=`` names no input axis, or the batch axis cannot be followed through an operation."""


def parse_spec(batch: Any, inputs: Mapping[str, Any]) -> tuple[str, int]:
    """``"x"`` (axis 0), ``("x", axis)`` or ``{"x": axis}``: the input's printed name and its batch axis (checked)."""
    if isinstance(batch, Mapping) and len(batch) == 1:
        batch = next(iter(batch.items()))
    if isinstance(batch, str):
        label, axis = batch, 0
    elif isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], str):
        label, axis = batch
    else:
        raise BatchError(
            f"cr.derive(output, batch={batch!r}): give the name of an input whose leading axis is the batch "
            "(batch='x') or the name and the axis (batch=('x', 1) or batch={'x': 1})"
        )
    if label not in inputs:
        raise BatchError(
            f"cr.derive(output, batch={batch!r}): {label!r} is not an input of the graph; its inputs are "
            + ", ".join(inputs)
        )
    shape = np.shape(inputs[label].data if isinstance(inputs[label], Tensor) else inputs[label])
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        valid = f"-{len(shape)}..{len(shape) - 1}" if shape else "none (it is a scalar)"
        raise BatchError(
            f"cr.derive(output, batch={batch!r}): {label} has shape {tuple(shape)}, so the batch axis must be "
            f"in {valid}, not {axis!r}"
        )
    axis = int(axis) % len(shape)
    if shape[axis] < 2:
        raise BatchError(
            f"cr.derive(output, batch={batch!r}): axis {axis} of {label} has length {shape[axis]}; a batch of "
            "fewer than 2 cannot be told apart from broadcasting: record the graph with a batch of 2 or more"
        )
    return label, axis


def _is_full_range(a: Any, length: int) -> bool:
    """``range(length)``, or ``arange(length)`` with axes of length 1 around it."""
    if isinstance(a, range):
        return (a.start, a.stop, a.step) == (0, length, 1)
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iu" or a.size != length:
        return False
    return sum(d != 1 for d in a.shape) <= 1 and bool(np.array_equal(a.reshape(-1), np.arange(length)))


def _shape(a: Any) -> tuple[int, ...]:
    return (len(a),) if isinstance(a, range) else tuple(np.shape(a))


@dataclass
class Axes:
    """Axes tied by the operations (a union-find over ``(id(value), axis)``), and the batch among them."""

    parent: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)  # id -> the value (tensor, array or range), kept alive
    root: Any = None
    size: int = 0
    counts: dict = field(default_factory=dict)  # id(node) -> (operand position, reduced axes of the sum)

    def find(self, slot: tuple) -> tuple:
        while self.parent.get(slot, slot) != slot:
            self.parent[slot] = self.parent.get(self.parent[slot], self.parent[slot])
            slot = self.parent[slot]
        return slot

    def tie(self, a: Any, i: int, b: Any, j: int) -> None:
        self.objects[id(a)], self.objects[id(b)] = a, b
        ra, rb = self.find((id(a), i)), self.find((id(b), j))
        if ra != rb:
            self.parent[ra] = rb

    def is_batch(self, obj: Any, axis: int) -> bool:
        return self.root is not None and self.find((id(obj), axis)) == self.root

    def batch_axes(self, obj: Any) -> list[int]:
        return [a for a in range(len(_shape(obj))) if self.is_batch(obj, a)]

    def new_shape(self, obj: Any, n: int) -> tuple[int, ...]:
        return tuple(n if self.is_batch(obj, a) else d for a, d in enumerate(_shape(obj)))


def _operands(t: Tensor) -> list[Any]:
    view = node_of(t)
    return [x if x is not None else view.args[i] for i, x in enumerate(view.inputs)]


def _broadcast_ties(axes: Axes, t: Tensor, operands: list[Any]) -> None:
    out = t.shape
    for x in operands:
        s = _shape(x)
        if not s or isinstance(x, (int, float, np.number)):
            continue
        lead = len(out) - len(s)
        for a, d in enumerate(s):
            if d != 1 and lead + a >= 0 and out[lead + a] == d:
                axes.tie(x, a, t, lead + a)


def _matmul_ties(axes: Axes, t: Tensor, a: Any, b: Any) -> None:
    sa, sb, so = _shape(a), _shape(b), t.shape
    if len(sa) >= 2:
        axes.tie(a, len(sa) - 2, t, len(so) - (2 if len(sb) >= 2 else 1))
    if len(sb) >= 2:
        axes.tie(b, len(sb) - 1, t, len(so) - 1)
    axes.tie(a, len(sa) - 1, b, len(sb) - 2 if len(sb) >= 2 else 0)
    stack = len(so) - (len(sa) >= 2) - (len(sb) >= 2)
    for x, s in ((a, sa), (b, sb)):
        lead = s[:-2]
        for k, d in enumerate(lead):
            pos = stack - len(lead) + k
            if d != 1 and 0 <= pos < len(so) and so[pos] == d:
                axes.tie(x, k, t, pos)


def _reshape_ties(axes: Axes, t: Tensor, x: Any) -> None:
    """The axes a reshape keeps whole: same length, same number of entries before them."""
    sx, so = _shape(x), t.shape
    before = {}
    p = 1
    for a, d in enumerate(sx):
        before.setdefault((p, d), a)
        p *= d
    p = 1
    for j, d in enumerate(so):
        if d != 1 and (p, d) in before:
            axes.tie(x, before[(p, d)], t, j)
        p *= d


def _index_parts(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _getitem_ties(axes: Axes, t: Tensor, x: Any, index: Any) -> None:
    """NumPy's indexing: basic parts (slices, integers, None) keep or drop axes in place; the index arrays
    broadcast together and their axes go where the first one is (or first of all, where they are apart)."""
    parts = list(_index_parts(index))
    sx = _shape(x)
    if any(_is_bool(p) for p in parts):
        return  # (a mask: the output's length depends on the data; resize() refuses a masked batch axis)
    is_adv = [isinstance(p, range) or (isinstance(p, np.ndarray) and p.ndim > 0) for p in parts]
    if any(p is Ellipsis for p in parts):
        k = parts.index(Ellipsis)
        parts[k : k + 1] = [slice(None)] * (len(sx) - sum(1 for p in parts if p is not None and p is not Ellipsis))
        is_adv[k : k + 1] = [False] * (len(parts) - len(is_adv) + 1)
    pad = len(sx) - sum(1 for p in parts if p is not None)
    parts += [slice(None)] * pad
    is_adv += [False] * pad
    adv = [k for k, a in enumerate(is_adv) if a]
    adv_shape = np.broadcast_shapes(*(_shape(parts[k]) for k in adv)) if adv else ()
    together = not adv or adv == list(range(adv[0], adv[-1] + 1))
    layout: list[tuple] = [("adv",)] if adv and not together else []
    picks = []
    a_in = 0
    for k, p in enumerate(parts):
        if p is None:
            layout.append(("new",))
            continue
        if is_adv[k]:
            if together and k == adv[0]:
                layout.append(("adv",))
            picks.append((p, a_in))
        elif isinstance(p, slice):
            layout.append(("slice", a_in, p))
        a_in += 1  # (an integer drops its axis)
    out = 0
    start = 0
    for item in layout:
        if item[0] == "adv":
            start = out
            out += len(adv_shape)
            continue
        if item[0] == "slice" and item[2].start is None and item[2].stop is None and item[2].step in (None, 1):
            axes.tie(x, item[1], t, out)
        out += 1
    for p, a_in in picks:
        s = _shape(p)
        for a, d in enumerate(s):
            pos = len(adv_shape) - len(s) + a
            if d != 1 and adv_shape[pos] == d:
                axes.tie(p, a, t, start + pos)
        long = [a for a, d in enumerate(s) if d != 1]
        if len(long) <= 1 and _is_full_range(p, sx[a_in]):  # arange over the whole axis it indexes
            axes.tie(p, long[0] if long else 0, x, a_in)


def _is_bool(p: Any) -> bool:
    return isinstance(p, np.ndarray) and p.dtype.kind == "b"


def follow(order: list[Tensor], obj: Any, axis: int) -> Axes:
    """The axes of every value in the graph tied to ``obj``'s ``axis`` (order: root first, as toposort gives)."""
    axes = Axes()
    for t in order:
        view = node_of(t)
        name, ops = view.prim.name, _operands(t)
        if name in ELEMENTWISE:
            _broadcast_ties(axes, t, ops)
        elif name == "matmul":
            _matmul_ties(axes, t, ops[0], ops[1])
        elif name == "linear":
            x, w = ops[0], ops[1]
            for a in range(len(_shape(x)) - 1):
                axes.tie(x, a, t, a)
            axes.tie(x, len(_shape(x)) - 1, w, 1)
            axes.tie(w, 0, t, t.ndim - 1)
            if len(ops) > 2 and _shape(ops[2]):
                axes.tie(ops[2], 0, t, t.ndim - 1)
        elif name in REDUCTIONS:
            sx = _shape(ops[0])
            axis_p, keep = view.params[0], (view.params[1] if len(view.params) > 1 else False)
            reduced = set(range(len(sx))) if axis_p is None else {a % len(sx) for a in _tuple(axis_p)}
            j = 0
            for a in range(len(sx)):
                if a in reduced:
                    j += 1 if keep else 0
                    continue
                axes.tie(ops[0], a, t, j)
                j += 1
        elif name in ("softmax", "log_softmax"):
            for a in range(t.ndim):
                axes.tie(ops[0], a, t, a)
        elif name == "reshape":
            _reshape_ties(axes, t, ops[0])
        elif name == "transpose":
            for j, a in enumerate(view.params[0]):
                axes.tie(ops[0], a, t, j)
        elif name == "broadcast_to":
            _broadcast_ties(axes, t, ops[:1])
        elif name == "getitem":
            _getitem_ties(axes, t, ops[0], view.params[0])
        elif name in ("concatenate", "stack"):
            axis_p = view.params[0] % (t.ndim if name == "concatenate" else t.ndim)
            for x in ops:
                for a in range(len(_shape(x))):
                    j = a if name == "concatenate" or a < axis_p else a + 1
                    if not (name == "concatenate" and a == axis_p):
                        axes.tie(x, a, t, j)
        elif name in ("unfold", "fold"):
            axes.tie(ops[0], 0, t, 0)
    axes.root = axes.find((id(obj), axis))
    axes.objects[id(obj)] = obj
    axes.size = _shape(obj)[axis]
    _find_counts(order, axes)
    return axes


def _tuple(a: Any) -> tuple:
    return tuple(a) if isinstance(a, (tuple, list)) else (a,)


def _find_counts(order: list[Tensor], axes: Axes) -> None:
    """``Σ x / n`` and ``(1/n) Σ x`` where ``n`` counts the entries the sum adds up over a batch axis."""
    for t in order:
        view = node_of(t)
        if view.prim.name not in ("div", "mul"):
            continue
        for pos in (1,) if view.prim.name == "div" else (0, 1):
            other = view.inputs[1 - pos]
            c = view.args[pos]
            if view.inputs[pos] is not None or np.ndim(c) != 0 or other is None or other._node is None:
                continue
            inner = node_of(other)
            if inner.prim.name != "sum" or inner.inputs[0] is None:
                continue
            x = inner.inputs[0]
            axis_p = inner.params[0]
            reduced = tuple(range(x.ndim)) if axis_p is None else tuple(a % x.ndim for a in _tuple(axis_p))
            if not any(axes.is_batch(x, a) for a in reduced):
                continue
            count = math.prod(x.shape[a] for a in reduced)
            value = float(c) if view.prim.name == "div" else 1.0 / float(c) if float(c) else 0.0
            if count and abs(value - count) <= 1e-9 * count:
                axes.counts[id(t)] = (pos, reduced, x)


def _repeat(a: np.ndarray, batch: list[int], n: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    """``a`` with each batch axis at length ``n``: rows repeated in turn, rows past the recorded ones scaled."""
    out = a
    for ax in batch:
        m = a.shape[ax]
        out = np.take(out, np.arange(n) % m, axis=ax)
        if rng is not None and out.dtype.kind == "f" and n > m:
            shape = [1] * out.ndim
            shape[ax] = n
            factor = np.where(np.arange(n) < m, 1.0, rng.uniform(0.7, 1.3, n)).reshape(shape)
            out = (out * factor).astype(a.dtype)
    return out


@dataclass
class Resized:
    """The graph replayed at batch size ``n``: its output, and the new value of each recorded one (by id)."""

    output: Tensor
    new: dict[int, Any]  # id(recorded value) -> its value in the replay (the same object where no batch axis)
    ranges: dict[int, Any]  # id(new range) -> the batch axis it spans: (id(recorded range), axis of the range)


def resize(order: list[Tensor], axes: Axes, n: int, seed: int = 0) -> Resized:
    """Replay the recorded graph with the batch axis at length ``n`` (see the module's docstring)."""
    rng = np.random.default_rng([seed, n])
    new: dict[int, Any] = {}
    ranges: dict[int, Any] = {}

    def value(x: Any) -> Any:
        if id(x) in new:
            return new[id(x)]
        batch = axes.batch_axes(x) if isinstance(x, (Tensor, np.ndarray, range)) else []
        if not batch:
            out = x
        elif isinstance(x, Tensor):
            raw = np.asarray(x.data)
            out = Tensor(_repeat(raw, batch, n, rng), requires_grad=x.requires_grad)
        elif isinstance(x, range) or _is_full_range(x, _shape(x)[batch[0]]):
            r = np.arange(n).reshape([n if a == batch[0] else 1 for a in range(len(_shape(x)))])
            out = range(n) if isinstance(x, range) else r.astype(x.dtype)
            ranges[id(out)] = (id(x), batch[0])
        else:
            out = _repeat(np.asarray(x), batch, n, rng if x.dtype.kind == "f" else None)
        new[id(x)] = out
        return out

    for t in reversed(order):
        view = node_of(t)
        name = view.prim.name
        args = [value(x if x is not None else view.args[i]) for i, x in enumerate(view.inputs)]
        params = list(view.params)
        if id(t) in axes.counts:
            pos, reduced, x = axes.counts[id(t)]
            count = math.prod(axes.new_shape(x, n)[a] for a in reduced)
            c = view.args[pos]
            scalar = count if name == "div" else 1.0 / count
            args[pos] = np.asarray(scalar, dtype=np.asarray(c).dtype) if isinstance(c, np.ndarray) else type(c)(scalar)
        if name in ("reshape", "broadcast_to"):
            params[0] = axes.new_shape(t, n)
        elif name == "getitem":
            params[0] = _new_index(view.params[0], value, axes, t)
        want = axes.new_shape(t, n)
        try:
            with enable_grad():  # (recorded even where derive is called inside no_grad())
                out = apply(view.prim, *args, *params)
        except Exception as exc:  # noqa: BLE001  (said with the operation and the shapes)
            raise BatchError(_refusal(t, n, f"{type(exc).__name__}: {exc}")) from exc
        if tuple(out.shape) != want:
            raise BatchError(_refusal(t, n, f"it gives shape {tuple(out.shape)}, not {want}"))
        new[id(t)] = out
    return Resized(new[id(order[0])], new, ranges)


def _new_index(index: Any, value: Any, axes: Axes, t: Tensor) -> Any:
    parts = _index_parts(index)
    for p in parts:
        if _is_bool(p) and axes.batch_axes(p):
            raise BatchError(
                f"cr.derive(output, batch=...): a boolean mask indexes along the batch axis (output shape {t.shape}); "
                "how many entries it keeps depends on the data, so the batch size cannot stay symbolic"
            )
    out = tuple(value(p) if isinstance(p, (np.ndarray, range)) else p for p in parts)
    return out if isinstance(index, tuple) else out[0]


def _refusal(t: Tensor, n: int, what: str) -> str:
    view = node_of(t)
    shapes = ", ".join(str(tuple(x.shape)) for x in view.inputs if x is not None)
    return (
        f"cr.derive(output, batch=...): the batch axis cannot be followed through '{view.prim.name}' (operands "
        f"{shapes}, output {tuple(t.shape)}): replayed at batch size {n}, {what}. A batch axis merged with another "
        "axis (a reshape to one long axis), or a size computed from the batch in Python, cannot stay symbolic; "
        "derive without batch= to see the equations at the recorded sizes"
    )
