"""``torch.nn.functional``: chainrule's functions, plus torch's broadcasting (with its warning) in the
regression losses and a few compositions (``normalize``, ``cosine_similarity``, ``pad``, ``mish`` ...)."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from ... import ops
from ...nn import functional as _F
from ...nn import losses as _losses
from ...ops.base import _t
from ...tensor import Tensor
from ...torch_names import module_getattr
from ._dropout import dropout  # noqa: F401  (torch's masks)

for _name in (
    "avg_pool2d batch_norm binary_cross_entropy_with_logits conv2d cross_entropy elu embedding erf "
    "flatten fold gelu hardtanh layer_norm leaky_relu linear log_softmax max_pool2d nll_loss one_hot relu relu6 "
    "sigmoid silu softmax softplus tanh unfold"
).split():
    globals()[_name] = getattr(_F, _name)


def _broadcast_pair(input: Any, target: Any, op: str) -> tuple[Tensor, Any]:  # noqa: A002
    x = _t(input)
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target, x.dtype))
    if t.shape != x.shape:
        warnings.warn(
            f"{op}: Using a target size ({t.shape}) that is different to the input size ({x.shape}). This will "
            "likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=3,
        )
        x, t = ops.broadcast_to(x, np.broadcast_shapes(x.shape, t.shape)), t
    return x, t


def _reduce(v: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    if reduction == "none":
        return v
    raise ValueError(f"{op}: {reduction} is not a valid value for reduction (use 'mean', 'sum' or 'none')")


def mse_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> Tensor:  # noqa: A002
    """As torch: shapes that differ broadcast, with torch's warning."""
    _losses._no_legacy(size_average, reduce, "mse_loss")
    x, t = _broadcast_pair(input, target, "mse_loss")
    d = x - t
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> Tensor:  # noqa: A002
    _losses._no_legacy(size_average, reduce, "l1_loss")
    x, t = _broadcast_pair(input, target, "l1_loss")
    return _reduce(ops.abs(x - t), reduction, "l1_loss")


def smooth_l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", beta: float = 1.0
) -> Tensor:  # noqa: A002
    _losses._no_legacy(size_average, reduce, "smooth_l1_loss")
    x, t = _broadcast_pair(input, target, "smooth_l1_loss")
    d = ops.abs(x - t)
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = ops.where(d._data < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0, weight: Any = None) -> Tensor:  # noqa: A002
    x, t = _broadcast_pair(input, target, "huber_loss")
    d = ops.abs(x - t)
    loss = ops.where(d._data < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


def binary_cross_entropy(
    input: Any, target: Any, weight: Any = None, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
) -> Tensor:  # noqa: A002
    """-(t log p + (1 - t) log(1 - p)), each log clamped at -100 as torch does."""
    _losses._no_legacy(size_average, reduce, "binary_cross_entropy")
    p = _t(input)
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target, p.dtype))
    if t.shape != p.shape:
        raise ValueError(
            f"binary_cross_entropy: Using a target size ({t.shape}) that is different to the input size ({p.shape}) "
            "is deprecated. Please ensure they have the same size."
        )
    loss = -(t * ops.clamp_min(ops.log(p), -100.0) + (1 - t) * ops.clamp_min(ops.log(1 - p), -100.0))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def kl_div(
    input: Any,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:  # noqa: A002
    x, t = _t(input), _t(target)
    if log_target:
        loss = ops.exp(t) * (t - x)
    else:
        tv = np.asarray(t._data)
        safe = ops.where(tv > 0, t, np.ones((), tv.dtype))
        loss = ops.where(tv > 0, t * (ops.log(safe) - x), np.zeros((), tv.dtype) * x)
    if reduction == "batchmean":
        return loss.sum() / x.shape[0]
    return _reduce(loss, reduction, "kl_div")


def normalize(input: Any, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None) -> Tensor:  # noqa: A002
    """``x / max(‖x‖_p, eps)`` along ``dim``."""
    x = _t(input)
    if p == 2:
        n = ops.sqrt(ops.sum(x * x, dim=dim, keepdim=True))
    elif p == 1:
        n = ops.sum(ops.abs(x), dim=dim, keepdim=True)
    else:
        n = ops.sum(ops.abs(x) ** p, dim=dim, keepdim=True) ** (1.0 / p)
    return x / ops.clamp_min(n, eps)


def cosine_similarity(x1: Any, x2: Any, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Σ x1·x2 / max(‖x1‖·‖x2‖, eps) ... computed as torch 2 does: each side scaled by max(‖·‖, eps) first."""
    a, b = _t(x1), _t(x2)
    na = ops.sqrt(ops.sum(a * a, dim=dim, keepdim=True))
    nb = ops.sqrt(ops.sum(b * b, dim=dim, keepdim=True))
    return ops.sum((a / ops.clamp_min(na, eps)) * (b / ops.clamp_min(nb, eps)), dim=dim)


def pairwise_distance(x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    d = _t(x1) - _t(x2) + eps
    if p == 2:
        return ops.sqrt(ops.sum(d * d, dim=-1, keepdim=keepdim))
    return ops.sum(ops.abs(d) ** p, dim=-1, keepdim=keepdim) ** (1.0 / p)


def pad(input: Any, pad: Any, mode: str = "constant", value: Optional[float] = None) -> Tensor:  # noqa: A002
    """Constant padding (``pad`` lists (left, right) pairs from the last dim backwards), as ``F.pad``."""
    x = _t(input)
    if mode != "constant":
        raise NotImplementedError(f"F.pad: mode={mode!r} is not supported in chainrule.torch; use mode='constant'")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"F.pad: pad must hold (left, right) pairs for at most {x.ndim} dims, got {tuple(pad)}")
    fill = 0.0 if value is None else value
    for i in range(len(pad) // 2):
        axis = x.ndim - 1 - i
        lo, hi = int(pad[2 * i]), int(pad[2 * i + 1])
        if lo < 0:
            x = x[(slice(None),) * axis + (slice(-lo, None),)]
            lo = 0
        if hi < 0:
            x = x[(slice(None),) * axis + (slice(None, x.shape[axis] + hi),)]
            hi = 0
        parts = []
        if lo:
            parts.append(Tensor(np.full(x.shape[:axis] + (lo,) + x.shape[axis + 1 :], fill, x.dtype)))
        parts.append(x)
        if hi:
            parts.append(Tensor(np.full(x.shape[:axis] + (hi,) + x.shape[axis + 1 :], fill, x.dtype)))
        if len(parts) > 1:
            x = ops.cat(parts, dim=axis)
    return x


def logsigmoid(input: Any) -> Tensor:  # noqa: A002
    return -_F.softplus(-_t(input))


def softsign(input: Any) -> Tensor:  # noqa: A002
    x = _t(input)
    return x / (1 + ops.abs(x))


def tanhshrink(input: Any) -> Tensor:  # noqa: A002
    x = _t(input)
    return x - ops.tanh(x)


def mish(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    x = _t(input)
    return x * ops.tanh(_F.softplus(x))


def hardsigmoid(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    return _F.relu6(_t(input) + 3) / 6


def hardswish(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    x = _t(input)
    return x * _F.relu6(x + 3) / 6


def glu(input: Any, dim: int = -1) -> Tensor:  # noqa: A002
    a, b = ops.chunk(_t(input), 2, dim=dim)
    return a * ops.sigmoid(b)


def softmin(input: Any, dim: Optional[int] = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:  # noqa: A002
    return _F.softmax(-_t(input), dim=dim, dtype=dtype)


def scaled_dot_product_attention(
    query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0, is_causal: bool = False,
    scale: Optional[float] = None, enable_gqa: bool = False,
) -> Tensor:  # fmt: skip
    """softmax(q kᵀ · scale + mask) v, with ``is_causal`` masking the future (no dropout: dropout_p must be 0)."""
    if dropout_p:
        raise NotImplementedError(
            "scaled_dot_product_attention: dropout_p > 0 is not supported; apply F.dropout to the weights"
        )
    q, k, v = _t(query), _t(key), _t(value)
    s = (1.0 / np.sqrt(q.shape[-1])) if scale is None else scale
    scores = ops.matmul(q, k.transpose(-2, -1)) * s
    lq, lk = q.shape[-2], k.shape[-2]
    if is_causal:
        keep = np.tril(np.ones((lq, lk), bool))
        scores = ops.where(keep, scores, np.array(-np.inf, scores.dtype))
    if attn_mask is not None:
        m = np.asarray(attn_mask._data if isinstance(attn_mask, Tensor) else attn_mask)
        if m.dtype == np.bool_:
            scores = ops.where(m, scores, np.array(-np.inf, scores.dtype))
        else:
            scores = scores + attn_mask
    return ops.matmul(_F.softmax(scores, dim=-1), v)


from ._functional_more import (  # noqa: E402, F401
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    celu,
    conv1d,
    conv_transpose2d,
    group_norm,
    interpolate,
    max_pool1d,
    prelu,
    selu,
)

__getattr__ = module_getattr("torch.nn.functional")
