"""``chainrule.nn.functional``: the stateless forms of the layers, with ``torch.nn.functional``'s names.

``import chainrule.nn.functional as F`` then ``F.relu(x)``, ``F.conv2d(x, w, b, padding=1)``,
``F.cross_entropy(logits, y)``.  Everything here is composed from registered
primitives, so gradients (of any order) come from their rules; convolution is
``unfold`` (im2col) followed by one matrix product, and max pooling picks the
first maximum of each window, as torch does.

Arguments a torch user would pass are accepted; the few that chainrule cannot
honour (``ceil_mode=True``, ``max_norm=`` for embeddings, ...) raise an error
that says so rather than being ignored.  ``inplace=True`` writes the result into
the input's own memory and returns the input, as torch does (recorded as an
in-place operation, so gradients flow through it; a leaf that requires grad
refuses, as in torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from .. import ops
from ..backend import to_numpy
from ..grad_mode import MODE, is_grad_enabled
from ..inplace import history_copy
from ..inplace import inplace as _write_in_place
from ..primitives import conv as PC
from ..primitives import nn as P
from ..primitives import pool as PP
from ..primitives import reduction as R
from ..tensor import Tensor, _off_graph, apply
from ..versions import mark_modified
from . import init
from .losses import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge_loss,
    l1_loss,
    mse_loss,
    nll_loss,
)

IntPair = Union[int, Sequence[int]]


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _pair(value: IntPair, name: str, op: str, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be at least {minimum}, got {value!r}")
    return pair


# --- activations -------------------------------------------------------------------------------------
def _maybe_in_place(x: Tensor, name: str, inplace: bool, compute: Any) -> Tensor:
    """``compute(x)``, or with ``inplace=True`` its result written into ``x`` (torch's ``inplace=True``).

    In a graph the result is computed from a copy of ``x`` that carries ``x``'s record, so no node of the
    computation reads the tensor being overwritten (torch rebases ``x``'s history the same way)."""
    if not inplace:
        return compute(x)
    src = history_copy(x) if x._node is not None and is_grad_enabled() else x
    return _write_in_place(x, f"{name}(inplace=True)", lambda: compute(src))


def relu(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    x = _t(input)
    return _maybe_in_place(x, "relu", inplace, ops.relu)


def relu6(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` limited to ``[min_val, max_val]``; unlike ``clamp``, the gradient is 0 *at* the limits too (as torch)."""

    def compute(x: Tensor) -> Tensor:
        inside = (x.data > min_val) & (x.data < max_val)
        return ops.where(inside, x, np.clip(x.data, min_val, max_val))

    return _maybe_in_place(_t(input), "hardtanh", inplace, compute)


def sigmoid(input: Any) -> Tensor:  # noqa: A002
    return ops.sigmoid(input)


def tanh(input: Any) -> Tensor:  # noqa: A002
    return ops.tanh(input)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where ``x > 0``, else ``negative_slope * x`` (the slope at exactly 0 is ``negative_slope``, as torch)."""
    return _maybe_in_place(_t(input), "leaky_relu", inplace, lambda x: ops.where(x.data > 0, x, x * negative_slope))


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``; exp sees ``min(x, 0)``, so it never overflows."""

    def compute(x: Tensor) -> Tensor:
        positive = x.data > 0
        negative = ops.where(positive, 0.0, x)  # not minimum(x, 0): at 0 the slope is alpha, as torch (no tie split)
        return ops.where(positive, x, (ops.exp(negative) - 1.0) * alpha)

    return _maybe_in_place(_t(input), "elu", inplace, compute)


def erf(input: Any) -> Tensor:  # noqa: A002
    """The error function ``2/√π ∫₀ˣ exp(-t²) dt`` (``torch.erf``)."""
    return apply(P.erf, _t(input))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(input: Any, approximate: str = "none") -> Tensor:  # noqa: A002
    """``x · Φ(x)`` with the exact normal CDF (``approximate="none"``) or torch's tanh approximation."""
    x = _t(input)
    if approximate == "none":
        return x * (erf(x * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5
    if approximate == "tanh":
        return x * (ops.tanh((x + x * x * x * 0.044715) * _SQRT_2_OVER_PI) + 1.0) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    return _maybe_in_place(_t(input), "silu", inplace, lambda x: x * ops.sigmoid(x))


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """``log(1 + exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold`` (as torch)."""
    x = _t(input)
    bx = x * beta
    smooth = ops.logsumexp(ops.stack([np.zeros(x.shape, x.dtype), bx]), axis=0) * (1.0 / beta)
    return ops.where(bx.data > threshold, x, smooth)


def _softmax_dim(x: Tensor, dim: Optional[int], op: str) -> int:
    if dim is not None:
        return int(dim)
    legacy = 0 if x.ndim in (0, 1, 3) else 1
    warnings.warn(
        f"{op}: implicit dimension choice is deprecated (as in torch), using dim={legacy}; pass dim= explicitly",
        UserWarning,
        stacklevel=3,
    )
    return legacy


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if dtype is None else ops.astype(x, np.dtype(dtype))


def softmax(input: Any, dim: Optional[int] = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:  # noqa: A002
    """Softmax along ``dim``; with no ``dim``, torch's legacy choice (0 for 0-, 1-, 3-D input, else 1), warning."""
    x = _cast(_t(input), dtype)
    return ops.softmax(x, _softmax_dim(x, dim, "softmax"))


def log_softmax(input: Any, dim: Optional[int] = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:  # noqa: A002
    x = _cast(_t(input), dtype)
    return ops.log_softmax(x, _softmax_dim(x, dim, "log_softmax"))


# --- linear layers, dropout, normalization ------------------------------------------------------------
def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:  # noqa: A002
    """``input @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``."""
    x, w = _t(input), _t(weight)
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} and weight of shape {w.shape} do not fit: the weight must be "
            f"(out_features, {x.shape[-1] if x.ndim else '?'})"
        )
    y = ops.matmul(x, w.T)
    return y if bias is None else y + bias


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False, *, rng: Any = None) -> Tensor:  # noqa: A002
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``; the identity unless ``training``.

    The mask comes from ``rng`` (a Generator or seed), by default the generator
    ``cr.manual_seed`` resets.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}")
    x = _t(input)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return _maybe_in_place(x, "dropout", inplace, lambda x: x * np.zeros(x.shape, x.dtype))
    keep = init.get_rng(rng).random(x.shape) >= p
    scale = keep.astype(x.dtype) / np.asarray(1.0 - p, x.dtype)
    return _maybe_in_place(x, "dropout", inplace, lambda x: x * scale)


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm(
    input: Any,  # noqa: A002
    running_mean: Optional[Tensor],
    running_var: Optional[Tensor],
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    _update: Optional[Any] = None,
) -> Tensor:
    """Normalize each channel (axis 1) of ``(N, C, ...)`` input, then scale by ``weight`` and shift by ``bias``.

    In training mode the batch's mean and biased variance normalize, and the
    running statistics (if given) move towards the batch's mean and *unbiased*
    variance by ``momentum``, in place, as torch does.  Otherwise the running
    statistics normalize.  The update is one recorded step (:func:`_record_update`), so
    ``cr.compile`` replays it with each call's batch statistics.  (``_update``: the
    BatchNorm layers' own update ``fn(mean, var, count)`` on the raw arrays, and the buffers it writes.)
    """
    x = _t(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must have shape (N, C, ...), got {x.shape}")
    c = x.shape[1]
    for name, s in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if s is not None and tuple(np.shape(s.data if isinstance(s, Tensor) else s)) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for input {x.shape}, got {np.shape(s)}")
    shape = _channel_shape(x)
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        count = x.size // c
        if count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input of shape {x.shape}"
            )
        mean = ops.mean(x, axes, keepdims=True)
        centered = x - mean
        var = ops.mean(centered * centered, axes, keepdims=True)
        # (written as the textbook's x̂ = (x − μ)/σ, then γ x̂ + β: the graph cr.derive explains, closed form included;
        # folding γ into one per-channel factor saved about a quarter of BatchNorm2d's time, see docs/bench.md)
        y = centered / ops.sqrt(var + eps)
        if _update is not None:
            own, buffers = _update
            _record_update("BatchNorm running statistics", lambda m, v: own(m, v, count), (mean, var), buffers)
        elif running_mean is not None and running_var is not None:
            rm, rv = running_mean, running_var

            def update(m: Any, v: Any) -> None:
                _update_running(rm, to_numpy(m).reshape(c), momentum)
                _update_running(rv, to_numpy(v).reshape(c) * (count / (count - 1)), momentum)

            _record_update("batch_norm running statistics", update, (mean, var), (rm, rv))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode (training=False) needs running_mean and running_var")
        from ..grad_mode import MODE

        stats = [_t(running_mean), _t(running_var)]
        if MODE.observer is not None and all(type(s._data) is np.ndarray for s in stats):
            # cr.compile traces: the statistics enter the graph (the tracer lends them requires_grad), so every
            # replay reads their current values; the same operations as below, on the same values
            rm_t, rv_t = (ops.reshape(s if s.dtype == x.dtype else ops.astype(s, x.dtype), shape) for s in stats)
            y = (x - rm_t) * (1.0 / ops.sqrt(rv_t + eps))
        else:
            # NumPy constants: on another library's input they join its library (as torch converts them)
            rm = np.asarray(to_numpy(stats[0].data), x.dtype).reshape(shape)
            rv = np.asarray(to_numpy(stats[1].data), x.dtype).reshape(shape)
            y = (x - rm) * (1.0 / np.sqrt(rv + np.asarray(eps, x.dtype)))
    if weight is not None:
        y = y * ops.reshape(_t(weight), shape)
    if bias is not None:
        y = y + ops.reshape(_t(bias), shape)
    return y


def _record_update(label: str, update: Any, stats: tuple, modifies: tuple = ()) -> None:
    """Run ``update(*raw values of stats)``, an in-place update of buffers from values of the graph.

    Under ``cr.compile``'s tracer (``MODE.observer``) the update is recorded as a step the replay
    makes again with that replay's values of ``stats`` (the batch's mean and variance), so
    running statistics follow every replayed call exactly as eager's.
    """
    from ..grad_mode import MODE

    if MODE.observer is not None:
        MODE.observer.update(label, update, stats, modifies)
        return
    update(*(t._data for t in stats))


def _update_running(stat: Tensor, batch: np.ndarray, momentum: float) -> None:
    from ..backend import host_view, is_foreign, move

    data = stat._data
    foreign = is_foreign(data)
    if type(data) is not np.ndarray and not foreign:
        raise TypeError("batch_norm: running statistics must be array tensors of shape (C,)")
    arr = data if not foreign else host_view(data)
    if arr is None:  # a device array: update a host copy, then move it back
        arr = np.array(to_numpy(data))
        arr *= 1.0 - momentum
        arr += momentum * batch.astype(arr.dtype, copy=False)
        stat._data = move(arr, stat.device)
    else:
        arr *= 1.0 - momentum
        arr += momentum * batch.astype(arr.dtype, copy=False)
    mark_modified(stat)


def layer_norm(
    input: Any,  # noqa: A002
    normalized_shape: Sequence[int],
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Tensor:
    x = _t(input)
    shape = tuple(int(s) for s in normalized_shape)
    k = len(shape)
    if x.shape[x.ndim - k :] != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} must end with normalized_shape {shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    centered = x - ops.mean(x, axes, keepdims=True)
    y = centered / ops.sqrt(ops.mean(centered * centered, axes, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# --- embeddings and encodings ----------------------------------------------------------------------------
def _indices(x: Any, op: str) -> np.ndarray:
    idx = np.asarray(x.data if isinstance(x, Tensor) else x)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers, got dtype {idx.dtype}")
    return idx


def embedding(
    input: Any,  # noqa: A002
    weight: Any,
    padding_idx: Optional[int] = None,
    max_norm: Optional[float] = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input``: shape ``input.shape + (embedding_dim,)``.

    The gradient adds into the picked rows (repeats accumulate); the row
    ``padding_idx`` receives no gradient, as in torch.
    """
    if max_norm is not None:
        raise NotImplementedError(
            "embedding: max_norm= (renormalizing rows in place during the forward) is not supported; "
            "clip the weight yourself under cr.no_grad()"
        )
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse gradients are not supported")
    w = _t(weight)
    if w.ndim != 2:
        raise ValueError(f"embedding: weight must have shape (num_embeddings, embedding_dim), got {w.shape}")
    idx = _indices(input, "embedding")
    n = w.shape[0]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)][0]
        raise IndexError(f"embedding: index {bad} is out of range for {n} embeddings (valid: 0 to {n - 1})")
    out = w[idx]
    if padding_idx is not None:
        pad = padding_idx % n
        hit = (idx % n) == pad
        if hit.any():
            out = ops.where(hit[..., None], out.detach(), out)
    return out


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """Integer classes as int64 one-hot rows (``num_classes=-1``: one more than the largest class)."""
    idx = _indices(tensor, "one_hot")
    if idx.size and idx.min() < 0:
        raise ValueError(f"one_hot: classes must be non-negative, got {idx.min()}")
    n = int(idx.max()) + 1 if num_classes == -1 and idx.size else int(num_classes)
    if idx.size and idx.max() >= n:
        raise ValueError(f"one_hot: class {idx.max()} does not fit num_classes={n}")
    return _off_graph(Tensor(np.eye(max(n, 0), dtype=np.int64)[idx]), "one_hot", (tensor,))


# --- convolution and pooling -------------------------------------------------------------------------------
def _batched(x: Tensor, op: str) -> tuple[Tensor, bool]:
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return ops.reshape(x, (1,) + x.shape), True
    raise ValueError(f"{op}: input must have shape (N, C, H, W) or (C, H, W), got {x.shape}")


def _geometry(
    op: str,
    size: tuple[int, int],
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[int, int]:
    oh, ow = P.blocks(size, kernel, dilation, padding, stride)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{op}: a kernel of {kernel} (dilation {dilation}) does not fit an input of {size} with padding "
            f"{padding}: the output would be {oh}×{ow}"
        )
    return oh, ow


def unfold(
    input: Any,  # noqa: A002
    kernel_size: IntPair,
    dilation: IntPair = 1,
    padding: IntPair = 0,
    stride: IntPair = 1,
) -> Tensor:
    """im2col: every sliding block of ``(N, C, H, W)`` as a column of ``(N, C·kh·kw, L)`` (torch's layout)."""
    x, single = _batched(_t(input), "unfold")
    k, d = _pair(kernel_size, "kernel_size", "unfold"), _pair(dilation, "dilation", "unfold")
    p, s = _pair(padding, "padding", "unfold", 0), _pair(stride, "stride", "unfold")
    _geometry("unfold", x.shape[2:], k, d, p, s)
    out = apply(P.unfold, x, k, d, p, s)
    return ops.reshape(out, out.shape[1:]) if single else out


def fold(
    input: Any,  # noqa: A002
    output_size: IntPair,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    padding: IntPair = 0,
    stride: IntPair = 1,
) -> Tensor:
    """col2im, the adjoint of :func:`unfold`: columns ``(N, C·kh·kw, L)`` summed back into ``(N, C, H, W)``."""
    cols = _t(input)
    single = cols.ndim == 2
    if single:
        cols = ops.reshape(cols, (1,) + cols.shape)
    if cols.ndim != 3:
        raise ValueError(f"fold: input must have shape (N, C·kh·kw, L) or (C·kh·kw, L), got {_t(input).shape}")
    size = _pair(output_size, "output_size", "fold")
    k, d = _pair(kernel_size, "kernel_size", "fold"), _pair(dilation, "dilation", "fold")
    p, s = _pair(padding, "padding", "fold", 0), _pair(stride, "stride", "fold")
    oh, ow = _geometry("fold", size, k, d, p, s)
    if cols.shape[1] % (k[0] * k[1]) or cols.shape[2] != oh * ow:
        raise ValueError(
            f"fold: input of shape {cols.shape} does not fit: dimension 1 must be a multiple of kh·kw = "
            f"{k[0] * k[1]} and dimension 2 must be the {oh * ow} blocks of an {size} output"
        )
    out = apply(P.fold, cols, size, k, d, p, s)
    return ops.reshape(out, out.shape[1:]) if single else out


def _conv_padding(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int], stride: tuple[int, int]) -> Any:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError("conv2d: padding='same' needs stride 1 (as in torch)")
            total = [dilation[i] * (kernel[i] - 1) for i in range(2)]
            if any(t % 2 for t in total):
                raise NotImplementedError(
                    f"conv2d: padding='same' with kernel {kernel} and dilation {dilation} needs uneven padding, "
                    "which chainrule does not do; use an odd kernel size"
                )
            return (total[0] // 2, total[1] // 2)
        raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _pair(padding, "padding", "conv2d", 0)


def conv2d(
    input: Any,  # noqa: A002
    weight: Any,
    bias: Any = None,
    stride: IntPair = 1,
    padding: Union[IntPair, str] = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation (what torch and every framework call convolution).

    ``input`` is ``(N, C, H, W)`` (or unbatched ``(C, H, W)``), ``weight`` is
    ``(O, C/groups, kh, kw)`` and ``bias`` is ``(O,)``.  Computed as
    ``unfold(input)`` followed by one matrix product per group with the weight
    viewed as ``(O, C/groups·kh·kw)``.
    """
    x, single = _batched(_t(input), "conv2d")
    w = _t(weight)
    if w.ndim != 4:
        raise ValueError(f"conv2d: weight must have shape (out_channels, in_channels/groups, kh, kw), got {w.shape}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive integer, got {groups!r}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c % groups or o % groups or cg * groups != c:
        raise ValueError(
            f"conv2d: input with {c} channels and weight of shape {w.shape} do not fit groups={groups}: "
            f"the weight's dimension 1 must be in_channels/groups = {c // groups if c % groups == 0 else '?'} "
            f"and both channel counts must divide by {groups}"
        )
    s, d = _pair(stride, "stride", "conv2d"), _pair(dilation, "dilation", "conv2d")
    p = _conv_padding(padding, (kh, kw), d, s)
    oh, ow = _geometry("conv2d", (h, wd), (kh, kw), d, p, s)
    # Eagerly: im2col and a matrix product, the graph cr.derive explains (dW as a cross-correlation, dx as a full
    # convolution).  Under cr.compile's tracer: the fused primitive (primitives/conv.py), faster, which derive has
    # no form for yet (docs/bench.md)
    if groups == 1 and MODE.observer is not None:
        y = _fused_conv(x, w, bias, s, p, d)
        return ops.reshape(y, y.shape[1:]) if single else y
    cols = apply(P.unfold, x, (kh, kw), d, p, s)  # (N, C·kh·kw, L)
    if groups == 1:
        y = ops.matmul(ops.reshape(w, (o, cg * kh * kw)), cols)  # (N, O, L)
    else:
        g = int(groups)
        grouped = ops.reshape(cols, (n, g, cg * kh * kw, oh * ow))
        y = ops.matmul(ops.reshape(w, (g, o // g, cg * kh * kw)), grouped)  # (N, G, O/G, L)
    y = ops.reshape(y, (n, o, oh, ow))
    if bias is not None:
        b = _t(bias)
        if b.shape != (o,):
            raise ValueError(f"conv2d: bias must have shape ({o},), got {b.shape}")
        y = y + ops.reshape(b, (o, 1, 1))
    return ops.reshape(y, y.shape[1:]) if single else y


def _fused_conv(x: Tensor, w: Tensor, bias: Any, s: Any, p: Any, d: Any) -> Tensor:
    y = apply(PC.conv2d, x, w, s, p, d)  # (N, O, OH, OW)
    if bias is not None:
        b = _t(bias)
        if b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},), got {b.shape}")
        y = y + ops.reshape(b, (w.shape[0], 1, 1))
    return y


def fused_conv2d(
    input: Any,  # noqa: A002
    weight: Any,
    bias: Any = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """:func:`conv2d` (``groups=1``) as the one fused primitive ``conv2d`` that ``cr.compile`` records: faster
    eagerly too, but ``cr.derive`` has no matrix form for it yet (use :func:`conv2d` to have it explained)."""
    x, single = _batched(_t(input), "fused_conv2d")
    w = _t(weight)
    if w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(f"fused_conv2d: weight must be (out, {x.shape[1]}, kh, kw) for input {x.shape}, got {w.shape}")
    s, d = _pair(stride, "stride", "fused_conv2d"), _pair(dilation, "dilation", "fused_conv2d")
    p = _conv_padding(padding, w.shape[2:], d, s)
    _geometry("fused_conv2d", x.shape[2:], w.shape[2:], d, p, s)
    y = _fused_conv(x, w, bias, s, p, d)
    return ops.reshape(y, y.shape[1:]) if single else y


def fused_max_pool2d(input: Any, kernel_size: IntPair) -> Tensor:  # noqa: A002
    """:func:`max_pool2d` over non-overlapping windows (stride = kernel, no padding) as the primitive
    ``max_pool2d_pick`` that ``cr.compile`` records (no index read from the values); the first maximum of each
    window, as torch.  ``cr.derive`` has no matrix form for it yet."""
    x, single = _batched(_t(input), "fused_max_pool2d")
    k = _pair(kernel_size, "kernel_size", "fused_max_pool2d")
    if x.shape[2] < k[0] or x.shape[3] < k[1]:
        raise ValueError(f"fused_max_pool2d: kernel {k} is larger than the input's {x.shape[2:]}")
    out = apply(PP.max_pool2d_pick, x, x, k)
    return ops.reshape(out, out.shape[1:]) if single else out


def conv_transpose2d(
    input: Any,  # noqa: A002
    weight: Any,
    bias: Any = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
) -> Tensor:
    """The transposed convolution (the gradient of :func:`conv2d` with respect to its input), as torch's.

    ``input`` is ``(N, C_in, H, W)``, ``weight`` ``(C_in, C_out, kh, kw)``; the output's side is
    ``(H - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1``.  One primitive
    (``conv2d_input``).  ``groups`` must be 1 and ``output_padding`` below ``stride``.
    """
    x, single = _batched(_t(input), "conv_transpose2d")
    w = _t(weight)
    if w.ndim != 4 or w.shape[0] != x.shape[1]:
        raise ValueError(
            f"conv_transpose2d: weight must have shape (in_channels={x.shape[1]}, out_channels, kh, kw) for input "
            f"{x.shape}, got {w.shape}"
        )
    if groups != 1:
        raise NotImplementedError(f"conv_transpose2d: groups={groups!r} is not supported; only groups=1")
    s, d = _pair(stride, "stride", "conv_transpose2d"), _pair(dilation, "dilation", "conv_transpose2d")
    p = _pair(padding, "padding", "conv_transpose2d", 0)
    op = _pair(output_padding, "output_padding", "conv_transpose2d", 0)
    if op[0] >= s[0] or op[1] >= s[1]:
        raise NotImplementedError(
            f"conv_transpose2d: output_padding {op} must be smaller than the stride {s} (chainrule does not do "
            "output_padding up to the dilation)"
        )
    k = w.shape[2:]
    size = tuple((x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(2))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"conv_transpose2d: input {x.shape} with padding {p} gives an empty output {size}")
    y = apply(PC.conv2d_input, x, w, size, s, p, d)
    if bias is not None:
        b = _t(bias)
        if b.shape != (w.shape[1],):
            raise ValueError(f"conv_transpose2d: bias must have shape ({w.shape[1]},), got {b.shape}")
        y = y + ops.reshape(b, (w.shape[1], 1, 1))
    return ops.reshape(y, y.shape[1:]) if single else y


def conv2d_input(
    input_size: Sequence[int],
    weight: Any,
    grad_output: Any,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """The gradient of ``conv2d(input, weight)`` with respect to ``input`` (``torch.nn.grad.conv2d_input``)."""
    g, w = _t(grad_output), _t(weight)
    size = tuple(int(v) for v in input_size)
    s, d = _pair(stride, "stride", "conv2d_input"), _pair(dilation, "dilation", "conv2d_input")
    p = _pair(padding, "padding", "conv2d_input", 0)
    if g.ndim != 4 or w.ndim != 4 or len(size) != 4 or g.shape[1] != w.shape[0] or size[1] != w.shape[1]:
        raise ValueError(
            f"conv2d_input: grad_output {g.shape}, weight {w.shape} and input_size {size} do not fit a conv2d"
        )
    if _geometry("conv2d_input", size[2:], w.shape[2:], d, p, s) != g.shape[2:]:
        raise ValueError(f"conv2d_input: grad_output {g.shape} is not conv2d's output size for input {size}")
    return apply(PC.conv2d_input, g, w, size[2:], s, p, d)


def conv2d_weight(
    input: Any,  # noqa: A002
    weight_size: Sequence[int],
    grad_output: Any,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """The gradient of ``conv2d(input, weight)`` with respect to ``weight`` (``torch.nn.grad.conv2d_weight``)."""
    x, g = _t(input), _t(grad_output)
    size = tuple(int(v) for v in weight_size)
    s, d = _pair(stride, "stride", "conv2d_weight"), _pair(dilation, "dilation", "conv2d_weight")
    p = _pair(padding, "padding", "conv2d_weight", 0)
    if x.ndim != 4 or g.ndim != 4 or len(size) != 4 or g.shape[1] != size[0] or x.shape[1] != size[1]:
        raise ValueError(
            f"conv2d_weight: input {x.shape}, weight_size {size} and grad_output {g.shape} do not fit a conv2d"
        )
    if _geometry("conv2d_weight", x.shape[2:], size[2:], d, p, s) != g.shape[2:]:
        raise ValueError(f"conv2d_weight: grad_output {g.shape} is not conv2d's output size for input {x.shape}")
    return apply(PC.conv2d_weight, x, g, size[2:], s, p, d)


def _pool_args(
    op: str, kernel_size: IntPair, stride: Optional[IntPair], padding: IntPair, dilation: IntPair, ceil_mode: bool
) -> tuple[tuple[int, int], ...]:
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not supported; pad the input or pick a kernel that fits")
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _pair(stride, "stride", op)
    p = _pair(padding, "padding", op, 0)
    d = _pair(dilation, "dilation", op)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k} (as in torch)")
    return k, s, p, d


def max_pool2d(
    input: Any,  # noqa: A002
    kernel_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """The largest value of each window (``stride`` defaults to the kernel size); padding counts as ``-inf``.

    The gradient goes to the first maximum of each window (row-major order),
    as torch's does; overlapping windows add up.  ``return_indices=True`` also
    returns each maximum's flat position in its ``H·W`` plane (int64), as torch.
    """
    x, single = _batched(_t(input), "max_pool2d")
    k, s, p, d = _pool_args("max_pool2d", kernel_size, stride, padding, dilation, ceil_mode)
    n, c, h, w = x.shape
    oh, ow = _geometry("max_pool2d", (h, w), k, d, p, s)
    if (
        MODE.observer is not None
        and s == k
        and p == (0, 0)
        and d == (1, 1)
        and not return_indices
        and getattr(x.dtype, "kind", "") == "f"
    ):
        # under cr.compile's tracer or cr.vmap's (both are MODE.observer), non-overlapping windows: strided views
        # and masks, no index read from the values (primitives/pool.py; vmap folds its batch into the images');
        # eagerly the index form below, which cr.derive explains
        out = apply(PP.max_pool2d_pick, x, x, k)
        return ops.reshape(out, out.shape[1:]) if single else out
    if MODE.batch is not None and MODE.batch.depends(x):  # under cr.vmap: no index may be read from the values
        if return_indices:
            MODE.batch.read(x, "max_pool2d(return_indices=True)", None)
        out = _max_pool_by_masks(x, k, s, p, d, oh, ow)
        return ops.reshape(out, out.shape[1:]) if single else out
    raw = np.asarray(x.data)
    if p != (0, 0):
        fill = -np.inf if raw.dtype.kind == "f" else np.iinfo(raw.dtype).min
        raw = np.pad(raw, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    rows = (np.arange(oh) * s[0])[:, None] - p[0]
    cols = (np.arange(ow) * s[1])[None, :] - p[1]
    if s == k and d == (1, 1):  # non-overlapping windows: one comparison per window offset on strided views
        # (the argmax below without copying the windows; the same positions, worked out in place)
        plane, kj = np.divmod(PP.first_max_offsets(raw, k).reshape(n * c, oh, ow), k[1])
        plane += rows
        plane *= w
        plane += kj
        plane += cols  # position inside each H·W plane
        del kj
    else:
        windows = P.unfold.fwd(raw.reshape(n * c, 1, *raw.shape[2:]), k, d, (0, 0), s)  # (N·C, kh·kw, L)
        best = np.argmax(windows, axis=1)  # first maximum; NaN wins, as in torch
        ki, kj = np.divmod(best, k[1])
        hh = rows.reshape(1, oh, 1) + (ki * d[0]).reshape(n * c, oh, ow)
        ww = cols.reshape(1, 1, ow) + (kj * d[1]).reshape(n * c, oh, ow)
        plane = hh * w + ww  # position inside each H·W plane
    flat = plane + (np.arange(n * c) * (h * w)).reshape(n * c, 1, 1)
    out = ops.reshape(ops.reshape(x, (n * c * h * w,))[flat.reshape(n, c, oh, ow)], (n, c, oh, ow))
    if single:
        out = ops.reshape(out, out.shape[1:])
    if return_indices:
        indices = plane.reshape((c, oh, ow) if single else (n, c, oh, ow)).astype(np.int64)
        return out, Tensor(indices)
    return out


def _max_pool_by_masks(x: Tensor, k: tuple, s: tuple, p: tuple, d: tuple, oh: int, ow: int) -> Tensor:
    """max_pool2d as differentiable operations and comparisons, with no index read from the values (so
    ``cr.vmap`` can batch it): each window's first maximum is picked by a mask (NaN wins), so the values
    and the gradient are torch's, as the indexed path gives them."""
    n, c, h, w = x.shape
    flat = ops.reshape(x, (n * c, 1, h, w))
    ph, pw = p
    if ph:
        rows = np.full((n * c, 1, ph, w), -np.inf, x.dtype)
        flat = ops.concatenate([rows, flat, rows], axis=2)
    if pw:
        cols_pad = np.full((n * c, 1, h + 2 * ph, pw), -np.inf, x.dtype)
        flat = ops.concatenate([cols_pad, flat, cols_pad], axis=3)
    cols = apply(P.unfold, flat, k, d, (0, 0), s)  # (N·C, kh·kw, L)
    top = apply(R.max_, cols.detach(), (1,), True)
    hit = (cols == top) | ops.isnan(cols)
    first = hit & (ops.cumsum(hit.astype(x.dtype), 1) == 1.0)
    out = ops.sum(ops.where(first, cols, 0.0), 1)
    return ops.reshape(out, (n, c, oh, ow))


def avg_pool2d(
    input: Any,  # noqa: A002
    kernel_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
) -> Tensor:
    """The mean of each window (``stride`` defaults to the kernel size); padding counts as zeros unless
    ``count_include_pad=False``."""
    x, single = _batched(_t(input), "avg_pool2d")
    k, s, p, d = _pool_args("avg_pool2d", kernel_size, stride, padding, 1, ceil_mode)
    n, c, h, w = x.shape
    oh, ow = _geometry("avg_pool2d", (h, w), k, d, p, s)
    cols = apply(P.unfold, ops.reshape(x, (n * c, 1, h, w)), k, d, p, s)  # (N·C, kh·kw, L)
    total = ops.sum(cols, 1)
    if divisor_override is not None:
        divisor: Any = np.asarray(float(divisor_override), x.dtype)
    elif count_include_pad or p == (0, 0):
        divisor = np.asarray(float(k[0] * k[1]), x.dtype)
    else:
        ones = np.ones((1, 1, h, w), x.dtype)
        divisor = P.unfold.fwd(ones, k, d, p, s).sum(axis=1)  # real elements per window, (1, L)
    out = ops.reshape(total / divisor, (n, c, oh, ow))
    return ops.reshape(out, out.shape[1:]) if single else out


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:  # noqa: A002
    """Merge dimensions ``start_dim`` through ``end_dim`` into one (``torch.flatten``)."""
    x = _t(input)
    nd = max(x.ndim, 1)
    a, b = start_dim % nd, end_dim % nd
    if not (-nd <= start_dim < nd and -nd <= end_dim < nd) or a > b:
        raise ValueError(f"flatten: start_dim {start_dim} and end_dim {end_dim} do not fit a tensor of shape {x.shape}")
    if x.ndim == 0:
        return ops.reshape(x, (1,))
    shape = x.shape[:a] + (math.prod(x.shape[a : b + 1]),) + x.shape[b + 1 :]
    return ops.reshape(x, shape)


__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "conv_transpose2d",
    "fused_conv2d",
    "fused_max_pool2d",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "erf",
    "flatten",
    "fold",
    "gelu",
    "hardtanh",
    "hinge_loss",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
    "unfold",
]
