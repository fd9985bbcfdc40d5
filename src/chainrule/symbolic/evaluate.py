"""A formula's value, computed with NumPy from values for its variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .core import _NP_CMP, UNARY, Sym


def evaluate(x: Any, env: Mapping[str, Any]) -> Any:
    """The value of ``x`` with NumPy; ``env`` maps variable names to arrays."""
    if not isinstance(x, Sym):
        return x
    op, a = x.op, x.args
    if op == "var":
        return env[x.name]
    if op in ("const", "sconst"):
        return np.broadcast_to(np.float64(x.params[0]), x.shape) if x.shape else np.float64(x.params[0])
    v = [evaluate(y, env) for y in a]
    with np.errstate(all="ignore"):
        if op == "add":
            return v[0] + v[1]
        if op == "sub":
            return v[0] - v[1]
        if op == "mul":
            return v[0] * v[1]
        if op == "div":
            return v[0] / v[1]
        if op == "pow":
            return np.power(v[0], v[1])
        if op == "neg":
            return -v[0]
        if op in UNARY:
            return getattr(np, op)(v[0])
        if op == "matmul":
            return np.matmul(v[0], v[1])
        if op == "sum":
            return np.sum(v[0], axis=x.params[0], keepdims=x.params[1])
        if op == "reshape":
            return np.reshape(v[0], x.params[0])
        if op == "broadcast":
            return np.broadcast_to(v[0], x.params[0])
        if op == "transpose":
            return np.transpose(v[0], x.params[0])
        if op == "getitem":
            return np.asarray(v[0])[x.params[0]]
        if op == "outer":
            return np.multiply.outer(v[0], v[1])
        if op == "scatter":
            out = np.zeros(x.shape)
            np.add.at(out, x.params[0], v[0])
            return out
        if op == "where":
            return np.where(v[0], v[1], v[2])
        if op == "cmp":
            return _NP_CMP[x.params[0]](v[0], v[1]).astype(np.float64)
        if op == "prim":
            return x.params[0].fwd(*v, *x.params[1:])
        if op == "fn":  # the generic f, checked with sin standing in
            return np.sin(v[0])
        if op == "fprime":
            return np.cos(v[0])
    raise ValueError(f"cannot evaluate symbolic operation {op!r}")
