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

from ..primitive import defbatch, defprim, defvjp
from .batching import folded_batch

Pair = tuple[int, int]


def blocks(size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Pair:
    """How many sliding blocks fit along H and along W (as torch computes it)."""
    return tuple(  # type: ignore[return-value]
        (size[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def _unfold(xp: Any, x: Any, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Any:
    """Any library: one strided slice per kernel offset, stacked."""
    n, c, h, w = xp.shape(x)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = blocks((h, w), kernel, dilation, padding, stride)
    if ph or pw:
        x = xp.pad(x, ph, pw)
    offsets = [
        x[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return xp.reshape(xp.stack(offsets, axis=2), (n, c * kh * kw, oh * ow))


def _unfold_numpy(x: Any, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Any:
    """NumPy: one strided view of every block, copied once."""
    n, c, h, w = np.shape(x)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = blocks((h, w), kernel, dilation, padding, stride)
    x = np.asarray(x)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    s0, s1, s2, s3 = x.strides
    view = as_strided(x, (n, c, kh, kw, oh, ow), (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw), writeable=False)
    return view.reshape(n, c * kh * kw, oh * ow)


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


def _unfold_shape(shapes: tuple, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> tuple[int, ...]:
    (shape,) = shapes
    oh, ow = blocks(shape[2:], kernel, dilation, padding, stride)
    return (shape[0], shape[1] * kernel[0] * kernel[1], oh * ow)


def _fold_shape(shapes: tuple, output_size: Pair, kernel: Pair, *spatial: Pair) -> tuple[int, ...]:
    (shape,) = shapes
    return (shape[0], shape[1] // (kernel[0] * kernel[1])) + tuple(output_size)


unfold = defprim("unfold", _unfold, kind="linear", symbol="im2col", numpy_fwd=_unfold_numpy, shape=_unfold_shape)
fold = defprim("fold", _fold, kind="linear", symbol="col2im", shape=_fold_shape)


def _unfold_dx(xp: Any, g: Any, out: Any, x: Any, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Any:
    size = tuple(xp.shape(x)[2:])
    return xp.apply(fold, g, size, kernel, dilation, padding, stride)


def _fold_dx(
    xp: Any, g: Any, out: Any, cols: Any, output_size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair
) -> Any:
    return xp.apply(unfold, g, kernel, dilation, padding, stride)


defvjp(unfold, _unfold_dx)
defvjp(fold, _fold_dx)
defbatch(unfold, folded_batch(unfold))  # the vmap batch joins the images' own batch axis
defbatch(fold, folded_batch(fold))


# --- erf, for the exact GELU ---------------------------------------------------------------
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf = defprim("erf", "erf", scalar_fwd=math.erf, kind="elementwise")
defvjp(erf, lambda xp, g, out, x: g * (_TWO_OVER_SQRT_PI * xp.exp(-(x * x))))

__all__ = ["blocks", "erf", "fold", "unfold"]
