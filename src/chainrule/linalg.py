"""``cr.linalg``: norms, inverse, determinant and solve (as ``torch.linalg``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .backend import is_foreign, namespace_of, to_numpy
from .primitives import linalg as L
from .tensor import Tensor, apply


def _any(a: Any) -> bool:
    """Whether any entry of a boolean array (NumPy's or another library's) is true."""
    if isinstance(a, np.ndarray) or not is_foreign(a):
        return bool(np.any(a))
    return bool(namespace_of(a).xp.any(a))


def _nonzero(d: Any) -> Any:
    """1 where ``d`` is nonzero, else 0, in ``d``'s library and dtype."""
    if isinstance(d, np.ndarray) or not is_foreign(d):
        return (np.asarray(d) != 0).astype(np.asarray(d).dtype)
    return namespace_of(d).xp.astype(d != 0, d.dtype)


def _safe_sqrt(s: Tensor) -> Tensor:
    """sqrt with a zero gradient at 0 (torch's subgradient for norms), never NaN."""
    zero = s._data == 0
    if not _any(zero):
        return ops.sqrt(s)
    return ops.where(zero, 0.0, ops.sqrt(ops.where(zero, 1.0, s)))


def vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A002
    """The vector ``ord``-norm over ``dim`` (all elements when None): 2, 1, inf, -inf, 0 or any p > 0."""
    x = ops._t(x)
    if x.dtype.kind != "f":
        raise TypeError(f"vector_norm: expects a floating-point tensor, got {x.dtype}; convert with .float()")
    a = ops.abs(x)
    if ord == 2:
        return _safe_sqrt(ops.sum(x * x, dim, keepdim))
    if ord == 1:
        return ops.sum(a, dim, keepdim)
    if ord == float("inf"):
        return ops.amax(a, dim, keepdim)
    if ord == -float("inf"):
        return ops.amin(a, dim, keepdim)
    if ord == 0:
        return ops.sum(ops._zero_grad_values(x, _nonzero(x._data)), dim, keepdim)
    if isinstance(ord, (int, float)) and ord > 0:
        total = ops.sum(a**ord, dim, keepdim)
        zero = total._data == 0
        if _any(zero):
            return ops.where(zero, 0.0, ops.where(zero, 1.0, total) ** (1.0 / ord))
        return total ** (1.0 / ord)
    raise ValueError(f"vector_norm: ord must be a number > 0, 0, inf or -inf, got {ord!r}")


def matrix_norm(x: Any, ord: Any = "fro", dim: tuple = (-2, -1), keepdim: bool = False) -> Tensor:  # noqa: A002
    """The Frobenius norm (``"fro"``), or the max column (1) / row (inf) sum of a matrix."""
    x = ops._t(x)
    if x.ndim < 2:
        raise ValueError(f"matrix_norm: expects at least 2 dims, got shape {x.shape}")
    if ord == "fro":
        return vector_norm(x, 2, dim, keepdim)
    a = ops.abs(x)
    r, c = dim
    if ord == 1:
        m = ops.amax(ops.sum(a, r, True), c, True)
    elif ord == float("inf"):
        m = ops.amax(ops.sum(a, c, True), r, True)
    else:
        raise ValueError(f"matrix_norm: ord must be 'fro', 1 or inf here, got {ord!r} (the 2-norm needs an SVD)")
    return m if keepdim else ops.squeeze(m, (r, c))


def norm(x: Any, ord: Any = None, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A002
    """torch.linalg.norm: the 2-norm of all elements by default; with ``ord`` and a 2-D input, a matrix norm."""
    x = ops._t(x)
    if ord is None:
        return vector_norm(x, 2, dim, keepdim)
    if isinstance(ord, str) or (dim is None and x.ndim == 2) or (isinstance(dim, tuple) and len(dim) == 2):
        return matrix_norm(x, ord, (-2, -1) if dim is None else dim, keepdim)
    return vector_norm(x, ord, dim, keepdim)


def norm_torch(x: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Tensor:
    """``x.norm(p, dim)``/``torch.norm``: ``"fro"`` and 2 are the 2-norm of the elements over ``dim``."""
    if p in ("fro", 2, 2.0, None):
        return vector_norm(x, 2, dim, keepdim)
    if p == "nuc":
        raise ValueError("norm: the nuclear norm is not provided; use cr.linalg.norm with ord='fro', 1 or inf")
    return vector_norm(x, p, dim, keepdim)


def _square(op: str, x: Tensor) -> None:
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{op}: expects a square matrix (or a batch of them), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expects a floating-point tensor, got {x.dtype}; convert with .double()")


def inv(x: Any) -> Tensor:
    """The matrix inverse, batched over leading dims (a singular matrix raises)."""
    x = ops._t(x)
    _square("inv", x)
    if np.any(np.linalg.cond(to_numpy(x._data)) > 1 / np.finfo(x.dtype).eps):  # checked on a host copy
        raise ValueError(f"inv: the matrix of shape {x.shape} is singular (or numerically so)")
    return apply(L.inv, x)


def det(x: Any) -> Tensor:
    """The determinant, batched over leading dims; its gradient det(A)·A⁻ᵀ needs A invertible."""
    x = ops._t(x)
    _square("det", x)
    return apply(L.det, x)


def solve(a: Any, b: Any) -> Tensor:
    """``x`` with ``a @ x = b``, as ``inv(a) @ b`` (fine for the small systems chainrule is for)."""
    return ops.matmul(inv(a), b)


__all__ = ["norm", "vector_norm", "matrix_norm", "inv", "det", "solve"]
