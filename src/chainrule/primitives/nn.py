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


def _unfold(xp: Any, x: Any, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Any:
    n, c, h, w = xp.shape(x)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = blocks((h, w), kernel, dilation, padding, stride)
    if ph or pw:
        x = xp.pad(x, ph, pw)
    if xp.name == "numpy":  # one strided view of every block, copied once
        x = np.asarray(x)
        s0, s1, s2, s3 = x.strides
        view = as_strided(x, (n, c, kh, kw, oh, ow), (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw), writeable=False)
        return view.reshape(n, c * kh * kw, oh * ow)
    # any other library: one strided slice per kernel offset, stacked
    offsets = [
        x[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return xp.reshape(xp.stack(offsets, axis=2), (n, c * kh * kw, oh * ow))


def _fold(xp: Any, cols: Any, output_size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Any:
    n, ckk, _ = xp.shape(cols)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    h, w = output_size
    oh, ow = blocks(output_size, kernel, dilation, padding, stride)
    c = ckk // (kh * kw)
    out = xp.zeros_as((n, c, h + 2 * ph, w + 2 * pw), cols)
    grid = xp.reshape(cols, (n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            out = xp.add_at(out, (slice(None), slice(None), rows, columns), grid[:, :, i, j, ...])
    if ph or pw:
        out = xp.contiguous(out[:, :, ph : ph + h, pw : pw + w])
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
        from .. import symbolic as S

        return S.prim(prim, (x,), params, _result_shape(prim, tuple(xp.shape(x)), params))
    return prim.fwd(x, *params) if name == "numpy" else prim.xfwd(xp, x, *params)


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
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf = defprim("erf", "erf", scalar_fwd=math.erf, kind="elementwise")
defvjp(erf, lambda xp, g, out, x: g * (_TWO_OVER_SQRT_PI * xp.exp(-(x * x))))

__all__ = ["blocks", "erf", "fold", "unfold"]
