"""``cr.draw(output)``: the computational graph as a Graphviz drawing, CS231n style.

Inputs are boxes, operations are circles; every edge carries the forward value
(green, above) and the gradient flowing back along it (red, below).  Tensors
show their shape, and their values when small.  Long chains of one-input
operations are collapsed and very large graphs are cut, so a drawing stays
legible.  The DOT text (``.source``) needs nothing; rendering uses Graphviz's
``dot`` program when it is on PATH, else the pip-installed ``graphviz-pure``
(the ``explain`` extra), so ``pip install "chainrule[explain]"`` alone draws.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..format import SMALL, fmt_shape, fmt_value
from ..tensor import Tensor
from .trace import Step, Trace, fmt_branches, trace

GREEN = "#1a7f37"
RED = "#cf222e"
GRAY = "#59636e"
_SYMBOLS = {
    "add": "+",
    "sub": "−",
    "mul": "×",
    "div": "÷",
    "neg": "×(−1)",
    "pow": "^",
    "matmul": "@",
    "sigmoid": "σ",
    "transpose": "ᵀ",
    "sum": "Σ",
    "maximum": "max",
    "minimum": "min",
}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _op_text(step: Step) -> str:
    """The short text inside an operation's circle: ``+``, ``×``, ``exp``, ``1/x``, ``+1``, ``×(−1)``."""
    consts = [e.label for e in step.inputs if e.constant]
    if step.op == "div" and step.inputs[0].constant and step.inputs[0].label == "1":
        return "1/x"
    if consts and step.op == "add":
        return f"+{consts[0]}"
    if consts and step.op == "mul":
        return f"×{consts[0]}" if not consts[0].startswith("-") else f"×({consts[0]})"
    if step.op == "getitem":
        index = "[" + step.expression.split("[", 1)[-1]
        return index if len(index) <= 10 else "[·]"  # fancy indexing: the full index is in the tooltip
    return _SYMBOLS.get(step.op, step.op)


class RendererUnavailable(RuntimeError):
    """Nothing here can turn DOT into a picture (the DOT source is still available as ``.source``)."""


GraphvizUnavailable = RendererUnavailable  # the name of chainrule 0.1


INSTALL = (
    "pip install 'chainrule[explain]' (it brings graphviz-pure, a self-contained Graphviz for SVG and PNG), "
    "or install Graphviz's dot program (apt-get install graphviz, brew install graphviz, conda install graphviz)"
)
DOT_TIMEOUT_S = 60
PIP_RENDERER = "graphviz-pure"


def _pip_renderer() -> Optional[str]:
    """The ``graphviz-pure`` program: on PATH, or beside this Python (a venv whose bin is not on PATH).
    ``CHAINRULE_NO_PIP_RENDERER=1`` ignores it (to see what a machine without it gets)."""
    if os.environ.get("CHAINRULE_NO_PIP_RENDERER"):
        return None
    found = shutil.which(PIP_RENDERER)
    if found:
        return found
    for folder in {sysconfig.get_path("scripts"), os.path.dirname(sys.executable)}:
        candidate = shutil.which(PIP_RENDERER, path=folder) if folder else None
        if candidate:
            return candidate
    return None


def renderer() -> Optional[str]:
    """The program :func:`render` would run: Graphviz's ``dot`` on PATH, else the pip-installed
    ``graphviz-pure`` (a port of Graphviz 16.1 to Rust, one self-contained binary), else None."""
    return shutil.which("dot") or _pip_renderer()


def render(source: str, fmt: str = "svg") -> bytes:
    """DOT source -> ``svg``/``png``/``pdf`` bytes, with the system ``dot`` when there is one, else the
    pip-installed ``graphviz-pure`` (SVG and PNG).  Raises :class:`RendererUnavailable` saying what to install."""
    program = renderer()
    if program is None:
        raise RendererUnavailable(f"cr.draw: nothing here can render the drawing; {INSTALL}")
    is_dot = os.path.basename(program).lower().startswith("dot")
    if fmt == "pdf" and not is_dot:
        raise RendererUnavailable(
            "cr.draw: PDF needs Graphviz's dot program, which is not on PATH; the pip-installed renderer writes "
            "SVG and PNG (save to .svg or .png), or install Graphviz (apt-get install graphviz)"
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RendererUnavailable(f"cr.draw: {program} could not run ({exc}); {INSTALL}") from None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RendererUnavailable(f"cr.draw: {program} -T{fmt} failed: {err[-1] if err else done.returncode}")
    return done.stdout


class Drawing:
    """A drawing of a computational graph; ``.source`` is its DOT text, ``.svg()`` the picture."""

    def __init__(self, source: str, title: str) -> None:
        self.source = source
        self.title = title

    def __repr__(self) -> str:
        lines = self.source.count("\n")
        return f"<Drawing of {self.title}: {lines} lines of DOT; .save('graph.svg'), .svg(), .source>"

    def _render(self, fmt: str) -> bytes:
        return render(self.source, fmt)

    def svg(self) -> str:
        """The drawing as SVG text."""
        return self._render("svg").decode("utf-8")

    def png(self) -> bytes:
        """The drawing as PNG bytes."""
        return self._render("png")

    def _repr_svg_(self) -> Optional[str]:
        try:
            return self.svg()
        except RendererUnavailable:
            return None  # the notebook falls back to _repr_html_, which says why

    def _repr_html_(self) -> str:
        try:
            return self.svg()
        except RendererUnavailable as exc:
            return (
                f"<p><b>chainrule could not draw this graph:</b> {_esc(str(exc))}</p>"
                f"<details><summary>DOT source ({self.source.count(chr(10))} lines)</summary>"
                f"<pre>{_esc(self.source)}</pre></details>"
            )

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write ``.svg``, ``.png`` or ``.pdf`` (rendered) or ``.dot``/``.gv`` (the source), by suffix."""
        p = Path(path)
        suffix = p.suffix.lower().lstrip(".")
        if suffix in ("dot", "gv"):
            p.write_text(self.source, encoding="utf-8")
        elif suffix in ("svg", "png", "pdf"):
            p.write_bytes(self._render(suffix))
        else:
            raise ValueError(f"Drawing.save: cannot tell the format of {str(path)!r}; use .svg, .png, .pdf or .dot")
        return p


def _edge_label(value: Any, grad: Any, precision: int) -> str:
    """Value (green) over gradient (red); a small tensor's shape above them in gray, a large one by shape only."""
    parts = []
    small = np.ndim(value) == 0 or np.size(value) <= SMALL
    if np.ndim(value) and small:
        parts.append(f'<font color="{GRAY}" point-size="9">{_esc(fmt_shape(np.shape(value)))}</font>')
    parts.append(f'<font color="{GREEN}">{_esc(fmt_value(value, precision))}</font>')
    if grad is not None:
        text = fmt_value(grad, precision) if small else f"gradient {fmt_shape(np.shape(grad))}"
        parts.append(f'<font color="{RED}">{_esc(text)}</font>')
    return "<" + "<br/>".join(parts) + ">"


def _collapse(steps: list[Step], min_run: int) -> dict[str, tuple[str, list[Step]]]:
    """Runs of one-input, one-consumer steps longer than ``min_run``: first label -> (last input label, steps)."""
    consumers: dict[str, int] = {}
    for s in steps:
        for e in s.inputs:
            if not e.constant:
                consumers[e.label] = consumers.get(e.label, 0) + 1
    step_labels = {s.label for s in steps}

    def link(s: Step) -> Optional[str]:
        live = [e for e in s.inputs if not e.constant]
        if len(live) == 1 and live[0].label in step_labels and consumers.get(live[0].label, 0) == 1:
            return live[0].label
        return None

    by_label = {s.label: s for s in steps}
    runs: dict[str, tuple[str, list[Step]]] = {}
    inside: set[str] = set()
    for s in steps:  # output first
        if s.label in inside:
            continue
        run = [s]
        nxt = link(s)
        while nxt is not None and link(by_label[nxt]) is not None:
            run.append(by_label[nxt])
            nxt = link(by_label[nxt])
        if len(run) > min_run:
            inner = run[1:-1]
            if inner:
                runs[inner[0].label] = (run[-1].label, inner)
                inside.update(r.label for r in inner)
    return runs


LR_DEPTH = 9


def _depth(steps: list[Step]) -> int:
    """The number of operations on the longest path from an input to the output."""
    depth: dict[str, int] = {}
    for s in reversed(steps):  # forward order
        depth[s.label] = 1 + max((depth.get(e.label, 0) for e in s.inputs if not e.constant), default=0)
    return max(depth.values(), default=0)


def draw(
    output: Union[Tensor, Trace],
    grad: Any = None,
    *,
    names: Optional[Mapping[str, Tensor]] = None,
    output_name: Optional[str] = None,
    precision: int = 2,
    max_nodes: int = 80,
    collapse: int = 6,
    rankdir: str = "auto",
    max_width: float = 10.5,
    model: Any = None,
) -> Drawing:
    """Draw the graph of ``output`` with forward values (green) and gradients (red).

    ``output`` is a tensor (its backward pass is traced without touching
    ``.grad``) or a :class:`Trace`.  Chains of more than ``collapse`` one-input
    operations become one summary node; beyond ``max_nodes`` operations the rest
    of the graph is cut and marked.  ``rankdir="auto"`` draws left to right when the
    longest path has at most ``LR_DEPTH`` operations (the CS231n figures) and top to
    bottom otherwise (a model's loss), and a drawing wider than ``max_width`` inches
    is scaled down to fit, so a notebook shows it whole.
    """
    if isinstance(output, Trace):
        tr = output
    else:
        tr = trace(
            output, grad, names=names, output_name=output_name, accumulate=False, precision=precision, model=model
        )
    p = precision
    if rankdir not in ("auto", "LR", "TB", "RL", "BT"):
        raise ValueError(f"cr.draw: rankdir must be 'auto', 'LR', 'TB', 'RL' or 'BT', got {rankdir!r}")
    direction = rankdir if rankdir != "auto" else ("LR" if _depth(tr.steps) <= LR_DEPTH else "TB")
    runs = _collapse(tr.steps, collapse)
    skip_to: dict[str, str] = {}  # label of a collapsed step's input chain start -> summary node
    hidden: set[str] = set()
    for first, (last_input, inner) in runs.items():
        hidden.update(s.label for s in inner)
        skip_to[first] = last_input
    lines = [
        "digraph chainrule {",
        f'  graph [rankdir={direction}, size="{max_width:g},100", fontname="Helvetica", fontsize=11, nodesep=0.35,'
        " ranksep=0.5,"
        f" label=<{_esc(tr.output)} = {_esc(fmt_value(tr.value, p))}: forward values in "
        f'<font color="{GREEN}">green</font>, gradients in <font color="{RED}">red</font>>, labelloc=t];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=12, arrowsize=0.6];',
    ]
    drawn = [s for s in tr.steps if s.label not in hidden]
    cut = drawn[max_nodes:]
    drawn = drawn[:max_nodes]
    drawn_labels = {s.label for s in drawn}
    leaf_labels = {leaf.label for leaf in tr.leaves}

    def nid(label: str) -> str:
        return '"' + label.replace('"', "'") + '"'

    for leaf in tr.leaves:
        if leaf.label == tr.output:
            continue
        grad_text = fmt_value(leaf.grad, p)
        if len(leaf.branches) > 1:
            grad_text = fmt_branches(leaf.branches, leaf.grad, p)
        lines.append(
            f"  {nid(leaf.label)} [shape=box, style=rounded, label=<<b>{_esc(leaf.label)}</b><br/>"
            f'<font color="{GREEN}">{_esc(fmt_value(leaf.value, p))}</font><br/>'
            f'<font color="{RED}">{_esc(grad_text)}</font>>];'
        )
    const_count = 0
    for s in drawn:
        extra = ""
        if len(s.branches) > 1:
            total = fmt_branches(s.branches, s.upstream, p)
            extra = f'<br/><font color="{RED}" point-size="9">{_esc(total)}</font>'
        lines.append(
            f'  {nid(s.label)} [shape=circle, margin=0.02, tooltip="{_esc(s.label)} = {_esc(s.expression)}", '
            f'label=<{_esc(_op_text(s))}<br/><font point-size="8" color="{GRAY}">{_esc(s.label)}</font>{extra}>];'
        )  # the node's name under its operation: the step text says "n3", so the drawing shows n3
        for e in s.inputs:
            if e.constant and _op_text(s) != _SYMBOLS.get(s.op, s.op):
                continue  # the constant is written in the circle (+1, ×(-1), 1/x)
            if e.constant:
                const_count += 1
                cid = f'"const {const_count}"'
                lines.append(f"  {cid} [shape=plaintext, label=<{_esc(e.label)}>];")
                lines.append(f"  {cid} -> {nid(s.label)} [color=gray];")
                continue
            src = e.label
            if src in skip_to:
                summary = f"chain {src}"
                inner = runs[src][1]
                ops = []
                for r in inner:
                    if r.op not in ops:
                        ops.append(r.op)
                lines.append(
                    f'  {nid(summary)} [shape=box, style="dashed", label=<… {len(inner)} operations '
                    f"({_esc(', '.join(ops[:4]))}{', …' if len(ops) > 4 else ''}) …>];"
                )
                lines.append(f"  {nid(summary)} -> {nid(s.label)} [label={_edge_label(e.value, e.grad, p)}];")
                last = runs[src][0]
                lines.append(f"  {nid(last)} -> {nid(summary)} [style=dashed];")
                continue
            if src not in drawn_labels and src not in leaf_labels:
                lines.append(f"  {nid(src)} [shape=box, style=dotted, label=<{_esc(src)}<br/>(not drawn)>];")
            lines.append(f"  {nid(src)} -> {nid(s.label)} [label={_edge_label(e.value, e.grad, p)}];")
    if cut:
        lines.append(f'  "cut" [shape=note, label=<{len(cut)} more operations not drawn (max_nodes={max_nodes})>];')
    out_id = nid(tr.output + " (output)")
    lines.append(f"  {out_id} [shape=box, style=bold, label=<<b>{_esc(tr.output)}</b>>];")
    seed = tr.steps[0].upstream if tr.steps else 1.0
    if tr.steps:
        lines.append(f"  {nid(tr.steps[0].label)} -> {out_id} [label={_edge_label(tr.value, seed, p)}];")
    lines.append("}")
    return Drawing("\n".join(lines) + "\n", f"{tr.output}")
