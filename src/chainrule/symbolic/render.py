"""Printing: a formula as text or LaTeX, and in the program's own syntax (for Jacobian notes anyone can rebuild)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ..format import fmt_const
from .core import _RENDER, _SUPERSCRIPT, CMP, UNARY, Sym, shape_of
from .simplify import _factors, _is_T, const_value, is_const
from .sizes import _sconst_parts, shape_text

_FN = {
    "sigmoid": "σ",
    "tanh": "tanh",
    "relu": "relu",
    "log_softmax": "log_softmax",
    "unfold": "im2col",
    "fold": "col2im",
}


# precedences: a child whose precedence is below what its parent needs gets parentheses
_ATOM, _POSTFIX, _POW, _PREFIX, _MUL, _ADD, _SUM = 9, 8, 7, 6, 4, 2, 1


def _latex_name(name: str) -> str:
    base = name.rstrip("0123456789")
    digits = name[len(base) :]
    if len(base) > 1 and not (base.startswith("d") and len(base) == 2):
        base = r"\mathit{" + base + "}"
    return base + (f"_{{{digits}}}" if digits else "")


def axis_label(in_ndim: int, axes: tuple[int, ...]) -> str:
    """``rows`` / ``cols`` / ``axis 0,2`` / ``""`` (all axes) for a reduction of an ``in_ndim``-D value."""
    if len(axes) == in_ndim:
        return ""
    if in_ndim == 2 and tuple(axes) == (0,):
        return "rows"
    if in_ndim == 2 and tuple(axes) == (1,):
        return "cols"
    return "axis " + ",".join(str(a) for a in axes)


def _sum_name(x: Sym, latex: bool) -> str:
    label = axis_label(len(shape_of(x.args[0])), x.params[0])
    if latex:
        return r"\sum" + (rf"_{{\text{{{label}}}}}" if label else "")
    return "Σ" + ("_" + label.replace(" ", "") if label else "")


def render(x: Any, latex: bool = False) -> str:
    r"""``x`` as text: ``dh ⊙ h ⊙ (1 − h)`` (or LaTeX: ``dh \odot h \odot \left(1 - h\right)``)."""
    return _render(x, latex)[0]


def _paren(text_prec: tuple[str, int], need: int, latex: bool) -> str:
    text, prec = text_prec
    if prec < need:
        return (r"\left(" + text + r"\right)") if latex else f"({text})"
    return text


def _ones(shape: tuple[int, ...], latex: bool) -> str:
    if latex:
        return r"\mathbf{1}_{" + shape_text(shape, r"\times ") + "}"
    return f"ones({shape_text(shape)})"


def _const_text(x: Sym, latex: bool, bare: bool) -> tuple[str, int]:
    """A constant; a shaped one that is not absorbed by broadcasting shows its shape (``0.5 ones(B×4)``)."""
    minus = "-" if latex else "−"
    if x.op == "sconst":
        num, den = _sconst_parts(x)
        sign = minus if x.params[1] < 0 else ""
        if latex:
            text = sign + (rf"\frac{{{num}}}{{{den}}}" if den else num)
        else:
            text = sign + (f"{num}/{den}" if den else num)
        prec = _PREFIX if sign else (_MUL if den else _ATOM)
    else:
        v = x.params[0]
        text, prec = _number(abs(v), latex)
        text, prec = (minus + text, _PREFIX) if v < 0 else (text, prec)
    if x.shape and not bare:
        if text == "1":
            return _ones(x.shape, latex), _ATOM
        return f"{_paren((text, prec), _MUL + 1, latex)} {_ones(x.shape, latex)}", _MUL
    return text, prec


def _number(v: float, latex: bool) -> tuple[str, int]:
    """A non-negative constant: ``0.5``, ``2/3`` (a simple fraction that is not a short decimal), ``1e-05``."""
    text = fmt_const(v)
    if len(text) > 6 and v != 0:
        f = Fraction(v).limit_denominator(100)
        if f.denominator > 1 and abs(float(f) - v) <= 1e-12 * abs(v):
            if latex:
                return rf"rac{{{f.numerator}}}{{{f.denominator}}}", _ATOM
            return f"{f.numerator}/{f.denominator}", _MUL
    return text, _ATOM


def _child(y: Any, parent_shape: tuple[int, ...], others: tuple, latex: bool) -> tuple[str, int]:
    """Render an operand of an elementwise operation; a shaped constant may print bare if broadcasting restores it."""
    if isinstance(y, Sym) and y.op in ("const", "sconst") and y.shape:
        rest = np.broadcast_shapes(*(shape_of(o) for o in others)) if others else ()
        return _const_text(y, latex, bare=tuple(rest) == tuple(parent_shape))
    return _render(y, latex)


def _render(x: Any, latex: bool) -> tuple[str, int]:
    if not isinstance(x, Sym):
        v = np.asarray(x)
        return (fmt_const(x), _ATOM) if v.ndim == 0 and float(v) >= 0 else (fmt_const(x), _PREFIX)
    op, a = x.op, x.args
    minus = "-" if latex else "−"
    odot = r" \odot " if latex else " ⊙ "
    if op == "var":
        return (_latex_name(x.name) if latex else x.name), _ATOM
    if op in ("const", "sconst"):
        return _const_text(x, latex, bare=False)
    if op == "neg":
        inner = a[0]
        need = _POW if isinstance(inner, Sym) and inner.op in ("mul", "matmul", "outer") else _MUL
        return minus + _paren(_render(inner, latex), need, latex), _PREFIX
    if op in ("add", "sub"):
        left = _paren(_child(a[0], x.shape, a[1:], latex), _ADD, latex)
        right = _paren(_child(a[1], x.shape, a[:1], latex), _ADD + 1, latex)
        return f"{left} {'+' if op == 'add' else minus} {right}", _ADD
    if op == "mul":
        factors = _factors(x)
        parts = []
        for j, f in enumerate(factors):
            r = _child(f, x.shape, tuple(factors[:j] + factors[j + 1 :]), latex)
            parts.append(_paren(r, _POW if r[1] != _MUL or not _is_scalar_factor(f) else _MUL + 1, latex))
        scal = [p for p, f in zip(parts, factors) if _is_scalar_factor(f)]
        rest = [p for p, f in zip(parts, factors) if not _is_scalar_factor(f)]
        if scal and rest:
            return " ".join(scal) + " " + odot.join(rest), _MUL
        return (" " if not rest else odot).join(parts), _MUL
    if op == "div":
        if latex:
            return r"\frac{" + _render(a[0], True)[0] + "}{" + _render(a[1], True)[0] + "}", _ATOM
        # a / b / c reads left to right, as in NumPy; a product on the left is parenthesized: (a ⊙ b) / c, and so
        # is a size's fraction, whose own slash would run into the division's: (1/B) / c, never 1/B / c
        fraction = isinstance(a[0], Sym) and a[0].op == "sconst" and bool(_sconst_parts(a[0])[1])
        left_need = _POW if fraction or (isinstance(a[0], Sym) and a[0].op in ("mul", "matmul", "outer")) else _MUL
        left = _paren(_child(a[0], x.shape, a[1:], False), left_need, False)
        right = _paren(_child(a[1], x.shape, a[:1], False), _MUL + 1, False)
        return f"{left} / {right}", _MUL
    if op == "matmul":
        sep = r" \, " if latex else " · "
        left = _paren(_render(a[0], latex), _POW, latex)
        right = _paren(_render(a[1], latex), _POW, latex)
        return left + sep + right, _MUL
    if op == "pow":
        base = _paren(_render(a[0], latex), _ATOM, latex)
        if is_const(a[1]):
            e = fmt_const(const_value(a[1]))
            if latex:
                return f"{base}^{{{e}}}", _POW
            return base + e.translate(_SUPERSCRIPT), _POW
        e = _render(a[1], latex)[0]
        return (f"{base}^{{{e}}}" if latex else f"{base}^({e})"), _POW
    if op == "transpose":
        inner = _paren(_render(a[0], latex), _ATOM, latex)
        if _is_T(x):
            return inner + (r"^\top" if latex else "ᵀ"), _POSTFIX
        return f"transpose({_render(a[0], latex)[0]}, {x.params[0]})", _ATOM
    if op == "sum":
        name = _sum_name(x, latex)
        inner = _render(a[0], latex)
        if x.params[1]:  # keepdims: written out, as NumPy's keyword
            kd = r",\ \text{keepdims}" if latex else ", keepdims"
            return name + (r"\left(" if latex else "(") + inner[0] + kd + (r"\right)" if latex else ")"), _ATOM
        return name + " " + _paren(inner, _POSTFIX, latex), _SUM
    if op in UNARY:
        if latex and op == "sqrt":
            return r"\sqrt{" + _render(a[0], True)[0] + "}", _ATOM
        if latex:
            fn = {"exp": r"\exp", "log": r"\log", "sin": r"\sin", "cos": r"\cos"}.get(op, r"\operatorname{sign}")
            return rf"{fn}\left({_render(a[0], True)[0]}\right)", _ATOM
        return f"{op.replace('sqrt', '√')}({_render(a[0], False)[0]})", _ATOM
    if op == "cmp":
        sym = CMP[x.params[0]]
        if latex:
            sym = {"≥": r"\ge", "≤": r"\le", "≠": r"\ne"}.get(sym, sym)
            return rf"\left[{_render(a[0], True)[0]} {sym} {_render(a[1], True)[0]}\right]", _ATOM
        return f"[{_render(a[0], False)[0]} {sym} {_render(a[1], False)[0]}]", _ATOM
    if op in ("reshape", "broadcast"):
        dims = shape_text(x.params[0], r"\times " if latex else "×")
        word = r"\operatorname{" + op + "}" if latex else op
        return f"{word}({_render(a[0], latex)[0]}, {dims})", _ATOM
    if op == "getitem":
        return f"{_paren(_render(a[0], latex), _ATOM, latex)}[{_index_text(x.params[0])}]", _POSTFIX
    if op == "outer":
        left = _paren(_render(a[0], latex), _POSTFIX, latex)
        right = _paren(_render(a[1], latex), _POSTFIX, latex)
        return left + (r" \otimes " if latex else " ⊗ ") + right, _MUL
    if op == "scatter":
        word = r"\operatorname{scatter}" if latex else "scatter"
        return f"{word}({_render(a[0], latex)[0]}, {_index_text(x.params[0], True)}, {shape_text(x.shape)})", _ATOM
    if op == "where":
        parts = ", ".join(_render(y, latex)[0] for y in a)
        return (r"\operatorname{where}" if latex else "where") + f"({parts})", _ATOM
    if op == "fn":
        return f"{x.params[0]}({_render(a[0], latex)[0]})", _ATOM
    if op == "fprime":
        name = x.params[0]
        return (f"{name}'" if latex else f"{name}′") + f"({_render(a[0], latex)[0]})", _ATOM
    if op == "prim":
        p = x.params[0]
        name = _FN.get(p.name, p.name)
        if latex:
            name = r"\sigma" if p.name == "sigmoid" else r"\operatorname{" + p.name.replace("_", r"\_") + "}"
        inner = ", ".join(_render(y, latex)[0] for y in a)
        extra = ""
        static = x.params[1:]
        if static and p.name in ("softmax", "log_softmax", "logsumexp", "mean", "max", "min"):
            if static[0] is not None:
                extra = f", axis={static[0][0] if len(static[0]) == 1 else static[0]}"
            if len(static) > 1 and static[1]:
                extra += ", keepdims"
        return f"{name}({inner}{extra})", _ATOM
    return f"{op}({', '.join(_render(y, latex)[0] for y in a)})", _ATOM


def _is_scalar_factor(f: Any) -> bool:
    return shape_of(f) == () and (not isinstance(f, Sym) or f.op in ("const", "sconst", "var"))


_PY_BIN = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2), "matmul": ("@", 2), "pow": ("**", 4)}


def program_text(x: Any) -> str:
    """``x`` in the expression language ``derive`` reads (``W @ a + b``, ``sigmoid(z)``, ``sum(h, axis=1)``)."""
    return _program_text(x)[0]


def _pt(x: Any, need: int) -> str:
    text, prec = _program_text(x)
    return f"({text})" if prec < need else text


def _program_text(x: Any) -> tuple[str, int]:
    if not isinstance(x, Sym):
        return fmt_const(x), 5
    op, a = x.op, x.args
    if op == "var":
        return x.name, 5
    if op in ("const", "sconst"):
        v = x.params[0]
        return fmt_const(v), (3 if v < 0 else 5)
    if op in _PY_BIN:
        sym, prec = _PY_BIN[op]
        if op == "pow":
            return f"{_pt(a[0], 5)} ** {_pt(a[1], 4)}", 4
        return f"{_pt(a[0], prec)} {sym} {_pt(a[1], prec + 1)}", prec
    if op == "neg":
        return f"-{_pt(a[0], 3)}", 3
    if op == "transpose":
        return f"{_pt(a[0], 5)}.T", 5
    if op in UNARY:
        return f"{op}({program_text(a[0])})", 5
    if op == "sum":
        axes = x.params[0]
        extra = "" if len(axes) == len(shape_of(a[0])) else f", axis={axes[0] if len(axes) == 1 else axes}"
        return f"sum({program_text(a[0])}{extra}{', keepdims=True' if x.params[1] else ''})", 5
    if op in ("broadcast", "reshape"):
        return _program_text(a[0])
    if op == "fn":
        return f"{x.params[0]}({program_text(a[0])})", 5
    if op == "prim":
        p = x.params[0]
        static = x.params[1:]
        extra = ""
        if static and p.name in ("softmax", "log_softmax", "logsumexp", "mean", "max", "min") and static[0] is not None:
            extra = f", axis={static[0][0] if len(static[0]) == 1 else static[0]}"
        if len(static) > 1 and static[1] is True:
            extra += ", keepdims=True"
        return f"{p.name}({', '.join(program_text(y) for y in a)}{extra})", 5
    return f"{op}({', '.join(program_text(y) for y in a)})", 5


def strip_outer(text: str) -> str:
    """``(W @ a)`` -> ``W @ a`` (only when the parentheses enclose the whole text)."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return text
    return text[1:-1]


_RENDER.append(render)


def _index_text(index: Any, grouped: bool = False) -> str:
    """``x[i, :, 2:5]`` as written in Python; an array is written by its ``str`` (a recorded graph names it).

    ``grouped``: a tuple of several indices in parentheses (an argument of ``scatter``)."""
    if not isinstance(index, tuple):
        return _one_index(index)
    text = ", ".join(_one_index(i) for i in index)
    return f"({text})" if grouped and len(index) != 1 else text


def _one_index(i: Any) -> str:
    if isinstance(i, slice):
        parts = ["" if v is None else str(v) for v in (i.start, i.stop, i.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
    if i is Ellipsis:
        return "..."
    return str(i)
