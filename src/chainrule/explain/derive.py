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
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from .. import symbolic as S
from ..creation import tensor
from ..saved import keep_values
from ..tensor import Tensor
from . import derive_batch  # noqa: F401  (fills derive_graph.BATCH: the replay and the symbolic batch)
from .budget import DEFAULT_MAX_NUMBERS, program_cost, refuse_over_budget
from .derive_chain import Chain, build_chain
from .derive_check import CheckResult
from .derive_check import check as run_check
from .derive_graph import derive_recorded, recorded_layout
from .derive_lang import derive_language
from .derive_numpy import ExportError, module_source
from .derive_records import Jacobian, Line
from .derive_run import load
from .derive_stepcheck import check as check_steps
from .derive_stepcheck import merge as merge_steps
from .derive_steps import Step
from .derive_walk import STAND_IN, _symbolic, _varies, finish_steps, tame_steps
from .parse import ParseError, Program, evaluate, generic_program, parse_program

MAX_ELEMENTS = 5_000_000  # per input


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
    chain: Optional[Chain] = None  # each gradient as the product of the local Jacobians (derive --chain)
    differential: Any = None  # the differential route (derive_differential.Route), or why it could not be made
    inputs: dict = field(default_factory=dict)  # cr.derive(tensor): printed input name -> recorded tensor or array
    keywords: dict = field(default_factory=dict)  # cr.derive(tensor): printed name -> backward()'s keyword for it
    tensors: dict = field(default_factory=dict)  # cr.derive(tensor): printed name -> tensor (leaves, named values)

    def arrays(self) -> dict[str, np.ndarray]:
        """The recorded inputs keyed by keyword, ready for the exported ``backward(**d.arrays())``."""
        out = {}
        for label, v in self.inputs.items():
            raw = np.asarray(v.data if isinstance(v, Tensor) else v)
            out[self.keywords.get(label, label)] = raw if raw.dtype.kind in "iub" else raw.astype(np.float64)
        return out

    def own_layout(self) -> str:
        """``"column"`` when weights multiply from the left (``W @ a``), ``"row"`` when from the right (``x @ W``)."""
        from .derive_layout import own_layout

        if self.inputs:  # cr.derive(tensor): read from the recorded products
            return recorded_layout(self.forward, self.inputs)
        return own_layout(self)

    def layout(self, which: str) -> str:
        """The equations in the ``"column"`` or ``"row"`` layout (the other one is the transposed program)."""
        from .derive_layout import layout_text

        if which not in ("column", "row"):
            raise ValueError(f"layout must be 'column' or 'row', not {which!r}")
        if self.inputs and which != self.own_layout():
            raise ValueError(
                f"derive: a recorded graph is derived in the layout it was written in ({self.own_layout()}); "
                "the transposed program exists only for the program form, cr.derive(program, shapes)"
            )
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
        out = ["steps (index form → matrix form; d<name> is ∂(output)/∂<name>)" + _steps_checked(self.check) + ":"]
        with S.dims_context(self.dims):
            for ln in self.backward:
                if not ln.steps:
                    continue
                out.append(f"  {ln.name}  ({S.shape_text(ln.shape)}):")
                for st in ln.steps:
                    out.append(f"    {st.text}" + (f"      [{st.reason}]" if st.reason else "") + _false_mark(st))
        return "\n".join(out)

    def differential_text(self) -> str:
        """``--steps differential``: the same equations derived with matrix differentials alone."""
        from .derive_differential import route_text

        route, error = (self.differential, "") if not isinstance(self.differential, str) else (None, self.differential)
        with S.dims_context(self.dims):
            return route_text(route, error)

    def text(self, steps: bool | str = False) -> str:
        """The derivation; ``steps`` is ``"index"`` (or True) or ``"differential"`` for that route's steps."""
        differential, steps = steps == "differential", steps not in (False, None, "differential")
        out = ["forward:"] + self._block(self.forward)
        out += ["backward (d<name> is the gradient of the output with respect to <name>):"]
        if self.seed:
            out.append("  " + self.seed)
        out += self._block(self.backward)
        out.append(self.check_text())
        if steps:
            out.append(self.steps_text())
        if differential:
            out.append(self.differential_text())
        if self.jacobians:
            sizes = ", sizes at " + ", ".join(f"{n} = {v}" for v, n in self.dims.items()) if self.dims else ""
            out.append(f"local Jacobians (never built{sizes}):")
            with S.dims_context(self.dims):
                out += ["  " + j.text() for j in self.jacobians]
        out.append("notation:")
        out += ["  " + t for t in self.legend()]
        if steps:
            out += ["  " + t for t in STEPS_LEGEND]
        if differential:
            from .derive_differential import legend

            route = self.differential
            out += ["  " + t for t in legend(route.output if not isinstance(route, str) and route else "E")]
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
                "chain": None if self.chain is None else self.chain.as_dict(),
                "legend": self.legend(),
                "differential": self._differential_dict(),
            }

    def _differential_dict(self) -> dict[str, Any]:
        from .derive_differential import route_dict

        if isinstance(self.differential, str):
            return route_dict(None, self.differential)
        return route_dict(self.differential)

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


def _false_mark(step: Step) -> str:
    """``  ✗ FALSE (relative error 4.2e-01)`` after a step its check found false."""
    from .derive_claims import TOLERANCE

    err = (step.check or {}).get("max_error")
    return f"  ✗ FALSE (relative error {err:.1e})" if err is not None and err > TOLERANCE else ""


def _steps_checked(check: Optional[CheckResult]) -> str:
    """``; each formula checked: 17 lines, max relative error 1.8e-10`` (the steps' own check), where made."""
    steps = getattr(check, "steps", None)
    if steps is None:
        return ""
    if not steps.ok:
        return f"; {len(steps.failures)} FALSE or unchecked"
    left = f" ({len(steps.unchecked)} over the check's work budget, not checked)" if steps.unchecked else ""
    sizes = [z for z in steps.sizes if z]  # (the values themselves are in the JSON: the steps name no stand-in)
    where = f" at two values of {', '.join(sizes[0])}" if sizes else ""
    return (
        f"; each formula checked numerically{where}: {steps.checked} lines{left}, "
        f"max relative error beyond rounding {steps.max_error:.1e}"
    )


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
    program: Union[str, Tensor],
    shapes: Optional[Mapping[str, Any]] = None,
    *,
    constants: Iterable[str] = (),
    seed: int = 0,
    check: bool = True,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
    names: Optional[Mapping[Any, str]] = None,
    module: Any = None,
    modules: Any = (),
    batch: Any = None,
    ints: Optional[Mapping[str, Any]] = None,
    values: Optional[Mapping[str, Any]] = None,
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

    ``derive(output)`` with a tensor derives the graph recorded from ordinary code (modules, functional
    calls, operators, indexing): parameters are named by their module path (``module=model``, or
    ``modules={"fc1": fc1, "bn": bn}``, or the modules among the caller's variables), other values by
    ``names={tensor: "x"}``, ``cr.name`` or the caller's own variables (:mod:`.derive_graph`); it is checked
    at the recorded values.  ``batch="x"`` (or ``("x", axis)``) prints the batch size as ``B``, checked at the
    recorded size and at another (:mod:`.derive_batch`).

    A program that uses indexing or the extended operations (``square``, ``var``, ``where``, ``reshape``,
    ``cross_entropy``, ``batch_norm``, ``conv2d``, ...: :mod:`.lang`) is recorded and derived as a graph
    (:mod:`.derive_lang`); ``ints`` maps its integer inputs to a class count, or to their values, and ``values``
    gives the values of float inputs (otherwise drawn).
    """
    if isinstance(program, Tensor):
        if shapes is not None:
            raise TypeError("cr.derive(output): a recorded graph has its own shapes; pass no shapes")
        mods: Any = dict(modules) if isinstance(modules, Mapping) else list(modules)
        if module is not None:  # (its parameters by their paths inside it: fc1.weight)
            mods = {"": module, **mods} if isinstance(mods, dict) else [module, *mods]
        fields = derive_recorded(
            program, names=names, modules=mods, check=check, seed=seed, frame=sys._getframe(1), batch=batch
        )
        return Derivation(**fields)
    if not isinstance(program, str):
        raise TypeError(
            f"cr.derive: expected a program string (with its shapes) or a recorded Tensor, got {type(program).__name__}"
        )
    if shapes is None:
        raise TypeError("cr.derive(program, shapes): a program string needs the shapes of its inputs")
    prog = None
    if ints is None and values is None:
        text = generic_program(program)  # (its own error where f and sin are both used)
        try:
            prog = parse_program(text)
        except ParseError:  # (indexing, comparisons or an operation of the extended language: recorded, then derived)
            prog = None
    if prog is None:
        fields = derive_language(
            program, shapes, ints=ints, values=values, constants=tuple(constants), seed=seed, check=check,
            max_numbers=max_numbers,
        )  # fmt: skip
        return Derivation(**fields)
    prog.generic = generic_program(program) != program  # type: ignore[attr-defined]  (sin stands for f)
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
    recorded: dict[str, Any] = {}
    with S.dims_context(dims1):
        first = _derive_at(prog, concrete, constants, recorded)
        chain = build_chain(program, prog, recorded, constants, generic=getattr(prog, "generic", False))
        recorded.clear()  # (the recorded values are not kept through the check)
    forward, backward, jacobians, seed_text, targets, route = first
    routes = [(route, _where(sizes1))]
    dims2 = {v: k for k, v in sizes2.items()}
    second: tuple = ([], [])
    if symbols or check:  # the second run: the other sizes (or the same), other values; it checks the steps
        with S.dims_context(dims2):
            second = _derive_at(prog, _at(raw, sizes2) if symbols else concrete, constants, draw=1)
    if symbols:  # the same derivation at other sizes tells which constants are sizes (1/B)
        if [ln.name for ln in second[0] + second[1]] == [ln.name for ln in forward + backward]:
            for a, b in zip(forward + backward, second[0] + second[1]):
                a.formula, b.formula = (
                    S.symbolize(a.formula, b.formula, sizes1, sizes2),
                    S.symbolize(b.formula, a.formula, sizes2, sizes1),  # (its substitution steps read the same)
                )
            if not isinstance(route, str) and not isinstance(second[5], str):
                route.symbolize(second[5], sizes1, sizes2)
                routes.append((second[5], _where(sizes2)))
    steps_check = finish_steps(backward, second[1], constants, (sizes1, sizes2), (dims1, dims2))
    result = Derivation(program, forward, backward, jacobians, None, dims1, seed_text, input_shapes=concrete)
    result.chain = chain
    result.differential = route
    try:
        result.numpy_source = module_source(
            program, prog.inputs, concrete, forward, backward, [(n, "d" + n) for n in targets], dims1
        )
    except ExportError as exc:
        result.export_error = str(exc)
    if check:
        result.check = _check(prog, result, raw, symbols, numeric, constants, targets, seed)
        tame = lambda: tame_steps(lambda: _derive_at(prog, concrete, constants, draw=2)[1], constants, dims1)  # noqa: E731
        merge_steps(result.check, check_steps(steps_check, seed, tame))
        if getattr(prog, "generic", False):
            result.check.note = f"with f = {STAND_IN} standing in for the generic f"
        if isinstance(route, str):
            result.check.note = "; ".join(x for x in (result.check.note, "differential steps not made: " + route) if x)
        else:
            from .derive_differential_check import check_routes, fold_into

            route.check = check_routes(routes, seed, _line_text(dims1))
            fold_into(result.check, route.check)
    return result


def _where(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sizes.items()) or "the given sizes"


def _line_text(dims: Mapping[int, str]) -> Any:
    from .derive_differential import step_text

    def text(step: Any) -> str:
        with S.dims_context(dims):
            return step_text(step)

    return text


_SMALLER = "the equations do not depend on the sizes: use smaller shapes, or a symbolic size such as B"


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


def _derive_at(
    prog: Program, shapes: Mapping[str, tuple], constants: tuple, env: Optional[dict] = None, draw: int = 0
) -> tuple:
    rng = np.random.default_rng(draw)
    env = {} if env is None else env  # (derive keeps the recorded program for its chain of Jacobians)
    for name in prog.inputs:
        shp = shapes[name]
        # the first run at standard normal values, the second at positive ones, a third (steps only) at small ones
        raw = (
            rng.standard_normal(shp)
            if draw == 0
            else rng.uniform(0.5, 1.5, shp)
            if draw == 1
            else rng.uniform(0.1, 0.4, shp)
        )
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
