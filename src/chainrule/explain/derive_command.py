"""``chainrule derive "z = W @ a + b; h = sigmoid(z); E = sum(h)" --shape W=64x32 a=32x1 b=64x1 [--steps]``."""

from __future__ import annotations

import argparse
import re
import sys

from .budget import add_budget_argument
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
    parser.add_argument(
        "--ints",
        nargs="+",
        default=None,
        metavar="NAME=SHAPE:CLASSES",
        help="integer inputs (labels, indices), e.g. Y=32:27 (shape 32, values drawn in 0..26), X=32x3:27, "
        "Y=32 (drawn below the size of the axis Y first indexes), or the values Y=[3,0,2]",
    )
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--latex", action="store_true", help="print the equations as a LaTeX aligned block")
    view.add_argument("--latex-document", action="store_true", help="print a complete LaTeX document")
    view.add_argument("--json", action="store_true", help="print the whole derivation as JSON")
    view.add_argument(
        "--numpy", action="store_true", help="print the NumPy module (backward(**inputs)) generated from the equations"
    )
    parser.add_argument(
        "--steps",
        nargs="?",
        const="index",
        default=None,
        choices=("index", "differential"),
        help="show the steps: 'index' (the default) from the index form to the matrix form, 'differential' with "
        "matrix differentials and the trace / Frobenius inner product alone",
    )
    parser.add_argument(
        "--layout",
        choices=("column", "row", "both"),
        default=None,
        help="also show the equations with column vectors (z = W a + b), row vectors (z = a Wᵀ + b), or both",
    )
    parser.add_argument(
        "--at",
        nargs="+",
        default=None,
        metavar="NAME=VALUE",
        help="evaluate at these values, e.g. W=[[0.1,0.5],[-0.3,0.8]] x=[0.2,0.4] (gives the shapes too)",
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="show each gradient as the product of the local Jacobians along every path, with sizes and the "
        "shortcut (with --at: the factors' entries, their product, checked against cr.jacobian)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the check against central differences")
    parser.add_argument(
        "--seed", type=_seed, default=0, help="random seed of the numerical check, 0 to 2**32-1 (default 0)"
    )
    add_budget_argument(parser)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**32-1, got {value}")
    return value


def parse_shape(name: str, text: str) -> tuple:
    """``64x32`` / ``64X32`` / ``64×32`` / ``64,32`` / ``Bx32`` (B symbolic) / ``scalar`` -> a shape tuple."""
    t = text.strip()
    shown = f"{name}={text}" if text.isprintable() else f"{name}={text!r}"  # a newline would break the one-line message
    if t.lower() in ("scalar", "()", ""):
        return ()
    if "*" in t:
        raise ParseError(
            f"--shape {shown}: '*' is not a shape separator (it reads as a product); join the dimensions with x, "
            "as in 64x32",
            kind="shape",
        )
    parts = re.split(r"[xX×,]", t)
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


def is_basic(program: str) -> bool:
    """Whether ``program`` is in the basic language (else it is recorded and derived as a graph: :mod:`.lang`)."""
    from .parse import generic_program, parse_program

    text = generic_program(program)  # (its own error where f and sin are both used)
    try:
        parse_program(text)
    except ParseError:
        return False
    return True


def parse_ints(items: list[str], shapes: dict) -> dict:
    """``--ints Y=32:27 X=32x3:27 Z=[3,0,2] W=32`` -> ``{"Y": 27, ...}`` (values as arrays), filling in ``shapes``."""
    import numpy as np

    from .parse import parse_value

    out: dict = {}
    for name, text in parse_assignments(items, "--ints").items():
        body = text.strip()
        if body.startswith("["):
            value = np.asarray(parse_value(body, name))
            if not np.all(value == np.round(value)):
                raise ParseError(f"--ints {name}: the values must be whole numbers, as in [3, 0, 2]", kind="value")
            out[name] = value.astype(np.int64)
            shapes.setdefault(name, value.shape)
            continue
        shape_text, sep, classes = body.partition(":")
        shape = parse_shape(name, shape_text) if shape_text.strip() else shapes.get(name)
        if shape is None:
            raise ParseError(f"--ints {name}={text}: give the shape, as in {name}=32:27", kind="shape")
        if any(isinstance(d, str) for d in shape):
            raise ParseError(f"--ints {name}={text}: give the shape in numbers, as in {name}=32:27", kind="shape")
        if name in shapes and tuple(shapes[name]) != tuple(shape):
            raise ParseError(f"--ints {name}: the shape {shape} differs from --shape's {shapes[name]}", kind="shape")
        shapes[name] = shape
        if sep and not (classes.strip().isdecimal() and 1 <= int(classes.strip()[:9]) <= 1_000_000_000):
            raise ParseError(
                f"--ints {name}={text}: the class count after ':' must be a whole number of at least 1, as in "
                f"{name}=32:27",
                kind="value",
            )
        out[name] = int(classes) if sep else None
    return out


def run(args: argparse.Namespace) -> int:
    """Print the derivation; exit 1 when the check failed or could not be made, 2 on bad input."""
    from .derive import derive
    from .derive_numpy import ExportError
    from .parse import parse_value

    program = args.program
    shapes_text = args.shape
    if program is None:
        if shapes_text is not None or args.at:
            print("chainrule derive: error: --shape and --at need a program", file=sys.stderr)
            return 2
        program, shapes_text = EXAMPLE, EXAMPLE_SHAPES
    try:
        raw = parse_assignments(shapes_text or [], "--shape")
        shapes = {name: parse_shape(name, text) for name, text in raw.items()}
        at = {n: parse_value(v, n) for n, v in parse_assignments(args.at, "--at").items()} if args.at else {}
        for name, value in at.items():
            shape = tuple(getattr(value, "shape", ()))
            if name in shapes and tuple(shapes[name]) != shape:
                raise ParseError(
                    f"--at {name}: the value has shape {shape}, but --shape says {shapes[name]}", kind="shape"
                )
            shapes[name] = shape
        ints = parse_ints(args.ints, shapes) if args.ints else None
        extended = ints is not None or not is_basic(program)  # (recorded with the values given, then derived)
        result = derive(
            program,
            shapes,
            constants=args.const,
            seed=args.seed,
            check=not args.no_check,
            max_numbers=args.max_numbers,
            **({"ints": ints or {}, "values": at} if extended else {}),
        )
        if extended and args.chain and at:
            raise ParseError(
                "--chain --at evaluates the program's own statements, which a program with indexing or the "
                "extended operations does not have yet; --chain alone works (the derivation is at the --at values)",
                kind="not allowed",
            )
        if args.chain and at and result.chain is not None:
            result.chain.evaluate(at)  # the factors at the values, checked (the record keeps the numbers)
    except ParseError as exc:
        print(f"chainrule derive: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:  # (the budget is counted to prevent this; the machine may still have less memory)
        print(
            f"chainrule derive: error: out of memory; lower --max-numbers (now {args.max_numbers:,})", file=sys.stderr
        )
        return 1
    if args.json:
        print(result.to_json())
    elif args.numpy:
        try:
            print(result.numpy(), end="")
        except ExportError as exc:
            print(f"chainrule derive: error: {exc}", file=sys.stderr)
            return 2
    elif args.latex:
        print(result.latex())
    elif args.latex_document:
        print(result.latex_document(), end="")
    else:
        print(result.text(steps=args.steps or False))
        if at and not extended:  # (a recorded program is derived and checked at the --at values themselves)
            from .derive_at import at_text

            missing = [n for n in shapes if n not in at]
            if missing:
                print(f"chainrule derive: error: --at needs a value for {', '.join(missing)}", file=sys.stderr)
                return 2
            print(at_text(result, at))
        if args.chain and result.chain is not None:
            print(result.chain.text())
        if args.layout:
            from .derive_layout import LayoutError

            try:
                for which in ("column", "row") if args.layout == "both" else (args.layout,):
                    print(result.layout(which))
            except (LayoutError, ValueError) as exc:  # (a recorded program has only its own layout)
                print(f"chainrule derive: error: {exc}", file=sys.stderr)
                return 2
    if result.check is not None and not result.check.ok:
        print(f"chainrule derive: {result.check.text()}", file=sys.stderr)
        return 1
    if result.chain is not None and result.chain.evaluated and not result.chain.ok:
        print(f"chainrule derive: {result.chain.check_text()}", file=sys.stderr)
        return 1
    return 0
