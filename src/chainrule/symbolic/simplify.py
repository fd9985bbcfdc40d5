"""Simplification: constants folded, factors cancelled and gathered, ones and transposes of transposes removed."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .core import Sym, _broadcast, _swapaxes, _transpose, binary, const, matmul, shape_of


def is_const(x: Any, value: Optional[float] = None) -> bool:
    if isinstance(x, Sym):
        if x.op != "const":
            return False
        return value is None or x.params[0] == value
    if np.ndim(x) != 0:
        return False
    return value is None or float(x) == value


def const_value(x: Any) -> float:
    return x.params[0] if isinstance(x, Sym) else float(x)


def _strip1(shape: tuple[int, ...]) -> tuple[int, ...]:
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return shape[i:]


def _loose(x: Any) -> Any:
    """Drop broadcasts and reshapes that only add or remove leading 1s (NumPy broadcasting redoes them)."""
    while isinstance(x, Sym) and x.op in ("broadcast", "reshape"):
        inner = x.args[0]
        if x.op == "reshape" and _strip1(shape_of(inner)) != _strip1(x.shape):
            break
        x = inner
    return x


def _factors(x: Any) -> list:
    if isinstance(x, Sym) and x.op == "mul":
        return _factors(x.args[0]) + _factors(x.args[1])
    return [x]


def _product(factors: list, shape: tuple[int, ...]) -> Any:
    c = 1.0
    rest = []
    for f in factors:
        if is_const(f):
            c *= const_value(f)
        else:
            rest.append(f)
    if c == 0:
        return const(0.0, shape)
    merged: list = []
    counts: list[int] = []
    for f in rest:
        for k, m in enumerate(merged):
            if isinstance(f, Sym) and f.op == "var" and isinstance(m, Sym) and m.op == "var" and m.name == f.name:
                counts[k] += 1
                break
        else:
            merged.append(f)
            counts.append(1)
    rest = [m if n == 1 else binary("pow", m, const(float(n))) for m, n in zip(merged, counts)]
    if not rest:
        return const(c, shape)
    out = rest[0]
    for f in rest[1:]:
        out = Sym("mul", (out, f), np.broadcast_shapes(shape_of(out), shape_of(f)))
    if shape_of(out) != shape:  # a dropped constant (ones) carried the broadcast shape: keep it
        out = _broadcast(out, shape)
    if c == -1:
        return Sym("neg", (out,), shape_of(out))
    if c != 1:
        out = Sym("mul", (const(c), out), shape_of(out))
    return out


def same(a: Any, b: Any, depth: int = 0) -> bool:
    """Structurally equal formulas (compared to a small depth; deeper ones are reported different)."""
    if a is b:
        return True
    if not isinstance(a, Sym) or not isinstance(b, Sym) or depth > 8:
        return False
    if a.op != b.op or a.shape != b.shape or a.name != b.name or len(a.args) != len(b.args):
        return False
    if a.op in ("const", "sconst"):
        return a.params[0] == b.params[0]
    if a.params != b.params:
        try:
            if not bool(a.params == b.params):
                return False
        except ValueError:
            return False
    return all(same(u, v, depth + 1) for u, v in zip(a.args, b.args))


def _is_T(x: Any) -> bool:
    """A transpose of the last two axes (``xᵀ`` for a matrix, batched otherwise)."""
    if not (isinstance(x, Sym) and x.op == "transpose" and len(x.shape) >= 2):
        return False
    n = len(x.shape)
    return tuple(x.params[0]) == tuple(range(n - 2)) + (n - 1, n - 2)


def simplify(x: Any, memo: Optional[dict] = None) -> Any:
    """Rewrite ``x`` as a person would write it: no ``1 ⊙``, no double transposes, no identity reshapes.

    Shared subterms are simplified once (``memo``), so a formula that is a DAG stays linear to simplify.
    """
    if not isinstance(x, Sym) or x.op in ("var", "const", "sconst"):
        return x
    if memo is None:
        memo = {}
    hit = memo.get(id(x))
    if hit is not None:
        return hit[1]
    out = _simplify(x, memo)
    memo[id(x)] = (x, out)  # (x is kept alive so its id is not reused)
    return out


def _is_relu(a: Any) -> bool:
    return isinstance(a, Sym) and a.op == "prim" and getattr(a.params[0], "name", None) == "relu"


def _simplify(x: Sym, memo: dict) -> Any:
    def simplify(y: Any) -> Any:
        return _simplify_memo(y, memo)

    args = tuple(simplify(a) for a in x.args)
    op = x.op
    if op in ("add", "sub", "mul", "div", "where", "cmp", "pow"):
        loose = tuple(_loose(a) for a in args)
        if np.broadcast_shapes(*(shape_of(a) for a in loose)) == x.shape:
            args = loose
    if op == "cmp" and x.params[0] == "gt" and is_const(args[1], 0.0) and _is_relu(args[0]):
        return Sym("cmp", (args[0].args[0], args[1]), x.shape, x.params)  # relu(u) > 0 exactly where u > 0
    if op in ("add", "sub", "div") and is_const(args[0]) and is_const(args[1]):
        a, b = const_value(args[0]), const_value(args[1])
        if op != "div" or b != 0:
            return const(a + b if op == "add" else a - b if op == "sub" else a / b, x.shape)
    if op == "mul" and len(x.shape) == 2:
        a, b = args
        for u, v in ((a, b), (b, a)):
            col = isinstance(u, Sym) and u.op == "reshape" and len(shape_of(u.args[0])) == 1 and u.shape[1] == 1
            if col and len(shape_of(v)) == 1 and not is_const(v):
                return Sym("outer", (u.args[0], v), x.shape)  # u vᵀ for 1-D u, v
    if op == "mul":
        factors = [f for a in args for f in _factors(a)]
        negs = 0
        plain = []
        for f in factors:
            while isinstance(f, Sym) and f.op == "neg":
                negs += 1
                f = f.args[0]
            plain.append(f)
        plain = _cancel(plain)
        spread = _distribute(plain, x.shape, simplify)
        if spread is not None:
            return spread if negs % 2 == 0 else simplify(Sym("neg", (spread,), x.shape))
        if negs % 2:
            plain.append(const(-1.0))
        return _product(plain, x.shape)
    if op == "sum" and isinstance(args[0], Sym) and args[0].op == "mul":
        c, rest = _scalar_factor(args[0])
        if c is not None:
            inner = Sym("sum", (rest,), x.shape, x.params)
            return simplify(Sym("mul", (c, inner), x.shape))
    if op in ("add", "sub"):
        (ca, ra), (cb, rb) = _scalar_factor(args[0]), _scalar_factor(args[1])
        if ca is not None and cb is not None and same(ca, cb):
            if ca.op == "sconst" and ca.params[1] < 0:  # (−1/B) a − (−1/B) b = (1/B) (b − a)
                flipped = Sym("sconst", (), ca.shape, (-ca.params[0], -ca.params[1], ca.params[2]))
                pair = (rb, ra) if op == "sub" else (ra, rb)
                inner = Sym(op, pair, x.shape)
                if op == "add":
                    return simplify(Sym("neg", (Sym("mul", (flipped, inner), x.shape),), x.shape))
                return simplify(Sym("mul", (flipped, inner), x.shape))
            return simplify(Sym("mul", (ca, Sym(op, (ra, rb), x.shape)), x.shape))
    if op == "sum" and isinstance(args[0], Sym) and args[0].op == "neg":
        return simplify(Sym("neg", (Sym("sum", args[0].args, x.shape, x.params),), x.shape))
    if (
        op == "add"
        and isinstance(args[0], Sym)
        and args[0].op == "neg"
        and not (isinstance(args[1], Sym) and args[1].op == "neg")
    ):
        return simplify(Sym("sub", (args[1], args[0].args[0]), x.shape))
    if op == "neg":
        a = args[0]
        if is_const(a):
            return const(-const_value(a), x.shape)
        if isinstance(a, Sym) and a.op == "neg":
            return a.args[0]
        return Sym("neg", (a,), x.shape)
    if op == "add":
        a, b = args
        if is_const(a, 0.0):
            return _fit(b, x.shape)
        if is_const(b, 0.0):
            return _fit(a, x.shape)
        if isinstance(b, Sym) and b.op == "neg":
            return Sym("sub", (a, b.args[0]), x.shape)
        if same(a, b):
            return simplify(Sym("mul", (const(2.0), a), x.shape))
        merged = _merge_like(a, b, x.shape)
        if merged is not None:
            return simplify(merged)
        return Sym("add", args, x.shape)
    if op == "sub":
        a, b = args
        if is_const(b, 0.0):
            return _fit(a, x.shape)
        if is_const(a, 0.0):
            return simplify(Sym("neg", (b,), x.shape))
        if isinstance(b, Sym) and b.op == "neg":
            return Sym("add", (a, b.args[0]), x.shape)
        return Sym("sub", args, x.shape)
    if op == "div":
        a, b = args
        if is_const(b, 1.0):
            return _fit(a, x.shape)
        if isinstance(a, Sym) and a.op == "neg":
            return Sym("neg", (Sym("div", (a.args[0], b), x.shape),), x.shape)
        return Sym("div", args, x.shape)
    if op == "transpose":
        a = args[0]
        if isinstance(a, Sym) and a.op == "transpose":
            perm = tuple(a.params[0][p] for p in x.params[0])
            return simplify(_transpose(a.args[0], perm)) if perm != tuple(range(len(perm))) else a.args[0]
        if _is_T(x) and isinstance(a, Sym) and a.op == "matmul" and (_is_T(a.args[0]) or _is_T(a.args[1])):
            left, right = a.args
            if len(shape_of(left)) >= 2 and len(shape_of(right)) >= 2:
                return simplify(matmul(_swapaxes(right, -1, -2), _swapaxes(left, -1, -2)))
        return Sym("transpose", (a,), x.shape, x.params)
    if op == "sum":
        a = args[0]
        if isinstance(a, Sym) and a.op == "broadcast" and is_const(a.args[0]):
            n = math.prod(a.shape) // max(1, math.prod(x.shape))
            return const(const_value(a.args[0]) * n, x.shape)
        return Sym("sum", (a,), x.shape, x.params)
    if op == "reshape":
        a = args[0]
        if isinstance(a, Sym) and a.op == "matmul" and len(x.shape) == len(a.shape) - 1:
            left, right = a.args
            if isinstance(right, Sym) and right.op == "reshape" and len(shape_of(right.args[0])) == 1:
                if x.shape == a.shape[:-1]:
                    return simplify(matmul(left, right.args[0]))
        if is_const(a):
            return const(const_value(a), x.shape)
        if isinstance(a, Sym) and a.op == "sum" and not a.params[1]:
            inner = shape_of(a.args[0])
            if tuple(1 if i in a.params[0] else d for i, d in enumerate(inner)) == x.shape:
                return Sym("sum", a.args, x.shape, (a.params[0], True))  # a sum that keeps its axes
        if isinstance(a, Sym) and a.op == "reshape":
            a = a.args[0]
        if shape_of(a) == x.shape:
            return a
        return Sym("reshape", (a,), x.shape, x.params)
    if op == "broadcast":
        a = args[0]
        if is_const(a):
            return const(const_value(a), x.shape)
        return Sym("broadcast", (a,), x.shape, x.params)
    if op == "where":
        c, a, b = args
        if is_const(b, 0.0):
            return simplify(Sym("mul", (a, c), x.shape))
        if is_const(a, 0.0) and isinstance(c, Sym) and c.op == "cmp":
            flip = {"gt": "le", "lt": "ge", "ge": "lt", "le": "gt", "eq": "ne", "ne": "eq"}[c.params[0]]
            return simplify(Sym("mul", (b, Sym("cmp", c.args, c.shape, (flip,))), x.shape))
        return Sym("where", args, x.shape)
    return Sym(op, args, x.shape, x.params, x.name)


def _scalar_factor(x: Any) -> tuple[Any, Any]:
    """``c ⊙ rest`` with ``c`` a scalar constant (or size constant such as 1/B): ``(c, rest)``; else ``(None, x)``."""
    if isinstance(x, Sym) and x.op == "mul":
        factors = _factors(x)
        for i, c in enumerate(factors):
            if isinstance(c, Sym) and c.op in ("const", "sconst") and c.shape == ():
                others = factors[:i] + factors[i + 1 :]
                rest = others[0]
                for f in others[1:]:
                    rest = Sym("mul", (rest, f), np.broadcast_shapes(shape_of(rest), shape_of(f)))
                if shape_of(rest) == x.shape:
                    return c, rest
    return None, x


def _merge_like(a: Any, b: Any, shape: tuple[int, ...]) -> Any:
    """``2 m² + m²`` -> ``3 m²``, ``1 + x + x`` -> ``1 + 2 x``: terms of one sum that differ only by a numeric
    factor, added; None where no two terms are alike."""
    terms: list = []

    def flat(t: Any) -> None:
        if isinstance(t, Sym) and t.op == "add" and t.shape == shape:
            flat(t.args[0])
            flat(t.args[1])
        else:
            terms.append(t)

    flat(a)
    flat(b)
    out: list = []  # [coefficient or None, rest]
    merged = False
    for t in terms:
        c, rest = _scalar_factor(t)
        if is_const(t) or (c is not None and c.op != "const"):
            out.append([None, t])
            continue
        k = 1.0 if c is None else float(c.params[0])
        for entry in out:
            if entry[0] is not None and shape_of(entry[1]) == shape_of(rest) and same(entry[1], rest):
                entry[0] += k
                merged = True
                break
        else:
            out.append([k, rest])
    if not merged:
        return None
    total = None
    for k, rest in out:
        if k == 0.0:
            continue
        term = rest if k is None or k == 1.0 else Sym("mul", (const(k), rest), shape_of(rest))
        total = (
            term if total is None else Sym("add", (total, term), np.broadcast_shapes(shape_of(total), shape_of(term)))
        )
    return const(0.0, shape) if total is None else _fit(total, shape)


def _cancel(factors: list) -> list:
    """``(a / b) ⊙ b`` -> ``a`` (a factor that divides another factor's numerator away)."""
    out = list(factors)
    changed = True
    while changed:
        changed = False
        for i, f in enumerate(out):
            if not (isinstance(f, Sym) and f.op == "div"):
                continue
            for j, g in enumerate(out):
                if j != i and same(g, f.args[1]) and shape_of(g) == shape_of(f):
                    keep = [h for k, h in enumerate(out) if k not in (i, j)]
                    out = keep + [f.args[0]]
                    changed = True
                    break
            if changed:
                break
    return out


def _divides(term: Any, f: Any) -> bool:
    while isinstance(term, Sym) and term.op == "neg":
        term = term.args[0]
    return isinstance(term, Sym) and term.op == "div" and same(term.args[1], f)


def _distribute(factors: list, shape: tuple[int, ...], simplify: Any) -> Any:
    """``p ⊙ (a / p − b)`` -> ``a − p ⊙ b``: spread a factor over a sum when that cancels a division."""
    for i, f in enumerate(factors):
        if not (isinstance(f, Sym) and f.op in ("add", "sub")):
            continue
        others = [g for j, g in enumerate(factors) if j != i]
        if not any(_divides(term, g) for term in f.args for g in others):
            continue
        terms = []
        for term in f.args:
            prod = term
            for g in others:
                prod = Sym("mul", (prod, g), np.broadcast_shapes(shape_of(prod), shape_of(g)))
            terms.append(prod)
        return simplify(Sym(f.op, tuple(terms), shape))
    return None


def _simplify_memo(y: Any, memo: dict) -> Any:
    return simplify(y, memo)


def _fit(a: Any, shape: tuple[int, ...]) -> Any:
    if shape_of(a) == shape or not isinstance(a, Sym):
        return a
    return const(const_value(a), shape) if is_const(a) else _broadcast(a, shape)  # (a + 0 keeps the sum's shape)
