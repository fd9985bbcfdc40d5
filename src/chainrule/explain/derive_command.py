"""``chainrule derive "z = W @ a + b; h = sigmoid(z); E = sum(h)" --shape W=64x32 a=32x1 b=64x1 [--latex]``."""

from __future__ import annotations

import argparse
import re
import sys

from .parse import ParseError, parse_assignments

EXAMPLE = "z = W @ a + b; h = sigmoid(z); E = sum(h)"
EXAMPLE_SHAPES = ["W=64x32", "a=32x1", "b=64x1"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "program",
        nargs="?",
        help=f"assignments separated by ';' (default: {EXAMPLE})",
    )
    parser.add_argument(
        "--shape",
        nargs="+",
        default=None,
        metavar="NAME=SHAPE",
        help="shapes of the inputs, e.g. W=64x32 a=Bx32 b=64 (B: a symbolic size; a scalar is NAME=scalar)",
    )
    parser.add_argument("--const", nargs="+", default=(), metavar="NAME", help="inputs that get no gradient (labels)")
    parser.add_argument("--latex", action="store_true", help="print the equations as LaTeX")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the numerical check (default 0)")


def parse_shape(name: str, text: str) -> tuple:
    """``64x32`` / ``64×32`` / ``64,32`` / ``Bx32`` (a symbolic batch size) / ``scalar`` -> a shape tuple."""
    t = text.strip()
    shown = f"{name}={text}" if text.isprintable() else f"{name}={text!r}"  # a newline would break the one-line message
    if t.lower() in ("scalar", "()", ""):
        return ()
    parts = re.split(r"[x×,*]", t)
    dims: list = []
    for p in parts:
        p = p.strip()
        if p.isidentifier() and len(p) <= 8:
            dims.append(p)
            continue
        if not p.isdecimal():  # (isdigit() accepts "²", which int() refuses)
            raise ParseError(f"--shape {shown}: write the shape as numbers joined by x, as in 64x32", kind="shape")
        digits = p.lstrip("0") or "0"
        d = int(digits) if len(digits) <= 9 else 0  # (int() refuses over 4300 digits; this long is out of range)
        if d < 1 or d > 1_000_000:
            raise ParseError(f"--shape {shown}: each dimension must be between 1 and 1000000", kind="shape")
        dims.append(d)
    if len(dims) > 6:
        raise ParseError(f"--shape {shown}: at most 6 dimensions", kind="shape")
    return tuple(dims)


def run(args: argparse.Namespace) -> int:
    from .derive import derive

    program = args.program
    shapes_text = args.shape
    if program is None:
        if shapes_text is not None:
            print("chainrule derive: error: --shape needs a program", file=sys.stderr)
            return 2
        program, shapes_text = EXAMPLE, EXAMPLE_SHAPES
    try:
        raw = parse_assignments(shapes_text or [], "--shape")
        shapes = {name: parse_shape(name, text) for name, text in raw.items()}
        result = derive(program, shapes, constants=args.const, seed=args.seed)
    except ParseError as exc:
        print(f"chainrule derive: error: {exc}", file=sys.stderr)
        return 2
    print(result.latex() if args.latex else str(result))
    return 0
