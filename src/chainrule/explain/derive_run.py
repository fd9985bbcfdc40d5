"""Run the module ``derive --numpy`` prints, without ``exec``: a small interpreter over its syntax tree.

The project never compiles text into code, so the check reads the exported module
with :func:`ast.parse` and interprets the few constructs the generator writes
(function definitions, assignments, ``return``, arithmetic, comparisons, calls of
whitelisted NumPy functions, ``.T`` / ``.shape`` / ``.astype``, subscripts and
conditional expressions).  Anything else is refused, so what is checked is the
printed text itself.  (The tests also import the printed module with Python and
compare it with PyTorch.)
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

NUMPY_NAMES = {
    "abs", "add", "arange", "asarray", "broadcast_to", "clip", "concatenate", "cos", "exp", "float64", "full",
    "int64", "log", "log10", "log1p", "log2", "max", "maximum", "mean", "min", "minimum", "outer", "pad",
    "power", "reshape", "sign", "sin", "sqrt", "squeeze", "stack", "sum", "tanh", "transpose", "where", "zeros",
}  # fmt: skip
_BIN = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.MatMult: operator.matmul, ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv,
}  # fmt: skip
_CMP = {ast.Gt: operator.gt, ast.Lt: operator.lt, ast.GtE: operator.ge, ast.LtE: operator.le, ast.Eq: operator.eq,
        ast.NotEq: operator.ne}  # fmt: skip


class RunError(ValueError):
    """The module uses a construct the interpreter does not run."""


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Function:
    def __init__(self, node: ast.FunctionDef, scope: dict) -> None:
        self.node = node
        self.scope = scope

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        names = [a.arg for a in self.node.args.args]
        local = dict(zip(names, args))
        local.update(kwargs)
        missing = [n for n in names if n not in local]
        if missing:
            raise TypeError(f"{self.node.name}() is missing {', '.join(missing)}")
        try:
            _block(self.node.body, local, self.scope)
        except _Return as r:
            return r.value
        return None


def _block(body: list, local: dict, scope: dict) -> None:
    for st in body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            local[st.targets[0].id] = _expr(st.value, local, scope)
        elif isinstance(st, ast.Return):
            raise _Return(_expr(st.value, local, scope) if st.value is not None else None)
        elif isinstance(st, ast.Expr):
            if not isinstance(st.value, ast.Constant):  # (a docstring)
                _expr(st.value, local, scope)
        else:
            raise RunError(f"the exported module uses {type(st).__name__}, which the check does not run")


def _expr(n: ast.AST, local: dict, scope: dict) -> Any:
    ev = lambda x: _expr(x, local, scope)  # noqa: E731
    if isinstance(n, ast.Constant) and (isinstance(n.value, (int, float, str)) or n.value is None):
        return n.value
    if isinstance(n, ast.Name):
        if n.id in local:
            return local[n.id]
        if n.id in scope:
            return scope[n.id]
        if n.id == "slice":
            return slice
        raise RunError(f"unknown name {n.id!r} in the exported module")
    if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
        return _BIN[type(n.op)](ev(n.left), ev(n.right))
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
        return -ev(n.operand)
    if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in _CMP:
        return _CMP[type(n.ops[0])](ev(n.left), ev(n.comparators[0]))
    if isinstance(n, ast.IfExp):
        return ev(n.body) if ev(n.test) else ev(n.orelse)
    if isinstance(n, ast.Tuple):
        return tuple(ev(e) for e in n.elts)
    if isinstance(n, ast.List):
        return [ev(e) for e in n.elts]
    if isinstance(n, ast.Dict):
        return {ev(k): ev(v) for k, v in zip(n.keys, n.values)}
    if isinstance(n, ast.Subscript):
        return ev(n.value)[ev(n.slice)]
    if isinstance(n, ast.Slice):
        return slice(*(None if x is None else ev(x) for x in (n.lower, n.upper, n.step)))
    if isinstance(n, ast.Attribute):
        return _attribute(n, ev)
    if isinstance(n, ast.Call):
        fn = ev(n.func)
        args = [ev(a) for a in n.args]
        kwargs = {k.arg: ev(k.value) for k in n.keywords if k.arg is not None}
        return fn(*args, **kwargs)
    raise RunError(f"the exported module uses {type(n).__name__}, which the check does not run")


def _attribute(n: ast.Attribute, ev: Callable[[ast.AST], Any]) -> Any:
    if isinstance(n.value, ast.Name) and n.value.id == "np":
        if n.attr not in NUMPY_NAMES:
            raise RunError(f"np.{n.attr} is not among the NumPy functions the check runs")
        return getattr(np, n.attr)
    base = ev(n.value)
    if base is np.add and n.attr == "at":
        return np.add.at
    if n.attr in ("T", "shape") and isinstance(base, np.ndarray):
        return getattr(base, n.attr)
    if n.attr == "astype" and isinstance(base, (np.ndarray, np.generic, bool)):
        return np.asarray(base).astype
    raise RunError(f"attribute .{n.attr} is not run by the check")


def load(source: str) -> Callable[..., dict]:
    """The ``backward`` function of an exported module, run by the interpreter above."""
    tree = ast.parse(source)
    scope: dict[str, Any] = {}
    for st in tree.body:
        if isinstance(st, ast.Import) and [a.name for a in st.names] == ["numpy"] and st.names[0].asname == "np":
            continue
        if isinstance(st, ast.FunctionDef):
            scope[st.name] = _Function(st, scope)
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant):
            continue
        else:
            raise RunError(f"the exported module has a top-level {type(st).__name__}")
    if "backward" not in scope:
        raise RunError("the exported module defines no backward()")
    return scope["backward"]
