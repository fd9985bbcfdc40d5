"""``cr.draw(output)``: the computational graph as a Graphviz drawing, CS231n style.

Inputs are boxes, operations are circles; every edge carries the forward value
(green, above) and the gradient flowing back along it (red, below).  Tensors
show their shape, and their values when small.  Long chains of one-input
operations are collapsed and very large graphs are cut, so a drawing stays
legible.  The DOT text (``.source``) needs nothing; rendering needs the
``graphviz`` Python package and the ``dot`` program from Graphviz.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from ..tensor import Tensor
from .format import fmt_value
from .trace import Step, Trace, trace

GREEN = "#1a7f37"
RED = "#cf222e"
INSTALL = (
    "install Graphviz: the 'dot' program comes from the system package (apt-get install -y graphviz, "
    "brew install graphviz, or conda install graphviz) and the Python package from pip install graphviz"
)
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
}


class GraphvizUnavailable(RuntimeError):
    """Rendering needs Graphviz, which is not installed here (the DOT source is still available)."""


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
        return step.expression.split("[", 1)[-1].join(["[", ""])
    return _SYMBOLS.get(step.op, step.op)


class Drawing:
    """A drawing of a computational graph; ``.source`` is its DOT text."""

    def __init__(self, source: str, title: str) -> None:
        self.source = source
        self.title = title

    def __repr__(self) -> str:
        lines = self.source.count("\n")
        return f"<Drawing of {self.title}: {lines} lines of DOT; .save('graph.svg'), .source>"

    def _render(self, fmt: str) -> bytes:
        try:
            import graphviz
        except ImportError:
            raise GraphvizUnavailable(f"cr.draw: the graphviz Python package is missing; {INSTALL}") from None
        if shutil.which("dot") is None:
            raise GraphvizUnavailable(f"cr.draw: the Graphviz program 'dot' was not found on PATH; {INSTALL}")
        try:
            return graphviz.Source(self.source).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise GraphvizUnavailable(f"cr.draw: the Graphviz program 'dot' could not be run; {INSTALL}") from None

    def svg(self) -> str:
        """The drawing as SVG text (needs Graphviz)."""
        return self._render("svg").decode("utf-8")

    def png(self) -> bytes:
        """The drawing as PNG bytes (needs Graphviz)."""
        return self._render("png")

    def _repr_svg_(self) -> Optional[str]:
        try:
            return self.svg()
        except GraphvizUnavailable:
            return None

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
    parts = [f'<font color="{GREEN}">{_esc(fmt_value(value, precision))}</font>']
    if grad is not None:
        parts.append(f'<font color="{RED}">{_esc(fmt_value(grad, precision))}</font>')
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


def draw(
    output: Union[Tensor, Trace],
    grad: Any = None,
    *,
    names: Optional[Mapping[str, Tensor]] = None,
    output_name: Optional[str] = None,
    precision: int = 2,
    max_nodes: int = 80,
    collapse: int = 6,
    rankdir: str = "LR",
) -> Drawing:
    """Draw the graph of ``output`` with forward values (green) and gradients (red).

    ``output`` is a tensor (its backward pass is traced without touching
    ``.grad``) or a :class:`Trace`.  Chains of more than ``collapse`` one-input
    operations become one summary node; beyond ``max_nodes`` operations the rest
    of the graph is cut and marked.
    """
    if isinstance(output, Trace):
        tr = output
    else:
        tr = trace(output, grad, names=names, output_name=output_name, accumulate=False, precision=precision)
    p = precision
    runs = _collapse(tr.steps, collapse)
    skip_to: dict[str, str] = {}  # label of a collapsed step's input chain start -> summary node
    hidden: set[str] = set()
    for first, (last_input, inner) in runs.items():
        hidden.update(s.label for s in inner)
        skip_to[first] = last_input
    lines = [
        "digraph chainrule {",
        f'  graph [rankdir={rankdir}, fontname="Helvetica", fontsize=11, nodesep=0.35, ranksep=0.5,'
        f" label=<{_esc(tr.output)} = {_esc(fmt_value(tr.value, p))}: forward values in "
        f'<font color="{GREEN}">green</font>, gradients in <font color="{RED}">red</font>>, labelloc=t];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10, arrowsize=0.6];',
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
            grad_text = " + ".join(fmt_value(v, p) for _, v in leaf.branches) + " = " + grad_text
        lines.append(
            f"  {nid(leaf.label)} [shape=box, style=rounded, label=<<b>{_esc(leaf.label)}</b><br/>"
            f'<font color="{GREEN}">{_esc(fmt_value(leaf.value, p))}</font><br/>'
            f'<font color="{RED}">{_esc(grad_text)}</font>>];'
        )
    const_count = 0
    for s in drawn:
        extra = ""
        if len(s.branches) > 1:
            total = " + ".join(fmt_value(v, p) for _, v in s.branches) + " = " + fmt_value(s.upstream, p)
            extra = f'<br/><font color="{RED}" point-size="9">{_esc(total)}</font>'
        lines.append(
            f'  {nid(s.label)} [shape=circle, margin=0.02, tooltip="{_esc(s.label)} = {_esc(s.expression)}", '
            f"label=<{_esc(_op_text(s))}{extra}>];"
        )
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
