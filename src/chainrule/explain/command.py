"""``chainrule explain "EXPR" --at x=-2 y=5 z=-4 [--svg graph.svg]``: values, the step table, the gradients.

With no expression it explains the CS231n sigmoid neuron.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

import numpy as np

from .parse import ParseError, evaluate, names_in, parse_assignments, parse_expression, parse_value

NEURON = "1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))"
NEURON_AT = ["w0=2", "x0=-1", "w1=-3", "x1=-2", "w2=-3"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "expression",
        nargs="?",
        help=f"the expression, e.g. '(x + y) * z' (default: the CS231n sigmoid neuron {NEURON})",
    )
    parser.add_argument(
        "--at",
        nargs="+",
        default=None,
        metavar="NAME=VALUE",
        help="values of the inputs: numbers or lists, e.g. x=-2 y=5 w=[1,2,3]",
    )
    parser.add_argument("--svg", metavar="PATH", help="also write the graph drawing (.svg, .png or .dot)")
    parser.add_argument("--precision", type=int, default=2, help="decimals in the step table (default 2)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")


def _fmt4(v: Any) -> str:
    if np.ndim(v) == 0:
        return f"{float(v):.4f}"
    return np.array2string(np.asarray(v), precision=4, separator=", ", threshold=50)


def explain(expression: Optional[str], at: Optional[list[str]], precision: int = 2, markdown: bool = False) -> tuple:
    """Parse, run forward and the traced backward; return ``(text, trace, output tensor)``."""
    import chainrule as cr

    from .trace import trace

    title = None
    if expression is None:
        if at is not None:
            raise ParseError("--at needs an expression (the default neuron has its own values)", kind="syntax")
        expression, at = NEURON, NEURON_AT
        title = "CS231n sigmoid neuron: f = 1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))"
    node = parse_expression(expression)
    raw = parse_assignments(at or [])
    used = names_in(node)
    for name in raw:
        if name not in used:
            raise ParseError(
                f"unknown name '{name}' in --at: the expression uses " + (", ".join(used) or "no names"),
                kind="unknown name",
            )
    missing = [n for n in used if n not in raw]
    if missing:
        raise ParseError(
            "missing value for " + ", ".join(missing) + ": add " + " ".join(f"{n}=..." for n in missing) + " to --at",
            kind="missing value",
        )
    env = {}
    for name in used:
        value = parse_value(raw[name], name)
        env[name] = cr.tensor(value, requires_grad=True)
    if not env:
        raise ParseError("the expression has no variables to differentiate; use names such as x", kind="value")
    out = evaluate(node, env)
    seed = None
    notes = []
    if out.shape != ():
        seed = np.ones(out.shape)
        notes.append(f"f has shape {out.shape}: the backward pass starts from ones (the gradient of sum(f))")
    tr = trace(out, seed, names=env, output_name="f", precision=precision)
    lines = [title or f"f = {expression}"]
    lines.append("  at " + ", ".join(f"{n} = {_fmt4(env[n].data)}" for n in used))
    lines.append(f"  f = {_fmt4(out.data)}")
    lines += ["  " + n for n in notes]
    lines.append("")
    lines.append(tr.to_markdown() if markdown else str(tr))
    lines.append("")
    for n in used:
        g = env[n].grad
        lines.append(f"df/d{n} = {_fmt4(g.data) if g is not None else '0 (f does not depend on it)'}")
    return "\n".join(lines), tr, out


def run(args: argparse.Namespace) -> int:
    try:
        if args.svg and not args.svg.lower().endswith((".svg", ".png", ".pdf", ".dot", ".gv")):
            raise ParseError(f"--svg {args.svg}: the file name must end in .svg, .png, .pdf or .dot", kind="value")
        text, tr, _ = explain(args.expression, args.at, args.precision, args.markdown)
        if args.svg:
            from .draw import draw

            drawing = draw(tr)
            drawing.save(args.svg)
            text += f"\n\ndrawing written to {args.svg}"
    except ParseError as exc:
        print(f"chainrule explain: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        print(f"chainrule explain: error: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


def default_text() -> str:
    """The explanation of the CS231n sigmoid neuron (what ``chainrule`` prints with no command)."""
    return explain(None, None)[0]
