"""How much work ``derive`` would do, computed from the shapes alone, before anything runs.

:func:`total_elements` walks the parsed program with shapes only (no arrays) and
adds up the elements of every intermediate value; :func:`check_bounds` refuses a
program whose forward pass (and so its backward equations' evaluation) would need
more than :data:`MAX_TOTAL_ELEMENTS` numbers in all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..numeric import normalize_axes
from .parse import BinOp, Call, Name, Neg, Node, Num, ParseError, Program

MAX_TOTAL_ELEMENTS = 20_000_000  # all intermediate values together: 160 MB of float64
MAX_NODES = 5_000  # operations in the whole program

_SAME_SHAPE = {"exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "softmax", "log_softmax"}


def _matmul(a: tuple[int, ...], b: tuple[int, ...], col: int) -> tuple[int, ...]:
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
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _reduce(shape: tuple[int, ...], kwargs: dict, fname: str, col: int) -> tuple[int, ...]:
    axis = kwargs.get("axis")
    keep = bool(kwargs.get("keepdims", False))
    try:
        axes = normalize_axes(axis, len(shape))
    except ValueError as exc:
        raise ParseError(f"{fname}: {exc} (input shape {shape})", kind="shape", column=col) from None
    if keep:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def program_shapes(prog: Program, shapes: Mapping[str, tuple[int, ...]]) -> tuple[dict[str, tuple[int, ...]], int, int]:
    """The shape of every assigned name, the total elements of all intermediates, and the operation count."""
    env = dict(shapes)
    total = 0
    count = 0

    def walk(n: Node) -> tuple[int, ...]:
        nonlocal total, count
        if isinstance(n, Num):
            return ()
        if isinstance(n, Name):
            return env[n.id]
        count += 1
        if count > MAX_NODES:
            raise ParseError(f"the program has more than {MAX_NODES} operations", kind="limit")
        if isinstance(n, Neg):
            out = walk(n.operand)
        elif isinstance(n, BinOp):
            a, b = walk(n.left), walk(n.right)
            if n.op == "@":
                out = _matmul(a, b, n.col)
            else:
                try:
                    out = tuple(np.broadcast_shapes(a, b))
                except ValueError:
                    raise ParseError(
                        f"'{n.op}': shapes {a} and {b} do not broadcast", kind="shape", column=n.col
                    ) from None
        else:
            assert isinstance(n, Call)
            args = [walk(a) for a in n.args]
            kw = dict(n.kwargs)
            if n.func == "matmul":
                out = _matmul(args[0], args[1], n.col)
            elif n.func in ("maximum", "minimum"):
                try:
                    out = tuple(np.broadcast_shapes(args[0], args[1]))
                except ValueError:
                    raise ParseError(
                        f"{n.func}: shapes {args[0]} and {args[1]} do not broadcast", kind="shape", column=n.col
                    ) from None
            elif n.func == "transpose":
                out = tuple(reversed(args[0]))
            elif n.func in _SAME_SHAPE:
                out = args[0]
            else:
                out = _reduce(args[0], kw, n.func, n.col)
        total += math.prod(out)
        return out

    for st in prog.statements:
        shape = walk(st.expr)
        if st.target is not None:
            env[st.target] = shape
    return {k: v for k, v in env.items() if k not in shapes}, total, count


def check_bounds(prog: Program, shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Refuse a program whose values would need more than :data:`MAX_TOTAL_ELEMENTS` numbers; return the total."""
    _, total, _ = program_shapes(prog, shapes)
    total += sum(math.prod(s) for s in shapes.values())
    if total > MAX_TOTAL_ELEMENTS:
        raise ParseError(
            f"this program's values would hold {total:,} numbers in all (about {8 * total / 1e9:.1f} GB of "
            f"float64, counted from the shapes before running anything); the limit is {MAX_TOTAL_ELEMENTS:,} "
            "(160 MB). The equations do not depend on the sizes: use smaller shapes, or a symbolic size such as B",
            kind="limit",
        )
    return total
