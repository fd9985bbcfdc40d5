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
from ..backend import is_foreign, library_name
from ..tensor import Tensor
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _raw(x: Any) -> np.ndarray:
    """Targets and weights as NumPy arrays (another library's array is copied to the host; the
    constants built from them join the input's library again when they meet it)."""
    from ..backend import to_numpy

    return np.asarray(to_numpy(x.data if isinstance(x, Tensor) else x))  # (.data: cr.compile watches this read)


def _target_of(target: Any, x: Tensor) -> Any:
    """A regression target as the loss uses it, as torch does: a float tensor keeps its dtype (the loss
    promotes, float32 against float64 gives float64) and stays in the graph if it requires grad (so
    ``mse_loss(a, b)`` gives ``b`` a gradient too); anything else is an array of the input's dtype."""
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        return target if target.requires_grad else _raw(target)
    return _raw(target).astype(x.dtype, copy=False)


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _match(pred: Tensor, target: np.ndarray, op: str, squeeze: bool = False) -> Tensor:
    """``pred`` itself when its shape is the target's; else an error that says what torch would do.

    ``squeeze`` (chainrule's own losses, which torch lacks): a trailing size-1 axis of ``pred`` is dropped
    when that makes the shapes equal.

    torch broadcasts the two (with a warning): an (N, 1) prediction against an (N,) target becomes an N × N
    comparison of every prediction with every target.  chainrule refuses rather than compute either that or
    something other than what torch computes."""
    if pred.shape == target.shape:
        return pred
    fix = ""
    if pred.ndim == target.ndim + 1 and pred.shape[-1] == 1 and pred.shape[:-1] == target.shape:
        if squeeze:
            return ops.reshape(pred, target.shape)
        fix = "; to compare them entry by entry, pass input.squeeze(-1) (or target.unsqueeze(-1))"
    raise ValueError(
        f"{op}: input of shape {pred.shape} and target of shape {target.shape} must have the same shape: torch "
        f"broadcasts them (comparing every prediction with every target) with a warning, and chainrule refuses{fix}"
    )


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error ``(input - target)²``."""
    x = _as_tensor(input)
    t = _target_of(target, x)
    x = _match(x, t, "mse_loss")
    diff = x - t
    return _reduce(diff * diff, reduction, "mse_loss")


def _no_legacy(size_average: Any, reduce: Any, op: str) -> None:
    if size_average is not None or reduce is not None:
        raise ValueError(f"{op}: size_average and reduce are deprecated in torch and not supported; use reduction=")


def _class_weight(weight: Any, c: int, dtype: np.dtype, op: str) -> np.ndarray | None:
    if weight is None:
        return None
    if isinstance(weight, str):
        raise TypeError(f"{op}: the third argument is weight (as in torch); pass the reduction as reduction={weight!r}")
    w = _raw(weight).astype(dtype, copy=False)
    if w.shape != (c,):
        raise ValueError(f"{op}: weight must have one entry per class, shape ({c},), got {w.shape}")
    return w


def _classes_last(z: Tensor, y: np.ndarray, op: str) -> tuple[Tensor, np.ndarray, tuple[int, ...]]:
    """Scores as ``(M, C)`` rows and targets as ``(M,)``, for input ``(N, C, d1, ...)``, ``(N, C)`` or ``(C,)``.

    Also returns the shape an unreduced loss has (the targets' shape).
    """
    if z.ndim == 1:
        if y.shape != ():
            raise ValueError(
                f"{op}: logits must have shape (N, C), (C,) or (N, C, d1, ...); logits of shape {z.shape} "
                f"need a 0-d target, got targets of shape {y.shape}"
            )
        return ops.reshape(z, (1, z.shape[0])), y.reshape(1), ()
    want = (z.shape[0],) + z.shape[2:]
    if y.shape != want:
        raise ValueError(f"{op}: targets must have shape {want} to match logits {z.shape}, got {y.shape}")
    if z.ndim == 2:
        return z, y, want
    perm = (0,) + tuple(range(2, z.ndim)) + (1,)
    rows = ops.reshape(ops.permute(z, perm), (-1, z.shape[1]))
    return rows, y.reshape(-1), want


def _check_targets(y: np.ndarray, c: int, ignore_index: int, shape: tuple[int, ...], op: str) -> np.ndarray:
    """The mask of targets that count; raises on a target that is neither a class nor ``ignore_index``."""
    keep = y != ignore_index
    bad = keep & ((y < 0) | (y >= c))
    if bad.any():
        raise ValueError(f"{op}: target {y[bad][0]} is not a class index in [0, {c}) for logits of shape {shape}")
    return keep


def nll_loss(
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at the class indices ``target`` (as torch).

    ``loss_i = -weight[y_i] * input[i, y_i]``; targets equal to ``ignore_index``
    count for nothing; ``"mean"`` divides by the summed weight of the counted targets.
    """
    _no_legacy(size_average, reduce, "nll_loss")
    return _nll(_as_tensor(input), target, weight, ignore_index, reduction, "nll_loss")


def _native_labels(labels: Any) -> bool:
    """Labels kept in their library for indexing: torch int64 / int32 tensors (torch reads a uint8 index
    as a mask, and refuses int8 / int16; those, and other libraries' labels, go through NumPy)."""
    if isinstance(labels, np.ndarray) or not is_foreign(labels) or library_name(labels) != "torch":
        return False
    return str(labels.dtype) in ("torch.int64", "torch.int32")


def _nll(logp: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str, op: str) -> Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    y = _raw(target)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, got dtype {y.dtype}")
    rows, flat, out_shape = _classes_last(logp, y, op)
    m, c = rows.shape
    w = _class_weight(weight, c, rows.dtype, op)
    keep = _check_targets(flat, c, ignore_index, logp.shape, op)
    # The common case: index with the targets as they are (cr.compile maps them to each call's labels).
    # An ignore_index that is a class (>= 0) takes the masked form even when no target hits it, so a
    # compiled replay never indexes with a label that eager would have ignored.
    if w is None and ignore_index < 0 and keep.all():
        native = target.data if isinstance(target, Tensor) else target
        if flat.shape == y.shape and _native_labels(native):
            flat = native  # torch labels index in torch (and a compiled replay reads each call's)
        loss = -rows[np.arange(m), flat]
        if reduction == "none":
            return ops.reshape(loss, out_shape)
        return ops.sum(loss) if reduction == "sum" else ops.sum(loss) / np.asarray(m, rows.dtype)
    safe = np.where(keep, flat, 0)
    picked = rows[np.arange(m), safe]
    per = (w[safe] if w is not None else np.ones(m, rows.dtype)) * keep.astype(rows.dtype)
    loss = -picked * per
    if reduction == "none":
        return ops.reshape(loss, out_shape)
    total = ops.sum(loss)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / np.asarray(per.sum(), rows.dtype)  # all targets ignored: 0/0 = nan, as torch


def cross_entropy(
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy, with ``torch.nn.functional.cross_entropy``'s arguments and results.

    ``input`` holds unnormalized scores of shape ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
    ``target`` is either integer class indices (shape ``(N,)``, ``()`` or
    ``(N, d1, ...)``; ``ignore_index`` entries count for nothing) or class
    probabilities of the input's shape.  ``weight`` rescales each class;
    ``label_smoothing`` mixes the targets with the uniform distribution.
    Computed from ``log_softmax``, so it is stable for any scores.
    """
    op = "cross_entropy"
    _no_legacy(size_average, reduce, op)
    z = _as_tensor(input)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must lie in [0, 1], got {label_smoothing}")
    if z.ndim == 0:
        raise ValueError(f"{op}: logits must have shape (N, C), (C,) or (N, C, d1, ...), got a 0-d tensor")
    class_axis = 0 if z.ndim == 1 else 1
    logp = ops.log_softmax(z, class_axis)
    y = _raw(target)
    c = z.shape[class_axis]
    if y.dtype.kind == "f" and y.shape == z.shape:
        # (class probabilities that require grad stay in the graph, as torch gives them a gradient)
        probs = target if isinstance(target, Tensor) and target.requires_grad else y
        return _soft_cross_entropy(logp, probs, weight, reduction, label_smoothing, class_axis)
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: targets must be integer class indices, or float class probabilities of the logits' shape "
            f"{z.shape}; got dtype {y.dtype} and shape {y.shape}"
        )
    nll = _nll(logp, target, weight, ignore_index, reduction, op)
    if not label_smoothing:
        return nll
    # torch: (1 - eps) * nll + eps / C * smooth, smooth = -sum_c weight_c logp_c, normalized as nll is
    w = _class_weight(weight, c, logp.dtype, op)
    wshape = [1] * logp.ndim
    wshape[class_axis] = c
    weighted = logp * w.reshape(wshape) if w is not None else logp
    keep = (y != ignore_index).astype(logp.dtype)
    smooth = -ops.sum(weighted, class_axis) * keep
    if reduction == "mean":
        safe = np.where(y != ignore_index, y, 0)
        denom = (w[safe] * keep).sum() if w is not None else keep.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth = ops.sum(smooth) / np.asarray(denom, logp.dtype)
    elif reduction == "sum":
        smooth = ops.sum(smooth)
    return (1.0 - label_smoothing) * nll + smooth * (label_smoothing / c)


def _soft_cross_entropy(
    logp: Tensor, y: Any, weight: Any, reduction: str, label_smoothing: float, class_axis: int
) -> Tensor:
    op = "cross_entropy"
    c = logp.shape[class_axis]
    y = y.astype(logp.dtype) if isinstance(y, Tensor) else y.astype(logp.dtype, copy=False)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / c
    w = _class_weight(weight, c, logp.dtype, op)
    if w is not None:
        wshape = [1] * logp.ndim
        wshape[class_axis] = c
        y = y * w.reshape(wshape)
    loss = -ops.sum(logp * y, class_axis)
    if reduction == "none":
        return loss
    total = ops.sum(loss)
    return total if reduction == "sum" else total / np.asarray(max(loss.size, 1), logp.dtype)


def binary_cross_entropy_with_logits(
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of ``sigmoid(input)`` against targets in ``[0, 1]`` (torch's arguments).

    Uses ``(1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)`` with
    ``softplus(-x) = logsumexp([0, -x])``: stable for large ``|x|`` and smooth
    at ``x = 0``.  ``weight`` multiplies each element's loss; ``pos_weight``
    (broadcast along the last axis) weighs the positive term.
    """
    op = "binary_cross_entropy_with_logits"
    _no_legacy(size_average, reduce, op)
    if isinstance(weight, str):
        raise TypeError(f"{op}: the third argument is weight (as in torch); pass reduction={weight!r}")
    x = _as_tensor(input)
    y = _target_of(target, x)
    x = _match(x, y, op)
    values = _raw(y)
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"{op}: targets must lie in [0, 1]")
    from ..creation import zeros_like  # (zeros in x's library and on its device)

    softplus_neg = ops.logsumexp(ops.stack([zeros_like(x), -x]), axis=0)
    if pos_weight is not None:
        pw = _raw(pos_weight).astype(x.dtype, copy=False)
        loss = (1 - y) * x + (1 + (pw - 1) * y) * softplus_neg
    else:
        loss = (1 - y) * x + softplus_neg
    if weight is not None:
        loss = loss * _raw(weight).astype(x.dtype, copy=False)
    return _reduce(loss, reduction, op)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean absolute error ``|input - target|`` (the gradient at a zero difference is 0, as torch's)."""
    x = _as_tensor(input)
    t = _target_of(target, x)
    x = _match(x, t, "l1_loss")
    return _reduce(ops.abs(x - t), reduction, "l1_loss")


def hinge_loss(scores: Any, targets: Any, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """The max-margin (SVM) loss ``relu(margin - y * score)`` for labels ``y`` in ``{-1, +1}``.

    This is the loss of the micrograd two-moons demo.
    """
    s = _as_tensor(scores)
    y = _raw(targets)
    if y.size and not np.all((y == 1) | (y == -1)):
        raise ValueError(f"hinge_loss: targets must be -1 or +1, got values {np.unique(y)[:5].tolist()}")
    y = y.astype(s.dtype)
    s = _match(s, y, "hinge_loss", squeeze=True)
    return _reduce(ops.relu(margin - y * s), reduction, "hinge_loss")


# --- the loss modules (torch.nn.CrossEntropyLoss and friends) ------------------------------------------
class _Loss(Module):
    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        _no_legacy(size_average, reduce, type(self).__name__)
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


def _constant(x: Any) -> Any:
    return None if x is None else Tensor(np.array(_raw(x)))


class CrossEntropyLoss(_Loss):
    """``loss(input, target)`` = :func:`cross_entropy` with the options given here (class weights are a buffer)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _constant(weight))
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_Loss):
    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _constant(weight))
        self.ignore_index = int(ignore_index)

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _constant(weight))
        self.register_buffer("pos_weight", _constant(pos_weight))

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
