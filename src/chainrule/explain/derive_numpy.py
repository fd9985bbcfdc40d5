"""The NumPy module behind ``chainrule derive --numpy``, generated from the printed equations.

:func:`module_source` turns the derivation's equation records (forward and
backward lines, each a symbolic formula) into a self-contained Python module that
defines ``backward(**inputs)``.  Every line of its body is one printed equation,
written with explicit ``keepdims``, ``np.outer`` and the symbolic sizes read from
the inputs' shapes, so running it is reading the equations literally.  The check
in :mod:`.derive_check` runs this code, never the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import symbolic as S

# forward helpers the module defines when a formula uses them (plain NumPy, numerically stable)
_HELPERS = {
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
_NP_FORWARD = {
    "tanh": "np.tanh",
    "abs": "np.abs",
    "log1p": "np.log1p",
    "maximum": "np.maximum",
    "minimum": "np.minimum",
    "mean": "np.mean",
    "max": "np.max",
    "min": "np.min",
}
_NP_CMP = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "ne": "!="}


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


def code(x: Any, used: set[str]) -> str:
    """``x`` as a NumPy expression (fully parenthesized); names of forward helpers it needs go into ``used``."""
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
    c = [code(y, used) for y in a]
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
        return f"{c[0]}[{x.params[0]!r}]"
    if op in ("fn", "fprime"):
        used.add(op)
        return f"{'f' if op == 'fn' else 'f_prime'}({c[0]})"
    if op == "outer":
        return f"np.outer({c[0]}, {c[1]})"
    if op == "scatter":
        used.add("scatter")
        return f"scatter({c[0]}, {x.params[0]!r}, {_shape(x.shape)})"
    if op == "where":
        return f"np.where({c[0]}, {c[1]}, {c[2]})"
    if op == "cmp":
        return f"({c[0]} {_NP_CMP[x.params[0]]} {c[1]}).astype(np.float64)"
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
            return f"{_NP_FORWARD[p.name]}({c[0]}, axis={_axes(static[0])}, keepdims={bool(static[1])})"
        if p.name in _NP_FORWARD:
            return f"{_NP_FORWARD[p.name]}({', '.join(c)})"
    raise ExportError(f"derive --numpy: no NumPy spelling for the operation {op!r} in {S.render(x)}")


def module_source(
    program: str,
    inputs: Sequence[str],
    input_shapes: Mapping[str, tuple[int, ...]],
    forward: Sequence[Any],
    backward: Sequence[Any],
    returned: Sequence[tuple[str, str]],
    dims: Mapping[int, str],
) -> str:
    """The module text: ``backward(**inputs)`` returns ``{name: gradient}`` for each ``(name, dname)`` in ``returned``.

    ``forward`` and ``backward`` are the equation records (``.name``, ``.formula``); ``dims``
    maps placeholder sizes to their symbols (read back from the inputs' shapes).
    """
    used: set[str] = set()
    with S.dims_context(dims):
        body: list[str] = []
        seen: set[str] = set()
        for name in inputs:  # the symbolic sizes, read from the arrays the caller passes
            for axis, d in enumerate(input_shapes[name]):
                sym = dims.get(d)
                if sym is not None and sym not in seen:
                    seen.add(sym)
                    body.append(f"    {sym} = {name}.shape[{axis}]")
        for name in inputs:
            body.append(f"    {name} = np.asarray({name}, dtype=np.float64)")
        body.append("    # forward")
        for ln in forward:
            body.append(f"    {ln.name} = {code(ln.formula, used)}")
        body.append("    # backward: one line per printed equation")
        for ln in backward:
            body.append(f"    {ln.name} = {code(ln.formula, used)}")
    result = ", ".join(f"{name!r}: {dname}" for name, dname in returned)
    body.append(f"    return {{{result}}}")
    header = [
        '"""Gradients of the program',
        "",
        *("    " + line.strip() for line in program.replace(";", "\n").splitlines() if line.strip()),
        "",
        "generated by `chainrule derive --numpy` from the equations it prints (NumPy only).",
        '"""',
        "",
        "import numpy as np",
        "",
    ]
    helpers = [_HELPERS[h] for h in sorted(used)]
    signature = ", ".join(inputs)
    doc = "    " + '"""Return {name: gradient of the output with respect to name}."""'
    return "\n".join(header + ["\n".join(helpers)] + [f"def backward({signature}):", doc] + body) + "\n"
