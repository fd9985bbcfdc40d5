"""derive's extended language: the operations ``cr.derive(output)`` explains, typed as text.

The basic language (:mod:`.parse`) stays as it is; a program that uses any of
the operations below is parsed by :class:`LangChecker`, a stricter-than-Python
whitelist on top of the same :mod:`ast` checks, and is never ``eval``-ed:

* the functions in :data:`OPERATIONS` (``square``, ``var``, ``std``, ``norm``,
  ``where``, ``reshape``, ``permute``, ``cat``, ``stack``, ``embedding``,
  ``cross_entropy``, ``batch_norm``, ``layer_norm``, ``conv2d``,
  ``max_pool2d``, ``avg_pool2d``, ``linear``, ``attention``), each with its
  tensor operands, its static arguments (whole numbers and tuples of them,
  checked here) and its keywords;
* indexing ``x[i]``, where each index is a whole number, a slice with
  whole-number bounds and a positive step (``1:3``), ``range(n)``, or the name
  of an integer input (``logits[range(32), Y]``);
* comparisons ``a > b`` (``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``), only
  as ``where``'s condition or as a mask of their own (``m = x > 0``).

Evaluation (:mod:`.lang_eval`) records the graph with chainrule's functions;
:mod:`.derive_lang` hands it to the recorded-graph derive.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from .parse import FUNCTIONS, MAX_DEPTH, Call, Name, Node, ParseError, Program, _Checker, names_in, parse_program


@dataclass(frozen=True)
class Op:
    """How an operation of the extended language is called."""

    tensors: int  # required tensor operands, first
    optional: int = 0  # optional tensor operands after them (a bias)
    statics: tuple[str, ...] = ()  # positional static arguments after the tensors (also accepted as keywords)
    optional_statics: tuple[str, ...] = ()  # those of the statics that have a default (dropout's p)
    keywords: tuple[str, ...] = ()
    variadic: bool = False  # cat(a, b, ...) or cat((a, b), ...)
    spelling: str = ""  # how the docs and the errors write a call

    def usage(self, name: str) -> str:
        return self.spelling or name + "(x)"


_REDUCE = ("axis", "dim", "keepdims", "keepdim")
OPERATIONS: dict[str, Op] = {
    "square": Op(1, spelling="square(x)"),
    "var": Op(1, keywords=(*_REDUCE, "correction"), spelling="var(x, axis=0, keepdims=False, correction=1)"),
    "std": Op(1, keywords=(*_REDUCE, "correction"), spelling="std(x, axis=0, keepdims=False, correction=1)"),
    "norm": Op(1, keywords=_REDUCE, spelling="norm(x, axis=None, keepdims=False)"),
    "where": Op(3, spelling="where(x > 0, a, b)"),
    "reshape": Op(1, statics=("shape",), spelling="reshape(x, (2, -1))"),
    "permute": Op(1, statics=("dims",), spelling="permute(x, (1, 0))"),
    "cat": Op(0, keywords=("axis", "dim"), variadic=True, spelling="cat(a, b, axis=1) or cat((a, b), axis=1)"),
    "stack": Op(0, keywords=("axis", "dim"), variadic=True, spelling="stack(a, b, axis=0)"),
    "embedding": Op(2, spelling="embedding(X, C) (X: an integer input)"),
    "cross_entropy": Op(2, spelling="cross_entropy(logits, Y) (Y: an integer input)"),
    "batch_norm": Op(3, keywords=("eps",), spelling="batch_norm(x, gamma, beta, eps=1e-5)"),
    "layer_norm": Op(3, keywords=("eps",), spelling="layer_norm(x, gamma, beta, eps=1e-5)"),
    "conv2d": Op(2, optional=1, keywords=("stride", "padding"), spelling="conv2d(x, W, b, stride=1, padding=0)"),
    "max_pool2d": Op(1, statics=("kernel_size",), keywords=("stride", "padding"), spelling="max_pool2d(x, 2)"),
    "avg_pool2d": Op(1, statics=("kernel_size",), keywords=("stride", "padding"), spelling="avg_pool2d(x, 2)"),
    "linear": Op(2, optional=1, spelling="linear(x, W, b)"),
    "dropout": Op(1, statics=("p",), optional_statics=("p",), spelling="dropout(x, p=0.5)"),
    "mse_loss": Op(2, spelling="mse_loss(x, y)"),
    "flatten": Op(1, keywords=("start_dim", "end_dim"), spelling="flatten(x, start_dim=1)"),
    "leaky_relu": Op(
        1, statics=("negative_slope",), optional_statics=("negative_slope",), spelling="leaky_relu(x, 0.01)"
    ),
    "elu": Op(1, statics=("alpha",), optional_statics=("alpha",), spelling="elu(x, alpha=1.0)"),
    "silu": Op(1, spelling="silu(x)"),
    "clamp": Op(1, statics=("min", "max"), optional_statics=("min", "max"), spelling="clamp(x, -1, 1)"),
    "attention": Op(3, keywords=("scale",), spelling="attention(q, k, v, scale=None)"),
    "scaled_dot_product_attention": Op(3, keywords=("scale",), spelling="scaled_dot_product_attention(q, k, v)"),
}

RESERVED = frozenset(FUNCTIONS) | frozenset(OPERATIONS) | {"range"}
ALL_FUNCTIONS = sorted(frozenset(FUNCTIONS) | frozenset(OPERATIONS))
COMPARISONS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
MAX_STATIC = 1_000_000  # the largest whole number a static argument (a size, a stride) may be

ALLOWED_EXTENDED = (
    "allowed: numbers, names, + - * / ** @, unary -, x.T, indexing x[i] (whole numbers, slices 1:3, range(n), "
    "integer inputs), comparisons as where's condition, and calls of " + ", ".join(ALL_FUNCTIONS)
)


@dataclass(frozen=True)
class Range:
    """``range(start, stop, step)`` inside an index."""

    start: int
    stop: int
    step: int

    def value(self) -> range:
        return range(self.start, self.stop, self.step)


@dataclass(frozen=True)
class Slice:
    """``start:stop:step`` inside an index (None where not written)."""

    start: Optional[int]
    stop: Optional[int]
    step: Optional[int]

    def value(self) -> slice:
        return slice(self.start, self.stop, self.step)


IndexItem = Union[int, Slice, Range, Name]


@dataclass(frozen=True)
class Index:
    """``value[items]``."""

    value: Node
    items: tuple[IndexItem, ...]
    col: int

    def children(self) -> list[Any]:
        return [self.value] + [i for i in self.items if isinstance(i, Name)]


@dataclass(frozen=True)
class Compare:
    """``left op right`` (a mask: where's condition, or a statement of its own)."""

    op: str
    left: Node
    right: Node
    col: int

    def children(self) -> list[Any]:
        return [self.left, self.right]


class LangChecker(_Checker):
    """The basic language's checks, plus the extended operations, indexing and comparisons."""

    reserved = RESERVED

    def refuse(self, node: ast.AST, what: Optional[str] = None) -> ParseError:
        from .parse import _describe

        return ParseError(
            f"{what or _describe(node)} is not allowed; {ALLOWED_EXTENDED}", kind="not allowed", column=self.col(node)
        )

    def expr(self, node: ast.AST, depth: int = 0) -> Any:
        col = self.col(node)
        if isinstance(node, ast.Name) and node.id in RESERVED and node.id not in FUNCTIONS:
            raise ParseError(f"'{node.id}' is a function: call it, as in {node.id}(x)", kind="syntax", column=col)
        if isinstance(node, ast.Subscript):
            if depth > MAX_DEPTH:
                raise ParseError(f"the expression is nested too deeply (limit {MAX_DEPTH})", kind="limit", column=col)
            return self.subscript(node, depth)
        if isinstance(node, ast.Compare):
            if depth > 0:
                raise ParseError(
                    "a comparison is allowed only as where's condition, as in where(x > 0, x, 0.1 * x), or as a "
                    "mask of its own, as in m = x > 0",
                    kind="not allowed",
                    column=col,
                )
            return self.condition(node, depth)
        return super().expr(node, depth)

    def condition(self, node: ast.AST, depth: int) -> Any:
        """where's condition: a comparison, or the name of a mask assigned before."""
        col = self.col(node)
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise ParseError(
                    "write one comparison at a time (a < x < b is not allowed; make two masks)",
                    kind="not allowed",
                    column=col,
                )
            op = COMPARISONS.get(type(node.ops[0]))
            if op is None:
                raise ParseError(
                    f"the comparison {type(node.ops[0]).__name__} is not allowed; use one of "
                    + " ".join(COMPARISONS.values()),
                    kind="not allowed",
                    column=col,
                )
            return Compare(op, self.expr(node.left, depth + 1), self.expr(node.comparators[0], depth + 1), col)
        if isinstance(node, ast.Name):
            return self.expr(node, depth + 1)
        raise ParseError(
            "where's condition must be a comparison such as x > 0, or a mask assigned before (m = x > 0)",
            kind="not allowed",
            column=col,
        )

    # --- indexing ------------------------------------------------------------------------------------
    def subscript(self, node: ast.Subscript, depth: int) -> Index:
        col = self.col(node)
        if not isinstance(node.ctx, ast.Load):
            raise self.refuse(node, "assigning into an index")
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if not items or len(items) > 6:
            raise ParseError("an index has one to six parts, as in x[0], x[:, 1]", kind="not allowed", column=col)
        parsed = tuple(self.index_item(item) for item in items)
        return Index(self.expr(node.value, depth + 1), parsed, col)

    def whole(self, node: ast.AST, what: str) -> int:
        n = self.number(node)
        if n is None or not math.isfinite(n) or n != int(n) or abs(n) > MAX_STATIC:
            raise ParseError(
                f"{what} must be a whole number (at most {MAX_STATIC:,} in size)",
                kind="not allowed",
                column=self.col(node),
            )
        return int(n)

    def index_item(self, item: ast.AST) -> IndexItem:
        col = self.col(item)
        if isinstance(item, ast.Slice):
            parts = [None if p is None else self.whole(p, "a slice bound") for p in (item.lower, item.upper, item.step)]
            if parts[2] is not None and parts[2] <= 0:
                raise ParseError(
                    f"the slice step {parts[2]} is not allowed: torch refuses steps below 1 (x[::-1] is an error "
                    "there); slice forwards, as in x[0:4:2]",
                    kind="not allowed",
                    column=col,
                )
            return Slice(*parts)
        if isinstance(item, ast.Call) and isinstance(item.func, ast.Name) and item.func.id == "range":
            if item.keywords or not 1 <= len(item.args) <= 3:
                raise ParseError("range takes one to three whole numbers, as in range(32)", kind="syntax", column=col)
            bounds = [self.whole(a, "range's argument") for a in item.args]
            start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds, 1)[:3]
            if step == 0:
                raise ParseError("range's step must not be 0", kind="value", column=col)
            if len(range(start, stop, step)) == 0:
                raise ParseError(f"range({', '.join(map(str, bounds))}) is empty", kind="value", column=col)
            return Range(start, stop, step)
        if isinstance(item, ast.Name):
            if item.id.startswith("_") or item.id in RESERVED:
                raise ParseError(f"'{item.id}' cannot be an index", kind="not allowed", column=col)
            return Name(item.id, col)
        if self.number(item) is not None:
            return self.whole(item, "an index")
        raise ParseError(
            f"{_what(item)} cannot be an index; an index is a whole number, a slice such as 1:3, range(n), or the "
            "name of an integer input (declared with ints= / --ints)",
            kind="not allowed",
            column=col,
        )

    # --- calls ---------------------------------------------------------------------------------------
    def call(self, node: ast.Call, depth: int) -> Call:
        col = self.col(node)
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node.func, f"calling {_what(node.func)}")
        fname = node.func.id
        if fname in FUNCTIONS:
            return super().call(node, depth)
        if fname == "range":
            raise ParseError(
                "range(n) is allowed only inside an index, as in x[range(4), Y]", kind="not allowed", column=col
            )
        if fname not in OPERATIONS:
            raise ParseError(
                f"unknown function '{fname}'; the functions are " + ", ".join(ALL_FUNCTIONS),
                kind="unknown name",
                column=col,
            )
        op = OPERATIONS[fname]
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse(node, f"{fname}(*...)")
        args = list(node.args)
        if op.variadic:
            if len(args) == 1 and isinstance(args[0], (ast.Tuple, ast.List)):
                args = list(args[0].elts)
            if not args:
                raise ParseError(f"{fname}() needs tensors to join: {op.usage(fname)}", kind="syntax", column=col)
            tensors, statics = args, []
        else:
            most = op.tensors + op.optional + len(op.statics)
            if not op.tensors <= len(args) <= most:
                want = str(op.tensors) if most == op.tensors else f"{op.tensors} to {most}"
                raise ParseError(
                    f"{fname}() takes {want} argument(s), got {len(args)}: {op.usage(fname)}", kind="syntax", column=col
                )
            n_tensors = op.tensors if op.statics else len(args)  # (the static arguments follow the tensors)
            tensors, statics = args[:n_tensors], args[n_tensors:]
        kwargs: dict[str, Any] = {}
        for name, value in zip(op.statics, statics):
            kwargs[name] = self.static(fname, name, value)
        for kw in node.keywords:
            allowed = (*op.statics, *op.keywords)
            if kw.arg is None or kw.arg not in allowed:
                shown = ", ".join(k + "=" for k in allowed) or "no keywords"
                raise ParseError(
                    f"{fname}() does not take the keyword {kw.arg or '**'}; it takes {shown} ({op.usage(fname)})",
                    kind="not allowed",
                    column=self.col(kw.value),
                )
            if kw.arg in kwargs:
                raise ParseError(f"{fname}(): {kw.arg} is given twice", kind="syntax", column=self.col(kw.value))
            kwargs[kw.arg] = self.static(fname, kw.arg, kw.value)
        for name in op.statics:
            if name not in kwargs and name not in op.optional_statics:
                raise ParseError(f"{fname}() needs its {name}: {op.usage(fname)}", kind="syntax", column=col)
        for a, b in (("axis", "dim"), ("keepdims", "keepdim")):
            if a in kwargs and b in kwargs:
                raise ParseError(f"{fname}(): give {a}= or {b}=, not both", kind="syntax", column=col)
        if fname == "where":
            parsed = (self.condition(tensors[0], depth + 1),) + tuple(self.expr(a, depth + 1) for a in tensors[1:])
        else:
            parsed = tuple(self.expr(a, depth + 1) for a in tensors)
        return Call(fname, parsed, tuple(kwargs.items()), col)

    def static(self, fname: str, name: str, value: ast.AST) -> Any:
        """A static argument, checked: whole numbers (and tuples of them), a bool, or a positive float."""
        col = self.col(value)
        if name in ("keepdims", "keepdim"):
            if isinstance(value, ast.Constant) and type(value.value) is bool:
                return value.value
            raise ParseError(f"{fname}(): {name} must be True or False", kind="syntax", column=col)
        if name in ("eps", "scale"):
            if isinstance(value, ast.Constant) and value.value is None and name == "scale":
                return None
            n = self.number(value)
            if n is None or not math.isfinite(n) or n <= 0:
                raise ParseError(
                    f"{fname}(): {name} must be a positive number, as in {name}=1e-5", kind="syntax", column=col
                )
            return float(n)
        if name in ("axis", "dim") and isinstance(value, ast.Constant) and value.value is None:
            return None
        if name in ("p", "negative_slope", "alpha", "min", "max"):
            if name in ("min", "max") and isinstance(value, ast.Constant) and value.value is None:
                return None
            n = self.number(value)
            if n is None or not math.isfinite(n) or (name == "p" and not 0 <= n < 1):
                want = "a probability from 0 up to (not including) 1" if name == "p" else "a number"
                raise ParseError(f"{fname}(): {name} must be {want}, got {_what(value)}", kind="value", column=col)
            return float(n)
        items = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
        tuple_form = isinstance(value, (ast.Tuple, ast.List))
        if not items or len(items) > 6:
            raise ParseError(f"{fname}(): {name} must hold one to six whole numbers", kind="syntax", column=col)
        out = [self.whole(item, f"{fname}(): {name}") for item in items]
        if name in ("correction", "padding") and min(out) < 0 or name in ("stride", "kernel_size") and min(out) < 1:
            least = 0 if name in ("correction", "padding") else 1
            raise ParseError(
                f"{fname}(): {name} must be at least {least}, got {value_text(out)}", kind="value", column=col
            )
        if name in ("stride", "padding", "kernel_size") and len(out) > 2:
            raise ParseError(f"{fname}(): {name} is one whole number or a pair", kind="syntax", column=col)
        if name == "correction" and tuple_form:
            raise ParseError(f"{fname}(): correction is one whole number", kind="syntax", column=col)
        return tuple(out) if tuple_form else out[0]


def value_text(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else str(tuple(values))


def _what(node: ast.AST) -> str:
    from .parse import _describe

    return _describe(node)


def parse_extended(text: str) -> Program:
    """Parse a program of the extended language (``;`` or newlines between statements)."""
    return parse_program(text, LangChecker)


def uses(program: Program) -> list[str]:
    """The extended features ``program`` uses (empty for a program of the basic language)."""
    found: list[str] = []
    stack: list[Any] = [st.expr for st in program.statements]
    while stack:
        n = stack.pop()
        if isinstance(n, Call):
            if n.func in OPERATIONS and n.func not in found:
                found.append(n.func)
            stack += list(n.args)
        elif isinstance(n, Index):
            if "indexing" not in found:
                found.append("indexing")
            stack += n.children()
        elif isinstance(n, Compare):
            if "comparison" not in found:
                found.append("comparison")
            stack += n.children()
        elif hasattr(n, "left"):
            stack += [n.left, n.right]
        elif hasattr(n, "operand"):
            stack.append(n.operand)
    return found


__all__ = ["OPERATIONS", "Compare", "Index", "LangChecker", "Range", "Slice", "names_in", "parse_extended", "uses"]
