"""More of ``torch.nn.functional``, composed from chainrule's operations: ``conv1d``, ``adaptive_avg_pool1d/2d``,
``avg_pool1d``, ``max_pool1d``, ``group_norm``, ``prelu``, ``selu``, ``celu``, ``interpolate`` (nearest)."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

from ... import ops
from ...nn import functional as _F
from ...ops.base import _t
from ...tensor import Tensor


def _single(v: Any, name: str) -> int:
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{name}: expected one value, got {tuple(v)}")
        v = v[0]
    return int(v)


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Union[Any, str] = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:  # noqa: A002
    """1-D cross-correlation over ``(N, C, L)`` (or ``(C, L)``), as a 2-D one of height 1."""
    x, w = _t(input), _t(weight)
    batched = x.ndim == 3
    if x.ndim not in (2, 3) or w.ndim != 3:
        raise ValueError(
            f"conv1d: expected input (N, C, L) or (C, L) and weight (O, C/groups, K), got {x.shape} and {w.shape}"
        )
    pad = padding if isinstance(padding, str) else (0, _single(padding, "conv1d padding"))
    y = _F.conv2d(
        x.unsqueeze(-2),
        w.unsqueeze(-2),
        bias,
        (1, _single(stride, "conv1d stride")),
        pad,
        (1, _single(dilation, "conv1d dilation")),
        groups,
    )
    return y.squeeze(-2) if batched else y.squeeze(-2)


def _adaptive_bounds(n: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * n / out), math.ceil((i + 1) * n / out)) for i in range(out)]


def _adaptive_avg(x: Tensor, sizes: tuple, op: str) -> Tensor:
    k = len(sizes)
    spatial = x.shape[-k:]
    sizes = tuple(s if s is not None else n for s, n in zip(sizes, spatial))
    if all(n % s == 0 for n, s in zip(spatial, sizes)):  # equal windows: one reshape and one mean
        shape = x.shape[:-k]
        for n, s in zip(spatial, sizes):
            shape += (s, n // s)
        return x.reshape(shape).mean(dim=tuple(x.ndim - k + 2 * i + 1 for i in range(k)))
    if k == 1:
        return ops.stack([x[..., a:b].mean(dim=-1) for a, b in _adaptive_bounds(spatial[0], sizes[0])], -1)
    rows = []
    for a, b in _adaptive_bounds(spatial[0], sizes[0]):
        rows.append(
            ops.stack([x[..., a:b, c:d].mean(dim=(-2, -1)) for c, d in _adaptive_bounds(spatial[1], sizes[1])], -1)
        )
    return ops.stack(rows, -2)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:  # noqa: A002
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    return _adaptive_avg(_t(input), sizes, "adaptive_avg_pool2d")


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:  # noqa: A002
    return _adaptive_avg(_t(input), (_single(output_size, "adaptive_avg_pool1d"),), "adaptive_avg_pool1d")


def avg_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:  # noqa: A002
    k = _single(kernel_size, "avg_pool1d")
    s = k if stride is None else _single(stride, "avg_pool1d")
    y = _F.avg_pool2d(
        _t(input).unsqueeze(-2), (1, k), (1, s), (0, _single(padding, "avg_pool1d")), ceil_mode, count_include_pad
    )
    return y.squeeze(-2)


def max_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor:  # noqa: A002
    if return_indices:
        raise NotImplementedError("max_pool1d(return_indices=True) is not supported in chainrule.torch")
    k = _single(kernel_size, "max_pool1d")
    s = k if stride is None else _single(stride, "max_pool1d")
    y = _F.max_pool2d(
        _t(input).unsqueeze(-2),
        (1, k),
        (1, s),
        (0, _single(padding, "max_pool1d")),
        (1, _single(dilation, "max_pool1d")),
        ceil_mode,
    )
    return y.squeeze(-2)


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:  # noqa: A002
    x = _t(input)
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: {c} channels do not divide into {num_groups} groups")
    g = x.reshape(n, num_groups, -1)
    mean = g.mean(dim=-1, keepdim=True)
    var = ((g - mean) ** 2).mean(dim=-1, keepdim=True)
    y = ((g - mean) * ops.rsqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * _t(weight).reshape(shape)
    if bias is not None:
        y = y + _t(bias).reshape(shape)
    return y


def prelu(input: Any, weight: Any) -> Tensor:  # noqa: A002
    x, w = _t(input), _t(weight)
    if w.numel() > 1:
        w = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if x.ndim >= 2 else w
    return ops.where(x.data > 0, x, w * x)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    return _F.elu(_t(input), _SELU_ALPHA) * _SELU_SCALE


def celu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    x = _t(input)
    return ops.where(x.data > 0, x, (ops.exp(ops.where(x.data > 0, 0.0, x) / alpha) - 1.0) * alpha)


def interpolate(
    input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest", align_corners: Optional[bool] = None,  # noqa: A002
    recompute_scale_factor: Optional[bool] = None, antialias: bool = False,
) -> Tensor:  # fmt: skip
    """``mode='nearest'`` (torch's default): source index ``floor(i * in / out)`` per spatial dim."""
    if mode != "nearest":
        raise NotImplementedError(f"interpolate: mode={mode!r} is not supported in chainrule.torch; use mode='nearest'")
    x = _t(input)
    k = x.ndim - 2
    if k < 1:
        raise ValueError(f"interpolate: expected a batched input (N, C, ...), got shape {x.shape}")
    spatial = x.shape[2:]
    if size is not None:
        out = (size,) * k if isinstance(size, int) else tuple(size)
        scales = [n / o for n, o in zip(spatial, out)]
    else:
        sf = (scale_factor,) * k if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        out = tuple(int(math.floor(n * f)) for n, f in zip(spatial, sf))
        scales = [1.0 / f if not recompute_scale_factor else n / o for n, f, o in zip(spatial, sf, out)]
    y = x
    for d, (n, o, s) in enumerate(zip(spatial, out, scales)):
        idx = np.minimum(np.floor(np.arange(o) * np.float32(s)).astype(np.int64), n - 1)
        y = y[(slice(None),) * (2 + d) + (idx,)]
    return y


def _pair2(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def conv_transpose2d(
    input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, output_padding: Any = 0,  # noqa: A002
    groups: int = 1, dilation: Any = 1,
) -> Tensor:  # fmt: skip
    """The adjoint of conv2d: each input pixel spreads ``weight`` (``(C_in, C_out/groups, kh, kw)``) onto the
    output, summed by ``fold`` (col2im).  Output size ``(H-1)·s - 2p + d·(k-1) + output_padding + 1``."""
    x, w = _t(input), _t(weight)
    single = x.ndim == 3
    if single:
        x = x.unsqueeze(0)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(
            "conv_transpose2d: expected input (N, C, H, W) and weight (C_in, C_out/groups, kh, kw), "
            f"got {x.shape} and {w.shape}"
        )
    n, cin, h, wd = x.shape
    if w.shape[0] != cin or cin % groups:
        raise ValueError(f"conv_transpose2d: weight {w.shape} does not fit {cin} input channels and {groups} groups")
    s, p, op, d = _pair2(stride), _pair2(padding), _pair2(output_padding), _pair2(dilation)
    kh, kw = w.shape[2], w.shape[3]
    out_h = (h - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
    out_w = (wd - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
    cpg, opg = cin // groups, w.shape[1]
    outs = []
    for g in range(groups):
        xg = x[:, g * cpg : (g + 1) * cpg].reshape(n, cpg, h * wd)
        wg = w[g * cpg : (g + 1) * cpg].reshape(cpg, opg * kh * kw)
        cols = ops.matmul(wg.T, xg)  # (N, C_out/g · kh · kw, H·W)
        outs.append(_F.fold(cols, (out_h, out_w), (kh, kw), d, p, s))
    y = outs[0] if groups == 1 else ops.cat(outs, dim=1)
    if bias is not None:
        y = y + _t(bias).reshape(1, -1, 1, 1)
    return y.squeeze(0) if single else y
