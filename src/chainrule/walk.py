"""The backward walk: the one loop that backpropagates, for every feature.

Read :func:`walk` first.  The reference algorithm is in its docstring (and in
docs/architecture.md): newest node first, upstream × local = downstream, and
fan-out adds up.  Everything else here serves it:
- the hot path, where the loop runs a node's rules inline (``_sweep``);
- the general path, where a :class:`Backprop` visitor runs them (``create_graph``,
  ``autograd.grad(inputs=)``, anomaly mode, ``cr.trace``, ``cr.derive``);
- broadcasting's adjoint on each edge (``_fit``);
- hooks on nodes (:class:`Hooked`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from .backend import device_of, is_foreign, namespace_of
from .grad_mode import MODE
from .numeric import NUMPY, SCALAR
from .primitive import Primitive
from .primitives import elementwise as E
from .saved import Released, needed_values
from .tensor import Tensor, node_parts, release
from .versions import EPOCHS, FREED, UNARY, VIEW_PRIMITIVES, _shares, overwritten_version, rebases_after

ndarray = np.ndarray


# Checks run on every gradient a rule returns in anomaly mode; chainrule.anomaly (a layer above) fills this list.
BACKWARD_CHECKS: list[Callable[[Tensor, int, Any], None]] = []


class _Step(threading.local):
    at: Optional[tuple] = None  # (node, input index) whose rule runs now, kept in anomaly mode only


_STEP = _Step()


def current_step() -> Optional[tuple]:
    """In anomaly mode, inside a backward pass: the node and input index whose rule is running (else None)."""
    return _STEP.at


class GraphFreedError(RuntimeError):
    """Raised when backward reaches a node whose saved values were already released."""


_FREED_MESSAGE = (
    "backward: this graph was already backpropagated and its saved values were freed. "
    "Pass retain_graph=True to the first backward() (or recompute the forward) to go through it again."
)


def _check_fresh(t: Tensor) -> None:
    """Check node ``t`` against in-place changes made since it was recorded, as torch checks saved variables.

    - An input changed in place whose value ``t``'s rules read (for the inputs that want a gradient), or ``t``'s
      own result changed when its rules read it (exp's does): raise, naming the operation and the versions.
      A change of a value no rule reads (``add``'s inputs, ``exp``'s input) is fine, as in torch.
    - An input that an in-place operation recorded as a new node after ``t`` was made: ``t`` reads the record
      the input had then (its history copy), as torch's edges point at the version they saw.
    """
    epoch = t._epoch
    inputs = node_parts(t)[0]
    stale = []
    for j, x in enumerate(inputs):
        if x is None:
            continue
        version = x._version
        if version <= epoch:
            version = _viewed_version(x)  # a view changes with the memory it views (torch: one version counter)
            if version <= epoch:
                continue
        stale.append((j, version))
        if x._version > epoch:
            later = rebases_after(x, t._seq)
            if later:
                _read_history(t, x, later)
    changed = t._version if t._version > epoch else overwritten_version(t)
    if stale or changed > epoch:
        inputs = node_parts(t)[0]  # (the inputs as t saw them: a history copy in place of a rebased tensor)
        needs = _needs(t, inputs)
        for j, version in stale:
            if needs[j]:
                _stale(t, inputs, f"its input {j}", version)
        if changed > epoch and needs[-1]:
            _stale(t, inputs, "its result", changed)


def _viewed_version(x: Tensor) -> int:
    """The newest version among ``x`` and the tensors whose memory it views (recorded views, detach, .data)."""
    version = x._version
    while True:
        node = x._node
        if node is None:
            for ref in getattr(x, "_a", None) or ():
                source = ref()
                if source is not None and source._version > version:
                    version = source._version
            return version
        if node is FREED or node.name not in VIEW_PRIMITIVES:
            return version
        parent = x._a[0] if type(x._a) is tuple else x._a
        if parent is None or not _shares(x._data, parent._data):
            return version
        if parent._version > version:
            version = parent._version
        x = parent


def _needs(t: Tensor, inputs: tuple) -> tuple:
    active = tuple(x is not None and x.requires_grad and t._node.differentiable(i) for i, x in enumerate(inputs))
    return needed_values(t._node, len(inputs), active)


def _stale(t: Tensor, inputs: tuple, which: str, version: int) -> None:
    shapes = ", ".join(str(x.shape) for x in inputs if x is not None)
    name = t._node.name
    what, when = ("the result of", "it was computed") if which == "its result" else ("an input of", "it was used")
    raise RuntimeError(
        f"backward: {what} '{name}' (input shapes {shapes}; {which}) was modified in place after {when}, "
        f"and '{name}' saved that value for its gradient: the tensor is at version {version} of chainrule's "
        f"in-place counter, but '{name}' saved it at version {t._epoch} or before, so the value is stale. "
        "torch raises here too ('one of the variables needed for gradient computation has been modified by an "
        "inplace operation'). Modify a clone() instead, or modify it only after backward()."
    )


def _read_history(t: Tensor, x: Tensor, later: list) -> None:
    """Make node ``t`` read the record input ``x`` had when ``t`` was made (``later``: x's rebases since)."""
    d = t._data
    if t._node.name in VIEW_PRIMITIVES and type(d) is ndarray:
        for _seq, _old, region in later:
            if type(region) is ndarray and np.shares_memory(d, region):
                raise RuntimeError(
                    f"backward: '{t._node.name}' made a view (shape {d.shape}) of a tensor of shape {x.shape}, and "
                    "that tensor was then changed in place where the view sees it, by an operation that was "
                    "recorded. torch regenerates such a view's history when it is next used; chainrule cannot "
                    "tell which uses of the view came before the change. Take the view again after the in-place "
                    "change (or clone() it before)."
                )
    old = later[0][1]
    if t._args is None:
        if t._a is x:
            t._a = old
        if t._b is x:
            t._b = old
    else:
        t._a = tuple(old if y is x else y for y in t._a)


def _ns(out: Any) -> Any:
    """The namespace a node's rules run on: NumPy, or the library of a foreign array."""
    if type(out) is ndarray or type(out) is float or type(out) is Released or not is_foreign(out):
        return NUMPY
    return namespace_of(out)


def _fit(gi: Any, value: Any) -> Any:
    """Reduce a raw gradient to its input's shape (broadcasting's adjoint) and dtype."""
    if type(value) is float:
        if type(gi) is float:
            return gi
        return float(np.sum(gi)) if not is_foreign(gi) else float(namespace_of(gi).sum(gi))
    if type(value) is not ndarray and type(value) is not Released and is_foreign(value):
        return _fit_foreign(gi, value)
    if type(gi) is not ndarray:
        gi = np.asarray(gi)
    if gi.shape != value.shape:
        gi = NUMPY.unbroadcast(gi, value.shape)
    if gi.dtype != value.dtype:
        gi = gi.astype(value.dtype)
    return gi


def _fit_foreign(gi: Any, value: Any) -> Any:
    ns = namespace_of(value)
    shape = tuple(value.shape)
    if not is_foreign(gi):  # a number (a rule such as pow's at y == 0 returns g * 0.0 on a scalar g)
        return ns.xp.full(shape, float(gi), dtype=value.dtype, device=device_of(value))
    if tuple(gi.shape) != shape:
        gi = ns.unbroadcast(gi, shape) if len(gi.shape) >= len(shape) else ns.xp.broadcast_to(gi, shape)
    if gi.dtype != value.dtype:
        gi = ns.xp.astype(gi, value.dtype)
    return gi


class _Layers:
    """What the layers above lend the walk: the tensor namespace (chainrule.ops fills it), on which
    ``create_graph=True`` runs the rules so that the backward pass is itself recorded."""

    tensor_namespace: Any = None


ABOVE = _Layers()


def _fit_tensor(gi: Any, inp: Tensor) -> Tensor:
    unbroadcast = ABOVE.tensor_namespace.unbroadcast
    if type(gi) is not Tensor:
        gi = Tensor(np.broadcast_to(np.asarray(gi, dtype=inp.dtype), inp.shape).copy())
    if gi.shape != inp.shape:
        gi = unbroadcast(gi, inp.shape)
    if gi.dtype != inp.dtype:
        gi = gi.astype(inp.dtype)
    return gi


class Hooked(Primitive):
    """A node's primitive with hooks on the gradient arriving at it (``register_hook``, ``retain_grad``).

    It is the node's own primitive (same rules, name and forward) plus the hooks,
    so the hooks run when the walk reaches the node itself, with its gradient
    complete: after every consumer has sent its share, however the tensor fans out.
    """

    __slots__ = ("original", "hooks", "retain")

    def __init__(self, original: Primitive) -> None:  # (no Primitive.__init__: every field is the original's)
        for slot in Primitive.__slots__:
            object.__setattr__(self, slot, getattr(original, slot))
        self.original = original
        self.hooks: list[Callable[[Any], Any]] = []  # each returns a replacement gradient or None
        self.retain: Optional[Callable[[Any], None]] = None  # retain_grad's keeper: runs last, as in torch

    def through(self, g: Any) -> Any:
        """The gradient after the hooks (in the order they were registered), then handed to retain_grad."""
        for hook in list(self.hooks):
            replaced = hook(g)
            if replaced is not None:
                g = replaced
        if self.retain is not None:
            self.retain(g)
        return g


def hooked(t: Tensor) -> Optional[Hooked]:
    """Node ``t``'s primitive as a :class:`Hooked` one, made so on first use (None for a freed node).

    The node moves to the general layout (``_args``), where the walk looks for hooks."""
    prim = t._node
    if prim is FREED or prim is None:
        return None
    if type(prim) is not Hooked:
        inputs, vals = node_parts(t)
        t._a, t._args, t._b, t._av, t._bv = tuple(inputs), tuple(vals), None, None, None
        t._node = prim = Hooked(prim)
    return prim


class Backprop:
    """How the walk runs a node's rules on its general path; tools subclass it to watch or to reinterpret.

    The walk calls, for each node it reaches with its gradient complete:
    ``start(t, g)`` (returns the upstream gradient to use), then for each input
    ``i``: ``follow(t, i, inp)`` (whether that input gets a gradient),
    ``downstream(t, i, g)`` (upstream × local: the rule's result, reduced to the
    input's shape), and ``edge(t, i, inp, gi)``.  The walk itself adds the
    gradients up on fan-out.  This base class is backpropagation itself:
    first order on raw values, or recorded (``create_graph``) on tensors, with
    anomaly checks in anomaly mode and the gradients of ``wanted`` non-leaf tensors kept in ``captured``.
    """

    hooks = True  # whether the gradient at a hooked node goes through its hooks (register_hook, retain_grad)

    def __init__(self, create_graph: bool = False, wanted: Optional[set] = None, needed: Optional[set] = None) -> None:
        self.create_graph = create_graph
        self.wanted = wanted
        self.needed = needed
        self.anomaly = MODE.anomaly
        self.captured: dict[int, Any] = {}
        self.ran = False  # whether the node just visited ran a rule (else the walk keeps its saved values)

    def start(self, t: Tensor, g: Any) -> Any:
        if self.wanted is not None and id(t) in self.wanted:
            self.captured[id(t)] = g
        return g

    def follow(self, t: Tensor, i: int, inp: Optional[Tensor]) -> bool:
        """Whether input ``i`` (None: a constant) gets a gradient."""
        if inp is None or not inp.requires_grad:
            return False
        return (self.needed is None or id(inp) in self.needed) and t._node.differentiable(i)

    def downstream(self, t: Tensor, i: int, g: Any) -> Any:
        prim = t._node
        inputs, vals = node_parts(t)
        if self.create_graph:  # the rule runs on tensors, so this backward pass is recorded too
            nin = len(inputs)
            args = tuple(inputs[k] if inputs[k] is not None else vals[k] for k in range(nin)) + vals[nin:]
            if self.anomaly:
                _STEP.at = (t, i)
            gi = _fit_tensor(call_rule(prim, ABOVE.tensor_namespace, g, t, i, args), inputs[i])
        else:
            out = t._data
            if self.anomaly:
                _STEP.at = (t, i)
            gi = _fit(call_rule(prim, _namespace(prim, out), g, out, i, vals), vals[i])
        if self.anomaly:
            for check in BACKWARD_CHECKS:
                check(t, i, gi)
        return gi

    def edge(self, t: Tensor, i: int, inp: Tensor, gi: Any) -> None:
        pass


def _visit(t: Tensor, g: Any, visitor: Backprop, pending: dict[int, Tensor], got: Callable) -> int:
    """The general path for one node: its rules through ``visitor``; returns the newest input it queued (or -1)."""
    if type(t._node) is Hooked and visitor.hooks:
        g = t._node.through(g)
    g = visitor.start(t, g)
    newest = -1
    visitor.ran = False
    for i, inp in enumerate(node_parts(t)[0]):
        if not visitor.follow(t, i, inp):
            continue
        visitor.ran = True
        gi = visitor.downstream(t, i, g)
        visitor.edge(t, i, inp, gi)
        prev = inp._bg
        if prev is None:
            inp._bg = gi
            if inp._node is None:
                got(inp)
            else:
                pending[inp._seq] = inp
                if inp._seq > newest:
                    newest = inp._seq
        else:
            inp._bg = prev + gi  # fan-out: the gradients add up
    return newest


def _namespace(prim: Primitive, out: Any) -> Any:
    """The namespace a node's rules run on: Python floats (math), NumPy, or another array library."""
    if type(out) is ndarray:
        return NUMPY
    if type(out) is float and prim.scalar_fwd is not None:
        return SCALAR
    return _ns(out)


def call_rule(prim: Primitive, xp: Any, g: Any, out: Any, i: int, args: tuple) -> Any:
    """Input ``i``'s gradient by ``prim``'s VJP rule; on Python floats, math-domain trouble falls back to NumPy."""
    if prim.variadic:
        return prim.vjps[0](xp, g, out, i, *args)
    rule = prim.vjps[i]
    if xp is not SCALAR:
        return rule(xp, g, out, *args)
    try:
        return rule(xp, g, out, *args)
    except (ArithmeticError, ValueError):
        with np.errstate(all="ignore"):
            return rule(NUMPY, np.float64(g), np.float64(out), *args)


class _Walking(threading.local):
    """This thread's walk that is running now: ``(pending, leaves)``, or None."""

    now: Optional[tuple] = None


_WALKING = _Walking()


_SLOTS_LOCK = threading.Lock()  # the tensors' _bg slots hold one thread's walks at a time


def walk(
    roots: Sequence[Tensor], seeds: Sequence[Any], retain_graph: bool, visitor: Optional[Backprop] = None
) -> list[tuple[Tensor, Any]]:
    """The backward walk: backpropagate ``seeds`` from ``roots``; returns ``[(leaf, gradient), ...]`` for the leaves.

    The algorithm::

        grad[root] = seed
        for node in topological order (newest first: every input is older than the node that reads it):
            for each input i of node that wants a gradient:
                grad[input i] += VJP_i(grad[node], node's saved values)    # upstream x local; fan-out sums

    The gradient waiting at a tensor sits in its own ``_bg`` slot, so the walk
    needs neither a heap nor a dictionary of gradients; nodes waiting for their
    turn sit in one dict keyed by creation number.  ``visitor`` (a
    :class:`Backprop`) runs each node's rules on the general path: recorded
    (``create_graph``), only toward wanted tensors, with anomaly checks, or
    watched and reinterpreted by the tools (``cr.trace``, ``cr.derive``).
    Without a visitor the rules run inline on raw values.  Every slot is None
    again afterwards, also when a rule raises.  One thread walks at a time; a walk
    started inside another one in the same thread (a hook calling backward) sets
    the outer walk's gradients aside until it is done.
    """
    outer = _WALKING.now
    if outer is None:
        _SLOTS_LOCK.acquire()
        aside = None
    else:
        aside = _set_aside(outer)
    pending: dict[int, Tensor] = {}
    leaves: list[Tensor] = []
    _WALKING.now = (pending, leaves)
    try:
        for r, s in zip(roots, seeds):
            prev = r._bg
            if prev is None:
                r._bg = s
                if r._node is None:
                    leaves.append(r)
                else:
                    pending[r._seq] = r
            else:
                r._bg = prev + s
        try:
            if pending:
                _sweep(pending, leaves, retain_graph, max(pending), visitor)
        except BaseException:
            for t in pending.values():
                t._bg = None
            for t in leaves:
                t._bg = None
            raise
        reached = []
        for leaf in leaves:
            reached.append((leaf, leaf._bg))
            leaf._bg = None
        return reached
    finally:
        _WALKING.now = outer
        if aside is None:
            _SLOTS_LOCK.release()
        else:
            for t, g in aside:
                t._bg = g


def _set_aside(outer: tuple) -> list[tuple[Tensor, Any]]:
    """Empty the slots of a walk interrupted by another walk in the same thread; returns what they held."""
    pending, leaves = outer
    held = [(t, t._bg) for t in pending.values()] + [(t, t._bg) for t in leaves]
    for t, _ in held:
        t._bg = None
    return held


def _sweep(pending: dict[int, Tensor], leaves: list[Tensor], retain_graph: bool, seq: int, visitor: Any) -> None:
    """:func:`walk`'s loop: take the newest waiting node, apply its rules, pass the gradients on.

    The cursor steps down one creation number at a time; a long run of numbers
    that no waiting node has (nodes of other graphs) jumps to the newest waiting
    one.  An input newer than the node reading it (a hook put in front of a tensor
    already used) moves the cursor back up to it.

    With a ``visitor`` every node takes the general path (:func:`_visit`).  Without
    one (first order into ``.grad``, the common case) the node's rules run right
    here on raw values, with mul and add on Python floats inlined: the same steps,
    specialised because this loop is the hot path of every ``backward()``.
    """
    now = EPOCHS.value
    got = leaves.append
    scalar_xp = SCALAR
    pop = pending.pop
    misses = 0
    while pending:
        t = pop(seq, None)
        if t is None:
            misses += 1
            if misses > len(pending) + 8:
                seq = max(pending)
                misses = 0
            else:
                seq -= 1
            continue
        misses = 0
        seq -= 1
        g = t._bg
        t._bg = None
        prim = t._node
        if prim is FREED:
            raise GraphFreedError(_FREED_MESSAGE)
        if t._epoch != now:
            _check_fresh(t)
        if visitor is not None:
            newest = _visit(t, g, visitor, pending, got)
            if newest > seq:
                seq = newest
            if not retain_graph and visitor.ran:  # a wanted tensor whose history is not needed keeps it (torch)
                release(t)
            continue
        out = t._data
        vjps = prim.vjps
        if t._args is None and not prim.variadic:
            b = t._b
            av = t._av
            scalar = type(out) is float and prim.scalar_fwd is not None
            if b is UNARY:
                a = t._a
                if a is not None and a.requires_grad and (rule := vjps[0]) is not None:
                    if scalar:
                        try:
                            gi = rule(scalar_xp, g, out, av)
                        except (ArithmeticError, ValueError):
                            with np.errstate(all="ignore"):
                                gi = rule(NUMPY, np.float64(g), np.float64(out), av)
                    else:
                        gi = rule(NUMPY if type(out) is ndarray else _ns(out), g, out, av)
                    if type(gi) is not float or type(av) is not float:  # arrays: reduce to the input's shape
                        if (
                            (type(av) is not ndarray and type(av) is not Released)
                            or type(gi) is not ndarray
                            or gi.shape != av.shape
                            or gi.dtype is not av.dtype
                        ):
                            gi = _fit(gi, av)
                    prev = a._bg
                    if prev is None:
                        a._bg = gi
                        if a._node is None:
                            got(a)
                        else:
                            iseq = a._seq
                            pending[iseq] = a
                            if iseq > seq:
                                seq = iseq
                    else:
                        a._bg = prev + gi
            else:
                bv = t._bv
                a = t._a
                if (vjps is _MUL_RULES or vjps is _ADD_RULES) and type(out) is float and type(av) is float:
                    if type(bv) is float:  # the commonest scalar nodes: their rules (g * y, g * x; g, g) inline
                        if vjps is _MUL_RULES:
                            ga = g * bv
                            gb = g * av
                        else:
                            ga = gb = g
                        if a is not None and a.requires_grad:
                            prev = a._bg
                            if prev is None:
                                a._bg = ga
                                if a._node is None:
                                    got(a)
                                else:
                                    iseq = a._seq
                                    pending[iseq] = a
                                    if iseq > seq:
                                        seq = iseq
                            else:
                                a._bg = prev + ga
                        if b is not None and b.requires_grad:
                            prev = b._bg
                            if prev is None:
                                b._bg = gb
                                if b._node is None:
                                    got(b)
                                else:
                                    iseq = b._seq
                                    pending[iseq] = b
                                    if iseq > seq:
                                        seq = iseq
                            else:
                                b._bg = prev + gb
                        if not retain_graph:
                            t._node = FREED
                            t._a = t._b = t._av = t._bv = t._args = None
                        continue
                if a is not None and a.requires_grad and (rule := vjps[0]) is not None:
                    if scalar:
                        try:
                            gi = rule(scalar_xp, g, out, av, bv)
                        except (ArithmeticError, ValueError):
                            with np.errstate(all="ignore"):
                                gi = rule(NUMPY, np.float64(g), np.float64(out), av, bv)
                    else:
                        gi = rule(NUMPY if type(out) is ndarray else _ns(out), g, out, av, bv)
                    if type(gi) is not float or type(av) is not float:  # arrays: reduce to the input's shape
                        if (
                            (type(av) is not ndarray and type(av) is not Released)
                            or type(gi) is not ndarray
                            or gi.shape != av.shape
                            or gi.dtype is not av.dtype
                        ):
                            gi = _fit(gi, av)
                    prev = a._bg
                    if prev is None:
                        a._bg = gi
                        if a._node is None:
                            got(a)
                        else:
                            iseq = a._seq
                            pending[iseq] = a
                            if iseq > seq:
                                seq = iseq
                    else:
                        a._bg = prev + gi
                if b is not None and b.requires_grad and (rule := vjps[1]) is not None:
                    if scalar:
                        try:
                            gi = rule(scalar_xp, g, out, av, bv)
                        except (ArithmeticError, ValueError):
                            with np.errstate(all="ignore"):
                                gi = rule(NUMPY, np.float64(g), np.float64(out), av, bv)
                    else:
                        gi = rule(NUMPY if type(out) is ndarray else _ns(out), g, out, av, bv)
                    if type(gi) is not float or type(bv) is not float:  # arrays: reduce to the input's shape
                        if (
                            (type(bv) is not ndarray and type(bv) is not Released)
                            or type(gi) is not ndarray
                            or gi.shape != bv.shape
                            or gi.dtype is not bv.dtype
                        ):
                            gi = _fit(gi, bv)
                    prev = b._bg
                    if prev is None:
                        b._bg = gi
                        if b._node is None:
                            got(b)
                        else:
                            iseq = b._seq
                            pending[iseq] = b
                            if iseq > seq:
                                seq = iseq
                    else:
                        b._bg = prev + gi
        else:
            inputs, vals = node_parts(t)
            if type(prim) is Hooked:  # (hooked nodes take this general layout, so only this branch looks)
                g = prim.through(g)
            xp = _namespace(prim, out)
            for i, inp in enumerate(inputs):
                if inp is None or not inp.requires_grad or not prim.differentiable(i):
                    continue
                gi = _fit(call_rule(prim, xp, g, out, i, vals), vals[i])
                prev = inp._bg
                if prev is None:
                    inp._bg = gi
                    if inp._node is None:
                        got(inp)
                    else:
                        iseq = inp._seq
                        pending[iseq] = inp
                        if iseq > seq:
                            seq = iseq
                else:
                    inp._bg = prev + gi
        if not retain_graph:  # release(t), inlined: this loop is hot
            t._node = FREED
            t._a = t._b = t._av = t._bv = t._args = None


# The rules of mul and add as registered: the sweep inlines them on Python floats.  A rule replaced
# later (a planted wrong rule in a test, a user's defvjp) is a new tuple, and takes the generic call.
_MUL_RULES = E.mul.vjps


_ADD_RULES = E.add.vjps


# CPython 3.11 specializes a function's bytecode (slot reads, float arithmetic) only
# once it has been entered 8 times, however long its loops run.  The sweep is entered
# once per backward(), so a fresh process's first 7 backward passes would run it
# unspecialized, at about twice the time: enter it with nothing to do first.
for _ in range(8):
    _sweep({}, [], False, 0, None)
