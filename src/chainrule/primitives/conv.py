"""Fused convolution primitives: ``conv2d``, and the two products its gradients need.

A 2-D convolution (cross-correlation, groups 1) of ``x`` ``(N, C, H, W)`` with ``w``
``(O, C, kh, kw)`` is the bilinear form ``B(x, w, g) = <conv2d(x, w), g>``.  Its two
partial derivatives are primitives of their own, so the three close under differentiation:

* ``conv2d(x, w)``: im2col of ``x`` then one product with ``w`` viewed as ``(O, C·kh·kw)``;
* ``conv2d_input(g, w)`` = ∂B/∂x: the transposed convolution (``torch.nn.grad.conv2d_input``,
  ``conv_transpose2d``): ``wᵀ @ g`` summed back into the image (col2im);
* ``conv2d_weight(x, g)`` = ∂B/∂w (``torch.nn.grad.conv2d_weight``): ``g @ im2col(x)ᵀ``
  summed over the batch.

Each VJP rule is one of the three (so gradients of any order stay in the family), written
on the namespace ``xp``.  On NumPy the forwards read the blocks through one strided view
(``as_strided``), copy them once, and run one batched GEMM in the layout the result needs
(``(N, O, L)`` is already NCHW, no transpose); col2im adds each kernel offset's slab with one
strided in-place ``+=`` (``kh·kw`` NumPy operations, no scatter with indices).  Elsewhere
(other array libraries, symbols) the forwards are written with the namespace's operations.

The spatial parameters reach the forward normalized to pairs ``(along H, along W)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..primitive import defbatch, defprim, defvjp
from .batching import conv_rule
from .nn import Pair, _fold, _unfold, _unfold_numpy, blocks, fold, unfold


# --- forwards on any namespace ----------------------------------------------------------------
def _conv(xp: Any, x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    n, c, h, wd = xp.shape(x)
    o, _, kh, kw = xp.shape(w)
    oh, ow = blocks((h, wd), (kh, kw), dilation, padding, stride)
    cols = _unfold(xp, x, (kh, kw), dilation, padding, stride)  # (N, C·kh·kw, L)
    y = xp.matmul(xp.reshape(w, (o, c * kh * kw)), cols)  # (N, O, L)
    return xp.reshape(y, (n, o, oh, ow))


def _conv_input(xp: Any, g: Any, w: Any, size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    n, o, oh, ow = xp.shape(g)
    _, c, kh, kw = xp.shape(w)
    wt = xp.swapaxes(xp.reshape(w, (o, c * kh * kw)), -1, -2)  # (C·kh·kw, O)
    cols = xp.matmul(wt, xp.reshape(g, (n, o, oh * ow)))  # (N, C·kh·kw, L)
    return _fold(xp, cols, size, (kh, kw), dilation, padding, stride)


def _conv_weight(xp: Any, x: Any, g: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    n, c = xp.shape(x)[:2]
    _, o, oh, ow = xp.shape(g)
    cols = _unfold(xp, x, kernel, dilation, padding, stride)  # (N, C·kh·kw, L)
    per = xp.matmul(xp.reshape(g, (n, o, oh * ow)), xp.swapaxes(cols, -1, -2))  # (N, O, C·kh·kw)
    return xp.reshape(xp.sum(per, 0), (o, c, kernel[0], kernel[1]))


# --- the same on NumPy: one strided copy, one batched GEMM ---------------------------------------
def _conv_numpy(x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    x, w = np.asarray(x), np.asarray(w)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = blocks((h, wd), (kh, kw), dilation, padding, stride)
    if _per_image(x, w, c * kh * kw * oh * ow):
        out = np.empty((n, o, oh * ow), x.dtype)
        w2 = w.reshape(o, c * kh * kw)
        for b, cols in _image_columns(x, (kh, kw), stride, padding, dilation):
            np.matmul(w2, cols, out=out[b])
        return out.reshape(n, o, oh, ow)
    cols = _unfold_numpy(x, (kh, kw), dilation, padding, stride)
    return np.matmul(w.reshape(o, c * kh * kw), cols).reshape(n, o, oh, ow)


# Above this many im2col entries per image, the NumPy forms below run image by image through one reused
# buffer (about 0.5 MB for a 16-channel 28 x 28 image) that stays in cache, instead of copying every image's
# columns into one array the size of the whole batch's (14 MB for issue 27's second conv) and reading it back:
# each image's GEMM is the same BLAS call the stacked matmul makes, so the values are the same bits.
PER_IMAGE = 32768


def _per_image(a: np.ndarray, b: np.ndarray, entries: int) -> bool:
    return a.shape[0] > 1 and entries >= PER_IMAGE and a.dtype == b.dtype and a.dtype.kind == "f"


def _image_columns(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """``(b, cols)`` for each image ``b`` of ``x``: its im2col matrix ``(C·kh·kw, L)``, in one reused buffer."""
    n, c, h, wd = x.shape
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = blocks((h, wd), kernel, dilation, padding, stride)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    s0, s1, s2, s3 = x.strides
    view = as_strided(x, (n, c, kh, kw, oh, ow), (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw), writeable=False)
    buf = np.empty((c, kh, kw, oh, ow), x.dtype)
    cols = buf.reshape(c * kh * kw, oh * ow)
    for b in range(n):
        np.copyto(buf, view[b])
        yield b, cols


def _conv_input_numpy(g: Any, w: Any, size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    g, w = np.asarray(g), np.asarray(w)
    n, o, oh, ow = g.shape
    _, c, kh, kw = w.shape
    (dh, dw), (ph, pw), (sh, sw) = dilation, padding, stride
    h, wd = size
    if stride == (1, 1) and oh == h + 2 * ph - dh * (kh - 1):
        return _conv_input_rows(g, w, size, padding, dilation)
    cols = np.matmul(w.reshape(o, c * kh * kw).T, g.reshape(n, o, oh * ow))  # (N, C·kh·kw, L)
    grid = cols.reshape(n, c, kh, kw, oh, ow)
    out = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), np.result_type(g, w))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            out[:, :, rows, columns] += grid[:, :, i, j]
    if ph or pw:
        out = np.ascontiguousarray(out[:, :, ph : ph + h, pw : pw + wd])
    return out


def _conv_input_rows(g: np.ndarray, w: np.ndarray, size: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    """Stride 1: col2im as ``kh·kw`` contiguous shifted adds over whole flattened planes.

    The gradient is laid out on rows as wide as the padded image (the extra ``dw·(kw-1)``
    columns hold zeros), so the kernel offset ``(i, j)`` is the flat shift ``i·dh·Wp + j·dw``
    of the padded plane: each add runs over ``oh·Wp`` contiguous values instead of ``oh`` short
    rows.  The zero columns land only on places that are zero anyway or cut away.
    """
    n, o, oh, ow = g.shape
    _, c, kh, kw = w.shape
    (dh, dw), (ph, pw) = dilation, padding
    h, wd = size
    hp, wp = h + 2 * ph, wd + 2 * pw
    dtype = np.result_type(g, w)
    wide = np.zeros((n, o, oh, wp), dtype)
    wide[..., :ow] = g
    flat = np.zeros((n, c, hp * wp + dw * (kw - 1)), dtype)
    wt = w.reshape(o, c * kh * kw).T
    if _per_image(g, w, c * kh * kw * oh * wp):  # one image's columns at a time, in a reused buffer
        buf = np.empty((c * kh * kw, oh * wp), dtype)
        grid = buf.reshape(c, kh * kw, oh * wp)
        for b in range(n):
            np.matmul(wt, wide[b].reshape(o, oh * wp), out=buf)
            plane = flat[b]
            for i in range(kh):
                for j in range(kw):
                    start = i * dh * wp + j * dw
                    plane[:, start : start + oh * wp] += grid[:, i * kw + j]
    else:
        cols = np.matmul(wt, wide.reshape(n, o, oh * wp))  # (N, C·kh·kw, oh·Wp)
        grid = cols.reshape(n, c, kh * kw, oh * wp)
        for i in range(kh):
            for j in range(kw):
                start = i * dh * wp + j * dw
                flat[:, :, start : start + oh * wp] += grid[:, :, i * kw + j]
    plane = flat[:, :, : hp * wp].reshape(n, c, hp, wp)
    if ph or pw:
        return np.ascontiguousarray(plane[:, :, ph : ph + h, pw : pw + wd])
    return plane


def _conv_weight_numpy(x: Any, g: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    x, g = np.asarray(x), np.asarray(g)
    n, c = x.shape[:2]
    _, o, oh, ow = g.shape
    if _per_image(x, g, c * kernel[0] * kernel[1] * oh * ow):
        g3 = g.reshape(n, o, oh * ow)
        total = np.zeros((o, c * kernel[0] * kernel[1]), x.dtype)
        part = np.empty_like(total)
        for b, cols in _image_columns(x, kernel, stride, padding, dilation):
            np.matmul(g3[b], cols.T, out=part)
            total += part  # image by image, in order: the sum over axis 0 below adds in this order too
        return total.reshape(o, c, kernel[0], kernel[1])
    cols = _unfold_numpy(x, kernel, dilation, padding, stride)  # (N, C·kh·kw, L)
    per = np.matmul(g.reshape(n, o, oh * ow), cols.transpose(0, 2, 1))  # (N, O, C·kh·kw): small
    return per.sum(axis=0).reshape(o, c, kernel[0], kernel[1])


# --- shapes (the symbolic namespace asks them) ------------------------------------------------------
def _conv_shape(shapes: tuple, stride: Pair, padding: Pair, dilation: Pair) -> tuple[int, ...]:
    xs, ws = shapes
    oh, ow = blocks(xs[2:], ws[2:], dilation, padding, stride)
    return (xs[0], ws[0], oh, ow)


def _conv_input_shape(shapes: tuple, size: Pair, *spatial: Pair) -> tuple[int, ...]:
    gs, ws = shapes
    return (gs[0], ws[1]) + tuple(size)


def _conv_weight_shape(shapes: tuple, kernel: Pair, *spatial: Pair) -> tuple[int, ...]:
    xs, gs = shapes
    return (gs[1], xs[1]) + tuple(kernel)


conv2d = defprim("conv2d", _conv, nin=2, kind="bilinear", symbol="conv2d", numpy_fwd=_conv_numpy, shape=_conv_shape)
conv2d_input = defprim(
    "conv2d_input",
    _conv_input,
    nin=2,
    kind="bilinear",
    symbol="conv2d_input",
    numpy_fwd=_conv_input_numpy,
    shape=_conv_input_shape,
)
conv2d_weight = defprim(
    "conv2d_weight",
    _conv_weight,
    nin=2,
    kind="bilinear",
    symbol="conv2d_weight",
    numpy_fwd=_conv_weight_numpy,
    shape=_conv_weight_shape,
)


def _size(xp: Any, x: Any) -> Pair:
    return tuple(xp.shape(x)[2:])  # type: ignore[return-value]


def _kernel(xp: Any, w: Any) -> Pair:
    return tuple(xp.shape(w)[2:])  # type: ignore[return-value]


# conv2d(x, w): B(x, w, g)
defvjp(
    conv2d,
    lambda xp, g, out, x, w, s, p, d: xp.apply(conv2d_input, g, w, _size(xp, x), s, p, d),
    lambda xp, g, out, x, w, s, p, d: xp.apply(conv2d_weight, x, g, _kernel(xp, w), s, p, d),
)
# conv2d_input(g, w) = ∂B/∂x: <h, conv2d_input(g, w)> = B(h, w, g)
defvjp(
    conv2d_input,
    lambda xp, h, out, g, w, size, s, p, d: xp.apply(conv2d, h, w, s, p, d),
    lambda xp, h, out, g, w, size, s, p, d: xp.apply(conv2d_weight, h, g, _kernel(xp, w), s, p, d),
)
# conv2d_weight(x, g) = ∂B/∂w: <h, conv2d_weight(x, g)> = B(x, h, g)
defvjp(
    conv2d_weight,
    lambda xp, h, out, x, g, kernel, s, p, d: xp.apply(conv2d_input, g, h, _size(xp, x), s, p, d),
    lambda xp, h, out, x, g, kernel, s, p, d: xp.apply(conv2d, x, h, s, p, d),
)

__all__ = ["conv2d", "conv2d_input", "conv2d_weight"]

# vmap: the batch joins the images' batch axis where the weight is shared; else im2col's matrix products
defbatch(conv2d, conv_rule(conv2d, unfold, fold, "forward"))
defbatch(conv2d_input, conv_rule(conv2d_input, unfold, fold, "input"))
defbatch(conv2d_weight, conv_rule(conv2d_weight, unfold, fold, "weight"))
