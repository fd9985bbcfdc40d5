"""``cr.compile``: trace one call of a function, replay later calls from the recorded schedule.

The first call with a given signature (argument shapes, dtypes, ``requires_grad``,
Python-number arguments and the numbers in the function's closure and globals)
runs eagerly while a tracer watches it.  The tracer records every primitive the
call applied, every ``backward()`` and every optimizer ``step()`` / ``zero_grad()``,
and writes them out as one straight-line Python function: for arrays, NumPy
calls into buffers allocated once (``out=`` GEMMs, in-place bias and ReLU, a
fused softmax-cross-entropy backward; see docs/compile.md), and for everything
else the primitives' forwards and VJP rules written out as NumPy expressions by
:mod:`chainrule.codegen` (each checked bit for bit against the rule when traced,
else called as it is); for Python floats, inlined arithmetic.  Gradients are
summed in the order the eager walk sums them, with eager's roundings: no Tensor
objects, no graph, no heap.
Later calls with the same signature run that function; a different signature
traces again (a small cache keeps the last few).  ``compiled.code()`` shows the
schedule as readable code.

What a trace cannot see, it refuses, so a replay is never silently stale:

* reading a tensor's value in the function (``item()``, ``float()``, ``if t:``,
  ``.data``, ``.numpy()``), i.e. Python control flow on data: raises
  :class:`CompileError` naming the line;
* tensors made inside the function without being recorded (under ``no_grad``, or
  from ``.data``), and tensors modified in place outside an optimizer step;
* ``backward(create_graph=True)``, ``grad(...)`` with ``inputs``, explicit seeds.

Outputs come back detached (call ``backward()`` inside the function).  Under
``no_grad()`` or anomaly detection the function simply runs eagerly.
"""

from __future__ import annotations

import builtins
import functools
import gc
import itertools
import math
import os
import re
import sys
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from . import autodiff, walk
from .backend import device_of, is_foreign, library_name, namespace_of, to_numpy
from .grad_mode import MODE
from .numeric import NUMPY, SCALAR
from .primitive import Primitive
from .saved import keep_values
from .tensor import Tensor, node_parts
from .values import _norm, foreign_forward
from .versions import EPOCHS, FREED, _next_seq

ndarray = np.ndarray
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TRACE_LOCK = threading.RLock()


class CompileError(RuntimeError):
    """The function does something a recorded schedule could not repeat faithfully."""


# --- helpers the generated code calls ----------------------------------------------------------


def _fitv(gi: Any, v: Any) -> Any:
    """The engine's reduction of a gradient to its input's shape and dtype (as in ``_walk_numeric``)."""
    if type(v) is float:
        return gi if type(gi) is float else float(np.sum(gi))
    if type(gi) is not type(v) or gi.shape != v.shape or gi.dtype != v.dtype:  # any library's arrays
        return walk._fit(gi, v)
    return gi


def _deliver(pairs: list) -> None:
    """Accumulate finished leaf gradients into ``.grad`` exactly as eager backward does."""
    once = {id(leaf): (leaf, g) for leaf, g in pairs}
    with autodiff._DELIVERY_LOCK:
        autodiff._deliver(list(once.values()), False)


def _seed_like(out: Any) -> Any:
    if type(out) is float:
        return 1.0
    if type(out) is ndarray:
        return np.ones((), out.dtype)
    return namespace_of(out).xp.ones((), dtype=out.dtype, device=device_of(out))  # as autodiff._seed makes it


# --- arrays of other libraries (torch tensors, CuPy and JAX arrays, ...) -------------------------


def _is_array(v: Any) -> bool:
    """A NumPy array or another Array API library's array (not a Python or NumPy number)."""
    return type(v) is ndarray or (type(v) is not float and type(v) is not int and is_foreign(v))


def _torch(v: Any) -> bool:
    return type(v) is not ndarray and type(v) is not float and is_foreign(v) and library_name(v) == "torch"


def _int_array(v: Any) -> bool:
    if type(v) is ndarray:
        return v.dtype.kind in "iu"
    return _is_array(v) and namespace_of(v).xp.isdtype(v.dtype, "integral")


def _has_negative(v: Any) -> bool:
    if type(v) is ndarray:
        return bool(v.size and v.min() < 0)
    n = 1
    for s in v.shape:
        n *= s
    return bool(n and namespace_of(v).xp.min(v) < 0)


def _call_foreign(prim: Primitive, nin: int, *values: Any) -> Any:
    """A replayed operation on another library's arrays: the engine's own foreign forward, as eager runs it."""
    return foreign_forward(prim, values, nin)


def _empty(shape: tuple, dtype: Any) -> Any:
    """A buffer: ``dtype`` is a NumPy dtype, or ``(library dtype, device)`` for a torch buffer."""
    if type(dtype) is tuple:
        import torch

        return torch.empty(shape, dtype=dtype[0], device=dtype[1])
    return np.empty(shape, dtype)


# Array schedules write into buffers allocated when the schedule is written (``out=`` calls).
# ``BUFFERS = False`` writes the allocating schedule instead (bench/ab_compile.py compares the two).
BUFFERS = True


def _recycled_refs() -> int:
    """The reference count :func:`_recycle` sees for an array that nothing outside its slot list holds."""
    slots = [np.empty(1)]
    return _recycle(slots, 0, probe=True)


def _recycle(slots: list, k: int, probe: bool = False) -> Any:
    """Slot ``k``'s array if nothing else holds it (a ``.grad`` or a view of it), else a fresh one in its place.

    A leaf gradient is stored in ``.grad`` as the array itself, as eager backward stores it.  The
    next replay may write into it again only if nobody can see it any more: ``zero_grad()``
    dropped it and no ``p.grad`` the caller kept, no view and no optimizer state refers to it.
    """
    a = slots[k]
    n = sys.getrefcount(a)
    if probe:
        return n
    if n > _FREE_REFS:
        a = slots[k] = np.empty_like(a)
    return a


_FREE_REFS = _recycled_refs()


def _unshare(x: Any, bufs: tuple) -> Any:
    """A copy of ``x`` if it is (a view of) one of the schedule's buffers, which the next replay overwrites."""
    if type(x) is ndarray:
        for b in bufs:
            if x is b or x.base is b:
                return x.copy()
    elif type(x) is not float and _torch(x):
        for b in bufs:
            if type(b) is not ndarray and x.untyped_storage().data_ptr() == b.untyped_storage().data_ptr():
                return x.clone()
    return x


# Scalar (Python float) forms of the commonest primitives: the same expressions the
# primitives' scalar forwards and VJP rules evaluate, written inline.
_SCALAR_FWD = {
    "add": "{0} + {1}",
    "sub": "{0} - {1}",
    "mul": "{0} * {1}",
    "div": "{0} / {1}",
    "neg": "-{0}",
    "relu": "({0} if ({0} > 0 or {0} != {0}) else 0.0)",
}
_SCALAR_VJP = {
    ("add", 0): "{g}",
    ("add", 1): "{g}",
    ("sub", 0): "{g}",
    ("sub", 1): "-{g}",
    ("mul", 0): "{g} * {1}",
    ("mul", 1): "{g} * {0}",
    ("div", 0): "{g} / {1}",
    ("div", 1): "-{g} * {out} / {1}",
    ("neg", 0): "-{g}",
    ("relu", 0): "{g} * ({0} > 0)",
    ("tanh", 0): "{g} * (1.0 - {out} * {out})",
    ("exp", 0): "{g} * {out}",
}


# --- the trace -------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("seq", "prim", "inputs", "vals", "out", "tensor", "rg", "via_apply")

    def __init__(self, t: Tensor) -> None:
        self.seq = t._seq
        self.prim: Primitive = t._node
        self.inputs, self.vals = node_parts(t)
        self.out = t._data
        self.tensor = t
        self.via_apply = t._args is not None  # made by tensor.apply (never the scalar fast path)
        self.rg = False  # requires_grad as eager (untainted) would have it


class _Tracer:
    """Watches one eager call: primitives (through the graph), backward() calls, optimizer calls."""

    def __init__(self, start_seq: int, start_epoch: int, tainted: set[int], arg_ids: set[int]) -> None:
        self.start_seq = start_seq
        self.start_epoch = start_epoch
        self.tainted = tainted
        self.arg_ids = arg_ids
        self.nodes: dict[int, _Node] = {}
        self.events: list[tuple] = []  # (seq, kind, payload)
        self.suspended = 0
        self.modified_by_events: set[int] = set()
        self.reads: list[tuple] = []  # values of this call read by chainrule's own functions
        self.grads: dict[int, tuple] = {}  # leaf id -> (leaf, the .grad object a recorded step left)
        self.grad_guard: list[tuple] = []  # (leaf, grad was None) where a backward first met the leaf
        self.modules: dict[int, Any] = {}  # id -> module called during the trace (its mode and tensors are guarded)

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
            self.nodes[id(t)] = _Node(t)
            for inp in node_parts(t)[0]:
                if inp is not None and inp._node is not None:
                    stack.append(inp)

    def backward(self, roots, seeds, retain_graph, create_graph, inputs):  # called by autodiff.run_backward
        if self.suspended:
            return _untraced(autodiff.run_backward, roots, seeds, retain_graph, create_graph, inputs)
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
        order = [n for n in autodiff.toposort([root])]
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
        self.events.append((_next_seq(), "backward", (root, [id(t) for t in order])))
        # the real walk, with the argument taint lifted so no gradient goes to the arguments
        self.suspended += 1
        flags = _lift_taint(self)
        try:
            _untraced(autodiff.run_backward, roots, seeds, retain_graph, create_graph, inputs)
        finally:
            _restore_taint(flags)
            self.suspended -= 1
        self.note_grads(leaves.values())
        return None

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

    def call(self, label: str, fn: Callable, args: tuple, modifies: list[Tensor], params: list[Tensor]) -> Any:
        """An optimizer or module method the replay will call again, at the same point."""
        if self.suspended:
            return fn(*args)
        self.check_grads()
        self.events.append((_next_seq(), "call", (label, functools.partial(fn, *args))))
        self.modified_by_events.update(id(p) for p in modifies)
        self.suspended += 1
        flags = _lift_taint(self)
        try:
            return fn(*args)
        finally:
            _restore_taint(flags)
            self.suspended -= 1
            self.note_grads(params)  # zero_grad() and step() may set or clear these gradients


def _untraced(fn: Callable, *args: Any) -> Any:
    saved = autodiff.TRACING.tracer
    autodiff.TRACING.tracer = None
    try:
        return fn(*args)
    finally:
        autodiff.TRACING.tracer = saved


_TAINTED: dict[int, Tensor] = {}


def _lift_taint(tracer: _Tracer) -> list[Tensor]:
    lifted = [t for t in _TAINTED.values() if id(t) in tracer.tainted]
    for t in lifted:
        t.requires_grad = False
    return lifted


def _restore_taint(lifted: list[Tensor]) -> None:
    for t in lifted:
        t.requires_grad = True


# --- watching what the function does with tensors while tracing ------------------------------------

_READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__")


def _caller_outside_package() -> Optional[str]:
    """``file:line`` of the nearest frame outside chainrule, if the read comes from user code."""
    f = sys._getframe(2)
    if f.f_code.co_filename.startswith(_PACKAGE_DIR):
        return None
    return f"{f.f_code.co_filename}:{f.f_lineno}"


def _active() -> Optional[_Tracer]:
    tr = autodiff.TRACING.tracer
    return tr if tr is not None and not tr.suspended else None


def _traced_value(tr: _Tracer, t: Tensor) -> bool:
    """Whether ``t`` holds data of this call (an argument, or a value computed during it)."""
    return id(t) in tr.arg_ids or (t._node is not None and t._seq >= tr.start_seq)


def _watch_read(name: str, original: Callable) -> Callable:
    @functools.wraps(original)
    def wrapper(self: Tensor, *a: Any, **k: Any) -> Any:
        tr = _active()
        if tr is not None:
            where = _caller_outside_package()
            if where is not None:
                raise CompileError(
                    f"compile: {where} reads a tensor's value (Tensor.{name}, shape {self.shape}) while tracing; "
                    "a replay cannot follow Python control flow on data. Return the tensor and read it "
                    "outside the compiled function (or leave this function uncompiled)"
                )
            result = original(self, *a, **k)
            if _traced_value(tr, self):
                tr.reads.append((f"Tensor.{name}", self.shape, result))
            return result
        return original(self, *a, **k)

    return wrapper


class _Watch:
    """Patches Tensor value reads and optimizer / module calls for the duration of one trace."""

    def __enter__(self) -> None:
        from .nn.module import Module
        from .optim import Optimizer

        self.saved: list[tuple[Any, str, Any]] = []
        for name in _READS:
            self._patch(Tensor, name, _watch_read(name, Tensor.__dict__[name]))
        prop = Tensor.__dict__["data"]

        def get_data(t: Tensor) -> Any:
            if _active() is not None:
                where = _caller_outside_package()
                if where is not None:
                    raise CompileError(
                        f"compile: {where} reads Tensor.data (shape {t.shape}) while tracing: a replay cannot "
                        "repeat raw NumPy work on it. Use chainrule operations, or cr.optim for updates"
                    )
            tr = _active()
            # chainrule's own code gets the tensor's array itself (not a fresh tracked view), so a value
            # used as it is (labels as an index) is recognised by identity when the schedule is written
            result = t._data if tr is not None and _is_array(t._data) else prop.fget(t)
            if tr is not None and _traced_value(tr, t):
                tr.reads.append(("Tensor.data", t.shape, result))
            return result

        def set_data(t: Tensor, value: Any) -> None:
            if _active() is not None and _caller_outside_package() is not None:
                raise CompileError(
                    f"compile: {_caller_outside_package()} assigns Tensor.data (shape {t.shape}) while tracing: "
                    "a replay would not repeat it. Use an optimizer (cr.optim) inside, or update outside"
                )
            prop.fset(t, value)

        self._patch(Tensor, "data", property(get_data, set_data, doc=prop.__doc__))

        def opt_step(opt: Any, closure: Any = None, _orig: Any = Optimizer.step) -> Any:
            tr = _active()
            if tr is None:
                return _orig(opt, closure)
            if closure is not None:
                raise CompileError("compile: optimizer.step(closure) is not supported inside a compiled function")
            params = [p for g in opt.param_groups for p in g["params"]]
            return tr.call(f"{type(opt).__name__}.step()", _orig, (opt,), params, params)

        def opt_zero(opt: Any, set_to_none: bool = True, _orig: Any = Optimizer.zero_grad) -> Any:
            tr = _active()
            if tr is None:
                return _orig(opt, set_to_none)
            params = [p for g in opt.param_groups for p in g["params"]]
            label = f"{type(opt).__name__}.zero_grad(set_to_none={set_to_none})"
            return tr.call(label, _orig, (opt, set_to_none), [], params)

        def mod_zero(mod: Any, set_to_none: bool = True, _orig: Any = Module.zero_grad) -> Any:
            tr = _active()
            if tr is None:
                return _orig(mod, set_to_none)
            label = f"{type(mod).__name__}.zero_grad(set_to_none={set_to_none})"
            return tr.call(label, _orig, (mod, set_to_none), [], list(mod.parameters()))

        def mod_call(mod: Any, *args: Any, _orig: Any = Module.__call__, **kwargs: Any) -> Any:
            tr = _active()
            if tr is not None:
                tr.modules.setdefault(id(mod), mod)
            return _orig(mod, *args, **kwargs)

        self._patch(Optimizer, "step", opt_step)
        self._patch(Optimizer, "zero_grad", opt_zero)
        self._patch(Module, "zero_grad", mod_zero)
        self._patch(Module, "__call__", mod_call)

    def _patch(self, cls: type, name: str, value: Any) -> None:
        self.saved.append((cls, name, cls.__dict__[name]))
        setattr(cls, name, value)

    def __exit__(self, *exc: Any) -> None:
        for cls, name, value in reversed(self.saved):
            setattr(cls, name, value)


# --- code generation --------------------------------------------------------------------------------


def _describe(v: Any) -> str:
    if type(v) is float:
        return "float"
    if type(v) is ndarray:
        return f"{tuple(v.shape)} {v.dtype}"
    if _is_array(v):
        return f"{tuple(v.shape)} {library_name(v)} {str(v.dtype).replace('torch.', '')} on {device_of(v)}"
    return type(v).__name__


class _Gen:
    """Writes the schedule of one trace as the source of a function ``replay(A, L, E)``."""

    def __init__(self, tracer: _Tracer, arg_raw: list[Any], fresh: set[int], args: list[Any]) -> None:
        self.tr = tracer
        self.tr_args = args
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"NP": NUMPY, "SC": SCALAR, "fit": _fitv, "deliver": _deliver, "norm": _norm}
        self.ns["seed"] = _seed_like
        self.arg_raw = arg_raw
        self.fresh = fresh  # ids of the tensors made during the traced call
        self.leaves: list[Tensor] = []
        self.leaf_index: dict[int, int] = {}
        self.loaded: set[int] = set()
        self.var: dict[int, str] = {}  # node tensor id -> value variable
        self.consts = itertools.count()
        self.const_names: dict[int, str] = {}
        self.mapped: set[int] = set()  # raw arrays the schedule takes from arguments or computed values
        self.out_var: dict[int, str] = {}  # id of a computed value -> its variable
        self.index_guard: list[tuple] = []  # (argument, had negative values, the axis length it indexes or None)
        self.events: list[Callable] = []
        self.outputs_spec: Any = None
        self.gcount = itertools.count()  # gradient names, unique over every backward() of the trace
        # the buffered array schedule (see _assign_buffers)
        self.buffered = False
        self.bufs: dict[str, tuple] = {}  # logical buffer name -> (shape, dtype)
        self.alias: dict[str, set[str]] = {}  # variable -> logical buffers it may be, or be a view of
        self.owned: set[str] = set()  # variables that are exactly a buffer no other live variable shares
        self.producer: dict[str, str] = {}  # buffered variable -> the primitive that wrote it
        self.uses: dict[int, int] = {}  # id(tensor) -> nodes, outputs and backward roots that read it
        self.slots: list[ndarray] = []  # leaf gradients, recycled across replays when nobody holds them
        self.ns.update({"np": np, "S": self.slots, "rec": _recycle, "unshare": _unshare})

    # names of things
    def fn(self, key: str, f: Any) -> str:
        self.ns.setdefault(key, f)
        return key

    def const(self, v: Any) -> str:
        if type(v) in (int, bool) or (type(v) is float and math.isfinite(v)):
            return repr(v)
        if v is None:
            return "None"
        name = self.const_names.get(id(v))
        if name is None:
            name = self.const_names[id(v)] = f"c{next(self.consts)}"
            self.ns[name] = v
        return name

    def leaf(self, t: Tensor) -> str:
        m = self.leaf_index.get(id(t))
        if m is None:
            if id(t) in self.fresh and id(t) not in self.tr.arg_ids:
                raise CompileError(
                    f"compile: an operation used a tensor of shape {t.shape} that was made inside the function "
                    "without being recorded (under no_grad, or from .data / a NumPy result): its value would be "
                    "frozen into the replay. Make it outside and pass it in, or compute it with chainrule operations"
                )
            m = self.leaf_index[id(t)] = len(self.leaves)
            self.leaves.append(t)
        name = f"p{m}"
        if m not in self.loaded:
            self.loaded.add(m)
            self.lines.append(f"    {name} = L[{m}]._data  # {_describe(t._data)}")
        return name

    def raw(self, v: Any) -> str:
        """A raw value in a node's arguments: an argument's array if it is one, else a constant."""
        if _is_array(v):
            for j, a in enumerate(self.arg_raw):
                if a is v:
                    self.mapped.add(id(v))
                    return f"a{j}"
            name = self.out_var.get(id(v))
            if name is not None:
                self.mapped.add(id(v))
                return name
        if type(v) is tuple:
            parts = [self.raw(x) for x in v]
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        return self.const(v)

    def operand(self, node: _Node, i: int) -> str:
        inp = node.inputs[i] if i < len(node.inputs) else None
        if inp is None:
            return self.raw(node.vals[i])
        if id(inp) in self.var:
            return self.var[id(inp)]
        if id(inp) in self.tr.nodes:
            raise CompileError("compile: internal error: a node is used before it was computed")
        if inp._node is not None:  # a node freed or made outside: see() would have raised; be safe
            raise CompileError(f"compile: a tensor of shape {inp.shape} from outside the traced call reached the graph")
        j = self._arg_index(inp)
        if j is not None:
            return f"a{j}"
        return self.leaf(inp)

    def _arg_index(self, t: Tensor) -> Optional[int]:
        for j, a in enumerate(self.tr_args):
            if a is t:
                return j
        return None

    # buffers
    def new_buf(self, var: str, shape: tuple, dtype: Any, prim: str) -> str:
        """A logical buffer for ``var`` (physical buffers are shared by disjoint lifetimes later)."""
        name = f"b_{var}"
        self.bufs[name] = (tuple(shape), _buffer_dtype(dtype))
        self.alias[var] = {name}
        self.owned.add(var)
        self.producer[var] = prim
        return name

    def note_alias(self, var: str, expr: str) -> None:
        """A variable computed by a generic call may be (a view of) any buffer its expression reads."""
        if not self.bufs:
            return
        seen = self.alias.setdefault(var, set())
        for name in _VAR.findall(expr):
            seen.update(self.alias.get(name, ()))

    def may_overwrite(self, t: Tensor, var: str) -> bool:
        """Whether ``var`` (tensor ``t``'s value) may be overwritten by its only reader.

        Its buffer must be ours, no other node, output or backward root may read it, and the
        primitive that wrote it must not read its own output in its VJP rules.
        """
        return var in self.owned and self.uses.get(id(t), 0) == 1 and self.producer.get(var) in _OUT_FREE

    def unshared(self, var: str) -> str:
        bufs = sorted(self.alias.get(var, ()))
        if not bufs:
            return var
        return f"unshare({var}, ({', '.join(bufs)},))"

    def _forward_buffered(self, node: _Node, v: str, ops: list[str]) -> Optional[list[str]]:
        """``out=`` forms of the array primitives of a training step, or None for the generic call."""
        name, vals, out = node.prim.name, node.vals, node.out
        if _torch(out):
            return self._forward_torch(node, v, ops)
        if type(out) is not ndarray or out.dtype.kind != "f":
            return None
        desc = f"{name} -> {_describe(out)}"
        if name == "linear" and _floats(out.dtype, *vals[:3]):
            x, W, b = vals[:3]
            if x.ndim == 2 and W.ndim == 2 and b.shape == (W.shape[0],) and out.shape == (x.shape[0], W.shape[0]):
                buf = self.new_buf(v, out.shape, out.dtype, name)
                return [
                    f"    {v} = np.matmul({ops[0]}, {ops[1]}.T, out={buf})  # {desc}: x @ Wᵀ (a view) into a buffer",
                    f"    np.add({v}, {ops[2]}, out={v})  # + bias, in place",
                ]
        if name == "matmul" and _floats(out.dtype, *vals[:2]):
            x, y = vals[:2]
            if x.ndim == 2 and y.ndim == 2:
                buf = self.new_buf(v, out.shape, out.dtype, name)
                return [f"    {v} = np.matmul({ops[0]}, {ops[1]}, out={buf})  # {desc}"]
        inp = node.inputs[0] if node.inputs else None
        if name == "add" and inp is not None and _floats(out.dtype, vals[0]) and vals[0].shape == out.shape:
            xv = self.var.get(id(inp))
            if xv is not None and ops[1] != xv and self.may_overwrite(inp, xv):
                self._take_over(v, xv, name)
                return [f"    {v} = np.add({xv}, {ops[1]}, out={xv})  # {desc}, in place in {xv}'s buffer"]
        if name == "relu" and _floats(out.dtype, vals[0]) and vals[0].shape == out.shape:
            xv = self.var.get(id(inp)) if inp is not None else None
            if xv is not None and self.may_overwrite(inp, xv):
                self._take_over(v, xv, name)
                return [f"    {v} = np.maximum({xv}, 0, out={xv})  # {desc}, in place"]
            buf = self.new_buf(v, out.shape, out.dtype, name)
            return [f"    {v} = np.maximum({ops[0]}, 0, out={buf})  # {desc}"]
        return None

    def _forward_torch(self, node: _Node, v: str, ops: list[str]) -> Optional[list[str]]:
        """The torch forms of :meth:`_forward_buffered`: the same kernels eager calls, with ``out=``."""
        name, vals, out = node.prim.name, node.vals, node.out
        if not out.dtype.is_floating_point:
            return None
        self.ns.setdefault("torch", sys.modules["torch"])
        desc = f"{name} -> {_describe(out)}"
        if name == "linear" and _torch_floats(out.dtype, *vals[:3]):
            x, W, b = vals[:3]
            if x.ndim == 2 and W.ndim == 2 and tuple(b.shape) == (W.shape[0],):
                buf = self.new_buf(v, tuple(out.shape), out, name)
                return [
                    f"    {v} = torch.matmul({ops[0]}, {ops[1]}.T, out={buf})  # {desc}: x @ Wᵀ (a view) into a buffer",
                    f"    torch.add({v}, {ops[2]}, out={v})  # + bias, in place",
                ]
        if name == "matmul" and _torch_floats(out.dtype, *vals[:2]) and vals[0].ndim == 2 and vals[1].ndim == 2:
            buf = self.new_buf(v, tuple(out.shape), out, name)
            return [f"    {v} = torch.matmul({ops[0]}, {ops[1]}, out={buf})  # {desc}"]
        inp = node.inputs[0] if node.inputs else None
        if name == "relu" and _torch_floats(out.dtype, vals[0]) and vals[0].shape == out.shape:
            xv = self.var.get(id(inp)) if inp is not None else None
            if xv is not None and self.may_overwrite(inp, xv):
                self._take_over(v, xv, name)
                return [f"    {v} = torch.clamp_min_({xv}, 0)  # {desc}, in place"]
        direct = self._torch_direct(node, ops)
        if direct is not None:
            self.note_alias(v, direct)
            return [f"    {v} = {direct}  # {desc}, torch's kernels called directly"]
        return None

    def _torch_direct(self, node: _Node, ops: list[str]) -> Optional[str]:
        """``log_softmax`` and the ``[rows, labels]`` pick of cross-entropy, as direct torch calls.

        Eager runs them through the Array API layer, which costs more than the kernels on small
        tensors.  A form is used only if it gives eager's bits, checked when the schedule is
        written: on this trace's values and on a probe of NaN, infinities and signed zeros.
        """
        torch = sys.modules["torch"]
        name, vals, out = node.prim.name, node.vals, node.out
        x = vals[0]
        if name == "log_softmax" and _torch_floats(out.dtype, x) and out.dtype in (torch.float32, torch.float64):
            if x.ndim != 2 or vals[1] not in (1, -1, (1,), (-1,)):
                return None
            ns = namespace_of(x)
            probe = _torch_probe(x)
            if not (
                _torch_same_bits(_torch_log_softmax(x), out)
                and _torch_same_bits(_torch_log_softmax(probe), node.prim.xfwd(ns, probe, vals[1]))
            ):
                return None
            return f"{self.fn('torch_log_softmax', _torch_log_softmax)}({ops[0]})"
        if name == "getitem" and _torch(x) and x.ndim == 2 and type(vals[1]) is tuple and len(vals[1]) == 2:
            rows, labels = vals[1]
            if not (_int_array(rows) and _int_array(labels) and _torch(labels) and labels.ndim == 1):
                return None
            if type(rows) is ndarray:
                rows = torch.as_tensor(rows, device=labels.device)
            if not (_torch(rows) and rows.ndim == 1 and _torch_same_bits(x[rows, labels], out)):
                return None
            return f"{ops[0]}[{self.raw(rows)}, {self.raw(vals[1][1])}]"
        return None

    def _take_over(self, new: str, old: str, prim: str) -> None:
        """``new`` is written over ``old``'s buffer (``old`` is not read again)."""
        self.alias[new] = set(self.alias[old])
        self.owned.discard(old)
        self.owned.add(new)
        self.producer[new] = prim

    # the schedule
    def forward(self, node: _Node) -> None:
        prim = node.prim
        nin = len(node.inputs)
        ops = [self.operand(node, i) for i in range(nin)]
        statics = [self.raw(v) for v in node.vals[nin:]]
        if prim.name in ("getitem", "scatter_add"):
            shape = np.shape(node.vals[0]) if prim.name == "getitem" else None
            self._guard_indices(node.vals[nin:], shape)
        v = f"v{len(self.var)}"
        self.var[id(node.tensor)] = v
        scalar = not node.via_apply and prim.scalar_fwd is not None
        scalar = scalar and all(type(x) in (float, int) for x in node.vals[:nin])
        fast = self._forward_buffered(node, v, ops) if self.buffered and not scalar else None
        if fast is not None:
            self.lines.extend(fast)
            self.out_var[id(node.out)] = v
            return
        if scalar and prim.name in _SCALAR_FWD and not statics:
            expr = _SCALAR_FWD[prim.name].format(*ops)
        elif scalar and not statics:
            expr = f"float({self.fn('sf_' + prim.name, prim.scalar_fwd)}({', '.join(ops)}))"
        elif any(type(x) is not ndarray and type(x) is not float and is_foreign(x) for x in node.vals[:nin]):
            f = self.fn(f"xf_{prim.name}_{nin}", functools.partial(_call_foreign, prim, nin))
            expr = f"{f}({', '.join(ops + statics)})"
        else:
            expr = self._written_forward(node, ops)  # readable if it is the forward bit for bit, else the call
            if expr is None:
                expr = f"norm({self.fn('f_' + prim.name, prim.fwd)}({', '.join(ops + statics)}))"
        self.lines.append(f"    {v} = {expr}  # {prim.name} -> {_describe(node.out)}")
        self.note_alias(v, expr)
        if _is_array(node.out):
            self.out_var[id(node.out)] = v

    def backward(self, root: Tensor, order_ids: list[int]) -> None:
        nodes = self.tr.nodes
        rn = nodes[id(root)]
        if not rn.rg:
            raise CompileError(
                "backward: this tensor does not require grad: no input of its computation has "
                "requires_grad=True (or it was computed under no_grad())"
            )
        if rn.out is not None and np.shape(rn.out) != ():
            raise CompileError(f"compile: backward() of a tensor of shape {np.shape(rn.out)} needs a gradient seed")
        self.gvar: dict[int, str] = {}
        self.leaf_g: dict[int, str] = {}
        self.leaf_order: list[tuple[str, str]] = []
        g0 = f"g{next(self.gcount)}"
        self.gvar[id(root)] = g0
        self.lines.append(f"    # backward() of {self.var[id(root)]}")
        self.lines.append(f"    {g0} = seed({self.var[id(root)]})")
        seq_order = sorted((nodes[i] for i in order_ids), key=lambda n: -n.seq)
        for node in seq_order:
            g = self.gvar.get(id(node.tensor))
            if g is None:
                continue
            prim = node.prim
            out = self.var[id(node.tensor)]
            scalar = type(node.out) is float and prim.scalar_fwd is not None
            xp = "SC" if scalar else self.namespace(node.out)
            nin = len(node.inputs)
            args = [self.operand(node, i) for i in range(nin)] + [self.raw(v) for v in node.vals[nin:]]
            if self.buffered and not scalar and self._backward_buffered(node, g, args):
                continue
            for i, inp in enumerate(node.inputs):
                if inp is None or not self._rg(inp):
                    continue
                if prim.variadic:
                    self._written_vjp(node, i, g, out, args)  # (counted as an opaque line)
                    rule = self.fn(f"d_{prim.name}", prim.vjps[0])
                    expr = f"{rule}(NP, {g}, {out}, {i}, {', '.join(args)})"
                else:
                    if prim.vjps[i] is None:
                        continue
                    tmpl = _SCALAR_VJP.get((prim.name, i)) if scalar else None
                    if tmpl is not None:
                        expr = tmpl.format(*args, g=g, out=out)
                    else:
                        written = None if scalar else self._written_vjp(node, i, g, out, args)
                        if written is not None:  # readable: the rule bit for bit on this trace's values
                            start = len(self.lines)
                            self.put(inp, args[i], written)
                            self._label(start, prim.name)
                            continue
                        rule = self.fn(f"d{i}_{prim.name}", prim.vjps[i])
                        expr = f"{rule}({xp}, {g}, {out}, {', '.join(args)})"
                if not scalar or type(node.vals[i]) is not float:
                    expr = f"fit({expr}, {args[i]})"
                self.put(inp, args[i], expr)
        pairs = ", ".join(f"({ref}, {self.unshared(g)})" for ref, g in self.leaf_order)
        self.lines.append(f"    deliver([{pairs}])")

    def namespace(self, out: Any) -> str:
        """The name of the namespace a node's rules run on in eager backward (``walk._ns``)."""
        ns = walk._ns(out)
        if ns is NUMPY:
            return "NP"
        return self.fn(f"X_{ns.library}", ns)

    def put(self, inp: Tensor, src: str, expr: str, into: Optional[Callable] = None, over: str = "") -> None:
        """Send a gradient to ``inp``: ``expr`` allocates it; ``into(buffer)`` writes it into a buffer.

        The first gradient of a node goes into a new buffer (or over ``over``, a gradient read
        only here); a leaf's into a recycled slot (it is stored in ``.grad``); a second one is
        added as eager adds it (``target + expr``, a fresh array).
        """
        value = inp._data
        if inp._node is not None and id(inp) in self.tr.nodes:
            target = self.gvar.get(id(inp))
            if target is None:
                self.gvar[id(inp)] = target = f"g{next(self.gcount)}"
                to = f"to {self.var[id(inp)]}"
                if into is None:
                    self.lines.append(f"    {target} = {expr}  # {to}")
                    self.note_alias(target, expr)
                elif over and over in self.owned:
                    self._take_over(target, over, "grad")
                    self.lines.append(f"    {target} = {into(over)}  # {to}, in place in {over}'s buffer")
                else:
                    like = value.dtype if type(value) is ndarray else value
                    buf = self.new_buf(target, tuple(value.shape), like, "grad")
                    self.lines.append(f"    {target} = {into(buf)}  # {to}")
                return
        else:
            target = self.leaf_g.get(id(inp))
            if target is None:
                self.leaf_g[id(inp)] = target = f"lg{next(self.gcount)}"
                self.leaf_order.append((self._leaf_ref(inp), target))
                if into is None or type(value) is not ndarray:
                    self.lines.append(f"    {target} = {expr}  # to leaf {src}")
                    self.note_alias(target, expr)
                else:
                    k = len(self.slots)
                    self.slots.append(np.empty(value.shape, value.dtype))
                    self.lines.append(f"    {target} = {into(f'rec(S, {k})')}  # to leaf {src} (recycled array)")
                return
        self.owned.discard(target)
        self.lines.append(f"    {target} = {target} + {expr}")
        self.note_alias(target, expr)

    def _backward_buffered(self, node: _Node, g: str, args: list[str]) -> bool:
        """VJPs written with ``out=`` (and the fused softmax-cross-entropy); False leaves the node to the rules."""
        name, vals, out = node.prim.name, node.vals, node.out
        if _torch(out):
            return self._backward_torch(node, g, args)
        if type(out) is not ndarray or out.dtype.kind != "f":
            return False
        want = [i for i, inp in enumerate(node.inputs) if inp is not None and self._rg(inp)]
        if name == "linear" and _floats(out.dtype, *vals[:3]):
            x, W, b = vals[:3]
            if not (x.ndim == 2 and W.ndim == 2 and b.shape == (W.shape[0],)):
                return False
            forms = {
                0: lambda o: f"np.matmul({g}, {args[1]}{o})",
                1: lambda o: f"np.matmul({g}.T, {args[0]}{o})",
                2: lambda o: f"np.sum({g}, axis=0{o})",
            }
        elif name == "matmul" and _floats(out.dtype, *vals[:2]) and vals[0].ndim == 2 and vals[1].ndim == 2:
            forms = {
                0: lambda o: f"np.matmul({g}, {args[1]}.T{o})",
                1: lambda o: f"np.matmul({args[0]}.T, {g}{o})",
            }
        elif name == "relu" and _floats(out.dtype, vals[0]) and vals[0].shape == out.shape:
            mask = f"b_m{len(self.bufs)}"
            self.bufs[mask] = (out.shape, np.dtype(bool))
            forms = {0: lambda o: f"np.multiply({g}, np.greater({args[0]}, 0, out={mask}){o})"}
            for i in want:
                self.put(node.inputs[i], args[i], forms[i](""), lambda b: forms[0](", out=" + b), over=g)
            return True
        elif name == "getitem":
            return self._fused_cross_entropy(node, g)
        else:
            return False
        for i in want:
            self.put(node.inputs[i], args[i], forms[i](""), lambda b, form=forms[i]: form(", out=" + b))
        return True

    def _backward_torch(self, node: _Node, g: str, args: list[str]) -> bool:
        """The torch forms of :meth:`_backward_buffered` (the kernels eager's rules call, with ``out=``)."""
        name, vals, out = node.prim.name, node.vals, node.out
        if not out.dtype.is_floating_point:
            return False
        want = [i for i, inp in enumerate(node.inputs) if inp is not None and self._rg(inp)]
        if name == "linear" and _torch_floats(out.dtype, *vals[:3]):
            x, W, b = vals[:3]
            if not (x.ndim == 2 and W.ndim == 2 and tuple(b.shape) == (W.shape[0],)):
                return False
            forms = {
                0: lambda o: f"torch.matmul({g}, {args[1]}{o})",
                1: lambda o: f"torch.matmul({g}.T, {args[0]}{o})",
                2: lambda o: f"torch.sum({g}, dim=0{o})",
            }
        elif name == "matmul" and _torch_floats(out.dtype, *vals[:2]) and vals[0].ndim == 2 and vals[1].ndim == 2:
            forms = {
                0: lambda o: f"torch.matmul({g}, {args[1]}.T{o})",
                1: lambda o: f"torch.matmul({args[0]}.T, {g}{o})",
            }
        elif name == "relu" and _torch_floats(out.dtype, vals[0]) and vals[0].shape == out.shape:
            mask = f"b_m{len(self.bufs)}"
            self.bufs[mask] = (tuple(out.shape), _buffer_dtype(vals[0], bool))
            forms = {0: lambda o: f"torch.mul({g}, torch.gt({args[0]}, 0, out={mask}){o})"}
            for i in want:
                self.put(node.inputs[i], args[i], forms[i](""), lambda b: forms[0](", out=" + b), over=g)
            return True
        elif name == "getitem":
            return self._fused_cross_entropy(node, g, torch=True)
        else:
            return False
        for i in want:
            self.put(node.inputs[i], args[i], forms[i](""), lambda b, form=forms[i]: form(", out=" + b))
        return True

    def _fused_cross_entropy(self, node: _Node, g: str, torch: bool = False) -> bool:
        """``log_softmax(z)[rows, y]``'s backward in one buffer: ``dz = onehot(y) * gy - softmax(z) * gy``.

        ``gy`` is the gradient of the picked entries (``-1/N`` everywhere under ``neg`` and
        ``mean``, as ``cross_entropy`` computes).  The eager walk forms the one-hot scatter and
        then ``G - exp(out) * sum(G, axis)``; here ``exp(out) * gy`` is subtracted from 0 and
        ``gy`` added at ``(rows, y)``: the same roundings, so the same bits.
        """
        nodes = self.tr.nodes
        lsm = node.inputs[0]
        ln = nodes.get(id(lsm)) if lsm is not None else None
        if ln is None or ln.prim.name != "log_softmax" or self.uses.get(id(lsm)) != 1:
            return False
        z, lv = ln.inputs[0], ln.out
        if z is None or id(z) not in nodes or id(z) in self.gvar or not self._rg(z):
            return False
        same = _torch_floats if torch else _floats
        if not (same(lv.dtype, lv, ln.vals[0]) and lv.ndim == 2 and ln.vals[1] in (1, -1, (1,), (-1,))):
            return False
        index = node.vals[1]
        n = lv.shape[0]
        if type(index) is not tuple or len(index) != 2 or not all(_int_array(a) for a in index):
            return False
        rows, y = index
        if torch and not _torch(y):
            return False
        if tuple(y.shape) != (n,) or tuple(node.out.shape) != (n,) or node.out.dtype != lv.dtype:
            return False
        if tuple(rows.shape) != (n,) or not np.array_equal(np.asarray(rows.tolist()), np.arange(n)):
            return False
        zv = self.var[id(z)]
        target = self.gvar[id(z)] = f"g{next(self.gcount)}"
        buf = self.new_buf(target, tuple(lv.shape), lv if torch else lv.dtype, "grad")
        lsv, c = self.var[id(lsm)], self.raw(y)
        if torch and type(rows) is ndarray:
            rows = sys.modules["torch"].as_tensor(rows, device=y.device)  # the row numbers, once, on y's device
        r = self.raw(rows)
        self.lines.append(
            f"    # fused softmax-cross-entropy backward to {zv}: (softmax - onehot) * -{g}, into a buffer"
        )
        names = {"dz": target, "buf": buf, "logp": lsv, "gy": g, "rows": r, "y": c}
        self.lines += ["    " + line.format(**names) for line in (_FUSED_CE_TORCH if torch else _FUSED_CE)]
        return True

    def _guard_indices(self, statics: Any, shape: Optional[tuple] = None) -> None:
        """Integer index arrays taken from arguments: their sign and range are part of the guard.

        Library functions check their labels when they trace (``cross_entropy`` refuses a negative
        class or one past the last), and NumPy would silently wrap a negative index on a replay: a
        call whose index arrays change sign, or reach past the axis they index (``shape``, for an
        index tuple of ``getitem``), therefore traces again, and gets eager's checks and messages.
        """
        items = statics if isinstance(statics, (tuple, list)) else (statics,)
        plain = shape is not None and all(x is not None and x is not Ellipsis and type(x) is not bool for x in items)
        for axis, v in enumerate(items):
            if isinstance(v, (tuple, list)):
                self._guard_indices(v, shape if len(items) == 1 else None)
            elif _int_array(v):
                bound = shape[axis] if plain and axis < len(shape) else None
                for j, a in enumerate(self.arg_raw):
                    if a is v:
                        self.index_guard.append((j, _has_negative(v), bound))

    def _leaf_ref(self, t: Tensor) -> str:
        j = self._arg_index(t)
        if j is not None:
            return f"A[{j}]"
        self.leaf(t)
        return f"L[{self.leaf_index[id(t)]}]"

    def _rg(self, t: Tensor) -> bool:
        n = self.tr.nodes.get(id(t))
        if n is not None:
            return n.rg
        return t.requires_grad and id(t) not in self.tr.tainted

    def call(self, label: str, fn: Callable) -> None:
        k = len(self.events)
        self.events.append(fn)
        self.lines.append(f"    E[{k}]()  # {label}")
        self.loaded.clear()  # an update may have replaced a leaf's value (Python floats are immutable)

    # readable lines: forwards and VJP rules written out by the shared generator (chainrule.codegen)
    written = 0  # generic array lines written out as NumPy expressions
    opaque = 0  # generic array lines left as calls of the primitive's forward or rule
    helpers: frozenset = frozenset()  # codegen helpers the written lines call (defined above replay)

    def _written_forward(self, node: _Node, ops: list[str]) -> Optional[str]:
        """The forward as a NumPy expression, checked bit for bit against ``norm(prim.fwd(...))``; or None."""
        if not _array_node(node):
            return None
        prim, nin = node.prim, len(node.inputs)
        statics = node.vals[nin:]
        line = None
        if not prim.variadic:
            shape = np.shape(node.out)
            line = self._written(("f", prim), node, ops, [], (), lambda sym, *a: _sym_prim(prim, a, statics, shape))
        return self._tally(line)

    def _written_vjp(self, node: _Node, i: int, g: str, out: str, args: list[str]) -> Optional[str]:
        """VJP rule ``i`` as a NumPy expression, checked bit for bit against ``fit(rule(NP, ...))``; or None."""
        if not _array_node(node):
            return None
        prim, nin = node.prim, len(node.inputs)
        o = node.out
        line = None
        if not prim.variadic and (type(o) is float or o.dtype.kind == "f"):
            rule = prim.vjps[i]
            statics = node.vals[nin:]
            lead = [_stand_in_gradient(o), o]
            symbolic = lambda sym, *a: rule(sym, *a, *statics)  # noqa: E731
            line = self._written(("b", prim, i), node, args[:nin], lead, (g, out), symbolic, args[i])
        return self._tally(line)

    def _tally(self, line: Optional[str]) -> Optional[str]:
        if line is None:
            self.opaque += 1
        else:
            self.written += 1
        return line

    def _written(
        self,
        what: tuple,
        node: _Node,
        names: list[str],
        lead: list,
        lead_names: tuple,
        symbolic: Callable,
        to: str = "",
    ) -> Optional[str]:
        """This node's forward or rule written out, with the schedule's names, if it is the rule bit for bit.

        ``symbolic(SYM, *symbols)`` builds the formula from symbols standing for ``lead`` (the
        gradient and the output, for a VJP rule) and the node's operands.  The form (the text
        with placeholders, and whether it passed the probe of :func:`_match`) is cached per
        primitive, rule, operand shapes, dtypes and statics; the check on this trace's values
        runs for every line.
        """
        nin = len(node.inputs)
        vals, statics = list(node.vals[:nin]), node.vals[nin:]
        specs: list[Any] = [_spec_of(v) for v in lead]
        real = dict(zip(("_g", "_o"), lead_names))
        sym_ops = []
        for j, v in enumerate(vals):
            if node.inputs[j] is None and type(v) in (int, float, bool):
                specs.append(("N", type(v), v))
            elif type(v) in (ndarray, float) or isinstance(v, np.generic):
                if node.inputs[j] is None and not names[j].isidentifier():
                    return None
                specs.append(_spec_of(v))
                real[f"_{j}"] = names[j]
                sym_ops.append(j)
            else:
                return None
        arrays: list[ndarray] = []
        _static_arrays(statics, arrays)
        skey = _static_key(statics)
        key = (what, tuple(specs), skey) if skey is not None else None
        form = _WRITTEN.get(key, False) if key is not None else False
        if form is False:
            form = _form(what, lead, vals, sym_ops, statics, arrays, symbolic) if _registered(what[1]) else None
            if key is not None:
                if len(_WRITTEN) >= _CACHE_SIZE:
                    _WRITTEN.clear()
                _WRITTEN[key] = form
        if form is None:
            return None
        wrap = "norm" if what[0] == "f" else "fit"
        mode = _match(form, lead, vals, arrays, wrap, _want(what, statics), vals[what[2]] if to else None)
        if mode is None or mode != form.mode:
            return None
        for k, a in enumerate(arrays):
            real[f"_s{k}"] = self.raw(a)
        if any(m.group(0) not in real for m in _PLACEHOLDER.finditer(form.text)):
            return None
        text = _PLACEHOLDER.sub(lambda m: real[m.group(0)], form.text)
        self.helpers = self.helpers | form.used
        if mode == "":
            return text
        return f"norm({text})" if wrap == "norm" else f"fit({text}, {to})"

    def _label(self, start: int, name: str) -> None:
        """Name the primitive in the comments of the lines a written VJP added (``# div: to v6``)."""
        for k in range(start, len(self.lines)):
            self.lines[k] = self.lines[k].replace("  # to ", f"  # {name}: to ", 1)

    def prelude(self) -> str:
        """The codegen helpers the written lines call, defined before ``replay``."""
        from . import codegen

        return "".join(codegen.HELPERS[h] + "\n" for h in sorted(self.helpers))

    def summary(self) -> list[str]:
        n = self.written + self.opaque
        if not n:
            return []
        calls = "call" if self.opaque == 1 else "calls"
        return [
            f"    # {self.written} of {n} generic lines written out (checked bit for bit against the rules when "
            f"traced); {self.opaque} opaque {calls}"
        ]


# The fused backward of log_softmax -> getitem[rows, y] (see _Gen._fused_cross_entropy).
_FUSED_CE = (
    "{dz} = np.exp({logp}, out={buf})  # softmax from the saved log_softmax",
    "np.multiply({dz}, {gy}[:, None], out={dz})",
    "np.subtract(0.0, {dz}, out={dz})",
    "{dz}[{rows}, {y}] += {gy}  # the one-hot term",
)
_FUSED_CE_TORCH = (
    "{dz} = torch.exp({logp}, out={buf})  # softmax from the saved log_softmax",
    "torch.mul({dz}, {gy}[:, None], out={dz})",
    "torch.neg({dz}, out={dz})",
    "{dz}[{rows}, {y}] += {gy}  # the one-hot term",
)

# primitives whose VJP rules never read their own output: their output buffer may be overwritten in place
_OUT_FREE = ("linear", "matmul", "add")


def _floats(dtype: Any, *vals: Any) -> bool:
    """All ``vals`` are arrays of the one floating dtype ``dtype`` (so ``out=`` keeps eager's rounding)."""
    return all(type(v) is ndarray and v.dtype == dtype for v in vals) and np.dtype(dtype).kind == "f"


def _torch_floats(dtype: Any, *vals: Any) -> bool:
    """:func:`_floats` for torch tensors: one floating dtype, one device."""
    if not dtype.is_floating_point or not all(type(v) is not ndarray and _torch(v) for v in vals):
        return False
    return all(v.dtype == dtype and v.device == vals[0].device for v in vals)


def _torch_log_softmax(x: Any) -> Any:
    """log_softmax over axis 1 with the kernels, and in the order, the primitive's forward runs on torch."""
    torch = sys.modules["torch"]
    z = x - torch.amax(x, dim=(1,), keepdim=True)
    return z - torch.log(torch.sum(torch.exp(z), dim=(1,), keepdim=True))


def _torch_probe(x: Any) -> Any:
    """A tensor like ``x`` holding NaN, infinities, signed zeros, tiny and huge values, and ordinary ones."""
    torch = sys.modules["torch"]
    special = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1.0, -1.0, 1e-41, -1e38, 3e4, 0.5, -2.5]
    flat = np.random.default_rng(7).standard_normal(x.numel()) * 3.0
    flat[: len(special)] = special[: x.numel()]
    return torch.as_tensor(flat.reshape(tuple(x.shape)), dtype=x.dtype, device=x.device)


def _torch_same_bits(a: Any, b: Any) -> bool:
    """Same shape, dtype and bits (NaN payloads and signed zeros included)."""
    torch = sys.modules["torch"]
    if not (_torch(a) and _torch(b)) or a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if not a.dtype.is_floating_point:
        return bool(torch.equal(a, b))
    ints = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16}.get(a.dtype)
    if ints is None:
        return False
    return bool(torch.equal(a.contiguous().view(ints), b.contiguous().view(ints)))


def _buffer_dtype(dtype_or_like: Any, kind: Any = None) -> Any:
    """What :func:`_empty` needs: a NumPy dtype, or ``(torch dtype, device)`` from a torch tensor ``like``."""
    if _torch(dtype_or_like):
        if kind is bool:
            import torch

            return (torch.bool, dtype_or_like.device)
        return (dtype_or_like.dtype, dtype_or_like.device)
    return np.dtype(kind if kind is not None else dtype_or_like)


def _requires_grad_as_eager(tracer: _Tracer, order: list[_Node]) -> None:
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


# --- readable lines (see _Gen._written): the shared generator's forms, and their checks ---------------

_WRITTEN: dict = {}  # (what, operand specs, statics) -> _Form, or None (no spelling, or it failed the probe)
_PLACEHOLDER = re.compile(r"\b_(?:g|o|s?\d+)\b")
_KEY_ARRAY = 4096  # index arrays up to this size are part of the cache key by value (larger: not cached)
_CACHE_SIZE = 4096  # forms kept (the cache starts again when full)
_SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, -2.5, 1e-3, 3e4, 1e-41, -1e38)


class _Form:
    """A rule or forward written with placeholders: ``text``, its helpers, its evaluator and how it matched."""

    __slots__ = ("text", "used", "fn", "sym_ops", "mode")

    def __init__(self, text: str, used: frozenset, fn: Callable, sym_ops: list[int]) -> None:
        self.text = text
        self.used = used
        self.fn = fn
        self.sym_ops = sym_ops  # the operands that are symbols (the others are numbers written into the text)
        self.mode: Optional[str] = None


def _sym_prim(prim: Primitive, inputs: tuple, statics: tuple, shape: tuple) -> Any:
    """The forward as ``derive`` writes it (native operations where the printer knows them, else a call)."""
    from . import symbolic

    return symbolic.prim(prim, inputs, tuple(statics), shape)


def _array_node(node: _Node) -> bool:
    """A node of an array program (the scalar schedules keep their templates and opaque calls)."""
    return type(node.out) is ndarray or any(type(v) is ndarray for v in node.vals)


def _registered(prim: Primitive) -> bool:
    """One of chainrule's own primitives (a user's ``custom_vjp`` is never run twice, nor spelled by its name)."""
    from .primitive import REGISTRY

    return REGISTRY.get(prim.name) is prim


def _spec_of(v: Any) -> tuple:
    if type(v) is ndarray:
        return ("A", v.shape, v.dtype.str)
    if isinstance(v, np.generic):
        return ("G", v.dtype.str)
    return ("P", type(v))


def _static_arrays(v: Any, out: list) -> None:
    if type(v) in (tuple, list):
        for x in v:
            _static_arrays(x, out)
    elif type(v) is ndarray and all(a is not v for a in out):
        out.append(v)


def _static_key(v: Any) -> Any:
    """A hashable stand-in for a node's statics (by value), or None where they are not cached."""
    t = type(v)
    if t in (int, float, bool, str, type(None)) or v is Ellipsis:
        return (t, v)
    if t in (tuple, list):
        parts = tuple(_static_key(x) for x in v)
        return None if any(p is None for p in parts) else (t, parts)
    if t is slice:
        return (t, v.start, v.stop, v.step) if all(type(e) in (int, type(None)) for e in (v.start, v.stop)) else None
    if t is ndarray and v.size <= _KEY_ARRAY:
        return ("A", v.shape, v.dtype.str, v.tobytes())
    if isinstance(v, np.generic):
        return ("G", v.dtype.str, v.tobytes())
    return None


_STAND_INS: dict[tuple, ndarray] = {}


def _stand_in_gradient(out: Any) -> Any:
    """An incoming gradient for checking a VJP rule (the trace keeps the forward values, not the gradients).

    One read-only array per shape and dtype, shared by the checks (a rule writing into it fails its check).
    """
    if type(out) is float:
        return -0.6931471805599453
    key = (out.shape, out.dtype.str)
    g = _STAND_INS.get(key)
    if g is None:
        if len(_STAND_INS) >= 64:
            _STAND_INS.clear()
        g = _STAND_INS[key] = np.random.default_rng(15).standard_normal(out.shape).astype(out.dtype)
        g.flags.writeable = False
    return g


def _probe_value(v: Any, k: int, fill: Optional[float] = None) -> Any:
    """A float array like ``v`` holding NaN, infinities, signed zeros, tiny and huge values (others: ``v``).

    With ``fill``, the array is that one value throughout (a row of +inf, a matrix of zeros).
    """
    if type(v) is not ndarray or v.dtype.kind != "f" or not v.size:
        return v
    if fill is not None:
        with np.errstate(all="ignore"):
            return np.full(v.shape, fill, v.dtype)
    rng = np.random.default_rng(k)
    a = rng.standard_normal(v.size) * 3.0
    s = np.array(_SPECIALS)
    n = min(v.size, len(s))
    a[:n] = s[:n]  # the same specials at the same places in every operand, then rotated ones
    m = min(v.size - n, len(s))
    a[n : n + m] = np.roll(s, k + 1)[:m]
    with np.errstate(all="ignore"):
        return a.astype(v.dtype).reshape(v.shape)


def _want(what: tuple, statics: tuple) -> Callable:
    """The primitive's own forward (``norm``) or VJP rule (``fit``), as the opaque line calls it."""
    prim = what[1]
    if what[0] == "f":
        return lambda *a: _norm(prim.fwd(*a, *statics))
    rule, i = prim.vjps[what[2]], what[2] + 2
    return lambda *a: _fitv(rule(NUMPY, *a, *statics), a[i])


def _form(what: tuple, lead: list, vals: list, sym_ops: list, statics: tuple, arrays: list, symbolic: Callable):
    """Build the form (symbolic run, the generator, an evaluator), then probe it; None where any step fails."""
    from . import codegen

    S = codegen.S
    placeholders = {id(a): f"_s{k}" for k, a in enumerate(arrays)}
    try:
        syms = [S.var(p, np.shape(v)) for p, v in zip(("_g", "_o"), lead)]
        syms += [S.var(f"_{j}", np.shape(v)) if j in sym_ops else v for j, v in enumerate(vals)]
        formula = symbolic(S.SYM, *syms)
        used: set[str] = set()
        index = lambda ix, sub: codegen.index_text(ix, placeholders, sub)  # noqa: E731
        text = codegen.strip_outer(codegen.code(formula, used, exact=True, index=index))
        params = ["_g", "_o"][: len(lead)] + [f"_{j}" for j in sym_ops] + list(placeholders.values())
        fn = eval(f"lambda {', '.join(params)}: {text}", codegen.helper_namespace())  # our own generated text
    except Exception:  # no symbolic spelling (a namespace function or an operation the generator lacks)
        return None
    form = _Form(text, frozenset(used), fn, sym_ops)
    want = _want(what, statics)
    modes = set()
    for fill in (None, *_SPECIALS[:5], _SPECIALS[-1]):  # a mixed probe, then every operand full of one special
        probe = [_probe_value(v, k, fill) for k, v in enumerate(lead + vals)]
        p_lead, p_vals = probe[: len(lead)], probe[len(lead) :]
        wrap, target = ("norm", None) if what[0] == "f" else ("fit", p_vals[what[2]])
        modes.add(_match(form, p_lead, p_vals, arrays, wrap, want, target))
    form.mode = modes.pop() if len(modes) == 1 else None
    return form if form.mode is not None else None


def _match(form: _Form, lead: list, vals: list, arrays: list, wrap: str, want: Callable, target: Any) -> Optional[str]:
    """``""`` if the form's value is the rule's bit for bit, ``wrap`` if it is after ``norm`` / ``fit``; else None.

    Bit for bit: the same type, shape, dtype and bytes (NaN positions and signed zeros included),
    the same writeability and sharing of memory with each operand, and the same floating-point
    errors raised (what ``np.errstate`` would warn about).
    """
    every = list(lead) + list(vals)
    try:
        e, e_flags = _flagged_run(want, every)
        r, r_flags = _flagged_run(form.fn, list(lead) + [vals[j] for j in form.sym_ops] + list(arrays))
        operands = [v for v in every if type(v) is ndarray]
        if e_flags == r_flags and _same_bits(r, e, operands):
            return ""
        w, w_flags = _flagged_run(_norm, [r]) if wrap == "norm" else _flagged_run(_fitv, [r, target])
    except Exception:
        return None
    return wrap if e_flags == r_flags | w_flags and _same_bits(w, e, operands) else None


def _flagged_run(fn: Callable, args: list) -> tuple[Any, frozenset]:
    seen: set[str] = set()
    with np.errstate(all="call", call=lambda kind, flag: seen.add(kind)):
        out = fn(*args)
    return out, frozenset(seen)


def _same_bits(r: Any, e: Any, operands: list) -> bool:
    if type(r) is not type(e):
        return False
    if type(e) is float:
        return np.float64(r).tobytes() == np.float64(e).tobytes()
    if isinstance(e, np.generic):  # a NumPy scalar (a gradient summed to a 0-d input, before it is stored)
        return r.dtype == e.dtype and r.tobytes() == e.tobytes()
    if type(e) is not ndarray:
        return False
    if r.shape != e.shape or r.dtype != e.dtype or r.flags.writeable != e.flags.writeable:
        return False
    for o in operands:
        if (r is o) != (e is o) or np.may_share_memory(r, o) != np.may_share_memory(e, o):
            return False
    return r.tobytes() == e.tobytes()


# --- the compiled function ---------------------------------------------------------------------------


class _Entry:
    __slots__ = (
        "replay",
        "source",
        "leaves",
        "leaf_guard",
        "grad_guard",
        "index_guard",
        "events",
        "out_spec",
        "module_guard",
        "lock",
    )


def _state_holders(fn: Callable, values: list) -> tuple[list, list[Tensor]]:
    """Random generators and tensors held by the modules the function can reach (closure, globals, arguments).

    A trace cannot repeat random draws (a Dropout mask would be frozen) nor in-place updates of
    a module's own tensors outside an optimizer (running statistics): both are checked around it.
    """
    from .nn import init as nn_init
    from .nn.module import Module

    roots: list = list(values)
    code = getattr(fn, "__code__", None)
    if code is not None:
        for cell in fn.__closure__ or ():
            try:
                roots.append(cell.cell_contents)
            except ValueError:
                pass
        g = getattr(fn, "__globals__", {})
        roots += [g[name] for name in _global_names(code) if name in g]
    if getattr(fn, "__self__", None) is not None:
        roots.append(fn.__self__)
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


def _module_state(mod: Any) -> tuple:
    """What a replay assumes of a module it called: its mode and which parameter and buffer objects it holds."""
    d = vars(mod)
    held = [*d.get("_parameters", {}).items(), *d.get("_buffers", {}).items()]
    return (mod.training, tuple((name, id(t)) for name, t in held))


def _number_guards(fn: Callable) -> tuple:
    """Python numbers the function's code can read from its closure and globals (part of the cache key)."""
    out = []
    code = getattr(fn, "__code__", None)
    if code is None:
        return ()
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if type(v) in (int, float, bool, str) or isinstance(v, np.generic):
            out.append((name, v))
    g = getattr(fn, "__globals__", {})
    for name in _global_names(code):
        v = g.get(name)
        if type(v) in (int, float, bool, str) or isinstance(v, np.generic):
            out.append((name, v))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """Names the code reads as globals (not attribute names, which co_names lists too)."""
    import dis

    return tuple(sorted({i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}))


class Compiled:
    """A function traced once per signature and replayed from its schedule (see :func:`compile`)."""

    def __init__(self, fn: Callable, cache_size: int = 8) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        if cache_size < 1:
            raise ValueError(f"compile: cache_size must be at least 1, got {cache_size}")
        self.fn = fn
        self.cache_size = cache_size
        self.cache: OrderedDict = OrderedDict()
        self.traces = 0  # how many times the function was traced
        self.replays = 0
        self._last: Optional[_Entry] = None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<cr.compile of {getattr(self.fn, '__qualname__', self.fn)}: {len(self.cache)} traces cached>"

    def __get__(self, obj: Any, owner: Any = None) -> Any:  # decorating a method
        return self if obj is None else types.MethodType(self, obj)

    # the signature a trace is valid for
    def _key(self, args: tuple, kwargs: dict) -> tuple:
        parts: list = [MODE.enabled]
        for j, a in enumerate(list(args) + [kwargs[k] for k in sorted(kwargs)]):
            t = type(a)
            if t is Tensor:
                d = a._data
                if type(d) is float:
                    parts.append(("T", True, (), None, a.requires_grad))
                else:  # the array's library and device too: a trace on torch CPU tensors is not one for CUDA
                    parts.append(("T", type(d), tuple(d.shape), d.dtype, a.requires_grad, _device(d)))
            elif t is ndarray or _is_array(a):
                lib = "NumPy" if t is ndarray else library_name(a)
                raise CompileError(
                    f"compile: argument {j} is a {lib} array; pass cr.tensor(array) instead (a tensor's uses are "
                    "recorded, an array's own operations are not)"
                )
            elif t in (int, float, bool, str, type(None)) or isinstance(a, np.generic):
                parts.append(("V", t, a))
            else:
                try:
                    hash(a)
                except TypeError:
                    raise CompileError(
                        f"compile: argument {j} ({t.__name__}) can be neither replayed nor guarded; pass tensors, "
                        "NumPy arrays, numbers, or objects that are the same on every call"
                    ) from None
                parts.append(("O", id(a)))
        parts.append(tuple(sorted(kwargs)))
        parts.append(_number_guards(self.fn))
        return tuple(parts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not MODE.enabled or MODE.anomaly or autodiff.TRACING.tracer is not None:
            return self.fn(*args, **kwargs)
        key = self._key(args, kwargs)
        entry = self.cache.get(key)
        if entry is not None and self._leaves_match(entry) and _indices_match(entry, args, kwargs):
            self.cache.move_to_end(key)
            return self._replay(entry, args, kwargs)
        return self._trace(key, args, kwargs)

    @staticmethod
    def _leaves_match(entry: _Entry) -> bool:
        for mod, state in entry.module_guard:  # train()/eval(), and the very tensors each module holds
            if _module_state(mod) != state:
                return False
        for leaf, was_none in entry.grad_guard:  # accumulate into .grad, or start it: as in the trace
            if (leaf.grad is None) != was_none:
                return False
        for t, guard in zip(entry.leaves, entry.leaf_guard):
            if _leaf_state(t) != guard:
                return False
        return True

    def _replay(self, entry: _Entry, args: tuple, kwargs: dict) -> Any:
        values = list(args) + [kwargs[k] for k in sorted(kwargs)]
        raw = [a._data if type(a) is Tensor else a for a in values]
        ran = [False]
        events = [_flagged(f, ran) for f in entry.events]
        lock = entry.lock
        if lock is not None and not lock.acquire(blocking=False):
            return self.fn(*args, **kwargs)  # the buffers are in use (another thread, or a call from a hook)
        try:
            outs = entry.replay(values, raw, entry.leaves, events)
        except (ArithmeticError, ValueError):
            if ran[0]:
                raise
            return self.fn(*args, **kwargs)  # math-domain trouble on floats: eager has the IEEE fallbacks
        finally:
            if lock is not None:
                lock.release()
        self.replays += 1
        return _build(entry.out_spec, outs, values, entry.leaves)

    def _trace(self, key: tuple, args: tuple, kwargs: dict) -> Any:
        with _TRACE_LOCK:
            values = list(args) + [kwargs[k] for k in sorted(kwargs)]
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
            gens, held = _state_holders(self.fn, values)
            rng_states = [g.bit_generator.state for g in gens]
            tainted = {id(a) for a in tensor_args if not a.requires_grad}
            tracer = _Tracer(_next_seq(), EPOCHS.value, tainted, {id(a) for a in tensor_args})
            for a in tensor_args:
                if id(a) in tainted:
                    _TAINTED[id(a)] = a
                    a.requires_grad = True  # so every operation on an argument is recorded
            try:
                with _Watch(), keep_values():  # the trace's values are what the schedule is checked against
                    autodiff.TRACING.tracer = tracer
                    try:
                        result = self.fn(*args, **kwargs)
                    finally:
                        autodiff.TRACING.tracer = None
            finally:
                fresh = {id(o) for o in gc.get_objects(0) if type(o) is Tensor}
                if gc_was_on:
                    gc.enable()
                for a in tensor_args:
                    if id(a) in tainted:
                        a.requires_grad = False
                        _TAINTED.pop(id(a), None)
            tracer.check_grads()
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
            spec, out_tensors = _spec(result, values)
            tracer.see(out_tensors)
            entry = _generate(tracer, values, fresh, spec, out_tensors)
            self.traces += 1
            self.cache[key] = entry
            self.cache.move_to_end(key)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
            self._last = entry
            return _detach(result)

    def code(self) -> str:
        """The schedule of the most recent trace, as Python source."""
        if self._last is None:
            raise RuntimeError("compile: nothing traced yet; call the compiled function once first")
        return self._last.source


def _device(d: Any) -> Any:
    return "cpu" if type(d) is ndarray else str(device_of(d))


def _leaf_state(t: Tensor) -> tuple:
    """What a replay assumes of a parameter: its kind of value (library, shape, dtype, device), requires_grad."""
    d = t._data
    if type(d) is float:
        return (float, t.requires_grad, t._node is None)
    return (type(d), tuple(d.shape), d.dtype, _device(d), t.requires_grad, t._node is None)


def _indices_match(entry: _Entry, args: tuple, kwargs: dict) -> bool:
    if not entry.index_guard:
        return True
    values = list(args) + [kwargs[k] for k in sorted(kwargs)]
    for j, had_negative, bound in entry.index_guard:
        v = values[j]._data
        low, high = _extremes(v)
        if (low < 0) != had_negative or (bound is not None and high >= bound):
            return False
    return True


def _extremes(v: Any) -> tuple[int, int]:
    """The smallest and largest value of an integer array (0, -1 when empty), read with one transfer to the host
    (on a GPU: one synchronisation per replay, not two)."""
    if type(v) is ndarray:
        return (int(v.min()), int(v.max())) if v.size else (0, -1)
    n = 1
    for s in v.shape:
        n *= s
    if not n:
        return 0, -1
    xp = namespace_of(v).xp
    low, high = to_numpy(xp.stack([xp.min(v), xp.max(v)])).tolist()
    return int(low), int(high)


def _flagged(f: Callable, ran: list) -> Callable:
    def go() -> Any:
        ran[0] = True
        return f()

    return go


def _spec(result: Any, values: list) -> tuple[Any, list[Tensor]]:
    """How to rebuild the function's return value from the replay's outputs."""
    outs: list[Tensor] = []

    def one(r: Any) -> Any:
        if r is None:
            return ("none",)
        if type(r) is Tensor:
            for j, a in enumerate(values):
                if a is r:
                    return ("arg", j)
            outs.append(r)
            return ("tensor", len(outs) - 1)
        if type(r) in (tuple, list):
            return (type(r).__name__, [one(x) for x in r])
        raise CompileError(
            f"compile: the function returned a {type(r).__name__}; a compiled function returns tensors "
            "(or tuples / lists of them, or None): return the loss tensor and call .item() outside"
        )

    return one(result), outs


def _detach(r: Any) -> Any:
    if type(r) is Tensor and r._node is not None:
        return Tensor(r._data)
    if type(r) in (tuple, list):
        return type(r)(_detach(x) for x in r)
    return r


def _build(spec: Any, outs: list, values: list, leaves: list) -> Any:
    kind = spec[0]
    if kind == "none":
        return None
    if kind == "arg":
        return values[spec[1]]
    if kind == "tensor":
        o = outs[spec[1]]
        return o if type(o) is Tensor else Tensor(o)
    items = [_build(s, outs, values, leaves) for s in spec[1]]
    return tuple(items) if kind == "tuple" else items


def _generate(tracer: _Tracer, values: list, fresh: set[int], spec: Any, outs: list[Tensor]) -> _Entry:
    raw = [a._data if type(a) is Tensor else a for a in values]
    gen = _Gen(tracer, raw, fresh, values)
    forward = sorted(tracer.nodes.values(), key=lambda n: n.seq)
    _requires_grad_as_eager(tracer, forward)
    gen.buffered = BUFFERS and any(_is_array(n.out) for n in forward)
    gen.uses = _uses(forward, tracer.events, outs)
    items: list[tuple] = [(n.seq, "node", n) for n in forward] + list(tracer.events)
    items.sort(key=lambda it: it[0])
    sig = ", ".join(f"a{j}" for j in range(len(values)))
    for j, v in enumerate(values):
        gen.lines.append(f"    a{j} = R[{j}]  # argument {j}: {_describe(v._data if type(v) is Tensor else v)}")
    for _, kind, payload in items:
        if kind == "node":
            gen.forward(payload)
        elif kind == "backward":
            gen.backward(*payload)
        else:
            gen.call(*payload)
    out_exprs = []
    for t in outs:
        if id(t) in gen.var:
            out_exprs.append(gen.unshared(gen.var[id(t)]))  # a returned value must outlive the next replay
        else:
            out_exprs.append(gen._leaf_ref(t))
    gen.lines.append(f"    return [{', '.join(out_exprs)}]")
    _check_versions(tracer, gen, values)
    for what, shape, value in tracer.reads:
        if _is_array(value) and id(value) in gen.mapped:
            continue  # used as it is (e.g. class labels as an index): the replay passes the new one
        raise CompileError(
            f"compile: a chainrule function read the value of a tensor of shape {shape} ({what}) computed in or "
            "passed to the compiled function and made something else from it (a converted copy, a Python "
            "number); the replay would reuse the first call's result. Compute it with chainrule operations "
            "before the call, or leave this function uncompiled"
        )
    header = _assign_buffers(gen) if gen.bufs else []
    lines = _release_early(gen.lines) if any(_is_array(n.out) for n in forward) else gen.lines
    source = f"def replay(A, R, L, E):  # compiled schedule; arguments: ({sig})\n" + "\n".join(header + lines) + "\n"
    source = gen.prelude() + source.replace("\n", "\n" + "".join(x + "\n" for x in gen.summary()), 1)
    ns = dict(gen.ns)
    exec(builtins.compile(source, "<cr.compile schedule>", "exec"), ns)  # our own generated code, never user text
    entry = _Entry()
    entry.replay = ns["replay"]
    entry.source = source
    entry.leaves = gen.leaves
    entry.leaf_guard = [_leaf_state(t) for t in gen.leaves]
    entry.events = gen.events
    entry.grad_guard = list(tracer.grad_guard)
    entry.module_guard = [(m, _module_state(m)) for m in tracer.modules.values()]
    entry.index_guard = gen.index_guard
    entry.out_spec = spec
    entry.lock = threading.Lock() if gen.bufs or gen.slots else None
    return entry


def _uses(forward: list[_Node], events: list[tuple], outs: list[Tensor]) -> dict[int, int]:
    """How many nodes (as an input or through a static array), outputs and backward roots read each tensor."""
    uses: dict[int, int] = {}
    made = {id(n.out): id(n.tensor) for n in forward if _is_array(n.out)}

    def count(key: int) -> None:
        uses[key] = uses.get(key, 0) + 1

    def statics(v: Any) -> None:
        if type(v) in (tuple, list):
            for x in v:
                statics(x)
        elif _is_array(v) and id(v) in made:
            count(made[id(v)])

    for n in forward:
        for inp in n.inputs:
            if inp is not None:
                count(id(inp))
        statics(n.vals[len(n.inputs) :])
    for _, kind, payload in events:
        if kind == "backward":
            count(id(payload[0]))
    for t in outs:
        count(id(t))
    return uses


_BUF = re.compile(r"\bb_[vgm]\d+\b")


def _assign_buffers(gen: _Gen) -> list[str]:
    """Give the logical buffers physical arrays, shared where lifetimes do not overlap; rename them in the lines.

    A buffer lives from the line that first writes it to the last line that reads it or any
    variable that may be (a view of) it.  One whose last line comes before another's first, of
    the same shape and dtype, lends it its array (never on the same line: an ``out=`` never
    overlaps an operand).  Returns the header lines that list the buffers.
    """
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    holders: dict[str, set[str]] = {}
    for var, bufs in gen.alias.items():
        for b in bufs:
            holders.setdefault(b, set()).add(var)
    for k, line in enumerate(gen.lines):
        code = line.split("#", 1)[0]
        for name in _BUF.findall(code):
            first.setdefault(name, k)
            last[name] = k
        for var in _VAR.findall(code):
            for b in gen.alias.get(var, ()):
                last[b] = max(last.get(b, k), k)
    free: dict[tuple, list[str]] = {}
    active: list[tuple[int, str, str]] = []
    phys: dict[str, str] = {}
    arrays: dict[str, ndarray] = {}
    for name in sorted(first, key=lambda b: (first[b], b)):
        start = first[name]
        keep = []
        for end, other, p in active:
            if end < start:
                free.setdefault(gen.bufs[other], []).append(p)
            else:
                keep.append((end, other, p))
        active = keep
        shape, dtype = gen.bufs[name]
        pool = free.get((shape, dtype))
        if pool:
            p = pool.pop()
        else:
            p = f"b{len(arrays)}"
            arrays[p] = _empty(shape, dtype)
        phys[name] = p
        active.append((last[name], name, p))
    gen.lines = [_BUF.sub(lambda m: phys[m.group(0)], line) for line in gen.lines]
    gen.ns.update(arrays)
    nbytes = sum(a.nbytes if type(a) is ndarray else a.element_size() * a.numel() for a in arrays.values())
    size = f"{nbytes / 2**20:.2f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"
    header = [f"    # buffers (allocated once, reused by every replay; {size}):"]
    header += [f"    #   {p}: {_describe(a)}" for p, a in arrays.items()]
    if gen.slots:
        header.append(f"    #   S[0..{len(gen.slots) - 1}]: leaf gradients, reused while nobody else holds them")
    return header


_VAR = re.compile(r"\b(?:v|g|lg)\d+\b")


def _release_early(lines: list[str]) -> list[str]:
    """Insert ``del`` after each array's last use, so intermediates are freed as eager backward frees them."""
    last: dict[str, int] = {}
    for k, line in enumerate(lines):
        code = line.split("#", 1)[0]
        for name in _VAR.findall(code):
            last[name] = k
    ends: dict[int, list[str]] = {}
    for name, k in last.items():
        if not lines[k].lstrip().startswith("return"):
            ends.setdefault(k, []).append(name)
    out = []
    for k, line in enumerate(lines):
        out.append(line)
        if k in ends:
            out.append("    del " + ", ".join(sorted(ends[k], key=lambda n: (len(n), n))))
    return out


def _check_versions(tracer: _Tracer, gen: _Gen, values: list) -> None:
    """Refuse a trace in which a tensor the schedule reads was modified in place outside a recorded call."""
    watched = list(gen.leaves) + [a for a in values if type(a) is Tensor]
    for t in watched:
        if t._version > tracer.start_epoch and id(t) not in tracer.modified_by_events:
            raise CompileError(
                f"compile: a tensor of shape {t.shape} was modified in place inside the function outside an "
                "optimizer step (e.g. p.data -= ... or t[...] = ...); a replay would not repeat it. Use a "
                "cr.optim optimizer inside the function, or modify it outside"
            )


def compile(fn: Optional[Callable] = None, *, cache_size: int = 8) -> Any:  # noqa: A001  (cr.compile, as torch.compile)
    """Trace ``fn`` once per signature and replay later calls from the recorded schedule.

    Use as ``step = cr.compile(step)`` or as a decorator (``@cr.compile`` or
    ``@cr.compile(cache_size=4)``).  See the module docstring for what is guarded
    and what is refused; ``step.code()`` prints the schedule.
    """
    if fn is None:
        return lambda f: Compiled(f, cache_size)
    return Compiled(fn, cache_size)
