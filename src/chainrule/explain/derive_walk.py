"""derive's symbolic backward pass: the engine's walk over the recorded program, each rule run on symbols, writing
the equations, their steps and the Jacobian notes as it goes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..autodiff import toposort
from ..graph import node_of
from ..tensor import Tensor
from ..walk import Backprop
from ..walk import walk as backward_walk
from . import derive_claims as C
from .derive_jacobian import structure
from .derive_records import STAND_IN, Jacobian, Line
from .derive_steps import Step, collecting, done, formula, operand_text
from .parse import Program

AUTO_NAME_SIZE = 12  # an unnamed value whose formula is bigger than this gets a name (u1, u2, ...)


# fused primitives whose forward formula is written in matrix form (ins: the inputs' formulas, then params)
EXPAND: dict[str, Callable[[tuple, tuple], Any]] = {
    "linear": lambda ins, params: ins[0] @ S._swapaxes(ins[1], -1, -2) + ins[2],
}


def _varies(out_t: Tensor, env: dict, constants: tuple) -> bool:

    live = {id(env[n]) for n in env if n not in constants and isinstance(env[n], Tensor) and env[n]._node is None}
    for t in reversed(toposort([out_t])):
        if any(x is not None and id(x) in live for x in node_of(t).inputs):
            live.add(id(t))
    return id(out_t) in live


class _Values(dict):
    """The values claims are evaluated at: forward values as recorded, gradients computed from their equations
    the first time a claim asks (so a derivation that is not checked computes none)."""

    def __init__(self) -> None:
        super().__init__()
        self.formulas: dict[str, Any] = {}

    def __missing__(self, key: str) -> Any:
        if key not in self.formulas:
            raise KeyError(key)
        with np.errstate(all="ignore"):
            value = np.asarray(S.evaluate(self.formulas.pop(key), self), dtype=np.float64)
        self[key] = value
        return value


class _Walk:
    """The symbolic backward walk over one recorded graph."""

    def __init__(self, env: dict, names: dict[int, str], generic: bool = False) -> None:
        self.env = env
        self.names = names
        self.cache: dict[int, Any] = {}
        self.generic = generic  # sin nodes stand for the generic f
        self.consts: dict[int, Any] = {}  # id of a constant array in the graph -> its name (a recorded graph's)
        self.gradients: set[str] = set()  # the gradients named so far (dz), as opposed to forward names
        self.auto_names: set[str] = set()  # names derive gave to the program's subterms (u1, u2, ...)
        self.values = _Values()  # name -> value at the recorded point (forward and gradients), for claims

    def const_arg(self, v: Any) -> Any:
        """A constant argument of a node: a named array (labels, a dropout mask) as a variable, else the value."""
        name = self.consts.get(id(v)) if isinstance(v, (np.ndarray, range)) else None  # (a variable, or a named array)
        return v if name is None else name

    def const_params(self, params: tuple, view: Any = None, t: Any = None) -> tuple:
        """Static parameters with their named arrays (an index's labels, ``Yb``) swapped in.

        A reshape's ``-1`` (``x.view(B, -1)``) is written as the size it stands for."""
        if view is not None and view.prim.name == "reshape" and -1 in tuple(params[0]):
            params = (tuple(t.shape),) + tuple(params[1:])
        if not self.consts:
            return params
        return tuple(tuple(self.const_arg(v) for v in p) if isinstance(p, tuple) else self.const_arg(p) for p in params)

    def fwd(self, t: Any, expand: bool = False) -> Any:
        """The forward value as a formula: named values are variables, others are expanded (and shared)."""
        key = id(t)
        if key in self.names and not expand:
            return S.var(self.names[key], t.shape)
        if t._node is None:
            return S.const(t.item()) if t.size == 1 else S.var("const", t.shape)
        if key in self.cache and not expand:
            return self.cache[key]
        view = node_of(t)
        ins = tuple(self.fwd(x) if x is not None else self.const_arg(view.args[i]) for i, x in enumerate(view.inputs))
        if self.generic and view.prim.name == STAND_IN:
            sym = S.Sym("fn", ins, t.shape, ("f",))
        elif view.prim.name in EXPAND:  # a fused primitive written as its matrix form (linear: x Wᵀ + b)
            sym = EXPAND[view.prim.name](ins, self.const_params(view.params, view, t))
        else:
            sym = S.prim(view.prim, ins, self.const_params(view.params, view, t), t.shape)
        if not expand:
            self.cache[key] = sym
        return sym

    def args(self, t: Any) -> tuple:
        view = node_of(t)
        ins = tuple(self.fwd(x) if x is not None else self.const_arg(view.args[i]) for i, x in enumerate(view.inputs))
        return ins + self.const_params(view.params, view, t)

    def rule(self, t: Any, i: int, g: Any, out: Any) -> Any:
        view = node_of(t)
        prim = view.prim
        args = self.args(t)
        if self.generic and prim.name == STAND_IN:  # the chain rule for an unspecified f: f′ of the input
            return g * S.Sym("fprime", (args[0],), S.shape_of(args[0]), ("f",))
        if prim.variadic:
            return prim.vjps[0](S.SYM, g, out, i, *args)
        return prim.vjps[i](S.SYM, g, out, *args)


class _Backward(Backprop):
    """derive's backward pass: the engine's walk over the recorded graph, with each rule run on symbols.

    ``start`` names big or shared gradients and prints the equation of each named
    value as its gradient completes; ``downstream`` runs the primitive's own VJP
    rule on the symbolic forward values; ``edge`` records each local Jacobian and
    queues a leaf's equation once every edge into it has arrived.
    """

    hooks = False  # (a symbolic gradient never goes through a tensor's hooks)

    def __init__(
        self, prog: Program, env: dict, names: dict[int, str], walk: _Walk, live: set, remaining: dict, auto: int
    ) -> None:
        super().__init__()
        self.prog, self.env, self.names, self.walk, self.live = prog, env, names, walk, live
        self.remaining = remaining
        self.auto = auto
        self.out_id = id(env[prog.output])
        self.leaf_rank = {id(env[n]): i for i, n in enumerate(prog.inputs)}
        self.pending: list[Tensor] = []  # leaves whose every edge has arrived, printed at the next named value
        self.edges: dict[int, list[tuple]] = {}  # input id -> [(t, role, g, term)]
        self.backward: list[Line] = []
        self.jacobians: list[Jacobian] = []
        self.targets: list[str] = []

    def emit(self, t: Any, g: Any) -> None:
        name = self.names[id(t)]
        line = _line("d" + name, g, t.shape)
        self.walk.values[name] = np.asarray(t.data, dtype=np.float64)
        self.walk.values.formulas["d" + name] = line.formula  # (its value is computed when a claim needs it)
        self.walk.gradients.add("d" + name)
        line.steps = _steps(self.walk, t, line, self.edges.get(id(t), []), self.edges)
        self.backward.append(line)
        if name in self.prog.inputs or name in self.env:
            self.targets.append(name)

    def flush(self, gradient_of: Callable[[Tensor], Any] = lambda leaf: leaf._bg) -> None:
        """Print the leaves whose every edge has arrived (during the walk their gradients sit in their slots)."""
        for leaf in sorted(self.pending, key=lambda t: self.leaf_rank.get(id(t), 0)):
            self.emit(leaf, gradient_of(leaf))
        self.pending.clear()

    def start(self, t: Tensor, g: Any) -> Any:
        key, names = id(t), self.names
        view = node_of(t)
        fan = sum(
            1 for i, x in enumerate(view.inputs) if x is not None and id(x) in self.live and view.prim.differentiable(i)
        )
        if key not in names and fan > 1 and S.tree_size(S.simplify(g), AUTO_NAME_SIZE + 1) > AUTO_NAME_SIZE:
            self.auto += 1  # a big gradient about to be copied into several terms: give the value (and it) a name
            names[key] = f"u{self.auto}"
            self.walk.auto_names.add(names[key])
            self.walk.cache.clear()
        if key in names:
            self.flush()
            self.emit(t, g)
            if key != self.out_id:  # (the seed stays the constant 1, so its consumers show ones(...))
                g = S.var("d" + names[key], t.shape)
        self.view, self.out_sym, self.upstream = view, self.walk.fwd(t), g
        return g

    def follow(self, t: Tensor, i: int, x: Any) -> bool:
        return x is not None and id(x) in self.live and self.view.prim.differentiable(i)

    def downstream(self, t: Tensor, i: int, g: Any) -> Any:
        return S._unbroadcast(self.walk.rule(t, i, g, self.out_sym), self.view.inputs[i].shape)

    def edge(self, t: Tensor, i: int, x: Tensor, gi: Any) -> None:
        walk, view, names, key = self.walk, self.view, self.names, id(t)
        self.edges.setdefault(id(x), []).append((t, i, self.upstream, gi))
        if t.size * x.size > 1:
            op_text = _im2col_text(S.program_text(walk.fwd(t, expand=True)))
            in_name = names.get(id(x)) or _im2col_text(S.program_text(walk.fwd(x)))
            st = structure(
                view.prim.name,
                i,
                x.shape,
                t.shape,
                view.params,
                tuple(y.shape if y is not None else np.shape(view.args[k]) for k, y in enumerate(view.inputs)),
                tuple(operand_text(walk, y) for y in view.inputs),
            )
            operands = tuple(
                ("tensor", y.shape) if y is not None else ("const", view.args[k]) for k, y in enumerate(view.inputs)
            )
            times = sum(1 for y in view.inputs if y is x)
            self.jacobians.append(
                Jacobian(
                    op_text,
                    names.get(key, op_text),
                    in_name,
                    t.size,
                    x.size,
                    st,
                    view.prim,
                    i,
                    tuple(view.params),
                    operands,
                    times if times > 1 else 0,
                )
            )
        if x._node is None:
            self.remaining[id(x)] -= 1
            if self.remaining[id(x)] == 0:
                self.pending.append(x)


def _im2col_text(text: str) -> str:
    """conv2d's im2col and col2im by those names in the notes (the primitives are unfold and fold)."""
    return re.sub(r"\bfold\(", "col2im(", re.sub(r"\bunfold\(", "im2col(", text))


def _symbolic(
    prog: Program, env: dict, names: dict[int, str], constants: tuple, consts: Optional[dict[int, str]] = None
) -> tuple:

    out_t = env[prog.output]
    order = toposort([out_t])
    walk = _Walk(env, names, generic=getattr(prog, "generic", False))
    walk.consts = dict(consts or {})
    # values that depend on an input that gets a gradient (the rest are constants, such as 1 − y)
    live = {id(env[n]) for n in prog.inputs if n not in constants}
    for t in reversed(order):
        if any(x is not None and id(x) in live for x in node_of(t).inputs):
            live.add(id(t))

    # Name the unnamed values a formula would repeat (a rule that uses its gradient twice, or a big expression).
    auto = 0
    for t in reversed(order):
        if id(t) in names:
            continue
        view = node_of(t)
        big = S.tree_size(walk.fwd(t), AUTO_NAME_SIZE + 1) > AUTO_NAME_SIZE
        repeats = False
        gvar, ovar = S.var("_g", t.shape), S.var("_o", t.shape)
        for i, x in enumerate(view.inputs):
            if x is not None and id(x) in live and view.prim.differentiable(i):
                term = walk.rule(t, i, gvar, ovar)
                if S.count_refs(term, gvar) > 1:
                    repeats = True
                if S.count_refs(term, ovar) > 1 and S.tree_size(walk.fwd(t), 4) > 3:  # tanh's 1 − out ⊙ out
                    repeats = True
        if big or repeats:
            auto += 1
            names[id(t)] = f"u{auto}"
            walk.auto_names.add(names[id(t)])
            walk.cache.pop(id(t), None)
    walk.cache.clear()
    for t in order:
        if id(t) in names:
            walk.values[names[id(t)]] = np.asarray(t.data, dtype=np.float64)
    for n in prog.inputs:
        walk.values[n] = np.asarray(env[n].data, dtype=np.float64)
    if walk.consts:  # a recorded graph's named constant arrays (labels, a weight array, a mask), for claims too
        for t in order:
            view = node_of(t)
            for a in (*view.args, *(q for p in view.params for q in (p if isinstance(p, tuple) else (p,)))):
                if isinstance(a, (np.ndarray, range)) and id(a) in walk.consts:
                    named = walk.consts[id(a)]  # a variable, or an array printed by its name (labels)
                    key = named.name if isinstance(named, S.Sym) else str(named)
                    arr = np.asarray(a)
                    walk.values[key] = arr if arr.dtype.kind in "iub" else arr.astype(np.float64)

    remaining: dict[int, int] = {}
    for t in order:
        for x in node_of(t).inputs:
            if x is not None and x._node is None and id(x) in live:
                remaining[id(x)] = remaining.get(id(x), 0) + 1
    recorder = _Backward(prog, env, names, walk, live, remaining, auto)
    token = collecting()  # (the steps' formulas stay symbolic until both derivations exist)
    try:
        reached = backward_walk([out_t], [S.const(1.0, out_t.shape)], True, recorder)  # the engine's walk, on symbols
        leaf_grads = {id(leaf): g for leaf, g in reached}
        recorder.flush(lambda leaf: leaf_grads[id(leaf)])
    finally:
        done(token)
    backward, jacobians, targets = recorder.backward, recorder.jacobians, recorder.targets
    seed_shape = out_t.shape
    forward = [
        Line(names[id(t)], S.simplify(walk.fwd(t, expand=True)), t.shape) for t in reversed(order) if id(t) in names
    ]
    if seed_shape:
        seed = (
            f"the output {prog.output} is not a scalar: the backward pass starts from d{prog.output} = "
            f"{S.shape_text(seed_shape)} ones: the gradient of sum({prog.output})"
        )
    else:
        seed = ""
    route = differential_route(walk, order, recorder.edges, live, prog, forward, backward, env)
    return forward, backward, jacobians, seed, targets, route


def differential_route(
    walk: _Walk, order: list, edges: dict, live: set, prog: Program, forward: list, backward: list, env: dict
) -> Any:
    """The differential route (:mod:`.derive_differential`), or the reason it could not be made."""
    from .derive_differential import build

    inputs = {n: tuple(env[n].shape) for n in prog.inputs}
    try:
        return build(walk, order, edges, live, prog, forward, backward, inputs)
    except Exception as exc:  # noqa: BLE001  (the equations do not need it; the check's note and the view name it)
        return f"{type(exc).__name__}: {exc}"


def _inline_steps(backward: list[Line], constants: tuple) -> None:
    """Where substituting the gradients a line refers to makes it simpler, say so (softmax cross-entropy: p − y)."""
    by_name = {ln.name: ln for ln in backward}
    for ln in backward:
        mapping = {}
        for node in S.nodes(ln.formula):
            src = by_name.get(node.name) if node.op == "var" else None
            if src is not None and src is not ln and node.shape == src.shape:
                if not (isinstance(src.formula, S.Sym) and src.formula.op in ("const", "sconst")):
                    mapping[id(node)] = src.formula  # (a seed of ones adds nothing)
        if not mapping:
            continue
        inline = S.simplify(S.substitute(ln.formula, mapping))
        used = sorted({by_name[n.name].name for n in S.nodes(ln.formula) if id(n) in mapping})
        if S.tree_size(inline) > S.tree_size(ln.formula) + 2:
            continue
        subs = ", ".join(f"{n} = {formula(by_name[n].formula)}" for n in used)
        last = ln.steps[-1].claim if ln.steps else None
        env = getattr(last, "env", {})
        if isinstance(last, C.Product):  # the substituted formula against the same Jᵀ g (central differences)
            claim: Any = C.Product(lambda values, f=inline: np.asarray(S.evaluate(f, values)), last.edges, env)
        else:
            claim = C.Same(inline, ln.formula, tuple(ln.shape), env)
        ln.steps.append(Step(f"= {formula(inline)}", f"substituting {subs}", claim))
        labels, scaled = {}, {}
        for node in S.nodes(inline):
            if node.op == "sum" and isinstance(node.args[0], S.Sym) and node.args[0].op == "var":
                if node.args[0].name in constants:
                    labels[id(node)] = S.const(1.0, node.shape)
                    scaled[node.args[0].name] = node.params[0]
        if labels:
            one_hot = S.simplify(S.substitute(inline, labels))
            names = ", ".join(sorted({S.render(n) for n in S.nodes(inline) if id(n) in labels}))
            condition = C.Same(one_hot, inline, tuple(ln.shape), env, change=_normalized(scaled), kind="condition")
            ln.steps.append(
                Step(
                    f"= {formula(one_hot)}",
                    f"if {names} = 1 (one-hot labels, or probabilities that sum to 1)",
                    condition,
                )
            )


def _normalized(scaled: dict) -> Callable[[dict], dict]:
    """The values with each named label rescaled so that its sum over the given axes is 1 (the step's condition)."""

    def change(values: dict) -> dict:
        out = _Values()
        out.update(values)
        out.formulas = dict(getattr(values, "formulas", {}))
        for name, axes in scaled.items():
            y = np.abs(np.asarray(values[name], dtype=np.float64)) + 0.1
            out[name] = y / np.sum(y, axis=axes, keepdims=True)
        return out

    return change


def _line(name: str, formula: Any, shape: tuple[int, ...]) -> Line:
    simple = S.simplify(formula)
    loose = S._loose(simple)
    return Line(name, loose if S.shape_of(loose) == tuple(shape) else simple, shape)


def _steps(walk: _Walk, t: Any, line: Line, edges: list[tuple], edges_of: dict) -> list[Step]:
    from .derive_steps import steps_for

    return steps_for(walk, t, line, edges, edges_of)


def finish_steps(first: list[Line], second: list[Line], constants: tuple, sizes: tuple, dims: tuple) -> Any:
    """Both runs' substitution steps added, then every step written out and paired with its twin
    (:func:`.derive_stepcheck.finish`)."""
    from .derive_stepcheck import finish

    for lines, d in zip((first, second), dims):
        with S.dims_context(d):
            _inline_steps(lines, constants)
    return finish(first, second, sizes, dims)


def tame_steps(derive_again: Callable[[], list[Line]], constants: tuple, dims: Any) -> list[Line]:
    """The backward lines (with their steps' claims) of another run, for steps the two runs could not check."""
    lines = derive_again()
    with S.dims_context(dims):
        _inline_steps(lines, constants)
    return lines
