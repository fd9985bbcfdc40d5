"""``cr.derive(program, shapes)``: the matrix-form backward equations of a small program, checked independently.

The program runs forward once through the engine (to record its graph), then
the graph is walked backward applying each primitive's *own* VJP rule to
symbolic arrays (:mod:`.symbolic`).  The result is data (:class:`Derivation`):
equations with their shapes and reasoning steps, local Jacobians with their
structure (:mod:`.derive_jacobian`), and the check.  Text, LaTeX, JSON, HTML and
the exported NumPy module are views of that record.

The check does not use the engine's gradients: the NumPy module generated from
the printed equations (:mod:`.derive_numpy`) is compared with central
differences of the forward program at two values of each symbolic size
(:mod:`.derive_check`).  Work and memory are bounded from the shapes before
anything runs (:mod:`.budget`, the budget every command shares); intermediate
values that a formula would repeat get their own names (``u1``), so nested
softmaxes stay linear.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..autodiff import toposort
from ..creation import tensor
from ..graph import node_of
from ..saved import keep_values
from ..tensor import Tensor
from ..walk import Backprop
from ..walk import walk as backward_walk
from .budget import DEFAULT_MAX_NUMBERS, program_cost, refuse_over_budget
from .derive_check import CheckResult
from .derive_check import check as run_check
from .derive_jacobian import Structure, structure
from .derive_numpy import ExportError, module_source
from .derive_run import load
from .derive_steps import FINAL, Step, operand_text
from .parse import ParseError, Program, evaluate, parse_program

MAX_ELEMENTS = 5_000_000  # per input
AUTO_NAME_SIZE = 12  # an unnamed value whose formula is bigger than this gets a name (u1, u2, ...)


@dataclass
class Line:
    """``name = formula`` with the value's shape, and (backward lines) the steps that lead to it."""

    name: str
    formula: Any  # a Sym (or a constant)
    shape: tuple[int, ...]
    steps: list[Step] = field(default_factory=list)

    def text(self, latex: bool = False) -> str:
        name = S._latex_name(self.name) if latex else self.name
        return f"{name} = {S.render(self.formula, latex)}"


@dataclass
class Jacobian:
    """The local Jacobian ``∂output/∂input`` of one operation: its size and structure (never built)."""

    operation: str  # the operation in the program's own syntax, e.g. "W @ a"
    output: str
    input: str
    rows: int
    cols: int
    structure: Structure
    # how to rebuild it: the primitive, which operand, its static parameters, and each operand
    # as ("tensor", shape) or ("const", value)
    primitive: Any = field(default=None, repr=False)
    role: int = 0
    params: tuple = ()
    operands: tuple = ()
    shared: int = 0  # how often the operand occurs in this one operation, where more than once (q * q)

    @property
    def why(self) -> str:
        return f"{self.structure.description}; the VJP is {self.structure.vjp}"

    def text(self) -> str:
        n = self.rows * self.cols
        wrt = self.input if self.input.isidentifier() else f"({self.input})"
        if self.shared:
            wrt += f" (as operand {self.role + 1}; {self.input} is used {self.shared} times here, the terms add)"
        return (
            f"∂({self.operation})/∂{wrt}: {self.rows}×{self.cols} "
            f"({_count(n)} numbers, {_bytes(8 * n)}, {'' if self.structure.exact else 'at most '}"
            f"{_count(self.structure.nonzeros)} nonzero): {self.why}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "of_expr": self.operation,
            "wrt": self.input,
            "rows": self.rows,
            "cols": self.cols,
            "structure": self.structure.kind,
            "nonzeros": self.structure.nonzeros,
            "nonzeros_exact": self.structure.exact,
            "description": self.structure.description,
            "operand": self.role,
        }


@dataclass
class Derivation:
    """Forward and backward equations of a program, their steps, the local Jacobians, and the check."""

    program: str
    forward: list[Line]
    backward: list[Line]
    jacobians: list[Jacobian]
    check: Optional[CheckResult]
    dims: dict[int, str] = field(default_factory=dict)  # placeholder size -> symbolic dimension (B)
    seed: str = ""  # what the backward pass starts from
    numpy_source: str = ""
    export_error: str = ""
    input_shapes: dict = field(default_factory=dict)  # at the placeholder sizes

    def own_layout(self) -> str:
        """``"column"`` when weights multiply from the left (``W @ a``), ``"row"`` when from the right (``x @ W``)."""
        from .derive_layout import own_layout

        return own_layout(self)

    def layout(self, which: str) -> str:
        """The equations in the ``"column"`` or ``"row"`` layout (the other one is the transposed program)."""
        from .derive_layout import layout_text

        if which not in ("column", "row"):
            raise ValueError(f"layout must be 'column' or 'row', not {which!r}")
        if which == self.own_layout():
            return f"{which} layout (as written):\n" + "\n".join(
                self._block(self.forward) + ["  --"] + self._block(self.backward)
            )
        return layout_text(self, which)

    # --- compatibility and small accessors ---------------------------------------------------------
    @property
    def max_relative_error(self) -> float:
        return float("nan") if self.check is None else self.check.max_relative_error

    @property
    def errors(self) -> dict[str, float]:
        return {} if self.check is None else dict(self.check.errors)

    @property
    def ok(self) -> bool:
        """True when the check was made and passed."""
        return self.check is not None and self.check.ok

    @property
    def steps(self) -> dict[str, list[Step]]:
        """For each gradient, the steps from the index form to the printed matrix form."""
        return {ln.name: ln.steps for ln in self.backward}

    def shape_text(self, shape: tuple[int, ...]) -> str:
        """``(7, 64)`` -> ``B×64`` where 7 stands for the symbolic dimension B."""
        with S.dims_context(self.dims):
            return S.shape_text(tuple(shape))

    def equation(self, name: str) -> str:
        """The backward equation of ``name`` (``"dW"``) as Unicode text, right-hand side only."""
        for line in self.backward:
            if line.name == name:
                with S.dims_context(self.dims):
                    return S.render(line.formula)
        raise KeyError(f"derive: no equation for {name!r}; there are {[ln.name for ln in self.backward]}")

    def numpy(self) -> str:
        """The self-contained NumPy module (``backward(**inputs)``) generated from the printed equations."""
        if not self.numpy_source:
            raise ExportError(self.export_error or "derive: no NumPy export")
        return self.numpy_source

    # --- text --------------------------------------------------------------------------------------
    def _block(self, lines: list[Line], latex: bool = False) -> list[str]:
        with S.dims_context(self.dims):
            texts = [ln.text(latex) for ln in lines]
            width = max((len(t) for t in texts), default=0)
            return [f"  {t.ljust(width)}   {S.shape_text(ln.shape)}" for t, ln in zip(texts, lines)]

    def check_text(self) -> str:
        if self.check is None:
            return "not checked (check=False)"
        return self.check.text()

    def legend(self) -> list[str]:
        """One line per notation the equations use."""
        return _legend(self.forward + self.backward, self.dims)

    def steps_text(self) -> str:
        out = ["steps (index form → matrix form; d<name> is ∂(output)/∂<name>):"]
        with S.dims_context(self.dims):
            for ln in self.backward:
                if not ln.steps:
                    continue
                out.append(f"  {ln.name}  ({S.shape_text(ln.shape)}):")
                for st in ln.steps:
                    out.append(f"    {st.text}" + (f"      [{st.reason}]" if st.reason else ""))
        return "\n".join(out)

    def text(self, steps: bool = False) -> str:
        out = ["forward:"] + self._block(self.forward)
        out += ["backward (d<name> is the gradient of the output with respect to <name>):"]
        if self.seed:
            out.append("  " + self.seed)
        out += self._block(self.backward)
        out.append(self.check_text())
        if steps:
            out.append(self.steps_text())
        if self.jacobians:
            sizes = ", sizes at " + ", ".join(f"{n} = {v}" for v, n in self.dims.items()) if self.dims else ""
            out.append(f"local Jacobians (never built{sizes}):")
            with S.dims_context(self.dims):
                out += ["  " + j.text() for j in self.jacobians]
        out.append("notation:")
        out += ["  " + t for t in self.legend()]
        if steps:
            out += ["  " + t for t in STEPS_LEGEND]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        status = "unchecked" if self.check is None else self.check.status
        worst = self.max_relative_error
        return f"<Derivation of {len(self.backward)} gradients, check {status}, max relative error {worst:.1e}>"

    # --- other views -------------------------------------------------------------------------------
    def latex(self) -> str:
        """The equations in a LaTeX ``aligned`` block (shapes on the right)."""
        rows = []
        with S.dims_context(self.dims):
            for ln in self.forward + self.backward:
                name = S._latex_name(ln.name)
                shape = S.shape_text(ln.shape, r" \times ") if ln.shape else r"\text{scalar}"
                rows.append(f"  {name} &= {S.render(ln.formula, True)} && {shape} \\\\")
        return "\\begin{aligned}\n" + "\n".join(rows) + "\n\\end{aligned}"

    def latex_document(self) -> str:
        """A complete LaTeX document (equations, check, Jacobian notes) that ``pdflatex`` compiles."""
        notes = []
        with S.dims_context(self.dims):
            for j in self.jacobians:
                notes.append(r"\item " + _tex_text(j.text()))
        body = [
            r"\documentclass{article}",
            r"\usepackage{amsmath,amssymb}",
            r"\begin{document}",
            r"\section*{Backward equations}",
            r"\[",
            self.latex(),
            r"\]",
            _tex_text(self.check_text()) + r"\par",
        ]
        steps = []
        for ln in self.backward:
            if ln.steps:
                steps.append(r"\item " + _tex_text(ln.name) + r"\begin{itemize}")
                steps += [
                    r"\item " + _tex_text(st.text) + (r" \emph{(" + _tex_text(st.reason) + ")}" if st.reason else "")
                    for st in ln.steps
                ]
                steps.append(r"\end{itemize}")
        if steps:
            body += [r"\section*{Steps}", r"\begin{itemize}", *steps, r"\end{itemize}"]
        if notes:
            body += [r"\section*{Local Jacobians}", r"\begin{itemize}", *notes, r"\end{itemize}"]
        body.append(r"\end{document}")
        return "\n".join(body) + "\n"

    def as_dict(self) -> dict[str, Any]:
        with S.dims_context(self.dims):
            return {
                "program": self.program,
                "sizes": {n: v for v, n in self.dims.items()},
                "forward": [
                    {"name": ln.name, "text": S.render(ln.formula), "shape": S.shape_text(ln.shape)}
                    for ln in self.forward
                ],
                "seed": self.seed,
                "equations": [
                    {
                        "name": ln.name,
                        "text": S.render(ln.formula),
                        "shape": S.shape_text(ln.shape),
                        "steps": [s.as_dict() for s in ln.steps],
                    }
                    for ln in self.backward
                ],
                "jacobians": [j.as_dict() for j in self.jacobians],
                "check": None if self.check is None else self.check.as_dict(),
                "legend": self.legend(),
            }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, ensure_ascii=False)

    def _repr_latex_(self) -> str:
        return "$$\n" + self.latex() + "\n$$"

    def _repr_html_(self) -> str:
        """Plain HTML (no MathJax, no network): equations, the check, steps and Jacobian notes."""
        esc = html.escape
        parts = ["<div class='chainrule-derivation'>", "<h4>forward</h4><pre>"]
        parts.append(esc("\n".join(self._block(self.forward))))
        parts.append("</pre><h4>backward</h4><pre>")
        parts.append(esc("\n".join(([self.seed] if self.seed else []) + self._block(self.backward))))
        parts.append(f"</pre><p><b>{esc(self.check_text())}</b></p>")
        parts.append("<details open><summary>steps</summary><pre>" + esc(self.steps_text()) + "</pre></details>")
        if self.jacobians:
            with S.dims_context(self.dims):
                items = "".join(f"<li>{esc(j.text())}</li>" for j in self.jacobians)
            parts.append(f"<details><summary>local Jacobians</summary><ul>{items}</ul></details>")
        parts.append("<p>" + "<br>".join(esc(t) for t in self.legend()) + "</p></div>")
        return "".join(parts)


STEPS_LEGEND = (
    "in the steps: x_i is entry i of x; [k = i] is 1 when k = i, else 0; I_n is the n×n identity; "
    "A ⊗ B between matrices is the Kronecker product; diag(v) is the diagonal matrix with v on its diagonal",
)


def _tex_text(text: str) -> str:
    """Plain text (with Unicode math) for a LaTeX paragraph."""
    table = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\~{}",
        "^": r"\^{}",
        "×": r"$\times$",
        "∂": r"$\partial$",
        "⊗": r"$\otimes$",
        "ᵀ": r"$^\top$",
        "−": "-",
        "⊙": r"$\odot$",
        "·": r"$\cdot$",
        "Σ": r"$\Sigma$",
        "σ": r"$\sigma$",
        "≥": r"$\ge$",
        "≤": r"$\le$",
        "′": "'",
        "⇒": r"$\Rightarrow$",
        "→": r"$\to$",
        "≠": r"$\ne$",
        "√": r"$\surd$",
        "±": r"$\pm$",
        "₍": "(",
        "₎": ")",
        "⁺": "+",
        "²": r"$^2$",
        "³": r"$^3$",
        "ⁿ": r"$^n$",
        "⁻": r"$^-$",
        "¹": r"$^1$",
        "…": r"\ldots{}",
    }
    return "".join(table.get(ch, ch if ord(ch) < 128 else "?") for ch in text)


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"{n:.2e}"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"


def _legend(lines: list[Line], dims: Mapping[int, str]) -> list[str]:
    seen: set[str] = set()
    for ln in lines:
        for node in S.nodes(ln.formula):
            seen.add(node.op)
            if node.op == "sum":
                full = len(node.params[0]) == len(S.shape_of(node.args[0]))
                seen.add("sum:" + ("keep" if node.params[1] else "all" if full else "drop"))
            if node.op == "prim":
                seen.add("prim:" + node.params[0].name)
                if len(node.params) > 2 and node.params[2] is True:
                    seen.add("prim:keepdims")
                if node.params[0].name == "minimum":
                    seen.add("prim:maximum")
            if node.op in ("const", "sconst") and node.shape:
                seen.add("ones")
            if node.op == "transpose" and len(node.shape) > 2:
                seen.add("batchT")
    out = ["dX is ∂(output)/∂X, the same shape as X; shapes are on the right (rows×columns)"]
    table = [
        ("mul", "a ⊙ b: elementwise product (NumPy a * b, broadcasting); a scalar factor is written in front, c a"),
        ("div", "a / b: elementwise division"),
        ("matmul", "A · B: matrix product (NumPy A @ B)"),
        ("transpose", "Aᵀ: transpose (NumPy A.T)"),
        ("batchT", "on a stack of matrices ᵀ transposes each one (swaps the last two axes)"),
        ("outer", "u ⊗ v: outer product of two vectors (NumPy np.outer(u, v))"),
        ("sum:all", "Σ X: the sum of all entries of X"),
        (
            "sum:drop",
            "Σ_rows X, Σ_cols X, Σ_axis k X: sum over the rows (axis 0), the columns (axis 1) or axis k, "
            "which drops that axis",
        ),
        (
            "sum:keep",
            "Σ_rows(X, keepdims), Σ_cols(X, keepdims): the sum over rows (axis 0) or columns (axis 1), keeping that "
            "axis with length 1 (NumPy keepdims=True)",
        ),
        ("cmp", "[a > b]: 1 where the comparison holds, else 0"),
        ("ones", "ones(m×n): the m×n array of ones; c ones(m×n) is that array times c"),
        ("broadcast", "broadcast(x, m×n): x repeated to shape m×n"),
        ("reshape", "reshape(x, m×n): the same entries in shape m×n"),
        ("where", "where(c, a, b): a where c holds, else b"),
        ("scatter", "scatter(g, index, shape): zeros of that shape with g added at index"),
        ("pow", "x², xⁿ: elementwise powers"),
        ("fn", "f: a generic elementwise function, f′ its derivative (the check uses f = sin as a stand-in)"),
        ("prim:sigmoid", "σ(x) = 1 / (1 + exp(−x)), elementwise"),
        ("prim:relu", "relu(x) = max(x, 0), elementwise"),
        ("prim:softmax", "softmax(x, axis=k): exp(x) / Σ exp(x) along axis k"),
        ("prim:log_softmax", "log_softmax(x, axis=k) = x − logsumexp(x, axis=k)"),
        ("prim:logsumexp", "logsumexp(x, axis=k) = log Σ exp(x) along axis k"),
        ("prim:mean", "mean(x, axis=k): the average along axis k (all axes when no axis is given)"),
        ("prim:max", "max(x, axis=k): the largest entry along axis k"),
        ("prim:min", "min(x, axis=k): the smallest entry along axis k"),
        ("prim:keepdims", "…, keepdims) in a reduction: the reduced axis stays, with length 1 (NumPy keepdims=True)"),
        ("sqrt", "√(x): the elementwise square root"),
        ("sign", "sign(x): −1, 0 or 1, elementwise"),
        ("prim:abs", "abs(x): |x|, elementwise"),
        ("prim:maximum", "maximum(a, b), minimum(a, b): elementwise larger / smaller"),
    ]
    out += [text for key, text in table if key in seen]
    if dims or "sconst" in seen:
        names = ", ".join(sorted(set(dims.values())))
        out.append(f"{names}: symbolic sizes (the equations hold for every value)")
    return out


def derive(
    program: str,
    shapes: Mapping[str, Any],
    *,
    constants: Iterable[str] = (),
    seed: int = 0,
    check: bool = True,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> Derivation:
    """The backward equations of ``program`` in matrix form, checked against central differences.

    ``program`` is ``"z = W @ a + b; h = sigmoid(z); E = sum(h)"`` (assignments
    separated by ``;`` or newlines, in the safe expression language); ``shapes``
    maps each input to its shape, e.g. ``{"W": (64, 32), "a": (32, 1), "b": (64, 1)}``,
    where a dimension may be a name such as ``"B"`` (a symbolic size).  The output is
    the last assignment; a non-scalar output is seeded with ones.  Inputs named in
    ``constants`` (labels, targets) get no gradient equation.  A program whose values and gradients would hold
    more than ``max_numbers`` numbers (counted from the shapes, at the largest sizes it runs at) is refused
    before anything runs (:mod:`.budget`).
    """
    prog = parse_program(_generic(program))
    prog.generic = _generic(program) != program  # type: ignore[attr-defined]  (sin stands for f)
    if prog.output is None:
        raise ParseError("the program must end with an assignment, as in  E = sum(h)", kind="syntax")
    raw = _raw_shapes(shapes)
    for name in raw:
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
    missing = [n for n in prog.inputs if n not in raw]
    if missing:
        raise ParseError(
            "missing shape for " + ", ".join(missing) + " (give it as NAME=64x32, or NAME=scalar)", kind="missing value"
        )
    numeric = {int(d) for v in raw.values() for d in v if not isinstance(d, str)}
    symbols = sorted({d for v in raw.values() for d in v if isinstance(d, str)})
    for sym in symbols:
        if not sym.isidentifier():
            raise ParseError(f"the dimension {sym!r} is neither a number nor a name such as B", kind="shape")
    sizes1 = _placeholders(symbols, numeric, 7)
    concrete = _at(raw, sizes1)
    for name, shp in concrete.items():
        if math.prod(shp) > MAX_ELEMENTS:
            raise ParseError(f"{name} has {math.prod(shp):,} elements (limit {MAX_ELEMENTS:,})", kind="limit")
    sizes2 = _placeholders(symbols, numeric | set(sizes1.values()), max(sizes1.values()) + 4) if symbols else {}
    for shapes_run in (concrete, _at(raw, sizes2)) if symbols else (concrete,):  # the second run is the larger
        refuse_over_budget(program_cost(prog, shapes_run), max_numbers, what="this program", advice=_SMALLER)

    dims1 = {v: k for k, v in sizes1.items()}
    with S.dims_context(dims1):
        first = _derive_at(prog, concrete, constants)
    forward, backward, jacobians, seed_text, targets = first
    if symbols:  # the same derivation at other sizes tells which constants are sizes (1/B)
        second = _derive_at(prog, _at(raw, sizes2), constants)
        if [ln.name for ln in second[0] + second[1]] == [ln.name for ln in forward + backward]:
            for a, b in zip(forward + backward, second[0] + second[1]):
                a.formula = S.symbolize(a.formula, b.formula, sizes1, sizes2)
    with S.dims_context(dims1):
        for ln in backward:
            final = S.render(ln.formula)
            for st in ln.steps:
                st.text = st.text.replace(FINAL, final)
        _inline_steps(backward, constants)
    result = Derivation(program, forward, backward, jacobians, None, dims1, seed_text, input_shapes=concrete)
    try:
        result.numpy_source = module_source(
            program, prog.inputs, concrete, forward, backward, [(n, "d" + n) for n in targets], dims1
        )
    except ExportError as exc:
        result.export_error = str(exc)
    if check:
        result.check = _check(prog, result, raw, symbols, numeric, constants, targets, seed)
        if getattr(prog, "generic", False):
            result.check.note = f"with f = {STAND_IN} standing in for the generic f"
    return result


_SMALLER = "the equations do not depend on the sizes: use smaller shapes, or a symbolic size such as B"


GENERIC = re.compile(r"(?<![\w.])f\s*\(")
STAND_IN = "sin"  # what a generic f(z) computes when the equations are checked


def _generic(program: str) -> str:
    """``f(z)`` (an unspecified elementwise function) becomes the stand-in ``sin(z)`` for running and checking."""
    if not GENERIC.search(program):
        return program
    if re.search(r"(?<![\w.])sin\s*\(", program):
        raise ParseError(
            "f(...) is a generic elementwise function, checked with sin standing in for it; "
            "a program that uses f may not also use sin",
            kind="not allowed",
        )
    return GENERIC.sub("sin(", program)


def _check(
    prog: Program,
    result: Derivation,
    raw: dict,
    symbols: list,
    numeric: set,
    constants: tuple,
    targets: list[str],
    seed: int,
) -> CheckResult:
    if not result.numpy_source:
        return CheckResult("not made", [], reason=result.export_error)
    backward = load(result.numpy_source)
    if symbols:
        size_sets = [_placeholders(symbols, numeric, 3), None]
        size_sets[1] = _placeholders(symbols, numeric | set(size_sets[0].values()), max(size_sets[0].values()) + 1)
    else:
        size_sets = [{}]
    wanted = [(n, "d" + n) for n in targets if n != prog.output]
    return run_check(prog, backward, lambda s: _at(raw, s), size_sets, wanted, constants, seed)


def _raw_shapes(shapes: Mapping[str, Any]) -> dict[str, tuple]:
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
    return raw


def _placeholders(symbols: list[str], avoid: set[int], start: int) -> dict[str, int]:
    """Distinct sizes for the symbols, none equal to a numeric dimension (so no coincidence hides a bug)."""
    out: dict[str, int] = {}
    candidate = start
    for sym in symbols:
        while candidate in avoid or candidate in out.values() or candidate < 2:
            candidate += 1
        out[sym] = candidate
        candidate += 1
    return out


def _at(raw: Mapping[str, tuple], sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(sizes[d] if isinstance(d, str) else int(d) for d in v) for k, v in raw.items()}


def _derive_at(prog: Program, shapes: Mapping[str, tuple], constants: tuple) -> tuple:
    rng = np.random.default_rng(0)
    env: dict[str, Any] = {}
    for name in prog.inputs:
        shp = shapes[name]
        raw = rng.standard_normal(shp)
        # every input is recorded (so formulas of constants, such as 1 − y, are kept); gradients skip constants
        env[name] = tensor(raw if shp else float(raw), requires_grad=True)
    with np.errstate(all="ignore"), keep_values():  # values only record the graph; overflow is harmless here
        for st in prog.statements:
            value = evaluate(st.expr, env)
            env[st.target] = value if isinstance(value, Tensor) else tensor(value)
    out_t = env[prog.output]
    if not isinstance(out_t, Tensor) or not _varies(out_t, env, constants):
        raise ParseError(f"the output {prog.output} does not depend on the inputs that get gradients", kind="value")
    names = {id(t): n for n, t in reversed(list(env.items())) if isinstance(t, Tensor)}
    return _symbolic(prog, env, names, constants)


def _varies(out_t: Tensor, env: dict, constants: tuple) -> bool:

    live = {id(env[n]) for n in env if n not in constants and isinstance(env[n], Tensor) and env[n]._node is None}
    for t in reversed(toposort([out_t])):
        if any(x is not None and id(x) in live for x in node_of(t).inputs):
            live.add(id(t))
    return id(out_t) in live


class _Walk:
    """The symbolic backward walk over one recorded graph."""

    def __init__(self, env: dict, names: dict[int, str], generic: bool = False) -> None:
        self.env = env
        self.names = names
        self.cache: dict[int, Any] = {}
        self.generic = generic  # sin nodes stand for the generic f

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
        ins = tuple(self.fwd(x) if x is not None else view.args[i] for i, x in enumerate(view.inputs))
        if self.generic and view.prim.name == STAND_IN:
            sym = S.Sym("fn", ins, t.shape, ("f",))
        else:
            sym = S.prim(view.prim, ins, view.params, t.shape)
        if not expand:
            self.cache[key] = sym
        return sym

    def args(self, t: Any) -> tuple:
        view = node_of(t)
        return tuple(self.fwd(x) if x is not None else view.args[i] for i, x in enumerate(view.inputs)) + view.params

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
        line.steps = _steps(self.walk, t, line, self.edges.get(id(t), []))
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
            op_text = S.program_text(walk.fwd(t, expand=True))
            in_name = names.get(id(x)) or S.program_text(walk.fwd(x))
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


def _symbolic(prog: Program, env: dict, names: dict[int, str], constants: tuple) -> tuple:

    out_t = env[prog.output]
    order = toposort([out_t])
    walk = _Walk(env, names, generic=getattr(prog, "generic", False))
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
            walk.cache.pop(id(t), None)
    walk.cache.clear()

    remaining: dict[int, int] = {}
    for t in order:
        for x in node_of(t).inputs:
            if x is not None and x._node is None and id(x) in live:
                remaining[id(x)] = remaining.get(id(x), 0) + 1
    recorder = _Backward(prog, env, names, walk, live, remaining, auto)
    reached = backward_walk([out_t], [S.const(1.0, out_t.shape)], True, recorder)  # the engine's walk, on symbols
    leaf_grads = {id(leaf): g for leaf, g in reached}
    recorder.flush(lambda leaf: leaf_grads[id(leaf)])
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
    return forward, backward, jacobians, seed, targets


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
        subs = ", ".join(f"{n} = {S.render(by_name[n].formula)}" for n in used)
        ln.steps.append(Step(f"= {S.render(inline)}", f"substituting {subs}"))
        labels = {}
        for node in S.nodes(inline):
            if node.op == "sum" and isinstance(node.args[0], S.Sym) and node.args[0].op == "var":
                if node.args[0].name in constants:
                    labels[id(node)] = S.const(1.0, node.shape)
        if labels:
            one_hot = S.simplify(S.substitute(inline, labels))
            names = ", ".join(sorted({S.render(n) for n in S.nodes(inline) if id(n) in labels}))
            ln.steps.append(
                Step(f"= {S.render(one_hot)}", f"if {names} = 1 (one-hot labels, or probabilities that sum to 1)")
            )


def _line(name: str, formula: Any, shape: tuple[int, ...]) -> Line:
    simple = S.simplify(formula)
    loose = S._loose(simple)
    return Line(name, loose if S.shape_of(loose) == tuple(shape) else simple, shape)


def _steps(walk: _Walk, t: Any, line: Line, edges: list[tuple]) -> list[Step]:
    from .derive_steps import steps_for

    return steps_for(walk, t, line, edges)
