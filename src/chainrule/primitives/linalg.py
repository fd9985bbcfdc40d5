"""Matrix multiplication, with NumPy's rules for 1-D and batched operands."""

from __future__ import annotations

import numpy as np

from ..primitive import defbatch, defjvp, defprim, defvjp
from .batching import einsum_rule, leading_batch, matmul_rule


def _matmul_dx(xp, g, out, x, y):
    xd, yd = len(xp.shape(x)), len(xp.shape(y))
    if xd == 1 and yd == 1:
        return g * y
    if yd == 1:  # (..., m, n) @ (n,) -> (..., m): outer product of g and y
        return xp.reshape(g, xp.shape(g) + (1,)) * y
    if xd == 1:  # (n,) @ (..., n, m) -> (..., m)
        gcol = xp.reshape(g, xp.shape(g)[:-1] + (xp.shape(g)[-1], 1))
        prod = y @ gcol
        return xp.reshape(prod, xp.shape(prod)[:-1])
    return g @ xp.swapaxes(y, -1, -2)


def _matmul_dy(xp, g, out, x, y):
    xd, yd = len(xp.shape(x)), len(xp.shape(y))
    if xd == 1 and yd == 1:
        return g * x
    if xd == 1:  # dy[..., n, m] = x[n] g[..., m]
        return xp.reshape(x, (xp.shape(x)[0], 1)) * xp.reshape(g, xp.shape(g)[:-1] + (1, xp.shape(g)[-1]))
    if yd == 1:  # (..., m, n) @ (n,): dy = xᵀ g summed over the batch
        gcol = xp.reshape(g, xp.shape(g) + (1,))
        prod = xp.swapaxes(x, -1, -2) @ gcol
        return xp.reshape(prod, xp.shape(prod)[:-1])
    return xp.swapaxes(x, -1, -2) @ g


matmul = defprim("matmul", "matmul", nin=2, kind="bilinear", symbol="@")
defvjp(matmul, _matmul_dx, _matmul_dy)
defbatch(matmul, matmul_rule(matmul))


# --- einsum ---------------------------------------------------------------------------
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_einsum(equation: str, ndims: list[int]) -> str:
    """An einsum equation in explicit form (``"ij,jk->ik"``), ellipses spelled out, checked against the operands."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum: the equation {equation!r} names {len(terms)} operands but {len(ndims)} were given")
    used = set(c for c in eq if c.isalpha())
    spare = [c for c in _LETTERS if c not in used]
    ell_len = 0
    for term, nd in zip(terms, ndims):
        if "..." in term:
            ell_len = max(ell_len, nd - len(term.replace("...", "")))
    ell = "".join(spare[:ell_len])
    out_terms = []
    for term, nd in zip(terms, ndims):
        bad = [c for c in term.replace("...", "") if not c.isalpha()]
        if bad:
            raise ValueError(f"einsum: {equation!r}: subscripts are letters, got {bad[0]!r}")
        if "..." in term:
            k = nd - len(term.replace("...", ""))
            term = term.replace("...", ell[ell_len - k :] if k else "")
        if len(term) != nd:
            raise ValueError(f"einsum: {equation!r}: subscripts {term!r} do not match an operand with {nd} dims")
        if len(set(term)) != len(term):
            raise ValueError(
                f"einsum: {equation!r}: an index repeated within one operand (a diagonal) is not supported; "
                "use cr.diag or indexing"
            )
        out_terms.append(term)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: "".join(out_terms).count(c) for c in set("".join(out_terms))}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    for c in out:
        if not any(c in t for t in out_terms):
            raise ValueError(f"einsum: {equation!r}: the output index {c!r} appears in no operand")
    return ",".join(out_terms) + "->" + out


def _einsum(xp, *args):
    return xp.einsum(args[-1], *args[:-1])


def _einsum_dx(xp, g, out, i, *args):
    """The gradient of operand i: an einsum of g with the other operands, broadcast over indices only i has."""
    eq = args[-1]
    operands = args[:-1]
    lhs, out_sub = eq.split("->")
    terms = lhs.split(",")
    mine = terms[i]
    others = [t for k, t in enumerate(terms) if k != i]
    reachable = set(out_sub).union(*others) if others else set(out_sub)
    kept = "".join(c for c in mine if c in reachable)
    grad_eq = ",".join([out_sub] + others) + "->" + kept
    part = xp.einsum(grad_eq, g, *[o for k, o in enumerate(operands) if k != i])
    if kept == mine:
        return part
    shape = xp.shape(operands[i])
    sizes = dict(zip(mine, shape))
    expanded = xp.reshape(part, tuple(sizes[c] if c in kept else 1 for c in mine))
    return xp.broadcast_to(expanded, shape)


def _einsum_jvp(xp, tangents, out, *args):
    """Multilinear: the sum over operands of the einsum with that operand replaced by its tangent."""
    eq, operands = args[-1], args[:-1]
    total = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        term = xp.einsum(eq, *[t if k == i else o for k, o in enumerate(operands)])
        total = term if total is None else total + term
    return total


einsum = defprim("einsum", _einsum, nin=-1)
defvjp(einsum, _einsum_dx)
defjvp(einsum, _einsum_jvp)
defbatch(einsum, einsum_rule(einsum))


# --- inverse and determinant (batched over leading dims) ----------------------------------
def _mT(xp, a):
    return xp.swapaxes(a, -1, -2)


def _inv_of(xp, x):
    """inv(x) in the namespace of the rule: recorded on tensors, plain arrays otherwise."""
    try:
        return xp.apply(inv, x)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"det: the gradient det(A)·A⁻ᵀ needs an invertible matrix; "
            f"this one (shape {tuple(xp.shape(x))}) is singular"
        ) from None


inv = defprim("inv", "inv", symbol="⁻¹")
defvjp(inv, lambda xp, g, out, x: -(_mT(xp, out) @ g @ _mT(xp, out)))
defjvp(inv, lambda xp, tangents, out, x: -(out @ tangents[0] @ out))
defbatch(inv, leading_batch(inv))


def _det_dx(xp, g, out, x):
    scale = xp.reshape(g * out, xp.shape(out) + (1, 1))
    return scale * _mT(xp, _inv_of(xp, x))


def _det_jvp(xp, tangents, out, x):
    (t,) = tangents
    return out * xp.sum(_mT(xp, _inv_of(xp, x)) * t, (-2, -1) if len(xp.shape(x)) > 2 else None)


det = defprim("det", "det")
defvjp(det, _det_dx)
defjvp(det, _det_jvp)
defbatch(det, leading_batch(det))
