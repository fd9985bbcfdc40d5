"""A safe parser for the small expression language of ``chainrule explain`` and ``derive``.

The text goes through Python's :mod:`ast` parser and is then checked against a
whitelist: numbers, names, ``+ - * / ** @``, unary ``-``, ``.T``, calls of the
chainrule functions in :data:`FUNCTIONS` (keywords ``axis`` and ``keepdims``
only), and, in programs, ``;``-separated assignments ``name = expression``.
Nothing is ever ``eval``-ed: the checked tree is evaluated by :func:`evaluate`
with chainrule's own functions.  Every problem is reported as a
:class:`ParseError` with a one-line message naming the position.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from .. import ops
from ..creation import tensor
from ..tensor import Tensor

MAX_LENGTH = 2000
MAX_DEPTH = 60
MAX_EXPONENT = 100
MAX_STATEMENTS = 100
MAX_VALUE_ELEMENTS = 10_000
MAX_RESULT_ELEMENTS = 20_000_000  # per intermediate value during evaluation (160 MB of float64)

# name -> (how many positional tensor arguments, the keywords it accepts)
FUNCTIONS: dict[str, tuple[int, tuple[str, ...]]] = {
    "exp": (1, ()),
    "log": (1, ()),
    "log1p": (1, ()),
    "sqrt": (1, ()),
    "sin": (1, ()),
    "cos": (1, ()),
    "tanh": (1, ()),
    "sigmoid": (1, ()),
    "relu": (1, ()),
    "abs": (1, ()),
    "maximum": (2, ()),
    "minimum": (2, ()),
    "sum": (1, ("axis", "keepdims")),
    "mean": (1, ("axis", "keepdims")),
    "max": (1, ("axis", "keepdims")),
    "min": (1, ("axis", "keepdims")),
    "logsumexp": (1, ("axis", "keepdims")),
    "softmax": (1, ("axis",)),
    "log_softmax": (1, ("axis",)),
    "matmul": (2, ()),
    "transpose": (1, ()),
}

# max(x, y) / min(x, y) with two arguments mean the elementwise maximum / minimum
PAIRWISE = {"max": "maximum", "min": "minimum"}

ALLOWED = (
    "allowed: numbers, names, + - * / ** @, unary -, x.T, and calls of " + ", ".join(sorted(FUNCTIONS)) + " (keywords"
    " axis=, keepdims=; max(x, y) and min(x, y) are elementwise)"
)

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@"}


class ParseError(ValueError):
    """Bad input to the expression language: the message is one line and names the position.

    ``kind`` says which problem it is: ``"syntax"``, ``"not allowed"``, ``"limit"``,
    ``"unknown name"``, ``"missing value"``, ``"shape"`` or ``"value"``.
    """

    def __init__(self, message: str, *, kind: str = "syntax", column: Optional[int] = None) -> None:
        self.kind = kind
        self.column = column
        where = f"column {column}: " if column is not None else ""
        super().__init__(where + message)


# --- the checked tree ------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: float
    col: int


@dataclass(frozen=True)
class Name:
    id: str
    col: int


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node
    col: int


@dataclass(frozen=True)
class Neg:
    operand: Node
    col: int


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Any], ...]
    col: int


Node = Union[Num, Name, BinOp, Neg, Call]


@dataclass(frozen=True)
class Statement:
    """``target = expr`` (``target`` is None for a bare expression)."""

    target: Optional[str]
    expr: Node
    text: str


@dataclass
class Program:
    statements: list[Statement]
    source: str
    inputs: list[str] = field(default_factory=list)  # names used before being assigned, in order of appearance

    @property
    def output(self) -> Optional[str]:
        return self.statements[-1].target


def names_in(node: Node) -> list[str]:
    """Variable names in ``node``, in order of first appearance."""
    out: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Name):
            if n.id not in out:
                out.append(n.id)
        elif isinstance(n, BinOp):
            stack += [n.right, n.left]
        elif isinstance(n, Neg):
            stack.append(n.operand)
        elif isinstance(n, Call):
            stack += list(reversed(n.args))
        elif hasattr(n, "children"):  # the extended language's nodes (indexing, comparisons: .lang)
            stack += list(reversed(n.children()))
    return out


# --- the parsed tree as text ----------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "neg": 3, "**": 4}


def to_text(node: Node) -> str:
    """The expression as chainrule parsed it, with parentheses around every operation inside another one
    (a chain of the same operator, such as ``a + b + c``, keeps its plain left-to-right reading).

    ``1 / 1 + exp(-p)`` reads back as ``(1 / 1) + exp(-p)``.
    """
    if isinstance(node, Num):
        return fmt_number(node.value)
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Neg):
        inner = node.operand
        text = to_text(inner)
        return f"-({text})" if isinstance(inner, (BinOp, Neg)) else f"-{text}"
    if isinstance(node, BinOp):

        def side(child: Node, left: bool) -> str:
            text = to_text(child)
            same_chain = isinstance(child, BinOp) and left and child.op == node.op and node.op != "**"
            if isinstance(child, BinOp) and not same_chain:
                return f"({text})"
            if isinstance(child, Neg) and (not left or node.op == "**"):
                return f"({text})"
            if isinstance(child, Num) and child.value < 0 and (not left or node.op == "**"):
                return f"({text})"
            return text

        return f"{side(node.left, True)} {node.op} {side(node.right, False)}"
    if node.func == "transpose":
        inner = to_text(node.args[0])
        return f"({inner}).T" if not isinstance(node.args[0], (Name, Call)) else f"{inner}.T"
    parts = [to_text(a) for a in node.args] + [f"{k}={v}" for k, v in node.kwargs]
    return f"{node.func}({', '.join(parts)})"


def fmt_number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def precedence_notes(text: str) -> list[str]:
    """Warnings for the precedence slips learners make, found in the typed text (no parentheses where
    they matter): ``1 / 1 + exp(-p)`` divides first, ``-x ** 2`` is ``-(x ** 2)``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    source = text.strip()
    lines = source.splitlines() or [""]
    notes: list[str] = []

    def segment(n: ast.AST) -> str:
        return ast.get_source_segment(source, n) or ""

    def bare(n: ast.AST) -> bool:  # written without parentheses around it
        if getattr(n, "lineno", None) != getattr(n, "end_lineno", None):
            return False
        line = lines[n.lineno - 1]  # type: ignore[attr-defined]
        before = line[: n.col_offset].rstrip()  # type: ignore[attr-defined]
        after = line[n.end_col_offset :].lstrip()  # type: ignore[attr-defined]
        return not (before.endswith("(") and after.startswith(")"))

    for n in ast.walk(tree):
        if len(notes) >= 3:
            break
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub)):
            for child in (n.left, n.right):
                if isinstance(child, ast.BinOp) and isinstance(child.op, ast.Div) and bare(child):
                    sign = "+" if isinstance(n.op, ast.Add) else "-"
                    notes.append(
                        f"{segment(child)} is evaluated first: / binds tighter than {sign}; "
                        f"to divide by the whole sum write {segment(child.left)} / (...)"
                    )
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            if isinstance(n.operand, ast.BinOp) and isinstance(n.operand.op, ast.Pow) and bare(n.operand):
                notes.append(f"-{segment(n.operand)} is -({segment(n.operand)}): ** binds tighter than unary -")
    return notes


# --- parsing ------------------------------------------------------------------------------


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"attribute access (.{node.attr})"
    if isinstance(node, ast.Lambda):
        return "a lambda"
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return "a comprehension"
    if isinstance(node, ast.Subscript):
        return "indexing"
    if isinstance(node, ast.Name):
        return f"the word {node.id!r} (a value is a number, not a name)"[:80]
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"[:60]
    if isinstance(node, (ast.List, ast.Tuple, ast.Dict, ast.Set)):
        return f"a {type(node).__name__.lower()} literal"
    if isinstance(node, ast.Compare):
        return "a comparison"
    if isinstance(node, ast.BoolOp):
        return "and/or"
    if isinstance(node, ast.IfExp):
        return "an if-expression"
    if isinstance(node, ast.NamedExpr):
        return "the walrus operator :="
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the unary operator {type(node.op).__name__}"
    return f"{type(node).__name__}"


def _to_float(value: Any) -> float:
    """``float(value)`` for a literal, with integers too large for a float reading as infinity (never raising)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


class _Checker:
    def __init__(self, line_starts: list[int], text: str) -> None:
        self.line_starts = line_starts
        self.text = text

    def col(self, node: ast.AST) -> int:
        """The 1-based character position of ``node`` in the text (ast counts UTF-8 bytes within a line)."""
        start = self.line_starts[getattr(node, "lineno", 1) - 1]
        offset = getattr(node, "col_offset", 0)
        prefix = self.text[start : start + offset].encode("utf-8")[:offset].decode("utf-8", "ignore")
        return start + len(prefix) + 1

    def refuse(self, node: ast.AST, what: Optional[str] = None) -> ParseError:
        return ParseError(
            f"{what or _describe(node)} is not allowed; {ALLOWED}", kind="not allowed", column=self.col(node)
        )

    def folded(self, node: ast.AST, depth: int = 0) -> Optional[float]:
        """The value of an expression made only of numbers (to bound exponents), else None."""
        n = self.number(node)
        if n is not None or depth > MAX_DEPTH:
            return n
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = self.folded(node.left, depth + 1), self.folded(node.right, depth + 1)
            if a is None or b is None:
                return None
            try:
                if isinstance(node.op, ast.Pow):
                    if abs(b) > MAX_EXPONENT:
                        return math.inf
                    return float(a**b) if not isinstance(a**b, complex) else math.nan
                if isinstance(node.op, ast.MatMult):
                    return None
                if isinstance(node.op, ast.Div):
                    return a / b if b else math.inf
                return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]
            except (OverflowError, ZeroDivisionError):
                return math.inf
        return None

    def number(self, node: ast.AST) -> Optional[float]:
        """The value of a (possibly negated) numeric constant, else None."""
        sign = 1.0
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -sign if isinstance(node.op, ast.USub) else sign
            node = node.operand
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return sign * _to_float(node.value)
        return None

    def expr(self, node: ast.AST, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise ParseError(
                f"the expression is nested too deeply (limit {MAX_DEPTH})", kind="limit", column=self.col(node)
            )
        col = self.col(node)
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                raise self.refuse(node)
            value = _to_float(node.value)
            if not math.isfinite(value):
                text = repr(node.value)
                if len(text) > 24:
                    text = f"{text[:12]}... ({len(text)} digits)"
                raise ParseError(f"the number {text} is not finite as a float", kind="limit", column=col)
            return Num(value, col)
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise ParseError(f"'{node.id}' is a function: call it, as in {node.id}(x)", kind="syntax", column=col)
            if node.id.startswith("_"):
                raise ParseError(f"names may not start with '_' ({node.id})", kind="not allowed", column=col)
            return Name(node.id, col)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.refuse(node)
            if op == "**":
                exponent = self.folded(node.right)
                if exponent is not None and not abs(exponent) <= MAX_EXPONENT:
                    raise ParseError(
                        f"the exponent {exponent:g} is too large (limit ±{MAX_EXPONENT})", kind="limit", column=col
                    )
            return BinOp(op, self.expr(node.left, depth + 1), self.expr(node.right, depth + 1), col)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                inner = self.expr(node.operand, depth + 1)
                if isinstance(inner, Num):
                    return Num(-inner.value, col)
                return Neg(inner, col)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand, depth + 1)
            raise self.refuse(node)
        if isinstance(node, ast.Attribute):
            if node.attr == "T" and isinstance(node.ctx, ast.Load):
                return Call("transpose", (self.expr(node.value, depth + 1),), (), col)
            raise self.refuse(node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.refuse(node)

    def call(self, node: ast.Call, depth: int) -> Call:
        col = self.col(node)
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node.func, f"calling {_describe(node.func)}")
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise ParseError(
                f"unknown function '{fname}'; the functions are " + ", ".join(sorted(FUNCTIONS)),
                kind="unknown name",
                column=col,
            )
        nargs, keywords = FUNCTIONS[fname]
        if fname in PAIRWISE and len(node.args) == 2 and not node.keywords:
            # max(x, y) as CS231n writes the max gate, and as torch.max(a, b): the elementwise maximum
            fname, (nargs, keywords) = PAIRWISE[fname], FUNCTIONS[PAIRWISE[fname]]
        if len(node.args) != nargs or any(isinstance(a, ast.Starred) for a in node.args):
            raise ParseError(f"{fname}() takes {nargs} argument(s), got {len(node.args)}", kind="syntax", column=col)
        kwargs = []
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in keywords:
                allowed = ", ".join(k + "=" for k in keywords) or "no keywords"
                raise ParseError(
                    f"{fname}() does not take the keyword {kw.arg or '**'}; it takes {allowed}",
                    kind="not allowed",
                    column=self.col(kw.value),
                )
            kwargs.append((kw.arg, self.keyword_value(fname, kw)))
        args = tuple(self.expr(a, depth + 1) for a in node.args)
        return Call(fname, args, tuple(kwargs), col)

    def keyword_value(self, fname: str, kw: ast.keyword) -> Any:
        v = kw.value
        if kw.arg == "keepdims":
            if isinstance(v, ast.Constant) and type(v.value) is bool:
                return v.value
            raise ParseError(f"{fname}(): keepdims must be True or False", kind="syntax", column=self.col(v))
        items = v.elts if isinstance(v, ast.Tuple) else [v]
        axes = []
        for item in items:
            n = self.number(item)
            if n is None or not math.isfinite(n) or n != int(n) or abs(n) > 32:
                raise ParseError(
                    f"{fname}(): axis must be a small integer or a tuple of them", kind="syntax", column=self.col(v)
                )
            axes.append(int(n))
        return tuple(axes) if isinstance(v, ast.Tuple) else axes[0]


def _tree(text: str, mode: str, strip: bool = False) -> tuple[ast.AST, list[int], str]:
    if not isinstance(text, str):
        raise ParseError(f"expected the expression as a string, got {type(text).__name__}", kind="syntax")
    if strip:
        text = text.strip()
    if len(text) > MAX_LENGTH:
        raise ParseError(f"the input is {len(text)} characters long (limit {MAX_LENGTH})", kind="limit")
    if not text.strip():
        raise ParseError("the expression is empty", kind="syntax")
    depth = best = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError(f"brackets are nested too deeply (limit {MAX_DEPTH})", kind="limit", column=i + 1)
            best = max(best, depth)
        elif ch in ")]}":
            depth -= 1
    # Python ends a line at \r\n, \r or \n: the line numbers of ast count all three
    line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # ("invalid decimal literal"): a second line on stderr
            tree = ast.parse(text, mode=mode)
    except SyntaxError as exc:
        col = None
        if exc.lineno is not None and exc.offset is not None and exc.lineno <= len(line_starts) and exc.offset >= 1:
            col = min(line_starts[exc.lineno - 1] + exc.offset, len(text) + 1)  # (offset 0: Python does not know)
        msg = (exc.msg or "invalid syntax").split("\n")[0]
        why = "invalid syntax" if msg == "invalid syntax" else f"invalid syntax: {msg}"
        raise ParseError(f"{why}; {ALLOWED}", kind="syntax", column=col) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ParseError(f"the expression cannot be parsed ({type(exc).__name__}); simplify it", kind="limit") from None
    return tree, line_starts, text


def parse_expression(text: str) -> Node:
    """Parse and check one expression, such as ``(x + y) * z``."""
    tree, starts, text = _tree(text, "eval", strip=True)
    assert isinstance(tree, ast.Expression)
    return _Checker(starts, text).expr(tree.body)


def parse_program(text: str, checker_class: Optional[type] = None) -> Program:
    """Parse ``name = expr; name = expr; ...`` (``;`` or newlines between statements).

    ``checker_class`` (a subclass of the checker, with its own ``reserved`` names) widens what is accepted:
    derive's extended language (:mod:`.lang`) passes its own.
    """
    tree, starts, text = _tree(text, "exec")
    assert isinstance(tree, ast.Module)
    checker = (checker_class or _Checker)(starts, text)
    reserved = getattr(checker, "reserved", FUNCTIONS)
    if not tree.body:
        raise ParseError("the program has no statements (only comments or blank lines)", kind="syntax")
    if len(tree.body) > MAX_STATEMENTS:
        raise ParseError(f"the program has {len(tree.body)} statements (limit {MAX_STATEMENTS})", kind="limit")
    statements: list[Statement] = []
    assigned: list[str] = []
    inputs: list[str] = []
    for i, stmt in enumerate(tree.body):
        last = i == len(tree.body) - 1
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise ParseError(
                    "assign to one plain name, as in  z = W @ a + b", kind="not allowed", column=checker.col(stmt)
                )
            target = stmt.targets[0].id
            if target in reserved or target.startswith("_"):
                raise ParseError(f"'{target}' cannot be assigned to", kind="not allowed", column=checker.col(stmt))
            if target in assigned or target in inputs:
                raise ParseError(
                    f"'{target}' is assigned twice (or used before); give each value its own name",
                    kind="not allowed",
                    column=checker.col(stmt),
                )
            expr = checker.expr(stmt.value)
            if target in names_in(expr):
                raise ParseError(
                    f"'{target}' is used in its own definition; give the new value its own name",
                    kind="not allowed",
                    column=checker.col(stmt),
                )
        elif isinstance(stmt, ast.Expr) and last:
            target, expr = None, checker.expr(stmt.value)
        else:
            raise ParseError(
                f"{_describe(stmt)} is not allowed; a program is  name = expression; name = expression; ...",
                kind="not allowed",
                column=checker.col(stmt),
            )
        for n in names_in(expr):
            if n not in assigned and n not in inputs:
                inputs.append(n)
        if target is not None:
            assigned.append(target)
        segment = ast.get_source_segment(text, stmt) or ""
        statements.append(Statement(target, expr, segment))
    return Program(statements, text, inputs)


# --- values for --at --------------------------------------------------------------------------


def parse_value(text: str, name: str = "value") -> Any:
    """A number or a nested list of numbers (``-2``, ``[1, 2.5]``, ``[[1, 2], [3, 4]]``), safely."""
    tree, starts, text = _tree(text, "eval", strip=True)
    checker = _Checker(starts, text)
    count = 0

    def conv(node: ast.AST) -> Any:
        nonlocal count
        n = checker.number(node)
        if n is not None:
            count += 1
            if count > MAX_VALUE_ELEMENTS:
                raise ParseError(f"{name}: too many numbers (limit {MAX_VALUE_ELEMENTS})", kind="limit")
            if not math.isfinite(n):
                raise ParseError(f"{name}: the number is not finite", kind="value", column=checker.col(node))
            return n
        if isinstance(node, (ast.List, ast.Tuple)):
            return [conv(e) for e in node.elts]
        raise ParseError(
            f"{name}: expected a number or a list of numbers such as [1, 2.5], not {_describe(node)}",
            kind="value",
            column=checker.col(node),
        )

    raw = conv(tree.body)  # type: ignore[attr-defined]
    if isinstance(raw, float):
        return raw
    try:
        arr = np.array(raw, dtype=np.float64)
    except ValueError:
        raise ParseError(f"{name}: the nested lists are ragged (rows of different lengths)", kind="value") from None
    if arr.size == 0:  # (a mean over no entries divides by zero in its backward: nothing to explain there)
        raise ParseError(f"{name}: the list holds no numbers (shape {arr.shape}); give at least one", kind="value")
    return arr


def parse_assignments(items: list[str], what: str = "--at") -> dict[str, str]:
    """``["x=-2", "y=5"]`` -> ``{"x": "-2", "y": "5"}`` with clear errors."""
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise ParseError(f"{what}: expected NAME=VALUE text, got {type(item).__name__}", kind="syntax")
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not value.strip():
            shown = item if len(item) <= 60 else item[:40] + f"... ({len(item)} characters)"
            raise ParseError(f"{what} {shown!r}: write NAME=VALUE, as in x=-2", kind="syntax")
        if name in out:
            raise ParseError(f"{what}: {name} is given twice", kind="syntax")
        out[name] = value
    return out


# --- evaluation -------------------------------------------------------------------------------


def _apply_binop(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return ops.add(a, b)
    if op == "-":
        return ops.subtract(a, b)
    if op == "*":
        return ops.multiply(a, b)
    if op == "/":
        return ops.divide(a, b)
    if op == "**":
        return ops.power(a, b)
    return ops.matmul(a, b)


def _result_size(op: str, a: Any, b: Any) -> Optional[int]:
    """How many elements ``a op b`` would have (``op`` is ``"@"`` for a matrix product), or None if not computable."""
    sa, sb = tuple(getattr(a, "shape", ())), tuple(getattr(b, "shape", ()))
    try:
        if op != "@":
            return math.prod(np.broadcast_shapes(sa, sb))
        if not sa or not sb:
            return None
        rows = sa[-2:-1] if len(sa) > 1 else ()
        cols = sb[-1:] if len(sb) > 1 else ()
        return math.prod(np.broadcast_shapes(sa[:-2], sb[:-2]) + rows + cols)
    except ValueError:
        return None  # incompatible shapes: the operation itself says so


def _check_size(op: str, a: Any, b: Any, col: int) -> None:
    n = _result_size(op, a, b)
    if n is not None and n > MAX_RESULT_ELEMENTS:
        sa, sb = tuple(getattr(a, "shape", ())), tuple(getattr(b, "shape", ()))
        raise ParseError(
            f"'{op}' of shapes {sa} and {sb} would give {n:,} elements (limit {MAX_RESULT_ELEMENTS:,})",
            kind="limit",
            column=col,
        )


def _elements(v: Any) -> int:
    return math.prod(tuple(getattr(v, "shape", ())))


def evaluate(node: Node, env: Mapping[str, Any], max_values: Optional[int] = None) -> Any:
    """Evaluate a checked expression with chainrule's functions; ``env`` maps names to tensors.

    With ``max_values``, the elements of the inputs and of all results together may not exceed it: each
    operation's result size is known before it runs, and the one that would go over is refused (a backstop
    behind the budget counted from the shapes, :mod:`.budget`).
    """

    held = 0 if max_values is None else sum(_elements(v) for v in env.values())

    def tally(size: Optional[int], col: int) -> None:
        nonlocal held
        if max_values is None:
            return
        held += size or 1
        if held > max_values:
            raise ParseError(
                f"the values computed so far would hold {held:,} numbers, over the budget's {max_values:,} "
                "(its values half); use smaller values, or raise it with --max-numbers",
                kind="limit",
                column=col,
            )

    def ev(n: Node) -> Any:
        if isinstance(n, Num):
            return n.value
        if isinstance(n, Name):
            if n.id not in env:
                raise ParseError(f"no value for '{n.id}'", kind="missing value", column=n.col)
            return env[n.id]
        try:
            if isinstance(n, BinOp):
                left, right = ev(n.left), ev(n.right)
                if not isinstance(left, Tensor) and not isinstance(right, Tensor):
                    left = tensor(left)
                _check_size(n.op, left, right, n.col)
                tally(_result_size(n.op, left, right), n.col)
                return _apply_binop(n.op, left, right)
            if isinstance(n, Neg):
                out = ops.negative(ev(n.operand))
                tally(_elements(out), n.col)  # (one input, no larger than its result: counted after)
                return out
            args = [ev(a) for a in n.args]
            args = [a if isinstance(a, Tensor) else tensor(a) for a in args]
            if len(args) == 2:
                op = "@" if n.func == "matmul" else n.func
                _check_size(op, args[0], args[1], n.col)
                tally(_result_size(op, args[0], args[1]), n.col)
                return getattr(ops, n.func)(*args, **dict(n.kwargs))
            out = getattr(ops, n.func)(*args, **dict(n.kwargs))
            tally(_elements(out), n.col)
            return out
        except ParseError:
            raise
        except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
            raise ParseError(str(exc).split("\n")[0], kind="shape", column=n.col) from None

    try:
        return ev(node)
    finally:
        # ev calls itself, so its closure refers to itself: a cycle that would keep env (and every array in
        # it) alive until the next garbage collection; a check that evaluates thousands of times ran to GBs
        ev = None  # type: ignore[assignment]  # noqa: F841


# --- a generic activation: f(z) -------------------------------------------------------------------
GENERIC = re.compile(r"(?<![\w.])f\s*\(")


def generic_program(program: str) -> str:
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
