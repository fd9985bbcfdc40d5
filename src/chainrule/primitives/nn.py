"""Primitives for convolutional networks: ``unfold`` (im2col), its adjoint ``fold`` (col2im), and ``erf``.

``unfold`` and ``fold`` use PyTorch's layout (``torch.nn.functional.unfold`` /
``fold``): a batch of images ``(N, C, H, W)`` becomes columns ``(N, C·kh·kw, L)``
with one column per sliding block, channels outermost, then kernel rows, then
kernel columns.  A convolution is then one matrix product with the weight
reshaped to ``(out_channels, C·kh·kw)``; max pooling picks one entry per block.

Both are linear and each is the other's transpose, so each VJP rule calls the
other primitive: on arrays for first-order backprop, on tensors (recorded) for
gradients of gradients.  ``unfold`` reads the blocks through a strided view
(``numpy.lib.stride_tricks.as_strided``) and copies them once; ``fold`` adds
the columns back with one strided ``+=`` per kernel offset (``kh·kw`` NumPy
operations, never a loop over pixels).

The spatial parameters reach the forward already normalized to pairs:
``kernel``, ``dilation``, ``padding`` and ``stride``, each ``(along H, along W)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..primitive import Primitive, defprim, defvjp

Pair = tuple[int, int]


def blocks(size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Pair:
    """How many sliding blocks fit along H and along W (as torch computes it)."""
    return tuple(  # type: ignore[return-value]
        (size[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def _unfold(x: np.ndarray, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> np.ndarray:
    x = np.asarray(x)
    n, c, h, w = x.shape
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = blocks((h, w), kernel, dilation, padding, stride)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    s0, s1, s2, s3 = x.strides
    view = as_strided(x, (n, c, kh, kw, oh, ow), (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw), writeable=False)
    return view.reshape(n, c * kh * kw, oh * ow)  # the one copy


def _fold(cols: np.ndarray, output_size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> np.ndarray:
    cols = np.asarray(cols)
    n, ckk, _ = cols.shape
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    h, w = output_size
    oh, ow = blocks(output_size, kernel, dilation, padding, stride)
    c = ckk // (kh * kw)
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    grid = cols.reshape(n, c, kh, kw, oh, ow)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            out[:, :, rows, columns] += grid[:, :, i, j]
    if ph or pw:
        out = np.ascontiguousarray(out[:, :, ph : ph + h, pw : pw + w])
    return out


def _result_shape(prim: Primitive, shape: tuple[int, ...], params: tuple) -> tuple[int, ...]:
    """The shape ``unfold`` or ``fold`` gives an input of ``shape`` (for the symbolic namespace)."""
    if prim.name == "unfold":
        kernel, dilation, padding, stride = params
        oh, ow = blocks(shape[2:], kernel, dilation, padding, stride)
        return (shape[0], shape[1] * kernel[0] * kernel[1], oh * ow)
    output_size, kernel = params[0], params[1]
    return (shape[0], shape[1] // (kernel[0] * kernel[1])) + tuple(output_size)


def _call(xp: Any, prim: Primitive, x: Any, *params: Any) -> Any:
    """Run ``prim`` in the namespace a rule was called with: raw arrays, recorded tensors, or formulas."""
    name = getattr(xp, "name", "")
    if name == "tensor":
        from ..tensor import apply  # late: the tensor layer imports this table, not the other way round

        return apply(prim, x, *params)
    if name == "symbolic":  # the trace prints the rule: the adjoint appears as a named call
        from ..explain import symbolic as S

        return S.prim(prim, (x,), params, _result_shape(prim, tuple(xp.shape(x)), params))
    return prim.fwd(x, *params)


unfold = defprim("unfold", _unfold, kind="linear", symbol="im2col")
fold = defprim("fold", _fold, kind="linear", symbol="col2im")


def _unfold_dx(xp: Any, g: Any, out: Any, x: Any, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Any:
    size = tuple(xp.shape(x)[2:])
    return _call(xp, fold, g, size, kernel, dilation, padding, stride)


def _fold_dx(
    xp: Any, g: Any, out: Any, cols: Any, output_size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair
) -> Any:
    return _call(xp, unfold, g, kernel, dilation, padding, stride)


defvjp(unfold, _unfold_dx)
defvjp(fold, _fold_dx)


# --- erf, for the exact GELU ---------------------------------------------------------------
_ERF = np.frompyfunc(math.erf, 1, 1)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(x: Any) -> np.ndarray:
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return np.asarray(_ERF(x), dtype=dtype)


erf = defprim("erf", _erf, scalar_fwd=math.erf, kind="elementwise")
defvjp(erf, lambda xp, g, out, x: g * (_TWO_OVER_SQRT_PI * xp.exp(-(x * x))))

__all__ = ["blocks", "erf", "fold", "unfold"]
