"""The steps from the index form to the matrix form of each gradient (``derive --steps``).

Nothing here is written per program.  Each step comes from the edge's primitive
and the operand's role, through the Jacobian structure of
:mod:`.derive_jacobian`: the vector-Jacobian product ``dx = (∂y/∂x)ᵀ dy``, then
what that structure turns it into (a diagonal Jacobian into an elementwise
product, a Kronecker product with an identity into a matrix product with a
transpose, a broadcast's stack of identities into a sum, ...).  The local
derivative shown for elementwise operations is the primitive's own VJP rule run
on a gradient of ones.  Where a value feeds several operations, the branches add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .. import symbolic as S
from .derive_jacobian import structure


@dataclass
class Step:
    """One step from the index form to the matrix form: the formula and why it holds."""

    text: str
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "reason": self.reason}


def operand_text(walk: Any, y: Any) -> str:
    """An operand as the program writes it: its name, else its formula (bracketed unless a name)."""
    if y is None:
        return "c"
    text = walk.names.get(id(y)) or S.render(S.simplify(walk.fwd(y)))
    return text if text.isidentifier() else f"({text})"


FINAL = "\x00final\x00"  # replaced by the printed equation once its sizes are symbolic


def _name(walk: Any, t: Any) -> str:
    name = walk.names.get(id(t))
    if name is not None:
        return name
    return "(" + S.render(S.simplify(walk.fwd(t))) + ")"


def _g(g: Any) -> str:
    text = S.render(S.simplify(g))
    return text if text.isidentifier() else f"({text})"


def _sh(shape: tuple[int, ...]) -> str:
    return S.shape_text(shape)


def _copies(shape: tuple[int, ...], target: tuple[int, ...]) -> str:
    """How many copies broadcasting makes of an array of ``shape`` to ``target``, symbolic where a size is (``B``)."""
    lead = len(target) - len(shape)
    axes = [d for i, d in enumerate(target) if i < lead or (shape[i - lead] == 1 and d != 1)]
    return _count(tuple(axes), math.prod(axes))


def _count(shape: tuple[int, ...], n: int) -> str:
    """``409,600``, or ``4B`` where a size is symbolic."""
    texts = [S.dim_text(d) for d in shape]
    if all(t.isdigit() for t in texts):
        return f"{n:,}"
    digits = math.prod(d for d, t in zip(shape, texts) if t.isdigit())
    return (str(digits) if digits != 1 else "") + "".join(t for t in texts if not t.isdigit())


def steps_for(
    walk: Any, x: Any, line: Any, edges: list[tuple], edges_of: Optional[dict] = None, name: Optional[str] = None
) -> list[Any]:
    """Steps for the gradient of ``x``; ``edges`` are ``(consumer, role, upstream gradient, term)``.

    ``edges_of`` (every value's edges): where a consumer is a value the program did not name (``Wᵀ`` in
    ``a @ W.T``), the steps that give its gradient come first, so no product is skipped."""

    xn = name or walk.names.get(id(x), "x")
    dx = "d" + xn
    if not edges:
        return [Step(f"{dx} = {FINAL}", "the seed: the output's gradient with respect to itself")]
    out: list[Step] = []
    terms = []
    for t, role, g, term in edges:
        if edges_of is not None and id(t) not in walk.names and edges_of.get(id(t)) and not _is_name(g):
            out += _unnamed_steps(walk, t, edges_of)  # (an upstream that is a named gradient needs no steps)
        path = _via(walk, x, t, role)
        out += _edge_steps(walk, x, xn, t, role, g, term, len(edges) > 1)
        terms.append((path, term))
    if len(terms) == 1:  # the edge's own conclusion is the equation
        out[-1] = Step(f"⇒ {dx} = {FINAL}", out[-1].reason)
        return out
    if len(terms) > 1:
        parts = " + ".join(f"[via {p}]" for p, _ in terms)
        out.append(Step(f"{dx} = {parts}", _fan_out(walk, xn, edges)))
    out.append(Step(f"⇒ {dx} = {FINAL}", "the terms added and simplified"))
    return out


def _is_name(g: Any) -> bool:
    """Whether an upstream gradient is a named one (``dz``), not a formula."""
    g = S.simplify(g)
    return isinstance(g, S.Sym) and g.op == "var"


def _unnamed_steps(walk: Any, t: Any, edges_of: dict) -> list[Any]:
    """How the gradient of an unnamed intermediate ``t`` comes about, ending in its formula.

    None where sizes are symbolic and the formula holds a number: it was computed at a stand-in size, and
    only named equations are rewritten in the symbols (a number such as 1/7 may be 1/B)."""
    yn = _name(walk, t)
    total = None
    for *_, term in edges_of[id(t)]:
        total = term if total is None else total + term
    formula = S.render(S.simplify(total))
    if S.symbolic_dims() and any(c.isdigit() for c in formula):
        return []
    steps = steps_for(walk, t, None, edges_of[id(t)], edges_of, yn)
    last = steps[-1]
    return steps[:-1] + [Step(last.text.replace(FINAL, formula), last.reason)]


def _uses(x: Any, t: Any) -> int:
    """How many operands of node ``t`` are ``x`` (``q * q``: 2)."""
    from ..graph import node_of

    return sum(1 for y in node_of(t).inputs if y is x)


def _via(walk: Any, x: Any, t: Any, role: int) -> str:
    """The path's label: the consumer, and which operand where ``x`` is more than one of them."""
    yn = _name(walk, t)
    return f"{yn}, operand {role + 1}" if _uses(x, t) > 1 else yn


def _fan_out(walk: Any, xn: str, edges: list[tuple]) -> str:
    """Why the terms add: several operations read the value, or one reads it more than once."""
    consumers = []
    for t, *_ in edges:
        if all(t is not c for c in consumers):
            consumers.append(t)
    if len(consumers) == 1:
        return f"{xn} is {len(edges)} operands of {_name(walk, consumers[0])}: the chain rule adds one term per use"
    if len(consumers) < len(edges):
        return (
            f"{xn} feeds {len(consumers)} operations, {len(edges)} uses in all (fan-out): "
            "the chain rule adds one term per use"
        )
    return f"{xn} feeds {len(edges)} operations (fan-out): the chain rule adds one term per path"


def _edge_steps(walk: Any, x: Any, xn: str, t: Any, role: int, g: Any, term: Any, many: bool) -> list[Any]:
    from ..graph import node_of

    view = node_of(t)
    prim = view.prim.name
    yn = _name(walk, t)
    upstream = S.simplify(g)
    named = isinstance(upstream, S.Sym) and upstream.op == "var"
    dy = "d" + yn if walk.names.get(id(t)) else (upstream.name if named else "d" + yn)
    dx = "d" + xn
    shapes = tuple(y.shape if y is not None else () for y in view.inputs)

    st = structure(prim, role, x.shape, t.shape, view.params, shapes, tuple(operand_text(walk, y) for y in view.inputs))
    via = _via(walk, x, t, role)
    label = f"  [path {via}]" if many else ""
    result = S.render(S.simplify(term))
    if many:
        result = f"[via {via}] = {result}"
    # ∂y/∂x of one operand: where x is several operands of y, the partial holds the others fixed
    wrt = f"({xn} as operand {role + 1})" if _uses(x, t) > 1 else xn
    steps = [
        Step(
            f"{dx} = (∂{yn}/∂{wrt})ᵀ {dy}{label}",
            "chain rule as a vector-Jacobian product: an input's gradient is Jᵀ times the output's gradient",
        )
    ]
    n_out, n_in = math.prod(t.shape), math.prod(x.shape)
    size = f"{_sh(t.shape)} output, {_sh(x.shape)} input: J would be {_count(t.shape, n_out)}×{_count(x.shape, n_in)}"
    if st.kind in ("diagonal", "stack of diagonals"):
        local = S.render(S.simplify(walk.rule(t, role, S.const(1.0, t.shape), walk.fwd(t))))
        steps.append(
            Step(f"∂{yn}/∂{wrt} = diag({local})", f"elementwise: entry k of {yn} depends only on entry k of {xn}")
        )
        extra = ", then summed over the broadcast axes" if st.kind == "stack of diagonals" else ""
        steps.append(Step(f"⇒ {result}", f"a diagonal Jacobian's product is elementwise{extra} ({size}, never built)"))
    elif st.kind in ("identity", "negated identity"):
        sign = "−" if st.kind == "negated identity" else ""
        steps.append(Step(f"∂{yn}/∂{wrt} = {sign}I", "the operation passes its operand through"))
        steps.append(Step(f"⇒ {result}", "the identity's product is the gradient itself"))
    elif st.kind == "stack of identities":
        steps.append(
            Step(
                f"∂{yn}/∂{wrt} = a stack of identities ({_copies(x.shape, t.shape)} copies)",
                f"broadcasting copies {xn} ({_sh(x.shape)}) to {_sh(t.shape)}",
            )
        )
        steps.append(Step(f"⇒ {result}", "the adjoint of a copy is a sum: Jᵀ adds up the copies' gradients"))
    elif prim == "matmul":
        steps += _matmul_steps(walk, view, x, xn, t, role, dy, st, result)
    elif st.kind in ("row of ones", "rows of ones per slice"):
        verb = "adds up" if prim == "sum" else "averages"
        steps.append(Step(f"∂{yn}/∂{wrt} = {st.description}", f"{prim} {verb} each slice"))
        steps.append(Step(f"⇒ {result}", "Jᵀ times the gradient copies it back over the reduced entries"))
    elif prim in ("softmax", "log_softmax"):
        p = yn if prim == "softmax" else f"exp({yn})"
        if prim == "softmax":
            index = f"{dx}_j = Σ_k {dy}_k ∂{yn}_k/∂{xn}_j = Σ_k {dy}_k {p}_k ([k = j] − {p}_j)"
            final = f"= {p}_j ({dy}_j − Σ_k {dy}_k {p}_k)"
        else:
            index = f"{dx}_j = Σ_k {dy}_k ∂{yn}_k/∂{xn}_j = Σ_k {dy}_k ([k = j] − p_j),  p = {p}"
            final = f"= {dy}_j − p_j Σ_k {dy}_k"
        steps.append(Step(f"∂{yn}/∂{wrt} = {st.description}", "each slice is normalized on its own"))
        steps.append(Step(index + " " + final, "within one slice (k, j run over it)"))
        steps.append(Step(f"⇒ {result}", "one sum per slice instead of the dense block (keepdims keeps it aligned)"))
    else:
        steps.append(Step(f"∂{yn}/∂{wrt} = {st.description}", ""))
        steps.append(Step(f"⇒ {result}", f"the VJP is {st.vjp}"))
    return steps


def _matmul_steps(walk: Any, view: Any, x: Any, xn: str, t: Any, role: int, dy: str, st: Any, result: str) -> list:

    yn = _name(walk, t)
    dx = "d" + xn
    left, right = view.inputs
    ln = walk.names.get(id(left)) or _name(walk, left)
    rn = walk.names.get(id(right)) or _name(walk, right)
    ls, rs = left.shape, right.shape
    steps = []
    if len(ls) == 2 and len(rs) == 2:
        cols = rs[1]
        if role == 0:
            batch = cols > 1
            if batch:
                index = (
                    f"{dx}_ij = Σ_k Σ_b {dy}_kb ∂{yn}_kb/∂{xn}_ij = Σ_k Σ_b {dy}_kb [k = i] {rn}_jb"
                    f" = Σ_b {dy}_ib {rn}_jb"
                )
                why = (
                    f"{_sh(t.shape)} times {_sh(rs[::-1])}: a sum of outer products over the {S.dim_text(cols)} columns"
                )
            else:
                index = f"{dx}_ij = Σ_k {dy}_k ∂{yn}_k/∂{xn}_ij = Σ_k {dy}_k [k = i] {rn}_j = {dy}_i {rn}_j"
                why = f"{_sh(t.shape)} times {_sh(rs[::-1])}: an outer product"
            steps.append(Step(f"∂{yn}/∂{xn} = {st.description}", f"{yn}_kb = Σ_j {xn}_kj {rn}_jb"))
            steps.append(Step(index, "only k = i survives"))
            steps.append(Step(f"⇒ {result}", why))
        else:
            index = (
                f"{dx}_j = Σ_i {dy}_i ∂{yn}_i/∂{xn}_j = Σ_i {dy}_i {ln}_ij"
                if cols == 1
                else (f"{dx}_jb = Σ_i {dy}_ib ∂{yn}_ib/∂{xn}_jb = Σ_i {dy}_ib {ln}_ij")
            )
            steps.append(
                Step(f"∂{yn}/∂{xn} = {st.description}", f"{_sh(ls)} times {_sh(rs)}: {yn}_ib = Σ_j {ln}_ij {xn}_jb")
            )
            steps.append(Step(index, "the sum runs over the first index of " + ln))
            steps.append(
                Step(
                    f"⇒ {result}",
                    "the transpose belongs to the vector-Jacobian product: input gradient = Jᵀ · output gradient",
                )
            )
        return steps
    steps.append(Step(f"∂{yn}/∂{xn} = {st.description}", ""))
    steps.append(Step(f"⇒ {result}", f"the VJP is {st.vjp}"))
    return steps
