"""``cr.derive(program, shapes)``: the matrix-form backward equations of a small program.

The program runs forward once through the engine (on random values), then the
recorded graph is walked backward applying each primitive's *own* VJP rule to
symbolic arrays (:mod:`.symbolic`).  The resulting formulas are simplified,
printed one per line with their shapes, evaluated with NumPy and compared with
the engine's gradients on the same random values.  For every local Jacobian it
also says how large it would be if it were built, and why it is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..graph import node_of
from ..tensor import Tensor
from . import symbolic as S
from .format import fmt_shape
from .parse import ParseError, Program, evaluate, parse_program
from .trace import ELEMENTWISE

MAX_ELEMENTS = 5_000_000  # per input, for the numerical check


@dataclass
class Line:
    """``name = formula`` with the value's shape."""

    name: str
    formula: Any  # a Sym (or a constant)
    shape: tuple[int, ...]

    def text(self, latex: bool = False) -> str:
        name = S._latex_name(self.name) if latex else self.name
        return f"{name} = {S.render(self.formula, latex)}"


@dataclass
class Jacobian:
    operation: str
    output: str
    input: str
    rows: int
    cols: int
    why: str

    def text(self) -> str:
        n = self.rows * self.cols
        return (
            f"{self.operation}: ∂{self.output}/∂{self.input} would be {self.rows}×{self.cols} "
            f"({_count(n)} numbers, {_bytes(8 * n)}); {self.why}"
        )


@dataclass
class Derivation:
    """Forward and backward equations of a program, the numerical check, and the Jacobians not built."""

    program: str
    forward: list[Line]
    backward: list[Line]
    jacobians: list[Jacobian]
    max_relative_error: float
    errors: dict[str, float] = field(default_factory=dict)
    dims: dict[int, str] = field(default_factory=dict)  # placeholder size -> symbolic dimension (B)

    def shape_text(self, shape: tuple[int, ...]) -> str:
        """``(5, 64)`` -> ``B×64`` where 5 stands for the symbolic dimension B."""
        return fmt_shape(tuple(self.dims.get(d, d) for d in shape))

    def equation(self, name: str) -> str:
        """The backward equation of ``name`` (``"dW"``) as Unicode text, right-hand side only."""
        for line in self.backward:
            if line.name == name:
                return S.render(line.formula)
        raise KeyError(f"derive: no equation for {name!r}; there are {[l.name for l in self.backward]}")

    def _block(self, lines: list[Line], latex: bool) -> list[str]:
        texts = [ln.text(latex) for ln in lines]
        width = max((len(t) for t in texts), default=0)
        return [f"  {t.ljust(width)}   {self.shape_text(ln.shape)}" for t, ln in zip(texts, lines)]

    def __str__(self) -> str:
        out = ["forward:"] + self._block(self.forward, False)
        out += ["backward (d<name> is the gradient of the output with respect to <name>):"]
        out += self._block(self.backward, False)
        check = f"checked on random inputs: max relative error {self.max_relative_error:.1e}"
        if self.dims:
            check += " (with " + ", ".join(f"{n} = {v}" for v, n in self.dims.items()) + ")"
        out.append(check)
        if self.jacobians:
            out.append("local Jacobians (never built" + (", sizes for the values above" if self.dims else "") + "):")
            out += ["  " + j.text() for j in self.jacobians]
        out.append("⊙ is the elementwise product, · the matrix product, ᵀ the transpose, Σ_rows the sum over rows")
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"<Derivation of {len(self.backward)} gradients, max relative error {self.max_relative_error:.1e}>"

    def latex(self) -> str:
        """The equations in a LaTeX ``aligned`` block (shapes as comments on the right)."""
        rows = []
        for ln in self.forward + self.backward:
            name = S._latex_name(ln.name)
            shape = self.shape_text(ln.shape).replace("×", r" \times ") if ln.shape else r"\text{scalar}"
            rows.append(f"  {name} &= {S.render(ln.formula, True)} && {shape} \\\\")
        return "\\begin{aligned}\n" + "\n".join(rows) + "\n\\end{aligned}"

    def _repr_markdown_(self) -> str:
        return (
            "$$\n"
            + self.latex()
            + "\n$$\n\n"
            + f"checked on random inputs: max relative error {self.max_relative_error:.1e}"
        )


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"{n:.2e}"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"


def _why(prim_name: str, same_shape: bool) -> str:
    if prim_name in ("add", "sub", "neg"):
        return "± the identity: the gradient passes through" + (
            "" if same_shape else ", summed over the broadcast axes"
        )
    if prim_name in ELEMENTWISE:
        return "diagonal (elementwise): the VJP is an elementwise product" + (
            "" if same_shape else ", summed over the broadcast axes"
        )
    if prim_name == "matmul":
        return "mostly zeros (a Kronecker product with an identity): the VJP is a matrix product"
    if prim_name in ("sum", "mean"):
        return "a row of ones (or 1/n): the VJP broadcasts the upstream gradient"
    if prim_name in ("softmax", "log_softmax"):
        return "dense only within each slice (diag(p) − p pᵀ): the VJP needs one sum per slice"
    if prim_name in ("logsumexp", "max", "min"):
        return "one row per slice: the VJP scales the broadcast upstream gradient"
    return "a selection or permutation: the VJP moves the entries back"


def derive(
    program: str,
    shapes: Mapping[str, Any],
    *,
    constants: Iterable[str] = (),
    seed: int = 0,
    check: bool = True,
) -> Derivation:
    """The backward equations of ``program`` in matrix form.

    ``program`` is ``"z = W @ a + b; h = sigmoid(z); E = sum(h)"`` (assignments
    separated by ``;`` or newlines, in the safe expression language); ``shapes``
    maps each input to its shape, e.g. ``{"W": (64, 32), "a": (32, 1), "b": (64, 1)}``.
    The output is the last assignment; a non-scalar output is seeded with ones.
    Inputs named in ``constants`` (labels, targets) get no gradient equation.
    """
    import chainrule as cr

    prog = parse_program(program)
    if prog.output is None:
        raise ParseError("the program must end with an assignment, as in  E = sum(h)", kind="syntax")
    shapes, dims = _concrete_shapes(shapes)
    for name in shapes:
        if name not in prog.inputs:
            raise ParseError(
                f"unknown name '{name}' in the shapes: the program's inputs are " + ", ".join(prog.inputs),
                kind="unknown name",
            )
    constants = tuple(constants)
    for name in constants:
        if name not in prog.inputs:
            raise ParseError(
                f"unknown constant '{name}': the program's inputs are " + ", ".join(prog.inputs), kind="unknown name"
            )
    missing = [n for n in prog.inputs if n not in shapes]
    if missing:
        raise ParseError(
            "missing shape for " + ", ".join(missing) + " (give it as NAME=64x32, or NAME=scalar)", kind="missing value"
        )
    for name, shp in shapes.items():
        if math.prod(shp) > MAX_ELEMENTS:
            raise ParseError(f"{name} has {math.prod(shp)} elements (limit {MAX_ELEMENTS})", kind="limit")

    rng = np.random.default_rng(seed)
    env = _forward(prog, shapes, constants, rng, cr)
    out_t = env[prog.output]
    if not isinstance(out_t, Tensor) or not out_t.requires_grad:
        raise ParseError(f"the output {prog.output} does not depend on the inputs", kind="value")
    names = {id(t): n for n, t in reversed(list(env.items())) if isinstance(t, Tensor)}

    forward, backward, jacobians = _symbolic(prog, env, names)
    errors: dict[str, float] = {}
    worst = 0.0
    if check:
        errors = _check(prog, env, backward, out_t)
        worst = max(errors.values(), default=0.0)
    return Derivation(program, forward, backward, jacobians, worst, errors, dims)


def _concrete_shapes(shapes: Mapping[str, Any]) -> tuple[dict[str, tuple[int, ...]], dict[int, str]]:
    """Shapes as int tuples; symbolic dimensions (``"B"``) get distinct sizes not used by any numeric dimension."""
    raw: dict[str, tuple] = {}
    for k, v in shapes.items():
        dims = (v,) if isinstance(v, (int, np.integer, str)) else tuple(v) if isinstance(v, (tuple, list)) else None
        if dims is None or not all(
            isinstance(d, str) or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)
            for d in dims
        ):
            raise ParseError(
                f"the shape of {k}, {v!r}, is not a tuple of non-negative integers or names such as B", kind="shape"
            )
        raw[k] = dims
    numeric = {int(d) for v in raw.values() for d in v if not isinstance(d, str)}
    symbols = sorted({d for v in raw.values() for d in v if isinstance(d, str)})
    sizes: dict[str, int] = {}
    candidate = 7
    for sym in symbols:
        if not sym.isidentifier():
            raise ParseError(f"the dimension {sym!r} is neither a number nor a name such as B", kind="shape")
        while candidate in numeric or candidate in sizes.values():
            candidate += 1
        sizes[sym] = candidate
        candidate += 1
    out = {k: tuple(sizes[d] if isinstance(d, str) else int(d) for d in v) for k, v in raw.items()}
    return out, {v: k for k, v in sizes.items()}


def _forward(prog: Program, shapes: Mapping[str, tuple], constants: tuple, rng: Any, cr: Any) -> dict:
    for attempt in range(2):
        env: dict[str, Any] = {}
        for name in prog.inputs:
            shp = shapes[name]
            raw = rng.standard_normal(shp) if attempt == 0 else rng.uniform(0.2, 1.0, shp)
            env[name] = cr.tensor(raw if shp else float(raw), requires_grad=name not in constants)
        ok = True
        for st in prog.statements:
            value = evaluate(st.expr, env)
            if not isinstance(value, Tensor):
                value = cr.tensor(value)
            env[st.target] = value
            if not np.all(np.isfinite(value.data)):
                ok = False
        if ok:
            break
    return env


def _symbolic(prog: Program, env: dict, names: dict[int, str]) -> tuple[list[Line], list[Line], list[Jacobian]]:
    from ..autodiff import toposort

    out_t = env[prog.output]
    order = toposort([out_t])
    fwd_cache: dict[int, Any] = {}

    def fwd(t: Any, expand: bool = False) -> Any:
        """The forward value as a formula: named values are variables, others are expanded."""
        if t is None:
            return None
        key = id(t)
        if key in names and not expand:
            return S.var(names[key], t.shape)
        if t._node is None:
            return S.const(t.item()) if t.size == 1 else S.var("const", t.shape)
        if key in fwd_cache and not expand:
            return fwd_cache[key]
        view = node_of(t)
        ins = tuple(fwd(x) if x is not None else view.args[i] for i, x in enumerate(view.inputs))
        sym = S.prim(view.prim, ins, view.params, t.shape)
        if not expand:
            fwd_cache[key] = sym
        return sym

    forward = [
        Line(st.target, S.simplify(fwd(env[st.target], expand=True)), env[st.target].shape)
        for st in prog.statements
        if st.target is not None and env[st.target]._node is not None
    ]

    remaining: dict[int, int] = {}
    for t in order:
        for x in node_of(t).inputs:
            if x is not None and x._node is None and x.requires_grad:
                remaining[id(x)] = remaining.get(id(x), 0) + 1
    leaf_rank = {id(env[n]): i for i, n in enumerate(prog.inputs)}
    pending: list[Tensor] = []
    grads: dict[int, Any] = {id(out_t): S.const(1.0, out_t.shape)}
    backward: list[Line] = []
    jacobians: list[Jacobian] = []

    def flush() -> None:
        for leaf in sorted(pending, key=lambda t: leaf_rank.get(id(t), 0)):
            backward.append(_line("d" + names[id(leaf)], grads[id(leaf)], leaf.shape))
        pending.clear()

    for t in order:
        key = id(t)
        g = grads.pop(key, None)
        if g is None:
            continue
        if key in names:
            flush()
            backward.append(_line("d" + names[key], g, t.shape))
            if key != id(out_t):
                g = S.var("d" + names[key], t.shape)
        view = node_of(t)
        prim = view.prim
        args = tuple(fwd(x) if x is not None else view.args[i] for i, x in enumerate(view.inputs)) + view.params
        out_sym = fwd(t)
        for i, x in enumerate(view.inputs):
            if x is None or not x.requires_grad or not prim.differentiable(i):
                continue
            rule = prim.vjps[0] if prim.variadic else prim.vjps[i]
            gi = rule(S.SYM, g, out_sym, i, *args) if prim.variadic else rule(S.SYM, g, out_sym, *args)
            gi = S._unbroadcast(gi, x.shape)
            grads[id(x)] = gi if id(x) not in grads else grads[id(x)] + gi
            in_name = names.get(id(x), "(" + S.render(S.simplify(fwd(x))) + ")")
            out_name = names.get(key, "(" + S.render(S.simplify(fwd(t))) + ")")
            op_text = S.render(S.simplify(fwd(t, expand=True)))
            if t.size * x.size > 1:
                jacobians.append(
                    Jacobian(op_text, out_name, in_name, t.size, x.size, _why(prim.name, x.shape == t.shape))
                )
            if x._node is None:
                remaining[id(x)] -= 1
                if remaining[id(x)] == 0:
                    pending.append(x)
    flush()
    return forward, backward, jacobians


def _line(name: str, formula: Any, shape: tuple[int, ...]) -> Line:
    simple = S._loose(S.simplify(formula))
    return Line(name, simple, shape)


def _check(prog: Program, env: dict, backward: list[Line], out_t: Tensor) -> dict[str, float]:
    """Evaluate the equations with NumPy and compare with the engine's gradients."""
    import chainrule as cr

    values = {n: (t.data if isinstance(t, Tensor) else np.asarray(t)) for n, t in env.items()}
    targets = [ln.name[1:] for ln in backward]
    tensors = [env[n] for n in targets]
    seed = None if out_t.shape == () else np.ones(out_t.shape)
    engine = cr.autograd_grad(out_t, tensors, grad_outputs=seed, retain_graph=True, allow_unused=True)
    errors = {}
    for ln, ref in zip(backward, engine):
        got = np.broadcast_to(np.asarray(S.evaluate(ln.formula, values), dtype=np.float64), ln.shape)
        values[ln.name] = got
        ref_v = np.zeros(ln.shape) if ref is None else np.asarray(ref.data, dtype=np.float64)
        scale = max(float(np.max(np.abs(ref_v))) if ref_v.size else 0.0, 1e-300)
        diff = float(np.max(np.abs(got - ref_v))) if ref_v.size else 0.0
        errors[ln.name] = diff / scale if scale > 1e-300 else diff
    return errors
