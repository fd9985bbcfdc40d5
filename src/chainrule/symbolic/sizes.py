"""Sizes that stay symbolic: the batch size ``B`` in place of the stand-in size it was computed at."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from .core import _SUPERSCRIPT, Sym, const

_NO_DIMS: Mapping[int, str] = {}


_DIMS: contextvars.ContextVar[Mapping[int, str]] = contextvars.ContextVar("derive_dims", default=_NO_DIMS)


def symbolic_dims() -> bool:
    """Whether sizes print as symbols now (inside :func:`dims_context` with a symbolic size)."""
    return bool(_DIMS.get())


@contextlib.contextmanager
def dims_context(dims: Mapping[int, str]) -> Iterator[None]:
    """While active, sizes equal to a placeholder (7) print as their symbol (B)."""
    token = _DIMS.set(dict(dims))
    try:
        yield
    finally:
        _DIMS.reset(token)


def dim_text(d: int) -> str:
    return str(_DIMS.get().get(d, d))


def shape_text(shape: tuple[int, ...], sep: str = "×") -> str:
    return sep.join(dim_text(d) for d in shape) if shape else "scalar"


def sconst(value: float, k: Fraction, powers: tuple[tuple[str, int], ...], shape: tuple[int, ...] = ()) -> Sym:
    """A constant that depends on symbolic sizes: ``k · Π name**power`` (``value`` at the placeholder sizes)."""
    return Sym("sconst", (), shape, (float(value), k, powers))


def _sconst_parts(x: Sym) -> tuple[str, str]:
    """``(numerator, denominator)`` texts of a size-dependent constant, e.g. ``("1", "4B")``."""
    k, powers = x.params[1], x.params[2]
    num = [str(abs(k.numerator))] if abs(k.numerator) != 1 or not any(p > 0 for _, p in powers) else []
    den = [str(k.denominator)] if k.denominator != 1 else []
    for name, p in powers:
        (num if p > 0 else den).append(name + (str(abs(p)).translate(_SUPERSCRIPT) if abs(p) > 1 else ""))
    d = "".join(den)
    return "".join(num) or "1", (f"({d})" if len(den) > 1 else d)


def symbolize(a: Any, b: Any, sizes_a: Mapping[str, int], sizes_b: Mapping[str, int]) -> Any:
    """``a`` with each constant that differs from its twin in ``b`` written as a power product of the sizes.

    ``a`` and ``b`` are the same formula derived at two different placeholder sizes; a
    constant ``1/7`` at B = 7 that is ``1/11`` at B = 11 is ``1/B``.  A constant whose
    dependence is not a small power product is left as a number (the check, made at
    other sizes, then fails loudly).
    """
    memo: dict[int, Any] = {}
    names = sorted(sizes_a)

    def walk(x: Any, y: Any) -> Any:
        if not isinstance(x, Sym) and not isinstance(y, Sym) and np.ndim(x) == 0 and np.ndim(y) == 0:
            if float(x) != float(y):  # a plain number in a rule (mean's 1/n)
                fitted = _fit_powers(const(float(x)), float(y), names, sizes_a, sizes_b)
                return fitted if fitted.op == "sconst" else x
            return x
        if not isinstance(x, Sym) or not isinstance(y, Sym) or x.op != y.op or len(x.args) != len(y.args):
            return x
        if id(x) in memo:
            return memo[id(x)]
        if x.op == "const":
            out = x
            if x.params[0] != y.params[0]:
                out = _fit_powers(x, y.params[0], names, sizes_a, sizes_b)
        elif x.op == "var":
            out = x
        else:
            args = tuple(walk(u, v) for u, v in zip(x.args, y.args))
            out = x if all(u is v for u, v in zip(args, x.args)) else Sym(x.op, args, x.shape, x.params, x.name)
        memo[id(x)] = out
        return out

    return walk(a, b)


def _fit_powers(x: Sym, other: float, names: list[str], sa: Mapping[str, int], sb: Mapping[str, int]) -> Sym:
    va = x.params[0]
    for combo in itertools.product(range(-2, 3), repeat=len(names)):
        if not any(combo):
            continue
        fa = math.prod(float(sa[n]) ** p for n, p in zip(names, combo))
        fb = math.prod(float(sb[n]) ** p for n, p in zip(names, combo))
        ka, kb = va / fa, other / fb
        if ka != 0 and abs(ka - kb) <= 1e-9 * abs(ka):
            k = Fraction(ka).limit_denominator(10_000)
            if abs(float(k) - ka) <= 1e-9 * abs(ka):
                powers = tuple((n, p) for n, p in zip(names, combo) if p)
                return sconst(va, k, powers, x.shape)
    return x


def tree_size(x: Any, cap: int = 10_000) -> int:
    """How many nodes ``x`` has when written out as a tree (counting stops at ``cap``)."""
    count = 0
    stack = [x]
    while stack and count < cap:
        y = stack.pop()
        count += 1
        if isinstance(y, Sym):
            stack.extend(y.args)
    return count


def count_refs(x: Any, target: Any) -> int:
    """How many times ``target`` (by identity) occurs in the tree of ``x`` (shared subterms counted once each use)."""
    memo: dict[int, int] = {}

    def walk(y: Any) -> int:
        if y is target:
            return 1
        if not isinstance(y, Sym) or not y.args:
            return 0
        if id(y) not in memo:
            memo[id(y)] = min(sum(walk(a) for a in y.args), 1_000_000)
        return memo[id(y)]

    return walk(x)


def substitute(x: Any, mapping: Mapping[int, Any]) -> Any:
    """``x`` with the subterms whose ids are in ``mapping`` replaced."""
    memo: dict[int, Any] = {}

    def walk(y: Any) -> Any:
        if id(y) in mapping:
            return mapping[id(y)]
        if not isinstance(y, Sym) or not y.args:
            return y
        if id(y) not in memo:
            args = tuple(walk(a) for a in y.args)
            memo[id(y)] = y if all(u is v for u, v in zip(args, y.args)) else Sym(y.op, args, y.shape, y.params, y.name)
        return memo[id(y)]

    return walk(x)


def nodes(x: Any) -> Iterator[Sym]:
    """Every distinct subterm of ``x`` (each shared one once)."""
    seen: set[int] = set()
    stack = [x]
    while stack:
        y = stack.pop()
        if not isinstance(y, Sym) or id(y) in seen:
            continue
        seen.add(id(y))
        yield y
        stack.extend(y.args)
