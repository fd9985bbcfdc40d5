"""``derive --steps differential``: the backward equations derived with matrix differentials alone.

The index route (:mod:`.derive_steps`) goes from entries to matrices.  This
route never leaves matrices.  It writes the differential of every assignment
(``dz = dW · a + W · da + db``, ``dh = dz ⊙ f′(z)``), starts from
``dE = ⟨δz, dz⟩`` (the Frobenius inner product: that is what the gradient δz
*is*), and moves each operator across the inner product with an identity
(``⟨A, B ⊙ C⟩ = ⟨A ⊙ B, C⟩``, ``⟨A, B · C⟩ = ⟨A · Cᵀ, B⟩ = …``, ``tr(AB) = tr(BA)``)
until ``dE ∋ ⟨G, dW⟩``, where the gradient is read off: ``δW = G``.

Nothing is written per program.  Each differential is the primitive's own
forward-mode rule run on symbols (its ``defjvp``, or what its ``kind`` implies,
as :mod:`chainrule.forward` does), and each move is the primitive's own VJP rule
(the adjoint of that differential).  Every line is data (:class:`DStep`): the
gradient and differential sides as formulas, so the check
(:mod:`.derive_differential_check`) evaluates each line numerically: a
differential against central differences of its assignment, each ``=`` against
the line before it, and the read-off against the printed equation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..graph import node_of
from .derive_differential_reasons import Term
from .derive_records import STAND_IN

MAX_LINES = 40  # per gradient: past this many moves the rest is done in one line (still checked)
MAX_TERMS = 12  # terms in one line before the remaining moves are done in one line


@dataclass
class DStep:
    """One line of the differential route and why it holds.

    ``kind``: ``"differential"`` (``d<name> = formula``, checked against central differences of the assignment),
    ``"open"`` (the part of dE that holds dx: each term's differential checked against central differences),
    ``"move"`` (equal to the line before it), ``"read-off"`` (``δx = final``; ``⟨final, dx⟩`` equals the line
    before it), ``"seed"`` (``δE = 1``).
    """

    kind: str
    lead: str  # the text before the right-hand side: "dz =", "dE ∋", "=", "⇒ δW ="
    terms: list[Term] = field(default_factory=list)
    formula: Any = None  # the right-hand side of a differential or read-off line
    reason: str = ""
    fwd: Any = None  # a differential line's assignment, as a formula of named values
    wrt: tuple[str, ...] = ()  # the values whose differentials a differential line holds

    def syms(self) -> list[Any]:
        """Every formula of the line, in a fixed order (to rewrite sizes as symbols)."""
        out = [self.formula, self.fwd]
        for t in self.terms:
            out += [t.grad, t.diff, t.fwd, *t.trace]
        return out

    def replace(self, new: list[Any]) -> None:
        it = iter(new)
        self.formula, self.fwd = next(it), next(it)
        for t in self.terms:
            t.grad, t.diff, t.fwd = next(it), next(it), next(it)
            t.trace = tuple(next(it) for _ in t.trace)


@dataclass
class Route:
    """The differential route of one derivation: each assignment's differential, then each gradient's steps."""

    differentials: list[DStep]
    gradients: list[tuple[str, tuple, list[DStep]]]  # (value name, its shape, steps)
    forward: list[tuple[str, Any]]  # (name, formula): how the check computes the values
    backward: list[tuple[str, Any]]  # (gradient name "dz", formula in the printed equations' names)
    inputs: dict[str, tuple]  # each input's shape at this derivation's sizes
    live: tuple[str, ...]  # the values that have a differential
    output: str = ""
    check: Any = None  # a RouteCheck once checked

    def steps(self) -> list[DStep]:
        return self.differentials + [s for _, _, steps in self.gradients for s in steps]

    def symbolize(self, other: Route, sizes_a: dict, sizes_b: dict) -> None:
        """Write the constants that are sizes (1/7 at B = 7) as symbols, from the same route at other sizes."""
        mine, theirs = self.steps(), other.steps()
        if len(mine) != len(theirs):
            return
        for a, b in zip(mine, theirs):
            sa, sb = a.syms(), b.syms()
            if len(sa) == len(sb):
                a.replace([x if x is None else S.symbolize(x, y, sizes_a, sizes_b) for x, y in zip(sa, sb)])


def rename_gradients(x: Any, names: set[str]) -> Any:
    """``dz`` (the printed equations' name for the gradient of z) -> ``δz``, in a formula."""
    if not isinstance(x, S.Sym):
        return x
    mapping = {id(n): S.var("δ" + n.name[1:], n.shape) for n in S.nodes(x) if n.op == "var" and n.name in names}
    return S.substitute(x, mapping) if mapping else x


# --- the primitives' own rules, on symbols ------------------------------------------------------------


def jvp(walk: Any, t: Any, i: int, tangent: Any) -> Any:
    """The differential of node ``t`` when only operand ``i`` changes, by ``tangent``: the primitive's JVP."""

    view = node_of(t)
    prim = view.prim
    args = walk.args(t)
    n = len(view.inputs)
    if walk.generic and prim.name == STAND_IN:
        return tangent * S.Sym("fprime", (args[0],), S.shape_of(args[0]), ("f",))
    if prim.jvp is not None:
        return prim.jvp(S.SYM, tuple(tangent if k == i else None for k in range(n)), walk.fwd(t), *args)
    if prim.kind == "linear":
        zeros = [
            S.const(0.0, tuple(np.shape(view.args[k]) if view.inputs[k] is None else view.inputs[k].shape))
            for k in range(n)
        ]
        return S.apply(prim, *[tangent if k == i else zeros[k] for k in range(n)], *args[n:])
    if prim.kind == "bilinear":
        return S.apply(prim, *[tangent if k == i else args[k] for k in range(n)], *args[n:])
    if prim.kind == "elementwise":
        return prim.vjps[i](S.SYM, tangent, walk.fwd(t), *args)
    raise ValueError(
        f"derive --steps differential: the primitive {prim.name!r} has no forward-mode rule to take its "
        "differential from (give it a kind or a defjvp)"
    )


def vjp(walk: Any, t: Any, i: int, g: Any) -> Any:
    """The adjoint of that differential applied to ``g``: the primitive's own VJP rule, broadcasting undone."""
    return S._unbroadcast(walk.rule(t, i, g, walk.fwd(t)), node_of(t).inputs[i].shape)


# --- building the route ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, walk: Any, edges: dict, live: set, output: Any) -> None:
        self.walk, self.edges, self.live, self.out = walk, edges, live, output

    def named(self, t: Any) -> bool:
        return id(t) in self.walk.names

    def name(self, t: Any) -> str:
        return self.walk.names[id(t)]

    def operands(self, t: Any) -> list[tuple[int, Any]]:
        view = node_of(t)
        return [
            (i, x)
            for i, x in enumerate(view.inputs)
            if x is not None and id(x) in self.live and view.prim.differentiable(i)
        ]

    def total(self, t: Any, memo: dict) -> Any:
        """The differential of the assignment at ``t`` in the differentials of the named values it reads."""
        if id(t) in memo:
            return memo[id(t)]
        out = None
        for i, x in self.operands(t):
            dx = S.var("d" + self.name(x), x.shape) if self.named(x) else self.total(x, memo)
            term = jvp(self.walk, t, i, dx)
            out = term if out is None else out + term
        memo[id(t)] = S.simplify(out)
        return memo[id(t)]

    def partial(self, t: Any, x: Any, reach: set, memo: dict) -> Any:
        """The part of node ``t``'s differential that holds dx (through unnamed values only)."""
        if t is x:
            return S.var("d" + self.name(x), x.shape)
        if id(t) in memo:
            return memo[id(t)]
        out = None
        for i, y in self.operands(t):
            if y is x or id(y) in reach:
                term = jvp(self.walk, t, i, self.partial(y, x, reach, memo))
                out = term if out is None else out + term
        memo[id(t)] = S.simplify(out)
        return memo[id(t)]

    def consumers(self, x: Any) -> tuple[list[Any], set]:
        """The named values whose assignment reads ``x`` (through unnamed values), and those unnamed values."""
        tops: list[Any] = []
        reach: set[int] = set()
        stack = [x]
        while stack:
            y = stack.pop()
            for t, *_ in self.edges.get(id(y), []):
                if self.named(t):
                    if all(t is not s for s in tops):
                        tops.append(t)
                elif id(t) not in reach:
                    reach.add(id(t))
                    stack.append(t)
        return tops, reach

    def grad_of(self, s: Any) -> Any:
        if s is self.out:
            return S.const(1.0, s.shape)
        return S.var("δ" + self.name(s), s.shape)


def build(
    walk: Any, order: list, edges: dict, live: set, prog: Any, forward: list, backward: list, inputs: dict
) -> Route:
    """The differential route of a derivation made by :func:`.derive_walk._symbolic`."""
    out_t = order[0] if order else None
    out_t = next((t for t in order if walk.names.get(id(t)) == prog.output), out_t)
    b = _Builder(walk, edges, live, out_t)
    grad_names = {ln.name for ln in backward}
    by_name: dict[str, Any] = {}
    for t in order:
        if id(t) in walk.names:
            by_name[walk.names[id(t)]] = t
    for name in prog.inputs:
        if name in walk.env:
            by_name.setdefault(name, walk.env[name])
    live_names = tuple(n for n, t in by_name.items() if id(t) in live)

    diffs = []
    memo: dict = {}
    for ln in forward:
        t = by_name.get(ln.name)
        if t is None or id(t) not in live:
            continue
        total = b.total(t, memo)
        wrt = tuple(sorted({n.name for n in S.nodes(ln.formula) if n.op == "var" and n.name in live_names}))
        diffs.append(
            DStep(
                "differential",
                f"d{ln.name} =",
                formula=total,
                reason=differential_reason(t, b),
                fwd=ln.formula,
                wrt=wrt,
            )
        )

    gradients = []
    for ln in backward:
        name = ln.name[1:]
        x = by_name.get(name)
        if x is None:
            continue
        final = rename_gradients(S.simplify(ln.formula), grad_names)
        gradients.append((name, tuple(ln.shape), _gradient_steps(b, x, final, forward)))
    return Route(
        diffs,
        gradients,
        [(ln.name, ln.formula) for ln in forward],
        [(ln.name, ln.formula) for ln in backward],
        dict(inputs),
        live_names,
        prog.output if out_t is None or not out_t.shape else f"(Σ {prog.output})",  # a non-scalar output: its sum
    )


def _gradient_steps(b: _Builder, x: Any, final: Any, forward: list) -> list[DStep]:
    from .derive_differential_reasons import identity_reason, trace_lines

    xn = b.name(x)
    if x is b.out:
        if x.shape:
            why = f"the seed: the output {xn} is not a scalar, so the route follows Σ {xn}, whose gradient is ones"
        else:
            why = f"the seed: d{xn} = 1 · d{xn}, so δ{xn} = 1"
        return [DStep("seed", f"δ{xn} =", formula=final, reason=why)]
    tops, reach = b.consumers(x)
    if not tops:  # (no operation reads it: nothing to move)
        return [DStep("read-off", f"⇒ δ{xn} =", formula=final, reason="no assignment reads it")]
    fwd_of = {ln.name: ln.formula for ln in forward}
    memo: dict = {}
    pairs = [(b.grad_of(s), s) for s in tops]
    terms = [Term(g, b.partial(s, x, reach, memo), fwd=fwd_of.get(b.name(s)), wrt=xn) for g, s in pairs]
    names = ", ".join(b.name(s) for s in tops)
    e = b.name(b.out) if not b.out.shape else f"(Σ {b.name(b.out)})"
    if len(tops) == 1 and tops[0] is b.out:
        opened = f"d{e} = 1 · d{e}, and the part of d{e} that holds d{xn}"
    elif len(tops) == 1:
        s = b.name(tops[0])
        opened = f"d{e} = ⟨δ{s}, d{s}⟩ + (terms free of d{s}), and the part of d{s} that holds d{xn}"
    else:
        opened = (
            f"d{e} = Σ ⟨δv, dv⟩ over the assignments v that read {xn} ({names}): the part of each dv that holds d{xn}"
        )
    steps = [DStep("open", f"d{e} ∋", terms, reason=opened)]
    while True:
        k = next((j for j, (_, node) in enumerate(pairs) if node is not x), None)
        if k is None:
            break
        if len(steps) >= MAX_LINES or len(pairs) > MAX_TERMS:
            pairs = [(S.simplify(final), x)]
            steps.append(
                DStep(
                    "move",
                    "=",
                    [Term(final, S.var("d" + xn, x.shape))],
                    reason="the remaining moves at once (each is one of the identities above)",
                )
            )
            break
        g, node = pairs[k]
        roles = [(i, y) for i, y in b.operands(node) if y is x or id(y) in reach]
        new = [(S.simplify(vjp(b.walk, node, i, g)), y) for i, y in roles]
        before, after = pairs[:k], pairs[k + 1 :]
        if len(pairs) == 1 and len(roles) == 1:
            for lead_terms, why in trace_lines(b, node, roles[0][0], g, b.partial(roles[0][1], x, reach, memo)):
                steps.append(DStep("move", "=", lead_terms, reason=why))
        same = len(new) == 1 and new[0][1] is not node and S.same(new[0][0], g)
        pairs = before + new + after
        if same and S.render(b.partial(new[0][1], x, reach, memo)) == S.render(b.partial(node, x, reach, memo)):
            continue  # (a pass-through, as the term in db of z = W · a + b: nothing moves)
        steps.append(
            DStep(
                "move",
                "=",
                [Term(gg, b.partial(node_y, x, reach, memo)) for gg, node_y in pairs],
                reason=identity_reason(b, node, [i for i, _ in roles], b.partial(node, x, reach, memo)),
            )
        )
    if len(pairs) > 1:
        total = pairs[0][0]
        for gg, _ in pairs[1:]:
            total = total + gg
        steps.append(
            DStep(
                "move",
                "=",
                [Term(S.simplify(total), S.var("d" + xn, x.shape))],
                reason=f"⟨A, d{xn}⟩ + ⟨B, d{xn}⟩ = ⟨A + B, d{xn}⟩: the terms in d{xn} add",
            )
        )
    steps.append(
        DStep(
            "read-off",
            f"⇒ δ{xn} =",
            formula=final,
            reason=f"read off: d{e} = ⟨δ{xn}, d{xn}⟩ + (terms free of d{xn}) defines δ{xn}; the equation d{xn} above",
        )
    )
    return steps


def differential_reason(t: Any, b: _Builder) -> str:
    """The rules behind an assignment's differential, one per primitive in it."""
    from .derive_differential_reasons import differential_rule

    seen: list[str] = []
    stack = [t]
    visited: set[int] = set()
    while stack:
        y = stack.pop()
        if id(y) in visited:
            continue
        visited.add(id(y))
        rule = differential_rule(b, y)
        if rule and rule not in seen:
            seen.append(rule)
        stack += [x for _, x in reversed(b.operands(y)) if not b.named(x)]
    return "; ".join(seen)


# --- text ----------------------------------------------------------------------------------------------


def legend(output: str = "E") -> list[str]:
    """The notation of the differential steps, for an output named ``output``."""
    e = output
    return [
        f"in the differential steps: dX is a small change of X (the same shape as X); δX = ∂{e}/∂X is the gradient "
        f"of the output {e} (written dX in the equations above)",
        f"⟨A, B⟩ = Σ_ij A_ij B_ij = tr(Aᵀ · B): the Frobenius inner product; d{e} = ⟨δX, dX⟩ + (terms free of dX) "
        "defines δX, which is then read off",
        "tr(M): the trace, the sum of M's diagonal; tr(A · B) = tr(B · A)",
        f"d{e} ∋ T: T is the part of d{e} that holds the differential being followed; ⊙ moves across ⟨·,·⟩: "
        "⟨A, B ⊙ C⟩ = ⟨A ⊙ B, C⟩; ⟨A, B · C⟩ = ⟨Bᵀ · A, C⟩ = ⟨A · Cᵀ, B⟩",
    ]


def _factor(x: Any) -> str:
    text = S.render(x)
    return text if " " not in text else f"({text})"


def term_text(t: Term) -> str:
    if t.trace:
        return "tr(" + " · ".join(_factor(f) for f in t.trace) + ")"
    return f"⟨{S.render(t.grad)}, {S.render(t.diff)}⟩"


def step_text(step: DStep) -> str:
    """The right-hand side of one line."""
    if step.kind in ("differential", "seed", "read-off"):
        return S.render(step.formula)
    return " + ".join(term_text(t) for t in step.terms)


def route_text(route: Optional[Route], error: str = "") -> str:
    """The lines of the route under their headings (call inside the derivation's dims context)."""
    out = [
        "steps (matrix differentials: dX is a small change of X, δX the gradient written dX above; "
        f"d{route.output if route else 'E'} = ⟨δX, dX⟩ + … defines δX):"
    ]
    if route is None:
        return "\n".join(out + [f"  not available: {error}"])
    out.append("  the differential of each assignment (each primitive's own rule):")
    for st in route.differentials:
        out.append(f"    {st.lead} {step_text(st)}      [{st.reason}]")
    for name, shape, steps in route.gradients:
        out.append(f"  δ{name}  ({S.shape_text(shape) or 'scalar'}):")
        for st in steps:
            out.append(f"    {st.lead} {step_text(st)}      [{st.reason}]")
    if route.check is not None:
        out.append("  " + route.check.text())
    return "\n".join(out)


def route_dict(route: Optional[Route], error: str = "") -> dict[str, Any]:
    """The route as JSON-ready data (call inside the derivation's dims context)."""
    if route is None:
        return {"error": error}

    def one(st: DStep) -> dict[str, Any]:
        return {"kind": st.kind, "text": f"{st.lead} {step_text(st)}", "reason": st.reason}

    return {
        "differentials": [one(st) for st in route.differentials],
        "gradients": [
            {"name": "δ" + n, "shape": S.shape_text(sh), "steps": [one(s) for s in st]} for n, sh, st in route.gradients
        ],
        "check": None if route.check is None else route.check.as_dict(),
    }
