"""The steps from the index form to the matrix form of each gradient (``derive --steps``), each with its claim.

Nothing here is written per program.  Each step comes from the edge's primitive
and the operand's role, through the Jacobian structure of
:mod:`.derive_jacobian`: the vector-Jacobian product ``dx = (∂y/∂x)ᵀ dy``, then
what that structure turns it into (a diagonal Jacobian into an elementwise
product, a Kronecker product with an identity into a matrix product with a
transpose, a broadcast's stack of identities into a sum, ...).  The local
derivative shown for elementwise operations is the primitive's own VJP rule run
on a gradient of ones; where one operation uses a value more than once
(``q * q``) its uses are one Jacobian (``diag(2 q)``).  Where a value feeds
several operations, the branches add.

Every step that states a formula carries a claim (:mod:`.derive_claims`) built
from the same symbolic values, which ``derive``'s check evaluates.  Formulas in a
step's text are kept as symbolic values (markers in the text) until both
derivations exist, so a constant such as ``1/B`` is written in the symbolic sizes.
"""

from __future__ import annotations

import contextvars
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from . import derive_claims as C
from .derive_jacobian import is_elementwise, structure

_MARK = re.compile("\x01(\\d+)\x01")
_REGISTRY: contextvars.ContextVar[Optional[list]] = contextvars.ContextVar("derive_step_formulas", default=None)


def formula(sym: Any, paren: bool = False) -> str:
    """A formula in a step's text: a marker resolved once sizes are symbolic (rendered at once outside a walk)."""
    reg = _REGISTRY.get()
    sym = S.simplify(sym)
    if reg is None:
        text = S.render(sym)
        return f"({text})" if paren and not text.isidentifier() else text
    reg.append((sym, paren))
    return f"\x01{len(reg) - 1}\x01"


def collecting() -> contextvars.Token:
    """Start collecting step formulas (for one derivation's walk); end with :func:`done`."""
    return _REGISTRY.set([])


def done(token: contextvars.Token) -> None:
    _REGISTRY.reset(token)


@dataclass
class Step:
    """One step from the index form to the matrix form: the formula, why it holds, and its claim."""

    text: str
    reason: str = ""
    claim: Optional[C.Claim] = field(default=None, repr=False, compare=False)
    check: Optional[dict] = field(default=None, compare=False)  # {"max_error": ..., "kind": ...} once checked
    formulas: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        reg = _REGISTRY.get()
        if reg is None:
            return

        def local(m: re.Match) -> str:
            self.formulas.append(reg[int(m.group(1))])
            return f"\x02{len(self.formulas) - 1}\x02"

        self.text = _MARK.sub(local, self.text)
        self.reason = _MARK.sub(local, self.reason)

    def resolve(self, twin: Optional[Step], sizes: dict, twin_sizes: dict) -> tuple[str, str]:
        """The text and reason with each formula written out, its size-dependent constants in the symbols."""
        syms = []
        for i, (sym, paren) in enumerate(self.formulas):
            other = twin.formulas[i][0] if twin is not None and i < len(twin.formulas) else None
            if other is not None and sizes and sizes != twin_sizes and S.shape_of(other) is not None:
                sym = S.symbolize(sym, other, sizes, twin_sizes)
            text = S.render(sym)
            syms.append(f"({text})" if paren and not text.isidentifier() else text)

        def put(m: re.Match) -> str:
            return syms[int(m.group(1))]

        return re.sub("\x02(\\d+)\x02", put, self.text), re.sub("\x02(\\d+)\x02", put, self.reason)

    def restated(self, text: str, claim: Optional[C.Claim]) -> Step:
        """A step with a new text and claim and this step's reason (its formulas carried over)."""
        new = Step(text, "", claim)
        shift = len(new.formulas)
        new.reason = re.sub("\x02(\\d+)\x02", lambda m: f"\x02{int(m.group(1)) + shift}\x02", self.reason)
        new.formulas += self.formulas
        return new

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "reason": self.reason}
        if self.check is not None:
            out["check"] = dict(self.check)
        return out


def operand_text(walk: Any, y: Any) -> str:
    """An operand as the program writes it: its name, else its formula (bracketed unless a name)."""
    if y is None:
        return "c"
    text = walk.names.get(id(y)) or S.render(walk.fwd(y))
    return text if text.isidentifier() else f"({text})"


FINAL = "\x00final\x00"  # (kept for callers: steps now hold the equation's formula itself)


def _name(walk: Any, t: Any) -> str:
    """A value as the program writes it: its name, else its own subterm (not simplified: ``(0.5 m ⊙ m)``)."""
    name = walk.names.get(id(t))
    if name is not None:
        return name
    return "(" + S.render(walk.fwd(t)) + ")"


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
    symbols: dict[str, int] = {}
    for t in texts:
        if not t.isdigit():
            symbols[t] = symbols.get(t, 0) + 1
    powers = "".join(t + (str(n).translate(S._SUPERSCRIPT) if n > 1 else "") for t, n in symbols.items())
    return (str(digits) if digits != 1 else "") + powers


# --- the walk's edges as numbers ---------------------------------------------------------------------------
def edge_of(walk: Any, t: Any, roles: tuple[int, ...], g: Any) -> C.Edge:
    """The recorded operation ``t`` at its recorded values, perturbed in the operand positions ``roles``."""
    from ..graph import node_of

    view = node_of(t)
    operands = [_operand_value(y) if y is not None else view.args[i] for i, y in enumerate(view.inputs)]
    return C.Edge(view.prim.fwd, tuple(view.params), operands, tuple(roles), tuple(t.shape), g)


def _operand_value(y: Any) -> np.ndarray:
    """An operand's recorded value; NaN where the engine released it (a recorded graph): a claim evaluated on it
    comes out not finite, so it can never pass by accident."""
    from ..saved import ValueReleasedError

    try:
        return np.asarray(y.data, dtype=np.float64)
    except ValueReleasedError:
        return np.full(y.shape, np.nan)


def _sym_said(sym: Any) -> Any:
    return lambda env: np.asarray(S.evaluate(sym, env), dtype=np.float64)


def _product(walk: Any, said: Any, edges: list[C.Edge]) -> C.Product:
    fn = said if callable(said) else _sym_said(said)
    return C.Product(fn, edges, walk.values)


@dataclass
class Chain(C.Claim):
    """Several claims of one line (``a = b = c``): its error is the worst of theirs."""

    claims: list
    kind: str = "index form"

    def size(self) -> int:
        return sum(c.size() for c in self.claims)

    def check(self, rng: np.random.Generator, work: int = C.WORK) -> float:
        errors = [c.check(rng, work // max(1, len(self.claims))) for c in self.claims]
        finite = [e for e in errors if not math.isnan(e)]
        return max(finite) if finite else float("nan")


def steps_for(
    walk: Any, x: Any, line: Any, edges: list[tuple], edges_of: Optional[dict] = None, name: Optional[str] = None
) -> list[Any]:
    """Steps for the gradient of ``x``; ``edges`` are ``(consumer, role, upstream gradient, term)``.

    ``edges_of`` (every value's edges): where a consumer is a value the program did not name (``Wᵀ`` in
    ``a @ W.T``), the steps that give its gradient come first, so no product is skipped.  ``line`` is the
    equation (``None`` for an unnamed value: its formula is then the terms' sum)."""

    xn = name or walk.names.get(id(x), "x")
    dx = "d" + xn
    shape = tuple(x.shape)
    if not edges:
        final = line.formula if line is not None else S.const(1.0, shape)
        seed = C.Same(final, lambda env: np.ones(shape), shape, walk.values, kind="seed")
        return [Step(f"{dx} = {formula(final)}", "the seed: the output's gradient with respect to itself", seed)]
    groups: list[tuple[Any, list[int], Any, Any]] = []  # consumer, roles, upstream, summed term
    for t, role, g, term in edges:
        for i, (u, roles, ug, total) in enumerate(groups):
            if u is t:
                groups[i] = (u, roles + [role], ug, total + term)
                break
        else:
            groups.append((t, [role], g, term))
    total = None
    for *_, term in groups:
        total = term if total is None else total + term
    final = line.formula if line is not None else total
    labels = _path_labels(walk, [t for t, *_ in groups])
    if line is not None or not hasattr(walk, "explained"):
        walk.explained = set()  # the unnamed values whose gradients this equation's steps have derived
    explained = walk.explained
    out: list[Step] = []
    if xn in getattr(walk, "auto_names", ()):  # say which of the program's subterms the name stands for
        written = S.program_text(walk.fwd(x, expand=True))
        defined = C.Same(S.var(xn, shape), walk.fwd(x, expand=True), shape, walk.values, kind="definition")
        out.append(
            Step(
                f"{xn} = {S.render(S.simplify(walk.fwd(x, expand=True)))}",
                f"{xn} is the program's {written}, named because the equations use it more than once",
                defined,
            )
        )
    all_edges = []
    for t, roles, g, term in groups:
        if edges_of is not None and id(t) not in walk.names and edges_of.get(id(t)) and not _is_name(g, walk):
            if id(t) not in explained:  # (an upstream that is a named gradient needs no steps; each said once)
                explained.add(id(t))
                out += _unnamed_steps(walk, t, edges_of)
        edge = edge_of(walk, t, tuple(roles), g)
        all_edges.append(edge)
        out += _edge_steps(walk, x, xn, t, tuple(roles), g, term, labels[len(all_edges) - 1], edge)
    if len(groups) == 1:  # the edge's own conclusion is the equation
        out[-1] = out[-1].restated(f"⇒ {dx} = {formula(final)}", _product(walk, final, all_edges))
    else:
        parts = " + ".join(f"[via {label}]" for label in labels)
        out.append(Step(f"{dx} = {parts}", _fan_out(xn, len(groups)), _product(walk, total, all_edges)))
        out.append(
            Step(f"⇒ {dx} = {formula(final)}", "the terms added and simplified", _product(walk, final, all_edges))
        )
    if line is not None:
        _rename_indices(out, set(walk.names.values()))
    return out


_INDEX = "ijklbc"  # the index letters the steps use
_SPARE = "pqrstuvmnfgh"


def _rename_indices(steps: list, names: set) -> None:
    """Where the program names a value with an index letter (``k`` in attention), the steps' indices take other
    letters, so ``dk_ij = Σ_k …`` never mixes the value k with the index k."""
    clash = [c for c in _INDEX if c in names]
    if not clash:
        return
    spare = [c for c in _SPARE if c not in names]
    mapping = dict(zip(clash, spare))

    def letters(m: re.Match) -> str:
        return (
            m.group(0)[: m.start(1) - m.start(0)]
            + "".join(mapping.get(c, c) for c in m.group(1))
            + m.group(0)[m.end(1) - m.start(0) :]
        )

    def swap(text: str) -> str:
        text = re.sub(r"(?<=[\w)ᵀ])_([a-z]{1,2})\b", letters, text)  # subscripts: dk_ij, (kᵀ)_kl
        text = re.sub(r"Σ_([a-z])\b", letters, text)
        text = re.sub(r"\[([a-z]) = [a-z]\]", letters, text)
        text = re.sub(r"\[[a-z] = ([a-z])\]", letters, text)
        text = re.sub(r"only ([a-z]) = [a-z] survives", letters, text)
        text = re.sub(r"only [a-z] = ([a-z]) survives", letters, text)
        text = re.sub(r"entry ([a-z]) of", letters, text)
        text = re.sub(r"(?:row|column) ([a-z]) of", letters, text)
        text = re.sub(r"\(([a-z]), [a-z] run over it\)", letters, text)
        return re.sub(r"\([a-z], ([a-z]) run over it\)", letters, text)

    for st in steps:
        st.text, st.reason = swap(st.text), swap(st.reason)


def _path_labels(walk: Any, consumers: list) -> list[str]:
    """Each path's label (its consumer as the program writes it); "" where there is one path; two consumers
    that read the same (``0.5 m ⊙ m`` twice) are told apart by their order (``(0.5 m ⊙ m), use 2``)."""
    if len(consumers) < 2:
        return [""] * len(consumers)
    names = [_name(walk, t) for t in consumers]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(f"{n}, use {seen[n]}" if names.count(n) > 1 else n)
    return out


def _is_name(g: Any, walk: Any) -> bool:
    """Whether an upstream gradient is a named gradient (``dz``), not a formula (``m``, in ``0.5 m ⊙ m``, is the
    gradient of ``0.5 m``: a formula that happens to be a forward name)."""
    g = S.simplify(g)
    return isinstance(g, S.Sym) and g.op == "var" and g.name in getattr(walk, "gradients", ())


def _unnamed_steps(walk: Any, t: Any, edges_of: dict) -> list[Any]:
    """How the gradient of an unnamed intermediate ``t`` comes about, ending in its formula."""
    return steps_for(walk, t, None, edges_of[id(t)], edges_of, _name(walk, t))


def _depends(x: Any, y: Any) -> bool:
    """Whether the value ``y`` depends on ``x`` (``x`` is ``y`` or one of its ancestors)."""
    from ..graph import node_of

    seen: set[int] = set()
    todo = [y]
    while todo:
        u = todo.pop()
        if u is x:
            return True
        if u is None or id(u) in seen or getattr(u, "_node", None) is None:
            continue
        seen.add(id(u))
        todo += list(node_of(u).inputs)
    return False


def _fan_out(xn: str, n: int) -> str:
    return f"{xn} feeds {n} operations (fan-out): the chain rule adds one term per path"


def _bcast(V: np.ndarray, in_shape: tuple, out_shape: tuple) -> np.ndarray:
    """Each column of ``V`` (operand-sized) copied to ``out_shape`` by broadcasting, as columns."""
    k = V.shape[1]
    lead = len(out_shape) - len(in_shape)
    cols = V.T.reshape((k,) + (1,) * lead + tuple(in_shape))
    return np.broadcast_to(cols, (k,) + tuple(out_shape)).reshape(k, -1).T


def _axes(params: tuple, ndim: int) -> Optional[tuple[int, ...]]:
    axes = params[0] if params else None
    if axes is None:
        return None
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    return tuple(int(a) % max(1, ndim) for a in axes)


def _edge_steps(
    walk: Any, x: Any, xn: str, t: Any, roles: tuple, g: Any, term: Any, many: str, edge: C.Edge
) -> list[Any]:
    """The steps of one path (``many``: its label where there are several, else "")."""
    from ..graph import node_of

    view = node_of(t)
    prim = view.prim.name
    role = roles[0]
    yn = _name(walk, t)
    upstream = S.simplify(g)
    named = _is_name(upstream, walk)
    dy = "d" + yn if walk.names.get(id(t)) else (upstream.name if named else "d" + yn)
    dx = "d" + xn
    shapes = tuple(y.shape if y is not None else () for y in view.inputs)
    in_shape, out_shape = tuple(x.shape), tuple(t.shape)
    st = structure(
        prim, role, in_shape, out_shape, view.params, shapes, tuple(operand_text(walk, y) for y in view.inputs)
    )
    env = walk.values
    label = f"  [path {many}]" if many else ""
    result = formula(term)
    if many:
        result = f"[via {many}] = {result}"
    others = [y for i, y in enumerate(view.inputs) if i not in roles and y is not None and _depends(x, y)]
    wrt = f"({xn} as operand {role + 1})" if others else xn
    held = (
        f"; {', '.join(_name(walk, y) for y in others)} also depends on {xn}: that path is its own term, "
        "held fixed here"
        if others
        else ""
    )
    vjp = _product(walk, term, [edge])
    steps = [
        Step(
            f"{dx} = (∂{yn}/∂{wrt})ᵀ {dy}{label}",
            "chain rule as a vector-Jacobian product: an input's gradient is Jᵀ times the output's gradient" + held,
            vjp,
        )
    ]
    n_out, n_in = math.prod(out_shape), math.prod(in_shape)
    size = (
        f"{_sh(out_shape)} output, {_sh(in_shape)} input: "
        f"J would be {_count(out_shape, n_out)}×{_count(in_shape, n_in)}"
    )
    small = n_out * n_in <= 250_000
    if len(roles) > 1 and not (
        is_elementwise(prim) or prim in ("add", "sub")
    ):  # (x @ x: one value as both factors of a product)
        steps.append(Step(f"∂{yn}/∂{xn} is the sum of its partials as each operand (both uses of {xn})", ""))
        steps.append(Step(f"⇒ {result}", "the product rule: one term per use, added", vjp))
    elif len(roles) > 1 or st.kind in ("diagonal", "stack of diagonals"):
        local = None
        for r in roles:  # every use of x in this one operation (q * q: q and q)
            piece = walk.rule(t, r, S.const(1.0, out_shape), walk.fwd(t))
            local = piece if local is None else local + piece
        local_value = _once(lambda: C.value(local, env, out_shape).reshape(-1))  # (evaluated when checked)

        def apply(env: dict, V: np.ndarray, lv: Any = local_value) -> np.ndarray:
            return lv()[:, None] * _bcast(V, in_shape, out_shape)

        full = (lambda env, lv=local_value: np.diag(lv()) @ C.broadcast_matrix(in_shape, out_shape)) if small else None
        broadcast = out_shape != in_shape
        copies = (
            f" R, R the stack of {_copies(in_shape, out_shape)} identities that broadcasting makes" if broadcast else ""
        )
        uses = f" (both uses of {xn} together)" if len(roles) > 1 else ""
        steps.append(
            Step(
                f"∂{yn}/∂{wrt} = diag({formula(local)}){' R' if broadcast else ''}",
                f"elementwise: entry k of {yn} depends only on entry k of {xn}{uses}{copies}",
                C.Matrix(apply, edge, env, full),
            )
        )
        extra = ", then summed over the broadcast axes" if broadcast else ""
        steps.append(
            Step(f"⇒ {result}", f"a diagonal Jacobian's product is elementwise{extra} ({size}, never built)", vjp)
        )
    elif st.kind in ("identity", "negated identity", "stack of identities"):
        sign = -1.0 if "−" in st.description.split("(")[0] or st.kind == "negated identity" else 1.0
        sgn = "−" if sign < 0 else ""

        def apply(env: dict, V: np.ndarray, s: float = sign) -> np.ndarray:
            if prim == "reshape":  # (entries in the same order: the identity on the flat entries)
                return s * V
            return s * _bcast(V, in_shape, out_shape)

        if prim == "reshape":
            full = (lambda env, s=sign: s * np.eye(n_in)) if small else None
        else:
            full = (lambda env, s=sign: s * C.broadcast_matrix(in_shape, out_shape)) if small else None
        claim = C.Matrix(apply, edge, env, full)
        if st.kind == "stack of identities":
            steps.append(
                Step(
                    f"∂{yn}/∂{wrt} = a stack of {_copies(in_shape, out_shape)} {sgn}identities (one per copy)",
                    f"broadcasting copies {xn} ({_sh(in_shape)}) to {_sh(out_shape)}",
                    claim,
                )
            )
            steps.append(Step(f"⇒ {result}", "the adjoint of a copy is a sum: Jᵀ adds up the copies' gradients", vjp))
        else:
            what = "keeps the order of the entries" if prim == "reshape" else "passes its operand through"
            unit = f"{sgn}1" if n_out == n_in == 1 else f"{sgn}I"  # (one number: ∂L/∂u = −1, not −I)
            steps.append(Step(f"∂{yn}/∂{wrt} = {unit}", f"the operation {what}", claim))
            steps.append(Step(f"⇒ {result}", "the identity's product is the gradient itself", vjp))
    elif prim == "matmul":
        steps += _matmul_steps(walk, view, x, xn, t, role, dy, st, result, edge, vjp)
    elif prim == "logsumexp":
        axes = _axes(view.params, len(in_shape))

        def softmax_of_slices(xv: np.ndarray = edge.operands[role], axes: Any = axes) -> np.ndarray:
            xv = np.asarray(xv, dtype=np.float64)
            keep = np.max(xv, axis=axes, keepdims=True)
            return np.exp(xv - keep) / np.sum(np.exp(xv - keep), axis=axes, keepdims=True)

        soft = _once(softmax_of_slices)

        def apply(env: dict, V: np.ndarray, axes: Any = axes) -> np.ndarray:
            return _reduce(V * soft().reshape(-1, 1), in_shape, axes, 1.0)

        steps.append(
            Step(
                f"∂{yn}/∂{wrt} = {st.description}",
                "the derivative of log Σ exp along a slice is the slice's softmax",
                C.Matrix(apply, edge, env),
            )
        )
        steps.append(Step(f"⇒ {result}", "Jᵀ copies the gradient back over each slice, times its softmax", vjp))
    elif st.kind in ("row of ones", "rows of ones per slice"):
        axes = _axes(view.params, len(in_shape))
        length = math.prod(in_shape[a] for a in (axes if axes is not None else range(len(in_shape))))
        entry = 1.0 if prim == "sum" else 1.0 / max(1, length)
        verb = "adds up" if prim == "sum" else "averages"

        def apply(env: dict, V: np.ndarray, e: float = entry, axes: Any = axes) -> np.ndarray:
            return C.reduce_matrix(in_shape, axes, e) @ V if n_in <= 40_000 else _reduce(V, in_shape, axes, e)

        steps.append(Step(f"∂{yn}/∂{wrt} = {st.description}", f"{prim} {verb} each slice", C.Matrix(apply, edge, env)))
        steps.append(Step(f"⇒ {result}", "Jᵀ times the gradient copies it back over the reduced entries", vjp))
    elif prim in ("softmax", "log_softmax"):
        steps += _softmax_steps(walk, view, xn, yn, wrt, dx, dy, st, result, edge, vjp, prim)
    elif st.kind in ("permutation", "selection"):
        test = C.is_permutation if st.kind == "permutation" else C.is_selection
        steps.append(Step(f"∂{yn}/∂{wrt} is {st.description}", "", C.Pattern(test, edge, env)))
        if prim == "transpose" and len(in_shape) == 2:  # the index form: entry (i, j) moves to (j, i)
            up = edge.upstream
            n0, n1 = in_shape
            forms = [
                lambda env: np.einsum("kl,kj,li->ij", C.value(up, env, out_shape), np.eye(n1), np.eye(n0)),
                lambda env: C.value(up, env, out_shape).T,
            ]
            steps.append(
                Step(
                    f"{dx}_ij = Σ_k Σ_l {dy}_kl ∂{yn}_kl/∂{xn}_ij = Σ_k Σ_l {dy}_kl [k = j] [l = i] = {dy}_ji",
                    f"{yn}_kl = {xn}_lk",
                    _index_claim(walk, forms, edge, in_shape),
                )
            )
            steps.append(Step(f"⇒ {result}", f"{dx} = {dy}ᵀ, and (A · B)ᵀ = Bᵀ · Aᵀ", vjp))
        else:
            steps.append(Step(f"⇒ {result}", f"the VJP is {st.vjp}", vjp))
    elif prim == "linear" and st.kind == "Kronecker product with an identity" and len(in_shape) == 2:
        claim = _linear_claim(edge, env, role, small)
        steps.append(Step(f"∂{yn}/∂{wrt} is {st.description}", "", claim))
        steps.append(Step(f"⇒ {result}", f"the VJP is {st.vjp}", vjp))
    else:  # no structure claimed: said in words, and the product checked
        steps.append(Step(f"∂{yn}/∂{wrt} is {st.description}", ""))
        steps.append(Step(f"⇒ {result}", f"the VJP is {st.vjp}", vjp))
    return steps


def _linear_claim(edge: C.Edge, env: dict, role: int, small: bool) -> C.Matrix:
    """``x Wᵀ + b`` (x: n×k, W: m×k): wrt x the Jacobian is ``I_n ⊗ W`` (entries row by row); wrt W it is
    ``x ⊗ I_m`` with W's entries numbered column by column (``vec``), so row by row its columns are permuted."""
    X = np.asarray(edge.operands[0], dtype=np.float64)
    W = np.asarray(edge.operands[1], dtype=np.float64)
    (n, k), m = X.shape, W.shape[0]
    if role == 0:

        def apply(env: dict, V: np.ndarray) -> np.ndarray:
            return np.einsum("jl,ilc->ijc", W, V.reshape(n, k, -1)).reshape(n * m, -1)

        full = (lambda env: np.kron(np.eye(n), W)) if small else None
    else:

        def apply(env: dict, V: np.ndarray) -> np.ndarray:
            return np.einsum("il,jlc->ijc", X, V.reshape(m, k, -1)).reshape(n * m, -1)

        by_columns = np.arange(m * k).reshape(k, m).T.reshape(-1)  # W[j, l] is entry l·m + j of vec(W)
        full = (lambda env: np.kron(X, np.eye(m))[:, by_columns]) if small else None
    return C.Matrix(apply, edge, env, full)


def _once(make: Any) -> Any:
    """``make()``, computed on the first call only (a claim's values cost nothing until it is checked)."""
    box: list = []

    def get() -> Any:
        if not box:
            box.append(make())
        return box[0]

    return get


def _reduce(V: np.ndarray, in_shape: tuple, axes: Any, entry: float) -> np.ndarray:
    k = V.shape[1]
    cols = V.T.reshape((k,) + tuple(in_shape))
    axes = tuple(range(len(in_shape))) if axes is None else axes
    return (entry * np.sum(cols, axis=tuple(a + 1 for a in axes))).reshape(k, -1).T


def _batched_matmul_claim(edge: C.Edge, env: dict, role: int) -> C.Matrix:
    """A batch of products ``x_b @ y_b``: block b of the Jacobian is ``I ⊗ y_bᵀ`` (wrt x) or ``x_b ⊗ I`` (wrt y),
    entries numbered row by row.  The blocks sit on the diagonal where the operand is batched, one above the
    other where it is one matrix every product shares (a weight); applied block by block from those products."""
    X = np.asarray(edge.operands[0], dtype=np.float64)
    Y = np.asarray(edge.operands[1], dtype=np.float64)
    batch = np.broadcast_shapes(X.shape[:-2], Y.shape[:-2])
    xs = np.broadcast_to(X, batch + X.shape[-2:]).reshape(-1, *X.shape[-2:])
    ys = np.broadcast_to(Y, batch + Y.shape[-2:]).reshape(-1, *Y.shape[-2:])
    (a, _), (_, c) = xs.shape[1:], ys.shape[1:]
    blocks = [np.kron(np.eye(a), yb.T) if role == 0 else np.kron(xb, np.eye(c)) for xb, yb in zip(xs, ys)]
    own = X if role == 0 else Y
    shared = own.ndim == 2  # one matrix in every product: its blocks stack (the VJP sums over the batch)

    def apply(env: dict, V: np.ndarray) -> np.ndarray:
        if shared:
            return np.concatenate([B @ V for B in blocks], axis=0)
        cols = V.reshape(len(blocks), own.shape[-2] * own.shape[-1], -1)
        return np.concatenate([B @ v for B, v in zip(blocks, cols)], axis=0)

    full = None
    if len(blocks) * blocks[0].size * (1 if shared else len(blocks)) <= 250_000:
        full = (lambda env: np.concatenate(blocks, axis=0)) if shared else (lambda env: _block_diagonal(blocks))
    return C.Matrix(apply, edge, env, full)


def _block_diagonal(blocks: list) -> np.ndarray:
    rows, cols = blocks[0].shape
    out = np.zeros((rows * len(blocks), cols * len(blocks)))
    for i, B in enumerate(blocks):
        out[i * rows : (i + 1) * rows, i * cols : (i + 1) * cols] = B
    return out


def _index_claim(walk: Any, forms: list, edge: C.Edge, shape: tuple) -> Chain:
    """Each index form (a function of the values written as an explicit sum over the indices) against Jᵀ g."""
    return Chain([_product(walk, (lambda env, f=f: f(env).reshape(shape)), [edge]) for f in forms])


def _matmul_steps(
    walk: Any, view: Any, x: Any, xn: str, t: Any, role: int, dy: str, st: Any, result: str, edge: C.Edge, vjp: Any
) -> list:
    yn = _name(walk, t)
    dx = "d" + xn
    left, right = view.inputs
    ln = walk.names.get(id(left)) or _name(walk, left)
    rn = walk.names.get(id(right)) or _name(walk, right)
    ls, rs = tuple(left.shape), tuple(right.shape)
    if len(ls) > 2 or len(rs) > 2:  # a batch of products: one Kronecker block per product (same batch shapes)
        claim = None
        own = ls if role == 0 else rs
        same_batch = len(ls) == len(rs) and ls[:-2] == rs[:-2]
        if (
            same_batch or min(len(ls), len(rs)) == 2 and len(own) >= 2
        ) and st.kind == "Kronecker product with an identity":
            claim = _batched_matmul_claim(edge, walk.values, role)
        return [
            Step(f"∂{yn}/∂{xn} is {st.description}", "", claim),
            Step(f"⇒ {result}", f"the VJP is {st.vjp}", vjp),
        ]
    L = np.asarray(left.data, dtype=np.float64)
    R = np.asarray(right.data, dtype=np.float64)
    L2 = L.reshape(1, -1) if L.ndim == 1 else L
    R2 = R.reshape(-1, 1) if R.ndim == 1 else R
    m, p = L2.shape[0], R2.shape[1]
    up = edge.upstream
    env = walk.values

    def dy2(env: dict) -> np.ndarray:
        return C.value(up, env, tuple(t.shape)).reshape(m, p)

    one_col = len(rs) == 1 or rs[1] == 1
    steps = []
    n_out, n_in = math.prod(t.shape), math.prod(x.shape)
    small = n_out * n_in <= 250_000
    if role == 0:

        def apply(env: dict, V: np.ndarray) -> np.ndarray:
            k = V.shape[1]
            return np.einsum("kmn,np->kmp", V.T.reshape(k, *L2.shape), R2).reshape(k, -1).T

        full = (lambda env: np.kron(np.eye(m), R2.T)) if small else None
        by_cols = (lambda env: np.kron(R2.T, np.eye(m))) if small else None
        forms = [
            lambda env: np.einsum("kb,ki,jb->ij", dy2(env), np.eye(m), R2),
            lambda env: np.einsum("ib,jb->ij", dy2(env), R2),
        ]
        if len(ls) == 1:
            fwd = f"{yn}_b = Σ_j {xn}_j {rn}_jb" if len(rs) == 2 else f"{yn} = Σ_j {xn}_j {rn}_j"
            index = (
                f"{dx}_j = Σ_b {dy}_b ∂{yn}_b/∂{xn}_j = Σ_b {dy}_b {rn}_jb"
                if len(rs) == 2
                else f"{dx}_j = {dy} ∂{yn}/∂{xn}_j = {dy} {rn}_j"
            )
            forms, why_index = forms[1:], f"{xn} is one row: the sum runs over the second index of {rn}"
            why = f"{_sh(rs)} times {_sh(t.shape)}: a matrix-vector product"
        elif one_col:
            fwd = f"{yn}_k = Σ_j {xn}_kj {rn}_j"
            index = f"{dx}_ij = Σ_k {dy}_k ∂{yn}_k/∂{xn}_ij = Σ_k {dy}_k [k = i] {rn}_j = {dy}_i {rn}_j"
            why_index, why = "only k = i survives", f"{_sh(t.shape)} times {_sh(rs[::-1])}: an outer product"
        else:
            fwd = f"{yn}_kb = Σ_j {xn}_kj {rn}_jb"
            index = (
                f"{dx}_ij = Σ_k Σ_b {dy}_kb ∂{yn}_kb/∂{xn}_ij = Σ_k Σ_b {dy}_kb [k = i] {rn}_jb = Σ_b {dy}_ib {rn}_jb"
            )
            why_index = "only k = i survives"
            why = f"{_sh(t.shape)} times {_sh(rs[::-1])}: a sum of outer products over the {S.dim_text(rs[1])} columns"
    else:

        def apply(env: dict, V: np.ndarray) -> np.ndarray:
            k = V.shape[1]
            return np.einsum("mn,knp->kmp", L2, V.T.reshape(k, *R2.shape)).reshape(k, -1).T

        full = (lambda env: np.kron(L2, np.eye(p))) if small else None
        by_cols = (lambda env: np.kron(np.eye(p), L2)) if small else None
        forms = [
            lambda env: np.einsum("ic,ij,cb->jb", dy2(env), L2, np.eye(p)),
            lambda env: np.einsum("ij,ib->jb", L2, dy2(env)),
        ]
        why = "the transpose belongs to the vector-Jacobian product: input gradient = Jᵀ · output gradient"
        if one_col:
            forms = forms[1:]
            if len(ls) == 1:
                fwd = f"{yn} = Σ_j {ln}_j {xn}_j"
                index = f"{dx}_j = {dy} ∂{yn}/∂{xn}_j = {dy} {ln}_j"
            else:
                fwd = f"{yn}_i = Σ_j {ln}_ij {xn}_j"
                index = f"{dx}_j = Σ_i {dy}_i ∂{yn}_i/∂{xn}_j = Σ_i {dy}_i {ln}_ij"
            why_index = "the sum runs over the first index of " + ln
        elif len(ls) == 1:
            fwd = f"{yn}_b = Σ_j {ln}_j {xn}_jb"
            index = f"{dx}_jb = Σ_c {dy}_c ∂{yn}_c/∂{xn}_jb = Σ_c {dy}_c {ln}_j [c = b] = {ln}_j {dy}_b"
            why_index, why = "only c = b survives", f"{_sh(ls)} times {_sh(t.shape)}: an outer product"
        else:
            fwd = f"{yn}_ib = Σ_j {ln}_ij {xn}_jb"
            index = (
                f"{dx}_jb = Σ_i Σ_c {dy}_ic ∂{yn}_ic/∂{xn}_jb = Σ_i Σ_c {dy}_ic {ln}_ij [c = b] = Σ_i {ln}_ij {dy}_ib"
            )
            why_index = "only c = b survives; the sum runs over the first index of " + ln
    jac = C.Matrix(apply, edge, env, full, by_cols if st.kind != "dense" else None)
    steps.append(Step(f"∂{yn}/∂{xn} = {st.description}", f"{_sh(ls)} times {_sh(rs)}: {fwd}", jac))
    steps.append(Step(index, why_index, _index_claim(walk, forms, edge, tuple(x.shape))))
    steps.append(Step(f"⇒ {result}", why, vjp))
    return steps


def _slices(a: np.ndarray, axes: Optional[tuple[int, ...]]) -> tuple[np.ndarray, Any]:
    """``a`` as (slices × slice length), and how to put such an array back."""
    axes = tuple(range(a.ndim)) if axes is None else axes
    kept = [i for i in range(a.ndim) if i not in axes]
    order = kept + list(axes)
    moved = np.transpose(a, order)
    flat = moved.reshape(-1, math.prod(a.shape[i] for i in axes) if axes else 1)

    def back(b: np.ndarray) -> np.ndarray:
        return np.transpose(b.reshape(moved.shape), np.argsort(order))

    return flat, back


def _softmax_steps(
    walk: Any,
    view: Any,
    xn: str,
    yn: str,
    wrt: str,
    dx: str,
    dy: str,
    st: Any,
    result: str,
    edge: C.Edge,
    vjp: Any,
    prim: str,
) -> list:
    log = prim == "log_softmax"
    shape = tuple(edge.out_shape)
    axes = _axes(edge.params, len(shape))
    up = edge.upstream

    def probabilities() -> tuple:
        out = np.asarray(view.prim.fwd(*edge.operands, *edge.params), dtype=np.float64)
        pv = np.exp(out) if log else out
        return (pv, *_slices(pv, axes))

    values = _once(probabilities)  # (computed when checked)
    small = math.prod(shape) <= 3000
    length = math.prod(shape[a] for a in (axes if axes is not None else range(len(shape))))
    n_slices = math.prod(shape) // max(1, length)

    def apply(env: dict, V: np.ndarray) -> np.ndarray:
        pv, P, back = values()
        if small:
            return C.softmax_blocks(pv, axes, log) @ V
        cols = []  # block by block: (diag(p) − p pᵀ) v or (I − 1 pᵀ) v on each slice
        for v in V.T:
            vs = _slices(v.reshape(shape), axes)[0]
            pv_s = np.sum(P * vs, axis=1, keepdims=True)
            cols.append(back(vs - pv_s if log else P * vs - P * pv_s).reshape(-1))
        return np.stack(cols, axis=1)

    def g(env: dict) -> np.ndarray:
        return _slices(C.value(up, env, shape), axes)[0]

    def eye_minus_p() -> np.ndarray:  # [k = j] − p_j, per slice
        P = values()[1]
        return np.eye(P.shape[1])[None, :, :] - P[:, None, :]

    def P() -> np.ndarray:
        return values()[1]

    def back(b: np.ndarray) -> np.ndarray:
        return values()[2](b)

    if log:
        p = f"exp({yn})"
        index = f"{dx}_j = Σ_k {dy}_k ∂{yn}_k/∂{xn}_j = Σ_k {dy}_k ([k = j] − p_j)"
        final = f"= {dy}_j − p_j Σ_k {dy}_k"
        forms = [
            lambda env: back(np.einsum("sk,skj->sj", g(env), eye_minus_p())),
            lambda env: back(g(env) - P() * np.sum(g(env), axis=1, keepdims=True)),
        ]
    else:
        p = yn
        index = f"{dx}_j = Σ_k {dy}_k ∂{yn}_k/∂{xn}_j = Σ_k {dy}_k {p}_k ([k = j] − {p}_j)"
        final = f"= {p}_j ({dy}_j − Σ_k {dy}_k {p}_k)"
        forms = [
            lambda env: back(np.einsum("sk,sk,skj->sj", g(env), P(), eye_minus_p())),
            lambda env: back(P() * (g(env) - np.sum(g(env) * P(), axis=1, keepdims=True))),
        ]
    if n_slices * length**2 > 4_000_000:
        forms = forms[1:]  # (the [k = j] form would build every block)
    full = (lambda env: C.softmax_blocks(values()[0], axes, log)) if small else None
    jac = C.Matrix(apply, edge, walk.values, full)
    return [
        Step(f"∂{yn}/∂{wrt} = {st.description}", "each slice is normalized on its own", jac),
        Step(
            index + " " + final,
            "within one slice (k, j run over it)" + (f"; p = {p}, the slice's softmax" if log else ""),
            _index_claim(walk, forms, edge, shape),
        ),
        Step(f"⇒ {result}", "one sum per slice instead of the dense block (keepdims keeps it aligned)", vjp),
    ]
