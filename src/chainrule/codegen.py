"""One code generator over the recorded graph: symbolic formulas written as NumPy expressions.

The primitives' forwards and VJP rules, run on the symbolic namespace
(:data:`chainrule.symbolic.SYM`), give formulas; :func:`code` writes a
formula as a NumPy expression.  Two tools use it:

* ``chainrule derive --numpy`` (:mod:`chainrule.explain.derive_numpy`) writes each
  printed equation as one line of a module, in float64 (comparisons as 0/1 floats);
* ``cr.compile`` (:mod:`chainrule.compile`) writes the forward and backward lines of
  a replay schedule with ``exact=True``: the spelling whose NumPy semantics are the
  rules' own (a comparison stays a boolean array, as ``NUMPY.indicator`` leaves it),
  and index arrays named as the schedule names them.  Every such line is checked
  against the rule at trace time (see ``compile._Gen._written``).

Only NumPy is imported (and the symbolic module), never ``rich`` or ``graphviz``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from . import symbolic as S

# forward helpers a formula may call (plain NumPy, numerically stable); derive --numpy defines the ones it uses
HELPERS = {
    "sigmoid": "def sigmoid(x):\n    e = np.exp(-np.abs(x))\n    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))\n",
    "relu": "def relu(x):\n    return np.maximum(x, 0)\n",
    "softmax": (
        "def softmax(x, axis):\n    e = np.exp(x - np.max(x, axis=axis, keepdims=True))\n"
        "    return e / np.sum(e, axis=axis, keepdims=True)\n"
    ),
    "log_softmax": (
        "def log_softmax(x, axis):\n    z = x - np.max(x, axis=axis, keepdims=True)\n"
        "    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))\n"
    ),
    "logsumexp": (
        "def logsumexp(x, axis, keepdims):\n    m = np.max(x, axis=axis, keepdims=True)\n"
        "    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m\n"
        "    return out if keepdims else np.squeeze(out, axis=axis)\n"
    ),
    "fn": "def f(x):  # the generic f: sin stands in for it so the equations can be checked; put yours here\n"
    "    return np.sin(x)\n",
    "fprime": "def f_prime(x):  # the derivative of f (here of the stand-in, sin)\n    return np.cos(x)\n",
    "scatter": (
        "def scatter(g, index, shape):\n    out = np.zeros(shape)\n    np.add.at(out, index, g)\n    return out\n"
    ),
}
NP_FORWARD = {
    "tanh": "np.tanh",
    "abs": "np.abs",
    "log1p": "np.log1p",
    "log2": "np.log2",
    "log10": "np.log10",
    "maximum": "np.maximum",
    "minimum": "np.minimum",
    "mean": "np.mean",
    "max": "np.max",
    "min": "np.min",
}
NP_CMP = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "ne": "!="}

# An index in a formula (getitem, scatter) as text: ``index(params, subscript)``; None: its repr.
IndexText = Optional[Callable[[Any, bool], str]]


class ExportError(ValueError):
    """A formula uses an operation the NumPy export does not know."""


def _shape(shape: Sequence[int]) -> str:
    parts = [S.dim_text(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _num(v: float) -> str:
    return repr(float(v))


def _axes(axes: Any) -> str:
    if axes is None:
        return "None"
    axes = tuple(axes)
    return "(" + ", ".join(str(a) for a in axes) + ("," if len(axes) == 1 else "") + ")"


def code(x: Any, used: set[str], exact: bool = False, index: IndexText = None) -> str:
    """``x`` as a NumPy expression (fully parenthesized); names of forward helpers it needs go into ``used``.

    ``exact=False`` (derive --numpy) writes a comparison as a float64 0/1 array; ``exact=True``
    (cr.compile) leaves it boolean, as the rules' NumPy namespace does.  ``index`` writes the
    index of a ``getitem`` / ``scatter`` (default: its repr).
    """
    if not isinstance(x, S.Sym):
        return _num(x) if np.ndim(x) == 0 else f"np.asarray({np.asarray(x).tolist()!r})"
    op, a = x.op, x.args
    if op == "var":
        return x.name
    if op == "const":
        v = _num(x.params[0])
        return f"np.full({_shape(x.shape)}, {v})" if x.shape else v
    if op == "sconst":
        k, powers = x.params[1], x.params[2]
        num = [str(k.numerator)] + [f"{n} ** {p}" if p > 1 else n for n, p in powers if p > 0]
        den = [str(k.denominator)] + [f"{n} ** {-p}" if p < -1 else n for n, p in powers if p < 0]
        v = f"(({' * '.join(num)}) / ({' * '.join(den)}))"
        return f"np.full({_shape(x.shape)}, {v})" if x.shape else v
    c = [code(y, used, exact, index) for y in a]
    if op in ("add", "sub", "mul", "div"):
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
        return f"({c[0]} {sym} {c[1]})"
    if op == "pow":
        return f"np.power({c[0]}, {c[1]})"
    if op == "neg":
        return f"(-{c[0]})"
    if op in S.UNARY:
        return f"np.{op}({c[0]})"
    if op == "matmul":
        return f"({c[0]} @ {c[1]})"
    if op == "sum":
        return f"np.sum({c[0]}, axis={_axes(x.params[0])}, keepdims={bool(x.params[1])})"
    if op == "reshape":
        return f"np.reshape({c[0]}, {_shape(x.params[0])})"
    if op == "broadcast":
        return f"np.broadcast_to({c[0]}, {_shape(x.params[0])})"
    if op == "transpose" and tuple(x.params[0]) == (1, 0):
        return f"{c[0]}.T"
    if op == "transpose":
        return f"np.transpose({c[0]}, {tuple(x.params[0])!r})"
    if op == "getitem":
        where = repr(x.params[0]) if index is None else index(x.params[0], True)
        return f"{c[0]}[{where}]"
    if op in ("fn", "fprime"):
        used.add(op)
        return f"{'f' if op == 'fn' else 'f_prime'}({c[0]})"
    if op == "outer":
        return f"np.outer({c[0]}, {c[1]})"
    if op == "scatter":
        if exact:  # the helper accumulates in float64 and with np.add.at: not the rules' scatter_add
            raise ExportError("no exact NumPy spelling for scatter")
        used.add("scatter")
        where = repr(x.params[0]) if index is None else index(x.params[0], False)
        return f"scatter({c[0]}, {where}, {_shape(x.shape)})"
    if op == "where":
        return f"np.where({c[0]}, {c[1]}, {c[2]})"
    if op == "cmp":
        if exact:
            return f"({c[0]} {NP_CMP[x.params[0]]} {c[1]})"
        return f"({c[0]} {NP_CMP[x.params[0]]} {c[1]}).astype(np.float64)"
    if op == "prim":
        p = x.params[0]
        static = x.params[1:]
        if p.name in ("sigmoid", "relu"):
            used.add(p.name)
            return f"{p.name}({c[0]})"
        if p.name in ("softmax", "log_softmax"):
            used.add(p.name)
            return f"{p.name}({c[0]}, axis={_axes(static[0])})"
        if p.name == "logsumexp":
            used.add(p.name)
            return f"logsumexp({c[0]}, axis={_axes(static[0])}, keepdims={bool(static[1])})"
        if p.name in ("mean", "max", "min"):
            return f"{NP_FORWARD[p.name]}({c[0]}, axis={_axes(static[0])}, keepdims={bool(static[1])})"
        if p.name in NP_FORWARD:
            return f"{NP_FORWARD[p.name]}({', '.join(c)})"
    raise ExportError(f"derive --numpy: no NumPy spelling for the operation {op!r} in {S.render(x)}")


def index_text(index: Any, names: dict[int, str], subscript: bool) -> str:
    """An index as source: arrays by the names in ``names`` (by identity), ``1:3`` slices in a subscript."""
    items = index if type(index) is tuple else (index,)
    parts = []
    for item in items:
        if type(item) is np.ndarray:
            parts.append(names[id(item)])  # KeyError: an array the schedule has no name for
        elif item is None or item is Ellipsis:
            parts.append("..." if item is Ellipsis and subscript else repr(item))
        elif type(item) is slice:
            ends = (item.start, item.stop, item.step)
            if not all(e is None or type(e) is int for e in ends):
                raise ExportError(f"no spelling for the slice {item!r}")
            if subscript:
                text = ":".join("" if e is None else str(e) for e in ends[:2])
                parts.append(text if item.step is None else f"{text}:{item.step}")
            else:
                parts.append(repr(item))
        elif type(item) in (int, bool):
            parts.append(repr(item))
        elif isinstance(item, np.integer):
            parts.append(str(int(item)))
        else:
            raise ExportError(f"no spelling for the index {item!r}")
    if type(index) is not tuple:
        return parts[0]
    text = ", ".join(parts) + ("," if len(parts) == 1 else "")
    return text if subscript else f"({text})"


def strip_outer(text: str) -> str:
    """An expression without the parentheses that enclose all of it (``(g / c1)`` -> ``g / c1``)."""
    while True:
        inner = S.strip_outer(text)
        if inner == text:
            return text
        text = inner


_HELPER_NS: dict[str, Any] = {}


def helper_namespace() -> dict[str, Any]:
    """``np`` and every helper of :data:`HELPERS`, defined (the globals a written expression runs in)."""
    if not _HELPER_NS:
        ns: dict[str, Any] = {"np": np}
        for source in HELPERS.values():
            exec(source, ns)  # our own helper text above
        _HELPER_NS.update(ns)
    return _HELPER_NS
