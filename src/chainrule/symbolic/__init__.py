"""Symbolic arrays: the ``xp`` namespace that ``derive`` runs the primitives' VJP rules on.

A :class:`Sym` is an expression tree with a shape.  It supports the operators
the rules use (``+ - * / ** @``, unary ``-``, comparisons) and :data:`SYM`
provides the namespace functions (``xp.sum``, ``xp.reshape``, ``xp.swapaxes``
...), so ``rule(SYM, g, out, *args)`` returns the gradient as a formula.
:func:`simplify` rewrites it the way a person would write it, :func:`render`
prints it (Unicode or LaTeX) and :func:`evaluate` computes it with NumPy.
"""

from .core import (  # noqa: F401
    _NP_CMP,
    _SUPERSCRIPT,
    CMP,
    ELEMENTWISE_BINARY,
    SYM,
    UNARY,
    Sym,
    _broadcast,
    _getitem,
    _matmul_shape,
    _reshape,
    _scatter,
    _sum,
    _swapaxes,
    _transpose,
    _unary,
    _unbroadcast,
    _where,
    apply,
    binary,
    const,
    matmul,
    prim,
    shape_of,
    var,
)
from .evaluate import (  # noqa: F401
    evaluate,
)
from .render import (  # noqa: F401
    _FN,
    _PY_BIN,
    _child,
    _const_text,
    _is_scalar_factor,
    _latex_name,
    _number,
    _ones,
    _paren,
    _program_text,
    _pt,
    _render,
    _sum_name,
    axis_label,
    program_text,
    render,
    strip_outer,
)
from .simplify import (  # noqa: F401
    _cancel,
    _distribute,
    _divides,
    _factors,
    _fit,
    _is_T,
    _loose,
    _product,
    _scalar_factor,
    _simplify,
    _simplify_memo,
    _strip1,
    const_value,
    is_const,
    same,
    simplify,
)
from .sizes import (  # noqa: F401
    _DIMS,
    _NO_DIMS,
    _fit_powers,
    _sconst_parts,
    count_refs,
    dim_text,
    dims_context,
    nodes,
    sconst,
    shape_text,
    substitute,
    symbolic_dims,
    symbolize,
    tree_size,
)
