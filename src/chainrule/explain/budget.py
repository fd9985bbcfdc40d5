"""One resource budget for everything that evaluates user text: ``explain``, ``explore``, ``derive``, ``--at``.

Before anything runs, the parsed text is walked with shapes only (no arrays): the
shape of every intermediate value follows from the inputs' shapes, so the numbers
a run would hold are known in advance.  The budget counts each input and each
intermediate value *and its gradient* (the trace keeps both for every node;
``derive``'s check holds the forward values and every gradient of the exported
equations at once), so an expression whose values hold ``n`` numbers costs ``2n``.

The default, :data:`DEFAULT_MAX_NUMBERS`, is 25,000,000 numbers (200 MB of
float64); ``--max-numbers`` changes it on every command.  Matrix products are
bounded too, by their multiply-adds: :data:`MULTIPLY_ADDS_PER_NUMBER` per number
of the budget (1,000,000,000 at the default).  A program over either bound is
refused with a one-line :class:`~.parse.ParseError` (kind ``"limit"``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..numeric import normalize_axes
from .parse import BinOp, Call, Name, Neg, Node, Num, ParseError, Program

DEFAULT_MAX_NUMBERS = 25_000_000  # values and gradients together: 200 MB of float64
MULTIPLY_ADDS_PER_NUMBER = 40  # matrix products may take 40 multiply-adds per number of the budget
MAX_NODES = 5_000  # operations in the whole program

Shape = tuple[int, ...]

_SAME_SHAPE = {"exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "softmax", "log_softmax"}


@dataclass
class Cost:
    """What a run would hold and do, from the shapes: ``values`` counts the elements of the inputs and of every
    intermediate value; ``numbers`` (twice that) adds their gradients."""

    values: int = 0
    multiply_adds: int = 0  # of the matrix products' forwards
    operations: int = 0

    @property
    def numbers(self) -> int:
        return 2 * self.values


def _matmul(a: Shape, b: Shape, col: int) -> tuple[Shape, int]:
    """The shape of ``a @ b`` and the multiply-adds it takes."""
    if not a or not b:
        raise ParseError(f"matmul: operands must be at least 1-D, got shapes {a} @ {b}", kind="shape", column=col)
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ParseError(f"matmul: shapes {a} @ {b} do not align", kind="shape", column=col)
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise ParseError(f"matmul: batch shapes of {a} @ {b} do not broadcast", kind="shape", column=col) from None
    out = batch + (a2[-2], b2[-1])
    work = math.prod(out) * a2[-1]
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out, work


def _reduce(shape: Shape, kwargs: dict, fname: str, col: int) -> Shape:
    axis = kwargs.get("axis")
    keep = bool(kwargs.get("keepdims", False))
    try:
        axes = normalize_axes(axis, len(shape))
    except ValueError as exc:
        raise ParseError(f"{fname}: {exc} (input shape {shape})", kind="shape", column=col) from None
    if keep:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _broadcast(a: Shape, b: Shape, what: str, col: int) -> Shape:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ParseError(f"{what}: shapes {a} and {b} do not broadcast", kind="shape", column=col) from None


def measure(
    statements: Iterable[tuple[Optional[str], Node]], shapes: Mapping[str, Shape], cost: Optional[Cost] = None
) -> dict[str, Shape]:
    """Walk ``(target, expression)`` pairs with shapes only; return the shape of every assigned name.

    The inputs' elements and every intermediate's are added to ``cost`` as the walk goes, so after a
    :class:`ParseError` (shapes that do not fit) ``cost`` holds what the run would have computed before
    reaching the faulty operation.
    """
    cost = Cost() if cost is None else cost
    env = dict(shapes)
    cost.values += sum(math.prod(s) for s in shapes.values())

    def walk(n: Node) -> Shape:
        if isinstance(n, Num):
            return ()
        if isinstance(n, Name):
            return env[n.id]
        cost.operations += 1
        if cost.operations > MAX_NODES:
            raise ParseError(f"the program has more than {MAX_NODES} operations", kind="limit")
        work = 0
        if isinstance(n, Neg):
            out = walk(n.operand)
        elif isinstance(n, BinOp):
            a, b = walk(n.left), walk(n.right)
            out, work = _matmul(a, b, n.col) if n.op == "@" else (_broadcast(a, b, f"'{n.op}'", n.col), 0)
        else:
            assert isinstance(n, Call)
            args = [walk(a) for a in n.args]
            if n.func == "matmul":
                out, work = _matmul(args[0], args[1], n.col)
            elif n.func in ("maximum", "minimum"):
                out = _broadcast(args[0], args[1], n.func, n.col)
            elif n.func == "transpose":
                out = tuple(reversed(args[0]))
            elif n.func in _SAME_SHAPE:
                out = args[0]
            else:
                out = _reduce(args[0], dict(n.kwargs), n.func, n.col)
        cost.values += math.prod(out)
        cost.multiply_adds += work
        return out

    for target, expr in statements:
        shape = walk(expr)
        if target is not None:
            env[target] = shape
    return {k: v for k, v in env.items() if k not in shapes}


def expression_values(node: Node, shapes: Mapping[str, Shape]) -> int:
    """Elements of the intermediate values of one expression (its inputs not counted)."""
    cost = Cost()
    measure([(None, node)], shapes, cost)
    return cost.values - sum(math.prod(s) for s in shapes.values())


def program_cost(prog: Program, shapes: Mapping[str, Shape]) -> Cost:
    """The cost of a parsed program at these input shapes (raises ParseError where shapes do not fit)."""
    cost = Cost()
    measure(((st.target, st.expr) for st in prog.statements), shapes, cost)
    return cost


def _amount(numbers: float) -> str:
    size = 8 * numbers
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if unit == "GB" else f"{size / scale:.0f} {unit}"
    return f"{size:.0f} bytes"


def refuse_over_budget(
    cost: Cost, max_numbers: int = DEFAULT_MAX_NUMBERS, *, what: str = "this", advice: str = ""
) -> int:
    """Raise a one-line ParseError (kind ``"limit"``) when ``cost`` is over the budget; return ``cost.numbers``."""
    advice = advice or "use smaller values"
    advice = f"{advice[0].upper()}{advice[1:]}, or raise the budget with --max-numbers"
    if cost.numbers > max_numbers:
        raise ParseError(
            f"{what} would hold {cost.numbers:,} numbers in all, its values and their gradients (about "
            f"{_amount(cost.numbers)} of float64, counted from the shapes before anything runs); the budget is "
            f"{max_numbers:,} ({_amount(max_numbers)}). {advice}",
            kind="limit",
        )
    limit = MULTIPLY_ADDS_PER_NUMBER * max_numbers
    if cost.multiply_adds > limit:
        raise ParseError(
            f"{what}'s matrix products would take {cost.multiply_adds:,} multiply-adds (counted from the shapes "
            f"before anything runs); the budget allows {limit:,}, {MULTIPLY_ADDS_PER_NUMBER} per number of "
            f"--max-numbers ({max_numbers:,}). {advice}",
            kind="limit",
        )
    return cost.numbers


def max_numbers_type(text: str) -> int:
    """argparse type for ``--max-numbers``: a whole number such as 25000000, 25_000_000 or 2.5e7, at least 1."""
    try:
        value = float(text.replace("_", "")) if any(c in text for c in ".eE") else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of values such as 25000000 or 2.5e7, got {text!r}"
        ) from None
    if not (math.isfinite(value) and value == int(value) and 1 <= value <= 10**15):
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 10**15, got {text!r}")
    return int(value)


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-numbers N``, the same on every command that evaluates user text."""
    parser.add_argument(
        "--max-numbers",
        type=max_numbers_type,
        default=DEFAULT_MAX_NUMBERS,
        metavar="N",
        help=(
            "refuse, before running, work whose values and gradients would hold more than N numbers (counted from "
            f"the shapes; default {DEFAULT_MAX_NUMBERS:,}, 200 MB of float64; matrix products may also take "
            f"{MULTIPLY_ADDS_PER_NUMBER} multiply-adds per number)"
        ),
    )
