"""The other layout of a derivation (``derive --layout row|column|both``), by transposing every equation.

A program written with column vectors (``z = W a + b``, ``a`` is 32×1) has a
row-vector twin (``z = a Wᵀ + b``, ``a`` is 1×32): transpose both sides of every
equation, use ``(A · B)ᵀ = Bᵀ · Aᵀ``, ``f(A)ᵀ = f(Aᵀ)`` for elementwise ``f``, and
swap the roles of rows and columns in sums and softmaxes.  The weights (the 2-D
inputs multiplied from the other side) keep their orientation, so they appear
transposed; every other matrix-shaped value is renamed to its transpose.  This is a
rewrite of the formulas, not a second derivation.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import symbolic as S


class LayoutError(ValueError):
    """The program has values of more than two dimensions, which have no single row/column twin."""


def weights(forward: list, inputs: list[str], input_shapes: dict, dims: dict) -> set[str]:
    """Inputs that are the weight side of a matrix product: 2-D, no size 1, no symbolic size."""
    names: set[str] = set()
    for ln in forward:
        for node in S.nodes(ln.formula):
            if node.op != "matmul":
                continue
            for side in node.args:
                if isinstance(side, S.Sym) and side.op == "transpose":
                    side = side.args[0]
                if isinstance(side, S.Sym) and side.op == "var" and side.name in inputs:
                    shape = input_shapes[side.name]
                    if len(shape) == 2 and 1 not in shape and not any(d in dims for d in shape):
                        names.add(side.name)
                        break  # one weight per product (the first that qualifies)
    return names


def own_layout(d: Any) -> str:
    from .parse import generic_program, parse_program

    prog = parse_program(generic_program(d.program))
    keep = weights(d.forward, prog.inputs, d.input_shapes, d.dims)
    for ln in d.forward:
        for node in S.nodes(ln.formula):
            if node.op == "matmul":
                for side, layout in zip(node.args, ("column", "row")):
                    base = side.args[0] if isinstance(side, S.Sym) and side.op == "transpose" else side
                    if isinstance(base, S.Sym) and base.op == "var" and base.name in keep:
                        return layout
    return "column"


def transposed(x: Any, keep: set[str]) -> Any:
    """``xᵀ`` written in the other layout's variables (every 2-D value but ``keep`` is renamed to its transpose)."""
    memo: dict[int, Any] = {}

    def T(y: Any) -> Any:
        if not isinstance(y, S.Sym):
            return y
        if id(y) in memo:
            return memo[id(y)]
        out = _T(y)
        memo[id(y)] = out
        return out

    def N(y: Any) -> Any:
        """``y`` itself in the other layout's variables."""
        if not isinstance(y, S.Sym) or len(y.shape) < 2:
            return T(y)
        return S.simplify(S._transpose(T(y)))

    def _T(y: S.Sym) -> Any:
        nd = len(y.shape)
        if nd > 2:
            raise LayoutError("--layout: values with more than two dimensions have no row/column twin")
        op, a = y.op, y.args
        flip = tuple(reversed(y.shape))
        if op == "var":
            if nd < 2:
                return y
            return S._transpose(S.var(y.name, y.shape)) if y.name in keep else S.var(y.name, flip)
        if op in ("const", "sconst"):
            return S.Sym(op, (), flip, y.params)
        if op == "matmul":
            left, right = a
            if len(S.shape_of(left)) == 1 or len(S.shape_of(right)) == 1:
                return S.matmul(T(right), T(left)) if nd < 2 else S.matmul(N(right), N(left))
            return S.matmul(T(right), T(left))
        if op == "transpose":
            return N(a[0])
        if op == "outer":
            return S.Sym("outer", (a[1], a[0]), flip)
        if op == "sum":
            axes, keep_dims = y.params
            inner = len(S.shape_of(a[0]))
            if inner == 2:
                axes = tuple(sorted(1 - ax for ax in axes))
            return S.Sym("sum", (T(a[0]),), flip if keep_dims or nd == 2 else y.shape, (axes, keep_dims))
        if op in ("broadcast", "reshape"):
            return S.Sym(op, (T(a[0]),), flip, (tuple(reversed(y.params[0])),))
        if op == "prim":
            p = y.params[0]
            static = y.params[1:]
            if static and static[0] is not None and len(S.shape_of(a[0])) == 2:
                static = (tuple(sorted(1 - ax for ax in static[0])),) + tuple(static[1:])
            return S.Sym("prim", tuple(T(v) for v in a), flip, (p,) + tuple(static))
        if op in ("getitem", "scatter"):
            raise LayoutError("--layout: indexing has no row/column twin here")
        args = []
        for v in a:
            tv = T(v)
            if nd == 2 and len(S.shape_of(v)) == 1:  # a vector broadcast along rows becomes a column
                n = S.shape_of(v)[0]
                tv = S.Sym("reshape", (tv,), (n, 1), ((n, 1),))
            args.append(tv)
        return S.Sym(op, tuple(args), flip, y.params, y.name)

    return T(x)


def other_layout(lines: list, keep: set[str], gradient: bool = False) -> list[tuple[str, Any, tuple]]:
    """``(name, formula, shape)`` of each line in the other layout."""
    out = []
    for ln in lines:
        base = ln.name[1:] if gradient else ln.name
        f = transposed(ln.formula, keep)
        shape = ln.shape
        if base in keep:  # a weight keeps its orientation: write its gradient untransposed
            f = S.simplify(S._transpose(f)) if len(shape) == 2 else f
        else:
            shape = tuple(reversed(shape))
        out.append((ln.name, S.simplify(f), shape))
    return out


def layout_text(d: Any, which: str) -> Optional[str]:
    """The other layout's equations as text, with a line on how they were obtained."""
    from .parse import generic_program, parse_program

    prog = parse_program(generic_program(d.program))
    keep = weights(d.forward, prog.inputs, d.input_shapes, d.dims)
    fwd = other_layout(d.forward, keep)
    bwd = other_layout(d.backward, keep, gradient=True)
    renamed = sorted({ln.name for ln in d.forward + d.backward if len(ln.shape) == 2} - keep - {"d" + k for k in keep})
    with S.dims_context(d.dims):
        rows = [(n, S.render(f), S.shape_text(s)) for n, f, s in fwd + bwd]
        width = max(len(f"{n} = {t}") for n, t, _ in rows)
        body = [f"  {(n + ' = ' + t).ljust(width)}   {s}" for n, t, s in rows]
    inputs_renamed = [n for n in prog.inputs if len(d.input_shapes[n]) == 2 and n not in keep]
    head = (
        f"{which} layout (every equation transposed: (A · B)ᵀ = Bᵀ · Aᵀ, f(A)ᵀ = f(Aᵀ), rows ↔ columns; "
        + (", ".join(sorted(inputs_renamed + [r for r in renamed if r not in inputs_renamed])) or "no value")
        + " now stand for the transposes"
        + (f"; {', '.join(sorted(keep))} {'keeps its' if len(keep) == 1 else 'keep their'} orientation" if keep else "")
        + "):"
    )
    return "\n".join([head] + body[: len(fwd)] + ["  --"] + body[len(fwd) :])
