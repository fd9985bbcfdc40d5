"""Loss functions, built from the engine's primitives (no fused primitives needed).

Each takes ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"``.
Predictions and targets must have the same shape (no silent broadcasting of an
``(N, 1)`` prediction against ``(N,)`` targets into an ``(N, N)`` loss), except
that a trailing axis of size 1 on the prediction is dropped where the targets lack it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _raw(x: Any) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _match(pred: Tensor, target: np.ndarray, op: str) -> Tensor:
    """``pred`` with a trailing size-1 axis dropped if that makes its shape the target's; else an error."""
    if pred.shape == target.shape:
        return pred
    if pred.ndim == target.ndim + 1 and pred.shape[-1] == 1 and pred.shape[:-1] == target.shape:
        return ops.reshape(pred, target.shape)
    raise ValueError(
        f"{op}: input of shape {pred.shape} and target of shape {target.shape} must have the same shape "
        "(broadcasting them would compare every prediction with every target)"
    )


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error ``(input - target)²``."""
    x = _as_tensor(input)
    t = _raw(target).astype(x.dtype, copy=False)
    x = _match(x, t, "mse_loss")
    diff = x - t
    return _reduce(diff * diff, reduction, "mse_loss")


def cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of ``logits`` of shape ``(N, C)`` against integer class ``targets`` of shape ``(N,)``.

    Computed as ``-log_softmax(logits)[i, targets[i]]``, which is stable for any
    logits (no ``exp`` overflow, no ``log(0)``).
    """
    z = _as_tensor(logits)
    y = _raw(targets)
    if z.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got {z.shape}")
    n, c = z.shape
    if y.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"cross_entropy: targets must have shape ({n},) to match logits {z.shape}, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= c):
        bad = y[(y < 0) | (y >= c)][0]
        raise ValueError(f"cross_entropy: target {bad} is not a class index in [0, {c}) for logits of shape {z.shape}")
    logp = ops.log_softmax(z, -1)
    picked = logp[np.arange(n), y]
    return _reduce(-picked, reduction, "cross_entropy")


def binary_cross_entropy_with_logits(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of ``sigmoid(logits)`` against targets in ``[0, 1]``.

    Uses ``(1 - y) x + softplus(-x)`` with ``softplus(-x) = logsumexp([0, -x])``:
    stable for large ``|x|`` and smooth at ``x = 0``.
    """
    x = _as_tensor(logits)
    y = _raw(targets).astype(x.dtype, copy=False)
    x = _match(x, y, "binary_cross_entropy_with_logits")
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError("binary_cross_entropy_with_logits: targets must lie in [0, 1]")
    softplus_neg = ops.logsumexp(ops.stack([np.zeros(x.shape, x.dtype), -x]), axis=0)
    return _reduce((1 - y) * x + softplus_neg, reduction, "binary_cross_entropy_with_logits")


def hinge_loss(scores: Any, targets: Any, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """The max-margin (SVM) loss ``relu(margin - y * score)`` for labels ``y`` in ``{-1, +1}``.

    This is the loss of the micrograd two-moons demo.
    """
    s = _as_tensor(scores)
    y = _raw(targets)
    if y.size and not np.all((y == 1) | (y == -1)):
        raise ValueError(f"hinge_loss: targets must be -1 or +1, got values {np.unique(y)[:5].tolist()}")
    y = y.astype(s.dtype)
    s = _match(s, y, "hinge_loss")
    return _reduce(ops.relu(margin - y * s), reduction, "hinge_loss")
