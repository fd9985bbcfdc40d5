"""``chainrule explain "EXPR" --at x=-2 y=5 z=-4 [--svg graph.svg]``: values, the step table, the gradients.

With no expression it explains the CS231n sigmoid neuron.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..creation import tensor
from ..saved import keep_values
from .budget import DEFAULT_MAX_NUMBERS, Cost, add_budget_argument, measure, refuse_over_budget
from .parse import (
    ParseError,
    evaluate,
    names_in,
    parse_assignments,
    parse_expression,
    parse_value,
    precedence_notes,
    to_text,
)

NEURON = "1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))"
NEURON_AT = ["w0=2", "x0=-1", "w1=-3", "x1=-2", "w2=-3"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "expression",
        nargs="?",
        help=f"the expression, e.g. '(x + y) * z' (default: the CS231n sigmoid neuron {NEURON})",
    )
    add_value_arguments(parser)
    parser.add_argument("--svg", metavar="PATH", help="also write the graph drawing (.svg, .png or .dot)")
    parser.add_argument(
        "--html",
        metavar="PATH",
        help="also write the explorer: one self-contained page that steps through the passes in a browser",
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")


def add_value_arguments(parser: argparse.ArgumentParser) -> None:
    """``--at``, ``--precision`` and ``--max-numbers``, shared by ``explain`` and ``explore``."""
    parser.add_argument(
        "--at",
        nargs="+",
        action="extend",
        default=None,
        metavar="NAME=VALUE",
        help="values of the inputs: numbers or lists, e.g. x=-2 y=5 w=[1,2,3] (also x=-2,y=5; --at may repeat)",
    )
    parser.add_argument(
        "--precision",
        type=precision_type,
        default=2,
        help=f"decimals in the step table, {MIN_PRECISION} to {MAX_PRECISION} (default 2)",
    )
    add_budget_argument(parser)


MIN_PRECISION, MAX_PRECISION = 0, 15


def precision_type(text: str) -> int:
    """argparse type: an integer from 0 to 15 (a float64 has about 15 significant decimals)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of decimals, got {text!r}") from None
    if not MIN_PRECISION <= value <= MAX_PRECISION:
        raise argparse.ArgumentTypeError(
            f"{value} decimals is out of range: use {MIN_PRECISION} to {MAX_PRECISION} (float64 holds about 15)"
        )
    return value


_NEXT_ASSIGNMENT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


def split_values(items: Optional[list[str]], expression: Optional[str]) -> tuple[Optional[str], Optional[list[str]]]:
    """Normalise ``--at``: ``x=1,y=2`` is two values, and with the options first (``--at x=3 "x * x"``)
    the one item that is not ``NAME=VALUE`` is the expression.  Returns ``(expression, items)``."""
    if items is None:
        return expression, None
    out: list[str] = []
    for item in items:
        out += [part for part in _NEXT_ASSIGNMENT.split(item) if part.strip()]
    if expression is None:
        loose = [k for k, item in enumerate(out) if "=" not in item]
        if len(loose) == 1 and loose[0] == len(out) - 1:
            expression = out.pop()
    return expression, out


def _values_text(text: str) -> list[str]:
    """The explorer's values box: ``x=-2 y=5 w=[1, 2]`` (spaces or commas between values) -> items."""
    items: list[str] = []
    depth, current = 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch.isspace() and depth == 0:
            if current:
                items.append(current)
            current = ""
            continue
        current += ch
    if current:
        items.append(current)
    # "x = 1" typed with spaces around '=': join the pieces back
    joined: list[str] = []
    for item in items:
        if joined and (item.startswith("=") or joined[-1].endswith("=")):
            joined[-1] += item
        else:
            joined.append(item)
    joined = [item.rstrip(",") for item in joined if item.rstrip(",")]  # "x=1, y=2": the comma only separates
    return split_values(joined, "")[1] or []


def _fmt4(v: Any) -> str:
    """Four decimals; a negative zero (0 × a negative number) prints as 0."""
    if np.ndim(v) == 0:
        return f"{float(v) + 0.0:.4f}"
    return np.array2string(np.asarray(v) + 0.0, precision=4, separator=", ", threshold=50)


@dataclass
class Explanation:
    """One explained expression: what was typed, how it parsed, the values, the trace.

    The text command, the HTML page and the explorer's server all read this one record.
    """

    typed: str
    parsed: str  # the parsed form, with parentheses (parse.to_text)
    title: Optional[str]
    names: list[str]
    env: dict[str, Any]
    output: Any  # the output tensor
    trace: Any
    notes: list[str] = field(default_factory=list)
    max_numbers: int = DEFAULT_MAX_NUMBERS  # the budget it ran under (the page's derive runs under it too)

    def text(self, markdown: bool = False) -> str:
        lines = [self.title or f"f = {self.typed}"]
        if self.title is None and _squash(self.parsed) != _squash(self.typed):
            lines.append(f"  parsed as f = {self.parsed}")
        lines.append("  at " + ", ".join(f"{n} = {_fmt4(self.env[n].data)}" for n in self.names))
        lines.append(f"  f = {_fmt4(self.output.data)}")
        lines += ["  note: " + n for n in self.notes]
        lines.append("")
        lines.append(self.trace.to_markdown() if markdown else str(self.trace))
        lines.append("")
        for n in self.names:
            g = self.env[n].grad
            lines.append(f"df/d{n} = {_fmt4(g.data) if g is not None else '0 (f does not depend on it)'}")
        return "\n".join(lines)


def _squash(text: str) -> str:
    return "".join(text.split())


def explain_expression(
    expression: Optional[str],
    at: Optional[list[str]],
    precision: int = 2,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
    values_hint: str = "with --at",
) -> Explanation:
    """Parse, run forward and the traced backward (the safe parser and its limits; nothing is evaluated).

    Before anything runs, the values and gradients the trace would keep are counted from the shapes and
    refused over ``max_numbers`` (:mod:`.budget`).
    """
    from .trace import trace

    title = None
    if expression is None:
        if at is not None:
            raise ParseError(
                f"values given {values_hint} need an expression (the default neuron has its own values)", kind="syntax"
            )
        expression, at = NEURON, NEURON_AT
        title = f"CS231n sigmoid neuron: f = {NEURON}"
    node = parse_expression(expression)
    raw = parse_assignments(at or [])
    used = names_in(node)
    for name in raw:
        if name not in used:
            raise ParseError(
                f"unknown name '{name}' in the values: the expression uses " + (", ".join(used) or "no names"),
                kind="unknown name",
            )
    values = {name: parse_value(text, name) for name, text in raw.items()}  # a bad value is named first
    missing = [n for n in used if n not in raw]
    if missing:
        raise ParseError(
            "missing value for "
            + ", ".join(missing)
            + ": give "
            + " ".join(f"{n}=..." for n in missing)
            + f" {values_hint}",
            kind="missing value",
        )
    env = {}
    for name in used:
        env[name] = tensor(values[name], requires_grad=True)
    if not env:
        raise ParseError("the expression has no variables to differentiate; use names such as x", kind="value")
    cost = Cost()
    try:
        measure([(None, node)], {n: tuple(t.shape) for n, t in env.items()}, cost)
    except ParseError as exc:
        if exc.kind != "shape":
            raise
        # shapes that do not fit: the run stops at that operation with the engine's own words, so what it
        # computes before is what was counted; the evaluator's own tally (below) is the backstop
    refuse_over_budget(cost, max_numbers, what="this expression", advice="use smaller values")
    # nan and inf are shown in the table (and noted below), not warned about; every value is shown, so kept
    with np.errstate(all="ignore"), keep_values():
        out = evaluate(node, env, max_values=max_numbers // 2)
        seed = None
        notes = precedence_notes(expression)
        if out.shape != ():
            seed = np.ones(out.shape)
            notes.append(f"f has shape {out.shape}: the backward pass starts from ones (the gradient of sum(f))")
        tr = trace(out, seed, names=env, output_name="f", precision=precision)
    if not all(np.all(np.isfinite(s.value)) for s in tr.steps) or not np.all(np.isfinite(out.data)):
        notes.append(
            "some values are not finite (nan or inf): a log or sqrt of a negative number or 0, 1/0, or overflow"
        )
    return Explanation(expression.strip(), to_text(node), title, used, env, out, tr, notes, max_numbers)


def explain(
    expression: Optional[str],
    at: Optional[list[str]],
    precision: int = 2,
    markdown: bool = False,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> tuple:
    """Parse, run forward and the traced backward; return ``(text, trace, output tensor)``."""
    ex = explain_expression(expression, at, precision, max_numbers)
    return ex.text(markdown), ex.trace, ex.output


def _fail(message: str, code: int) -> int:
    print(f"chainrule explain: error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    expression, at = split_values(args.at, args.expression)
    if args.svg and not args.svg.lower().endswith((".svg", ".png", ".pdf", ".dot", ".gv")):
        return _fail(f"--svg {args.svg}: the file name must end in .svg, .png, .pdf or .dot", 2)
    if args.html and not args.html.lower().endswith((".html", ".htm")):
        return _fail(f"--html {args.html}: the file name must end in .html", 2)
    try:
        ex = explain_expression(expression, at, args.precision, args.max_numbers)
    except ParseError as exc:
        return _fail(str(exc), 2)
    except MemoryError:  # (the budget is counted to prevent this; the machine may still have less memory)
        return _fail(f"out of memory; lower --max-numbers (now {args.max_numbers:,})", 1)
    print(ex.text(args.markdown), flush=True)  # the table first: a drawing problem below never loses it
    code = 0
    if args.svg:
        from .draw import RendererUnavailable, draw

        try:
            draw(ex.trace).save(args.svg)
            print(f"\ndrawing written to {args.svg}")
        except (OSError, RendererUnavailable, ValueError) as exc:
            code = _fail(str(exc), 1)
    if args.html:
        from .page import write_page

        try:
            write_page(ex, args.html)
            print(f"explorer page written to {args.html} (open it in a browser; it needs no network)")
        except OSError as exc:
            code = _fail(f"--html {args.html}: {exc.strerror or exc}", 1)
    return code


def default_text() -> str:
    """The explanation of the CS231n sigmoid neuron (what ``chainrule`` prints with no command)."""
    return explain(None, None)[0]
