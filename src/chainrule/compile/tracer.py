"""The tracer: watches one eager call of the function through the engine's hooks.

Nothing is patched.  While a call is traced, the engine tells the tracer what it does:

* ``autodiff.TRACING.tracer`` (per thread): every ``backward()`` comes here first; the tracer
  records the walk, then runs it;
* ``tensor.MODE.observer`` (per thread): value reads (``item()``, ``float(t)``, ``if t:``,
  ``.numpy()``, ``.tolist()``, ``np.asarray(t)``, ``.data`` and assigning it) call
  :meth:`Tracer.read`; ``Optimizer.step`` / ``zero_grad`` and ``Module.zero_grad`` hand their call
  to :meth:`Tracer.call`, which records it as an event the replay repeats and then makes it;
  ``Module.__call__`` calls :meth:`Tracer.enter`, so the modules called are guarded.

The primitives themselves are found afterwards, by walking the graph from the backward roots
and the outputs (:meth:`Tracer.see`): every node made during the call is one.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, Optional

import numpy as np

from ..autodiff import TRACING, run_backward, toposort
from ..grad_mode import MODE
from ..primitive import Primitive
from ..saved import keep_values
from ..tensor import Tensor, node_parts
from ..versions import EPOCHS, FREED, _next_seq
from ..walk import Backprop
from .errors import CompileError
from .runtime import is_array

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
TRACE_LOCK = threading.RLock()  # one trace at a time: the arguments' requires_grad flags are lent to it


class Node:
    """One primitive applied during the traced call (a node of the graph made then)."""

    __slots__ = ("seq", "prim", "inputs", "vals", "out", "tensor", "rg", "via_apply")

    def __init__(self, t: Tensor) -> None:
        self.seq = t._seq
        self.prim: Primitive = t._node
        self.inputs, self.vals = node_parts(t)
        self.out = t._data
        self.tensor = t
        self.via_apply = t._args is not None  # made by tensor.apply (never the scalar fast path)
        self.rg = False  # requires_grad as eager (untainted) would have it


class Tracer:
    """Watches one eager call: primitives (through the graph), backward() calls, optimizer calls, value reads."""

    def __init__(self, start_seq: int, start_epoch: int, tainted: set[int], arg_ids: set[int]) -> None:
        self.start_seq = start_seq
        self.start_epoch = start_epoch
        self.tainted = tainted
        self.arg_ids = arg_ids
        self.nodes: dict[int, Node] = {}
        self.events: list[tuple] = []  # (seq, kind, payload)
        self.suspended = 0
        self.modified_by_events: set[int] = set()
        self.reads: list[tuple] = []  # values of this call read by chainrule's own functions
        self.grads: dict[int, tuple] = {}  # leaf id -> (leaf, the .grad object a recorded step left)
        self.grad_guard: list[tuple] = []  # (leaf, grad was None) where a backward first met the leaf
        self.modules: dict[int, Any] = {}  # id -> module called during the trace (its mode and tensors are guarded)
        self.updated: dict[int, tuple] = {}  # id -> (buffer, its version after the last recorded update)

    def see(self, roots: list[Tensor]) -> None:
        """Record every node reachable from ``roots`` that was made during this call."""
        stack = [r for r in roots if isinstance(r, Tensor) and r._node is not None]
        while stack:
            t = stack.pop()
            if id(t) in self.nodes:
                continue
            if t._node is FREED:
                continue  # freed by a backward() this tracer already saw
            if t._seq < self.start_seq:
                raise CompileError(
                    f"compile: the function uses a tensor of shape {t.shape} made by '{t._node.name}' outside it "
                    "with gradient tracking (a graph built before the call); pass it as an argument, or detach() it"
                )
            self.nodes[id(t)] = Node(t)
            for inp in node_parts(t)[0]:
                if inp is not None and inp._node is not None:
                    stack.append(inp)

    @contextlib.contextmanager
    def suspend(self) -> Iterator[None]:
        """Run something the replay repeats as one event (an optimizer step, the real backward walk) unwatched,
        with the arguments' taint lifted so no gradient goes to them."""
        self.suspended += 1
        MODE.observer = None
        lifted = [t for t in _TAINTED.values() if id(t) in self.tainted]
        for t in lifted:
            t.requires_grad = False
        try:
            yield
        finally:
            for t in lifted:
                t.requires_grad = True
            self.suspended -= 1
            if not self.suspended:
                MODE.observer = self

    # --- the engine's hooks ---------------------------------------------------------------------------
    def backward(self, roots, seeds, retain_graph, create_graph, inputs):  # autodiff.run_backward's hook
        if self.suspended:
            return _untraced(run_backward, roots, seeds, retain_graph, create_graph, inputs)
        if create_graph or inputs is not None:
            raise CompileError(
                "compile: backward(create_graph=True) and grad(...) are not supported inside a compiled "
                "function; call them outside cr.compile"
            )
        if len(roots) != 1 or seeds[0] is not None:
            raise CompileError(
                "compile: only backward() of one scalar tensor without an explicit gradient is supported "
                "inside a compiled function"
            )
        root = roots[0]
        self.see([root])
        order = list(toposort([root]))
        leaves = {
            id(inp): inp
            for t in order
            for inp in node_parts(t)[0]
            if inp is not None and inp._node is None and inp.requires_grad and id(inp) not in self.tainted
        }
        self.check_grads()
        for key, leaf in leaves.items():
            if key not in self.grads:  # first seen here: the replay checks it starts in the same state
                self.grad_guard.append((leaf, leaf.grad is None))
        at = _next_seq()
        steps = _Steps()
        with self.suspend():  # the real walk, watched: the schedule repeats the edges it takes, in its order
            _untraced(run_backward, roots, seeds, retain_graph, create_graph, inputs, steps)
        self.events.append((at, "backward", (root, steps.taken)))
        self.note_grads(leaves.values())
        return None

    def read(self, t: Tensor, what: str, value: Any) -> Any:
        """A value read (``tensor.MODE.observer``): refused from the function's own code, remembered from chainrule's.

        Returns what the read hands out: ``value``; for ``.data``, the array itself (so a value a
        library function uses as it is, class labels as an index, is recognised by identity when
        the schedule is written), or None where the usual view is made.
        """
        where, name = _reader()
        if where is not None:
            if what == "data":
                raise CompileError(
                    f"compile: {where} reads Tensor.data (shape {t.shape}) while tracing: a replay cannot "
                    "repeat raw NumPy work on it. Use chainrule operations, or cr.optim for updates"
                )
            if what == "data=":
                raise CompileError(
                    f"compile: {where} assigns Tensor.data (shape {t.shape}) while tracing: a replay would not "
                    "repeat it. Use an optimizer (cr.optim) inside, or update outside"
                )
            raise CompileError(
                f"compile: {where} reads a tensor's value (Tensor.{name}, shape {t.shape}) while tracing; "
                "a replay cannot follow Python control flow on data. Return the tensor and read it "
                "outside the compiled function (or leave this function uncompiled)"
            )
        if what == "data=":
            return value
        if what == "data" and not is_array(value):
            value = None
        if id(t) in self.arg_ids or (t._node is not None and t._seq >= self.start_seq):  # a value of this call
            self.reads.append((f"Tensor.{name}", t.shape, value))
        return value

    def call(self, fn: Callable, owner: Any, *args: Any) -> Any:
        """``Optimizer.step`` / ``zero_grad``, ``Module.zero_grad``: recorded as a call the replay makes again."""
        from ..optim import Optimizer

        if isinstance(owner, Optimizer):
            params = [p for g in owner.param_groups for p in g["params"]]
        else:
            params = list(owner.parameters())
        if fn.__name__ == "step":
            if args[0] is not None:
                raise CompileError("compile: optimizer.step(closure) is not supported inside a compiled function")
            return self._record_call(f"{type(owner).__name__}.step()", fn, (owner,), params, params)
        label = f"{type(owner).__name__}.zero_grad(set_to_none={args[0]})"
        return self._record_call(label, fn, (owner, *args), [], params)

    def update(self, label: str, fn: Callable, stats: tuple, modifies: tuple) -> None:
        """An in-place update of buffers from values of this call (BatchNorm's running statistics).

        Recorded as a step the replay makes again with its own values of ``stats`` (``E[k](v3, v7)``),
        then made; the buffers it writes count as modified by a recorded step.
        """
        self.see(list(stats))
        self.check_updated(modifies)
        self.events.append((_next_seq(), "update", (label, fn, list(stats))))
        self.modified_by_events.update(id(t) for t in modifies)
        with self.suspend():
            fn(*(t._data for t in stats))
        for t in modifies:
            self.updated[id(t)] = (t, t._version)

    def check_updated(self, tensors: Any) -> None:
        """Refuse a buffer that a recorded update writes but that was also changed some other way in the call."""
        for t in tensors:
            seen = self.updated.get(id(t))
            if (seen is None and t._version > self.start_epoch) or (seen is not None and seen[1] != t._version):
                raise CompileError(
                    f"compile: a module's tensor of shape {t.shape} was updated in place during the call outside "
                    "an optimizer step or its own layer's update (e.g. running statistics changed by hand): a "
                    "replay would not repeat it"
                )

    def enter(self, module: Any) -> None:
        """A module is called (``Module.__call__``): its mode and tensors become part of the guard."""
        self.modules.setdefault(id(module), module)

    # --- bookkeeping ------------------------------------------------------------------------------------
    def note_grads(self, leaves: Any) -> None:
        """Remember the ``.grad`` objects a recorded step left, to notice changes nothing recorded."""
        for leaf in leaves:
            self.grads[id(leaf)] = (leaf, leaf.grad)

    def check_grads(self) -> None:
        for leaf, g in self.grads.values():
            if leaf.grad is not g:
                raise CompileError(
                    f"compile: the .grad of a tensor of shape {leaf.shape} was replaced inside the function outside "
                    "backward() and zero_grad() (e.g. p.grad = None); a replay would not repeat it. Use "
                    "optimizer.zero_grad() or model.zero_grad() inside, or clear it outside"
                )

    def _record_call(self, label: str, fn: Callable, args: tuple, modifies: list[Tensor], params: list) -> Any:
        self.check_grads()
        self.events.append((_next_seq(), "call", (label, functools.partial(fn, *args))))
        self.modified_by_events.update(id(p) for p in modifies)
        try:
            with self.suspend():
                return fn(*args)
        finally:
            self.note_grads(params)  # zero_grad() and step() may set or clear these gradients


def _untraced(fn: Callable, *args: Any) -> Any:
    saved = TRACING.tracer
    TRACING.tracer = None
    try:
        return fn(*args)
    finally:
        TRACING.tracer = saved


_TAINTED: dict[int, Tensor] = {}  # arguments lent requires_grad=True for the trace (so their uses are recorded)
_READ_CODES: dict[Any, str] = {}


def _reader() -> tuple[Optional[str], str]:
    """Who reads: ``(file:line, method)`` of the nearest frame outside chainrule, or ``(None, method)``.

    Called from the observer, itself called from a ``Tensor`` method; the methods that read
    through one another (``bool(t)`` calls ``item()``) are skipped, and the outermost names the read.
    """
    if not _READ_CODES:
        for name in ("item", "numpy", "tolist", "__array__", "__bool__", "__float__", "__int__", "__index__"):
            _READ_CODES[getattr(Tensor, name).__code__] = name
        _READ_CODES[Tensor.data.fget.__code__] = _READ_CODES[Tensor.data.fset.__code__] = "data"
    f = sys._getframe(2)
    name = _READ_CODES.get(f.f_code, "?")
    while f.f_back is not None and f.f_back.f_code in _READ_CODES:
        f = f.f_back
        name = _READ_CODES[f.f_code]
    caller = f.f_back
    if caller is None or caller.f_code.co_filename.startswith(_PACKAGE_DIR):
        return None, name
    return f"{caller.f_code.co_filename}:{caller.f_lineno}", name


# --- one traced call ----------------------------------------------------------------------------------


def trace(fn: Callable, args: tuple, kwargs: dict, values: list) -> tuple[Tracer, Any, set[int]]:
    """Run ``fn`` eagerly under a tracer; returns the tracer, the result and the ids of the tensors made.

    Refuses (:class:`CompileError`) what a replay could not repeat: random draws, in-place
    updates of a module's tensors outside an optimizer, ``.grad`` replaced by hand.
    """
    for j, a in enumerate(values):
        if type(a) is Tensor and a._node is not None:
            raise CompileError(
                f"compile: argument {j} (shape {a.shape}) is a non-leaf tensor made by '{a.op}': a replay "
                "cannot backpropagate into the graph that made it; pass a leaf, or detach() it"
            )
    # Tensors made during the call are told apart by the collector's youngest generation: empty it
    # now, and keep the collector off until the call returns, so whatever is in it then is new.
    gc_was_on = gc.isenabled()
    gc.collect(0)
    gc.disable()
    tensor_args = [a for a in values if type(a) is Tensor]
    gens, held = _state_holders(fn, values)
    rng_states = [g.bit_generator.state for g in gens]
    tainted = {id(a) for a in tensor_args if not a.requires_grad}
    lent = [a for a in tensor_args if id(a) in tainted] + [b for b in _read_buffers(fn, values) if not b.requires_grad]
    tainted.update(id(b) for b in lent)
    tracer = Tracer(_next_seq(), EPOCHS.value, tainted, {id(a) for a in tensor_args})
    for a in lent:
        _TAINTED[id(a)] = a
        a.requires_grad = True  # so every operation on an argument (or a buffer a module reads) is recorded
    try:
        with keep_values():  # the trace's values are what the schedule is checked against
            TRACING.tracer = tracer
            MODE.observer = tracer
            try:
                result = fn(*args, **kwargs)
            finally:
                TRACING.tracer = None
                MODE.observer = None
    finally:
        fresh = {id(o) for o in gc.get_objects(0) if type(o) is Tensor}
        if gc_was_on:
            gc.enable()
        for a in lent:
            a.requires_grad = False
            _TAINTED.pop(id(a), None)
    tracer.check_grads()
    tracer.check_updated([t for t, _ in tracer.updated.values()])
    if any(g.bit_generator.state != st for g, st in zip(gens, rng_states)):
        raise CompileError(
            "compile: the function draws random numbers (e.g. Dropout in training mode): a replay would "
            "reuse the first call's draws. Leave the training step uncompiled, or compile it with the "
            "model in eval() mode"
        )
    for t in held:
        if t._version > tracer.start_epoch and id(t) not in tracer.modified_by_events:
            raise CompileError(
                f"compile: a module's tensor of shape {t.shape} was updated in place during the call outside "
                "an optimizer step (e.g. running statistics): a replay would not repeat it"
            )
    return tracer, result, fresh


def _read_buffers(fn: Callable, values: list) -> list[Tensor]:
    """Floating-point buffers that modules in evaluation mode reachable from the call read as values
    (``Module._replay_reads``: BatchNorm's running statistics): lent ``requires_grad`` like the arguments, so
    their uses are recorded and every replay reads their current values instead of the first call's."""
    from ..nn.module import Module

    found: dict[int, Tensor] = {}
    for r in _roots(fn, values):
        if isinstance(r, Module):
            for m in r.modules():
                for name in getattr(m, "_replay_reads", ()) if not m.training else ():
                    b = getattr(m, name, None)
                    if type(b) is Tensor and b._node is None and type(b._data) is np.ndarray and b.dtype.kind == "f":
                        found[id(b)] = b
    return list(found.values())


def _roots(fn: Callable, values: list) -> list:
    """What the function can reach: its arguments, its closure, the globals its code reads, its ``self``."""
    from .guards import global_names

    roots: list = list(values)
    code = getattr(fn, "__code__", None)
    if code is not None:
        for cell in fn.__closure__ or ():
            try:
                roots.append(cell.cell_contents)
            except ValueError:
                pass
        g = getattr(fn, "__globals__", {})
        roots += [g[name] for name in global_names(code) if name in g]
    if getattr(fn, "__self__", None) is not None:
        roots.append(fn.__self__)
    return roots


def requires_grad_as_eager(tracer: Tracer, order: list[Node]) -> None:
    """Whether each node would have required grad without the arguments' taint (forward order)."""
    for n in order:
        need = False
        for i, inp in enumerate(n.inputs):
            if inp is None:
                continue
            m = tracer.nodes.get(id(inp))
            rg = m.rg if m is not None else (inp.requires_grad and id(inp) not in tracer.tainted)
            if rg and (not n.via_apply or n.prim.differentiable(i)):
                need = True
        n.rg = need


def _state_holders(fn: Callable, values: list) -> tuple[list, list[Tensor]]:
    """Random generators and tensors held by the modules the function can reach (closure, globals, arguments).

    A trace cannot repeat random draws (a Dropout mask would be frozen) nor in-place updates of
    a module's own tensors outside an optimizer (running statistics): both are checked around it.
    """
    from ..nn import init as nn_init
    from ..nn.module import Module

    roots = _roots(fn, values)
    gens: dict[int, Any] = {id(nn_init._DEFAULT): nn_init._DEFAULT} if hasattr(nn_init, "_DEFAULT") else {}
    tensors: dict[int, Tensor] = {}
    for r in roots:
        if not isinstance(r, Module):
            continue
        for m in r.modules():
            for v in vars(m).values():
                for item in v.values() if isinstance(v, dict) else (v,):
                    if isinstance(item, np.random.Generator):
                        gens[id(item)] = item
                    elif type(item) is Tensor:
                        tensors[id(item)] = item
    return list(gens.values()), list(tensors.values())


__all__ = ["Node", "TRACE_LOCK", "Tracer", "requires_grad_as_eager", "trace"]


class _Steps(Backprop):
    """The engine's walk as the schedule needs it: each node it reaches, in order, with the inputs it follows."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[tuple[int, list[int]]] = []

    def start(self, t: Tensor, g: Any) -> Any:
        self.taken.append((id(t), []))
        return g

    def edge(self, t: Tensor, i: int, inp: Tensor, gi: Any) -> None:
        self.taken[-1][1].append(i)
