"""The schedule writer: one trace as a straight-line function ``replay(A, R, L, E)``.

Every primitive the trace saw becomes lines that come from the primitive itself: its forward,
and for each input that needs a gradient its VJP rule, run on symbols and written out by the
one code generator (:func:`chainrule.codegen.lower`, checked by :mod:`.prove`); or, where no
spelling gives the primitive's bits, a call of the primitive's own forward or rule.  No
operation is spelled here.  Gradients are summed in the order the eager walk sums them.
Recorded optimizer and module calls are called again (``E[k]()``), and the finished leaf
gradients are delivered to ``.grad`` as eager delivers them.

On arrays, large results are written into buffers (``out=``) that :mod:`.passes` then maps
onto arrays allocated once, sharing them where lifetimes allow (in place, where an
elementwise operation's operand dies on its line).
"""

from __future__ import annotations

import builtins
import functools
import itertools
import math
import sys
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from ..backend import is_foreign
from ..codegen import HELPERS
from ..numeric import NUMPY, SCALAR
from ..symbolic import SYM
from ..tensor import Tensor
from ..values import _norm
from ..walk import _ns
from .errors import CompileError
from .passes import VAR, assign_buffers, release_early
from .prove import (
    Form,
    build_form,
    cached_form,
    forward_formulas,
    match,
    registered,
    spec_of,
    stand_in_gradient,
    static_arrays,
    static_key,
    unbroadcast,
)
from .runtime import (
    call_foreign,
    deliver,
    describe,
    fit,
    has_negative,
    int_array,
    is_array,
    is_torch,
    recycle,
    seed,
    unshare,
)
from .tracer import Node, Tracer, requires_grad_as_eager

ndarray = np.ndarray


class Schedule:
    """What :func:`generate` writes: the function, its source, and what a replay needs and checks."""

    def __init__(self, replay: Callable, source: str, gen: Writer) -> None:
        self.replay = replay
        self.source = source
        self.leaves = gen.leaves
        self.events = gen.events
        self.index_guard = gen.index_guard
        self.holds_buffers = bool(gen.bufs or gen.slots)


class Writer:
    """Writes the schedule of one trace, line by line (see the module docstring)."""

    def __init__(self, tracer: Tracer, arg_raw: list[Any], fresh: set[int], args: list[Any], buffered: bool) -> None:
        self.tr = tracer
        self.tr_args = args
        self.buffered = buffered
        self.lines: list[str] = []
        self.slots: list[ndarray] = []  # leaf gradients, recycled across replays when nobody holds them
        self.ns: dict[str, Any] = {"NP": NUMPY, "SC": SCALAR, "fit": fit, "deliver": deliver, "norm": _norm}
        self.ns.update({"seed": seed, "np": np, "S": self.slots, "rec": recycle, "unshare": unshare})
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
        self.names = itertools.count()  # gradient names, unique over the whole schedule
        self.temps = itertools.count()  # names of the intermediate results of a written formula
        self.helpers: set[str] = set()  # codegen helpers the written lines call (defined above replay)
        self.written = 0  # lines written out from a rule's formula
        self.opaque = 0  # lines left as calls of the primitive's forward or rule
        # buffers (see chainrule.compile.passes)
        self.bufs: dict[str, tuple] = {}  # logical buffer name -> (shape, dtype)
        self.alias: dict[str, set[str]] = {}  # variable -> logical buffers it may be, or be a view of
        self.exact: dict[str, str] = {}  # variable -> the buffer it is, exactly (same array, as written)
        self.meta: dict[int, tuple] = {}  # line -> (buffer, elementwise, {operand: its buffer}, {operand: uses})
        self.gvar: dict[int, str] = {}
        self.leaf_g: dict[int, str] = {}
        self.leaf_order: list[tuple[str, str]] = []
        self.libs: dict[int, Optional[str]] = {}

    # --- names of things -----------------------------------------------------------------------------
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
            self.lines.append(f"    {name} = L[{m}]._data  # {describe(t._data)}")
        return name

    def raw(self, v: Any) -> str:
        """A raw value in a node's arguments: an argument's array if it is one, else a constant."""
        if is_array(v):
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

    def operand(self, node: Node, i: int) -> str:
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

    def lib(self, node: Node) -> Optional[str]:
        """The dialect of a node's lines (see :func:`_lib`), found once per node."""
        key = id(node)
        found = self.libs.get(key, False)
        if found is False:
            found = self.libs[key] = _lib(node)
        return found

    def namespace(self, out: Any) -> str:
        """The name of the namespace a node's rules run on in eager backward (``walk._ns``)."""
        ns = _ns(out)
        if ns is NUMPY:
            return "NP"
        return self.fn(f"X_{ns.library}", ns)

    # --- lines and what they write ---------------------------------------------------------------------
    def emit(self, target: str, text: str, comment: str = "", out: Optional[str] = None, step: Any = None) -> None:
        """``target = text``; ``out``: the buffer the line writes (``target`` is then that array itself)."""
        self.lines.append(f"    {target} = {text}" + (f"  # {comment}" if comment else ""))
        self.exact.pop(target, None)
        if out is not None:
            exact: dict[str, str] = {}
            uses: dict[str, int] = {}
            if step is not None and step.elementwise:
                for v in step.operands:
                    if v in self.exact:
                        exact[v] = self.exact[v]
                        uses[v] = uses.get(v, 0) + 1
            self.meta[len(self.lines) - 1] = (out, step is not None and step.elementwise, exact, uses)
            self.alias[target] = {out}
            self.exact[target] = out
        elif "out=rec(" in text or "out=None" in text:  # a leaf gradient's own array (a slot, or fresh)
            self.alias[target] = set()
        else:
            self.note_alias(target, text)

    def note_alias(self, var: str, expr: str) -> None:
        """A variable computed by an expression may be (a view of) any buffer its expression reads."""
        if not self.bufs:
            return
        seen = self.alias.setdefault(var, set())
        for name in VAR.findall(expr):
            seen.update(self.alias.get(name, ()))

    def unshared(self, var: str) -> str:
        bufs = sorted(self.alias.get(var, ()))
        if not bufs:
            return var
        return f"unshare({var}, ({', '.join(bufs)},))"

    def new_buffer(self, var: str, shape: tuple, dtype: Any) -> str:
        name = f"b_{var}"
        self.bufs[name] = (tuple(shape), dtype if type(dtype) is tuple else np.dtype(dtype))
        return name

    def place(self, form: Form, real: dict, name: Optional[str], comment: str, slot: Optional[Callable] = None) -> str:
        """Write ``form``'s steps with the schedule's names; returns the text of the result.

        The last step, when it is the result and writes into a buffer, assigns ``name`` itself (and
        writes into ``slot(shape, dtype)`` when that gives one: a leaf gradient's recycled array).
        """
        names = dict(real)
        last = len(form.steps) - 1
        specs = {b: (shape, dtype) for b, shape, dtype in form.buffers}
        templates, result = form.templates
        for k, step in enumerate(form.steps):
            final = k == last and step.target == form.result
            if final and step.out is None:
                break  # the result is an expression: the caller assigns it
            var = name if final and name is not None else f"t{next(self.temps)}"
            names[step.target] = var
            out = None
            if step.out is not None:
                shape, dtype = specs[step.out]
                if final and slot is not None:  # a leaf gradient: its recycled array, else a fresh one (.grad keeps it)
                    out = slot(shape, dtype) or "None"
                else:
                    out = self.new_buffer(var, shape, dtype)
                names[step.out] = out
            text, operands = templates[k]
            sub = step._replace(operands=tuple(o.format_map(names) for o in operands))
            self.emit(var, text.format_map(names), comment if final else "", out if out in self.bufs else None, sub)
            if final:
                return var
        return result.format_map(names)

    # --- the schedule ------------------------------------------------------------------------------------
    def forward(self, node: Node) -> None:
        prim = node.prim
        nin = len(node.inputs)
        ops = [self.operand(node, i) for i in range(nin)]
        statics = [self.raw(v) for v in node.vals[nin:]]
        if prim.name in ("getitem", "scatter_add"):
            shape = np.shape(node.vals[0]) if prim.name == "getitem" else None
            self._guard_indices(node.vals[nin:], shape)
        v = f"v{len(self.var)}"
        self.var[id(node.tensor)] = v
        comment = f"{prim.name} -> {describe(node.out)}"
        scalar = not node.via_apply and prim.scalar_fwd is not None and not statics
        scalar = scalar and all(type(x) in (float, int) for x in node.vals[:nin])
        foreign = any(type(x) is not ndarray and type(x) is not float and is_foreign(x) for x in node.vals[:nin])
        found = self._written_forward(node, ops, scalar)
        if found is not None:
            form, real, mode = found
            text = self.place(form, real, None if mode else v, comment)
            if text != v:
                self.emit(v, f"norm({text})" if mode else text, comment)
        elif foreign:  # the engine's own forward for other libraries, as eager runs it
            f = self.fn(f"xf_{prim.name}_{nin}", functools.partial(call_foreign, prim, nin))
            self.emit(v, f"{f}({', '.join(ops + statics)})", comment)
        else:
            if scalar:
                self.emit(v, f"float({self.fn('sf_' + prim.name, prim.scalar_fwd)}({', '.join(ops)}))", comment)
            else:
                self.emit(v, f"norm({self.fn('f_' + prim.name, prim.fwd)}({', '.join(ops + statics)}))", comment)
        if is_array(node.out):
            self.out_var[id(node.out)] = v

    def backward(self, root: Tensor, taken: list[tuple[int, list[int]]]) -> None:
        """The lines of one ``backward()``: for each node the engine's walk reached, in its order, the rules of
        the inputs it followed (see the tracer's ``_Steps``)."""
        nodes = self.tr.nodes
        rn = nodes[id(root)]
        if not rn.rg:
            raise CompileError(
                "backward: this tensor does not require grad: no input of its computation has "
                "requires_grad=True (or it was computed under no_grad())"
            )
        if rn.out is not None and np.shape(rn.out) != ():
            raise CompileError(f"compile: backward() of a tensor of shape {np.shape(rn.out)} needs a gradient seed")
        self.gvar = {}
        self.leaf_g = {}
        self.leaf_order = []
        g0 = f"g{next(self.names)}"
        self.gvar[id(root)] = g0
        self.lines.append(f"    # backward() of {self.var[id(root)]}")
        self.emit(g0, f"seed({self.var[id(root)]})")
        for node_id, followed in taken:
            node = nodes[node_id]
            g = self.gvar.get(id(node.tensor))
            if g is not None:
                self._vjps(node, g, followed)
        pairs = ", ".join(f"({ref}, {self.unshared(g)})" for ref, g in self.leaf_order)
        self.lines.append(f"    deliver([{pairs}])")

    def _vjps(self, node: Node, g: str, followed: list[int]) -> None:
        prim = node.prim
        out = self.var[id(node.tensor)]
        scalar = type(node.out) is float and prim.scalar_fwd is not None
        xp = "SC" if scalar else self.namespace(node.out)
        nin = len(node.inputs)
        args = [self.operand(node, i) for i in range(nin)] + [self.raw(v) for v in node.vals[nin:]]
        label = f"{prim.name}: "
        for i in followed:
            inp = node.inputs[i]
            if inp is None or not self._rg(inp):
                continue
            found = self._tally(None if prim.variadic else self._written_vjp(node, i, g, out, args, scalar))
            if found is not None:
                form, real, mode = found

                def produce(name: Optional[str], slot: Any, comment: str, form=form, real=real, mode=mode, i=i) -> str:
                    text = self.place(form, real, None if mode else name, comment, None if mode else slot)
                    return f"fit({text}, {args[i]})" if mode else text

            else:
                if prim.variadic:
                    call = f"{self.fn(f'd_{prim.name}', prim.vjps[0])}({xp}, {g}, {out}, {i}, {', '.join(args)})"
                else:
                    call = f"{self.fn(f'd{i}_{prim.name}', prim.vjps[i])}({xp}, {g}, {out}, {', '.join(args)})"
                if not scalar or type(node.vals[i]) is not float:
                    call = f"fit({call}, {args[i]})"

                def produce(name: Optional[str], slot: Any, comment: str, call=call) -> str:
                    return call

            self.put(inp, args[i], produce, label)

    def put(self, inp: Tensor, src: str, produce: Callable, label: str) -> None:
        """Send a gradient to ``inp``; ``produce(name, slot)`` writes its lines and returns its text.

        The first gradient of a node is assigned to a new variable; a leaf's may be written into a
        recycled slot (it is stored in ``.grad``); a second one is added as eager adds it
        (``target + gradient``, a fresh array).
        """
        value = inp._data
        if inp._node is not None and id(inp) in self.tr.nodes:
            target = self.gvar.get(id(inp))
            if target is None:
                target = self.gvar[id(inp)] = f"g{next(self.names)}"
                comment = f"{label}to {self.var[id(inp)]}"
                text = produce(target, None, comment)
                if text != target:
                    self.emit(target, text, comment)
                return
        else:
            target = self.leaf_g.get(id(inp))
            if target is None:
                target = self.leaf_g[id(inp)] = f"lg{next(self.names)}"
                self.leaf_order.append((self._leaf_ref(inp), target))

                def slot(shape: tuple, dtype: Any) -> Optional[str]:
                    if type(value) is not ndarray or value.shape != tuple(shape) or value.dtype != dtype:
                        return None
                    self.slots.append(np.empty(value.shape, value.dtype))
                    return f"rec(S, {len(self.slots) - 1})"

                comment = f"{label}to leaf {src}"
                text = produce(target, slot, comment)
                if text != target:
                    self.emit(target, text, comment)
                return
        text = produce(None, None, "")
        self.emit(target, f"{target} + {text}" if VAR.fullmatch(text) else f"{target} + ({text})", f"{label}added")

    def call(self, label: str, fn: Callable) -> None:
        k = len(self.events)
        self.events.append(fn)
        self.lines.append(f"    E[{k}]()  # {label}")
        self.loaded.clear()  # an update may have replaced a leaf's value (Python floats are immutable)

    def update(self, label: str, fn: Callable, stats: list[Tensor]) -> None:
        """A recorded update of buffers (running statistics), called with this replay's values of ``stats``."""
        k = len(self.events)
        self.events.append(fn)
        args = ", ".join(self.operand_of(t) for t in stats)
        self.lines.append(f"    E[{k}]({args})  # {label}")

    def operand_of(self, t: Tensor) -> str:
        if id(t) in self.var:
            return self.var[id(t)]
        raise CompileError(f"compile: internal error: a value of shape {t.shape} is used before it was computed")

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
            elif int_array(v):
                bound = shape[axis] if plain and axis < len(shape) else None
                for j, a in enumerate(self.arg_raw):
                    if a is v:
                        self.index_guard.append((j, has_negative(v), bound))

    # --- lines from the rules ----------------------------------------------------------------------------
    def _written_forward(self, node: Node, ops: list[str], scalar: bool) -> Optional[tuple]:
        """The forward written out (checked bit for bit against the primitive's own forward); or None."""
        prim, nin = node.prim, len(node.inputs)
        statics = node.vals[nin:]
        lib = self.lib(node)
        if prim.variadic or lib is None:
            return self._tally(None)
        if scalar:
            sf = prim.scalar_fwd
            what: tuple = ("fs", prim, sf)
            want = lambda *a: float(sf(*a))  # noqa: E731  (the eager scalar path gives a float)
        elif lib == "torch":
            what = ("f", prim, prim.xfwd, lib)
            want = lambda *a: call_foreign(prim, nin, *a, *statics)  # noqa: E731
        else:
            what = ("f", prim, prim.fwd)
            want = lambda *a: _norm(prim.fwd(*a, *statics))  # noqa: E731
        formulas = forward_formulas(prim, tuple(statics), _shape(node.out))
        return self._tally(self._written(what, node, ops, [], (), formulas, want, "norm", None, lib))

    def _written_vjp(self, node: Node, i: int, g: str, out: str, args: list[str], scalar: bool) -> Optional[tuple]:
        """VJP rule ``i`` written out (checked bit for bit against ``fit(rule(xp, ...))``); or None."""
        prim, nin = node.prim, len(node.inputs)
        o = node.out
        lib = self.lib(node)
        if lib is None or not (
            type(o) is float or (o.dtype.is_floating_point if lib == "torch" else o.dtype.kind == "f")
        ):
            return None
        rule, statics = prim.vjps[i], node.vals[nin:]
        xp = SCALAR if scalar else NUMPY if lib == "numpy" else _ns(o)
        want = lambda g_, o_, *a: fit(rule(xp, g_, o_, *a, *statics), a[i])  # noqa: E731
        shape = _shape(node.vals[i])
        formulas = [lambda *a: unbroadcast(rule(SYM, *a, *statics), shape)]  # the engine's reduction too
        lead = [stand_in_gradient(o), o]
        what = ("b", prim, i, rule, scalar, lib)
        return self._written(what, node, args[:nin], lead, (g, out), formulas, want, "fit", i, lib)

    def _tally(self, found: Optional[tuple]) -> Optional[tuple]:
        if found is None:
            self.opaque += 1
        else:
            self.written += 1
        return found

    def _written(
        self,
        what: tuple,
        node: Node,
        names: list[str],
        lead: list,
        lead_names: tuple,
        formulas: list[Callable],
        want: Callable,
        wrap: str,
        target: Optional[int],
        lib: str,
    ) -> Optional[tuple]:
        """This node's forward or rule as a form with the schedule's names, if it is the primitive's bit for bit.

        Returns ``(form, names, mode)``.  ``formulas`` build the formula from symbols standing for
        ``lead`` (the gradient and the output, for a VJP rule) and the node's operands.  The form is
        cached per primitive, rule, operand specs and statics (see :mod:`.prove`); the check on this
        trace's values runs for every line.
        """
        if not registered(what[1]):
            return None
        nin = len(node.inputs)
        vals, statics = list(node.vals[:nin]), node.vals[nin:]
        specs: list[Any] = [spec_of(v) for v in lead]
        real = {"_g": lead_names[0], "_o": lead_names[1]} if lead_names else {}
        sym_ops = []
        inputs = node.inputs
        for j, v in enumerate(vals):
            tv = type(v)
            if inputs[j] is None and (tv is int or tv is float or tv is bool):
                specs.append(("N", tv, v))
            elif tv is float or tv is ndarray or isinstance(v, np.generic) or is_torch(v):
                if node.inputs[j] is None and not names[j].isidentifier():
                    return None
                specs.append(spec_of(v))
                real[f"_{j}"] = names[j]
                sym_ops.append(j)
            else:
                return None
        arrays: list[ndarray] = []
        if statics:
            static_arrays(statics, arrays)
            skey = static_key(statics)
        else:
            skey = ()
        key = (what, tuple(specs), skey, self.buffered) if skey is not None else None
        to = target if wrap == "fit" else None
        form = cached_form(
            key, lambda: build_form(formulas, lead, vals, sym_ops, arrays, want, wrap, to, self.buffered, lib)
        )
        if form is None:
            return None
        mode = form.mode
        if not form.floats:  # arrays: checked on this trace's values too (a form over floats: on the probe's)
            mode = match(form, lead, vals, arrays, wrap, want, vals[to] if to is not None else None)
            if mode is None or mode != form.mode:
                return None
        for k, a in enumerate(arrays):
            real[f"_s{k}"] = self.raw(a)
        if not form.needs <= real.keys():
            return None
        self.helpers |= form.used
        if lib == "torch":
            self.ns.setdefault("torch", sys.modules["torch"])
        return form, real, mode

    # --- the whole source ----------------------------------------------------------------------------------
    def prelude(self) -> str:
        """The codegen helpers the written lines call, defined before ``replay``."""
        return "".join(HELPERS[h] + "\n" for h in sorted(self.helpers))

    def summary(self) -> list[str]:
        n = self.written + self.opaque
        if not n:
            return []
        calls = "call" if self.opaque == 1 else "calls"
        return [
            f"    # {self.written} of {n} lines from the primitives' formulas (checked bit for bit against the "
            f"primitives when traced); {self.opaque} opaque {calls}"
        ]


def _shape(v: Any) -> tuple:
    return () if type(v) is float else tuple(np.shape(v))


def _lib(node: Node) -> Optional[str]:
    """The dialect a node's lines are written in: ``"numpy"`` (NumPy arrays, Python floats), ``"torch"``
    (torch tensors); None for other libraries' arrays (the engine's own calls)."""
    foreign = [v for v in (node.out, *node.vals) if type(v) is not ndarray and type(v) is not float and is_foreign(v)]
    if not foreign:
        return "numpy"
    return "torch" if all(is_torch(v) for v in foreign) else None


def generate(tracer: Tracer, values: list, fresh: set[int], outs: list[Tensor]) -> Schedule:
    """Write the schedule of one trace and compile it."""
    raw = [a._data if type(a) is Tensor else a for a in values]
    forward = sorted(tracer.nodes.values(), key=lambda n: n.seq)
    arrays = any(is_array(n.out) for n in forward)
    buffered = bool(getattr(sys.modules[__package__], "BUFFERS", True)) and arrays
    gen = Writer(tracer, raw, fresh, values, buffered)
    requires_grad_as_eager(tracer, forward)
    items: list[tuple] = [(n.seq, "node", n) for n in forward] + list(tracer.events)
    items.sort(key=lambda it: it[0])
    sig = ", ".join(f"a{j}" for j in range(len(values)))
    for j, v in enumerate(values):
        gen.lines.append(f"    a{j} = R[{j}]  # argument {j}: {describe(v._data if type(v) is Tensor else v)}")
    for _, kind, payload in items:
        if kind == "node":
            gen.forward(payload)
        elif kind == "backward":
            gen.backward(*payload)
        elif kind == "update":
            gen.update(*payload)
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
        if is_array(value) and id(value) in gen.mapped:
            continue  # used as it is (e.g. class labels as an index): the replay passes the new one
        raise CompileError(
            f"compile: a chainrule function read the value of a tensor of shape {shape} ({what}) computed in or "
            "passed to the compiled function and made something else from it (a converted copy, a Python "
            "number); the replay would reuse the first call's result. Compute it with chainrule operations "
            "before the call, or leave this function uncompiled"
        )
    header: list[str] = []
    lines = gen.lines
    if gen.bufs or gen.slots:
        lines, header, arrays_of = assign_buffers(lines, gen.meta, gen.bufs, gen.alias, len(gen.slots))
        gen.ns.update(arrays_of)
    if arrays:
        lines = release_early(lines)
    source = f"def replay(A, R, L, E):  # compiled schedule; arguments: ({sig})\n" + "\n".join(header + lines) + "\n"
    source = gen.prelude() + source.replace("\n", "\n" + "".join(x + "\n" for x in gen.summary()), 1)
    ns = dict(gen.ns)
    exec(builtins.compile(source, "<cr.compile schedule>", "exec"), ns)  # our own generated code, never user text
    return Schedule(ns["replay"], source, gen)


def _check_versions(tracer: Tracer, gen: Writer, values: list) -> None:
    """Refuse a trace in which a tensor the schedule reads was modified in place outside a recorded call."""
    watched = list(gen.leaves) + [a for a in values if type(a) is Tensor]
    for t in watched:
        if t._version > tracer.start_epoch and id(t) not in tracer.modified_by_events:
            raise CompileError(
                f"compile: a tensor of shape {t.shape} was modified in place inside the function outside an "
                "optimizer step (e.g. p.data -= ... or t[...] = ...); a replay would not repeat it. Use a "
                "cr.optim optimizer inside the function, or modify it outside"
            )


__all__ = ["Schedule", "generate"]
