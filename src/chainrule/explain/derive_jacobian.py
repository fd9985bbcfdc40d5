"""What each local Jacobian of a derivation looks like, derived from the operation and the operand's role.

``∂out/∂in`` is ``out.size × in.size``; :func:`structure` says which of a few
shapes it has (identity, ± identity, diagonal, stack of identities, one row of
ones per slice, block-diagonal per slice, a Kronecker product with an identity,
selection, permutation, dense) and how many entries are structurally nonzero,
from the primitive, the operand's position and the shapes.  The tests build the
Jacobians explicitly on small instances and compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import symbolic as S
from ..primitive import REGISTRY


def is_elementwise(prim: str) -> bool:
    """From the registry's forward-mode tag (one source): elementwise primitives, and mul (bilinear)."""
    p = REGISTRY.get(prim)
    return prim == "mul" or (p is not None and p.kind == "elementwise")


GATES = {"relu", "maximum", "minimum", "abs", "clip", "where", "max", "min"}  # entries may be 0 at some points


@dataclass
class Structure:
    """``kind`` (a short name, one of :data:`KINDS`), ``nonzeros`` (structural), and a one-line description."""

    kind: str
    nonzeros: int
    description: str
    vjp: str  # what the vector-Jacobian product does instead of building the matrix
    exact: bool = True  # False: ``nonzeros`` is an upper bound (a gate such as relu zeroes entries at some points)


KINDS = (
    "identity",
    "negated identity",
    "diagonal",
    "stack of identities",
    "stack of diagonals",
    "row of ones",
    "rows of ones per slice",
    "block-diagonal per slice",
    "Kronecker product with an identity",
    "dense",
    "selection",
    "permutation",
    "convolution",  # conv2d's ∂y/∂x as a whole (the im2col view's product with a selection): a note of a layer
)


def _n(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _size_text(dims: list[int]) -> str:
    """A product of dimensions as text: ``28``, or ``4B`` where a dimension is symbolic."""
    texts = [S.dim_text(d) for d in dims]
    number = math.prod(d for d, t in zip(dims, texts) if t.isdigit())
    symbols = "".join(t for t in texts if not t.isdigit())
    return (str(number) if number != 1 or not symbols else "") + symbols


def _slice_texts(shape: tuple[int, ...], axes: Any) -> tuple[str, str]:
    """(number of slices, slice length) as text, symbolic sizes kept."""
    if axes is None:
        axes = tuple(range(len(shape)))
    kept = [d for i, d in enumerate(shape) if i not in axes]
    return _size_text(kept), _size_text([shape[a] for a in axes])


def _slices(shape: tuple[int, ...], axes: Any) -> tuple[int, int]:
    """(number of slices, slice length) of a reduction over ``axes`` (None: all)."""
    if axes is None:
        axes = tuple(range(len(shape)))
    length = math.prod(shape[a] for a in axes)
    return _n(shape) // max(1, length), length


def structure(
    prim: str,
    role: int,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    params: tuple,
    operands: tuple,
    names: tuple = ("x", "y"),
) -> Structure:
    """The structure of ``∂out/∂(operand number role)`` for primitive ``prim``.

    ``operands`` are the shapes of all tensor operands (for matmul's roles), ``names`` how
    the descriptions call them.
    """
    st = _structure(prim, role, in_shape, out_shape, params, operands, names)
    if prim in GATES:
        st.exact = False
    return st


def _structure(
    prim: str, role: int, in_shape: tuple, out_shape: tuple, params: tuple, operands: tuple, names: tuple
) -> Structure:
    rows, cols = _n(out_shape), _n(in_shape)
    same = tuple(in_shape) == tuple(out_shape)
    if prim in ("add", "sub", "neg", "broadcast_to"):
        negated = (prim == "sub" and role == 1) or prim == "neg"
        if same:
            kind = "negated identity" if negated else "identity"
            return Structure(kind, rows, ("−I" if negated else "I") + " (the gradient passes through)", "a copy")
        copies = rows // max(1, cols)
        sign = "−" if negated else ""
        return Structure(
            "stack of identities",
            rows,
            f"{copies} stacked {sign}identities, one per copy made by broadcasting (each row has one {sign}1)",
            "a sum over the broadcast axes (the adjoint of a copy is a sum)",
        )
    if is_elementwise(prim):
        if same:
            return Structure(
                "diagonal",
                rows,
                "diagonal: output entry k depends only on input entry k",
                "an elementwise product with the diagonal",
            )
        return Structure(
            "stack of diagonals",
            rows,
            "one diagonal per copy made by broadcasting (each row has one nonzero)",
            "an elementwise product, then a sum over the broadcast axes",
        )
    if prim in ("sum", "mean"):
        axes = params[0] if params else None
        slices, length = _slices(in_shape, axes)
        n_slices, n_len = _slice_texts(in_shape, axes)
        entry = "1" if prim == "sum" else (f"1/{n_len}" if n_len.isdigit() or len(n_len) == 1 else f"1/({n_len})")
        if slices == 1:
            return Structure(
                "row of ones", cols, f"one row, every entry {entry}", "a broadcast of the upstream gradient"
            )
        return Structure(
            "rows of ones per slice",
            cols,
            f"{n_slices} rows, each with {n_len} entries {entry} on its own slice (zeros elsewhere)",
            "a broadcast of the upstream gradient back over the reduced axes",
        )
    if prim in ("max", "min"):
        slices, length = _slices(in_shape, params[0] if params else None)
        n_slices, n_len = _slice_texts(in_shape, params[0] if params else None)
        return Structure(
            "selection",
            rows,
            f"one 1 per row, at the {prim}imum of its slice of {n_len} (ties split evenly)",
            "the upstream gradient routed to the winners",
        )
    if prim == "logsumexp":
        slices, length = _slices(in_shape, params[0] if params else None)
        n_slices, n_len = _slice_texts(in_shape, params[0] if params else None)
        return Structure(
            "rows of ones per slice" if slices > 1 else "dense",
            cols,
            f"{n_slices} row(s), each softmax of its slice of {n_len} (zeros elsewhere)",
            "the broadcast upstream gradient times softmax",
        )
    if prim in ("softmax", "log_softmax"):
        slices, length = _slices(in_shape, params[0] if params else None)
        n_slices, n_len = _slice_texts(in_shape, params[0] if params else None)
        block = "diag(p) − p pᵀ" if prim == "softmax" else "I − 1 pᵀ"
        kind = "block-diagonal per slice" if slices > 1 else "dense"
        return Structure(
            kind,
            slices * length * length,
            f"{n_slices} dense {n_len}×{n_len} block(s) {block} (p = softmax of the slice), zeros between slices",
            "one sum per slice (p ⊙ (g − Σ g ⊙ p) for softmax, g − p Σ g for log_softmax)",
        )
    if prim == "matmul":
        return _matmul(role, operands, out_shape, names)
    if prim == "linear" and len(operands) == 3 and len(operands[0]) == 2:
        return _linear(role, operands, names)
    if prim in ("unfold", "fold"):  # conv2d's im2col and its adjoint col2im: copies of entries
        padded = any(params[-2]) if params else True
        if prim == "unfold":
            st = Structure(
                "selection",
                rows,
                "a selection: each entry of im2col(x) copies one entry of x (a 0 where it reads the padding): "
                "one 1 per row at most, an entry of x copied once per patch that covers it",
                "col2im: each copy's gradient is added back where it was read (the adjoint of copying is adding)",
            )
        else:
            st = Structure(
                "selection",
                cols,
                "each output entry sums the patch entries that are copies of it: one 1 per column at most",
                "im2col of the gradient (the adjoint of adding is copying)",
            )
        st.exact = not padded  # (with padding, the count is an upper bound: reads of the padding are zeros)
        return st
    if prim == "reshape":
        return Structure("identity", rows, "the identity (a reshape keeps the order of the entries)", "a reshape back")
    if prim == "transpose":
        return Structure(
            "permutation", rows, "a permutation matrix (one 1 per row and per column)", "the inverse transpose"
        )
    if prim in ("getitem", "concatenate", "stack"):
        return Structure(
            "selection", min(rows, cols) if prim != "getitem" else rows, "a selection: one 1 per row", "a scatter back"
        )
    return Structure("dense", rows * cols, "dense (no structure claimed)", "the rule's own product")


def _linear(role: int, operands: tuple, names: tuple) -> Structure:
    """``x Wᵀ + b`` (nn.Linear) with x of shape n×k and W of shape m×k."""
    (n, k), (m, _), _ = operands
    xn, wn = (v[1:-1] if v.startswith("(") and v.endswith(")") and " " not in v else v for v in names[:2])
    if role == 0:
        return Structure(
            "Kronecker product with an identity",
            n * m * k,
            f"I_{S.dim_text(n)} ⊗ {wn} (row i of the output sees only row i of {xn}, through {wn}; entries "
            "numbered row by row)",
            f"a matrix product g · {wn}",
        )
    if role == 1:
        return Structure(
            "Kronecker product with an identity",
            n * m * k,
            f"{xn} ⊗ I_{S.dim_text(m)} (output entry (i, j) sees only row j of {wn}, weighted by row i of "
            f"{xn}; {wn}'s entries numbered column by column, row by row its columns are permuted)",
            f"gᵀ · {xn}",
        )
    return Structure(
        "stack of identities",
        n * m,
        f"{n} stacked identities, one per row of the output (each row has one 1)",
        "a sum over the rows (the adjoint of a copy is a sum)",
    )


def _T(name: str) -> str:
    """The transpose of an operand's name: ``a`` -> ``aᵀ``, ``(Wᵀ)`` and ``Wᵀ`` -> ``W``."""
    for inner in (name[1:-2] if name.startswith("(") and name.endswith("ᵀ)") else None, name[:-1]):
        if inner and name.endswith(("ᵀ", "ᵀ)")) and inner.isidentifier():
            return inner
    return name + "ᵀ"


def _matmul(role: int, operands: tuple, out_shape: tuple[int, ...], names: tuple) -> Structure:
    """``x @ y``: wrt x ``I ⊗ yᵀ`` (dense ``yᵀ`` when x is one row); wrt y ``x ⊗ I`` (dense ``x`` for a column y)."""
    x, y = operands
    xn, yn = names
    n = x[-1]  # the contracted length
    nnz = _n(out_shape) * n  # every output entry depends on n entries of either operand
    batched = len(x) > 2 or len(y) > 2
    batch = ", repeated block by block over the batch" if batched else ""
    if role == 0:
        rows_x = x[-2] if len(x) > 1 else 1
        if rows_x == 1 and not batched:
            return Structure(
                "dense", nnz, f"dense: it is {_T(yn)} ({xn} has one row)", f"a matrix product g · {_T(yn)}"
            )
        return Structure(
            "Kronecker product with an identity",
            nnz,
            f"I_{S.dim_text(rows_x)} ⊗ {_T(yn)} (a Kronecker product with an identity: "
            f"row i of the output sees only row i of {xn}; entries numbered row by row, NumPy's order; "
            f"numbered by columns, as vec() does, it is {_T(yn)} ⊗ I_{S.dim_text(rows_x)})" + batch,
            f"a matrix product g · {_T(yn)}",
        )
    cols_y = y[-1] if len(y) > 1 else 1
    if cols_y == 1 and not batched:
        return Structure(
            "dense", nnz, f"dense: it is {xn} itself ({yn} is one column)", f"a matrix product {_T(xn)} · g"
        )
    return Structure(
        "Kronecker product with an identity",
        nnz,
        f"{xn} ⊗ I_{S.dim_text(cols_y)} (a Kronecker product with an identity: "
        f"column k of the output sees only column k of {yn}; entries numbered row by row, NumPy's order; "
        f"numbered by columns, as vec() does, it is I_{S.dim_text(cols_y)} ⊗ {xn})" + batch,
        f"a matrix product {_T(xn)} · g",
    )
