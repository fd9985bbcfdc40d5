"""Batch normalization: ``BatchNorm1d`` (``(N, C)`` or ``(N, C, L)``) and ``BatchNorm2d`` (``(N, C, H, W)``).

In training mode a layer normalizes with the batch's statistics and moves its
running statistics towards them (running variance: the unbiased batch
variance); in evaluation mode (``model.eval()``) it normalizes with the
running statistics.  ``running_mean``, ``running_var`` and
``num_batches_tracked`` are buffers: saved in ``state_dict()`` under torch's
names, never trained.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..backend import to_numpy
from ..tensor import Tensor
from ..versions import mark_modified
from . import functional as F
from .module import Module


class _BatchNorm(Module):
    dims: tuple[int, ...] = ()
    _replay_reads = ("running_mean", "running_var")  # cr.compile records their uses (evaluation mode)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must lie in [0, 1] or be None (cumulative average), got {momentum}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{name}: parameters need a floating-point dtype, got {dtype}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        n = self.num_features
        self.weight = Tensor(np.ones(n, dtype), True) if affine else None
        self.bias = Tensor(np.zeros(n, dtype), True) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(n, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(n, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0
            for b in (self.running_mean, self.running_var, self.num_batches_tracked):
                mark_modified(b)

    def forward(self, x: Any) -> Tensor:
        x = F._t(x)
        name = type(self).__name__
        if x.ndim not in self.dims:
            raise ValueError(f"{name}: expected {' or '.join(f'{d}-D' for d in self.dims)} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}({self.num_features}): input of shape {x.shape} has {x.shape[1]} channels")
        use_batch = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if not use_batch else None,
            self.running_var if not use_batch else None,
            self.weight,
            self.bias,
            use_batch,
            0.0,
            self.eps,
            _update=(self._update_stats, self._buffers_updated()) if update else None,
        )

    def _buffers_updated(self) -> tuple:
        return (self.running_mean, self.running_var, self.num_batches_tracked)

    def _update_stats(self, mean: Any, var: Any, count: int) -> None:
        """One training step's update of the buffers, from the batch's mean and biased variance (raw arrays).

        Recorded as one step (``F._record_update``): ``cr.compile`` replays it on each call's statistics.
        """
        self.num_batches_tracked._data[...] += 1
        mark_modified(self.num_batches_tracked)
        factor = 1.0 / float(self.num_batches_tracked._data) if self.momentum is None else self.momentum
        c = self.num_features
        F._update_running(self.running_mean, to_numpy(mean).reshape(c), factor)
        F._update_running(self.running_var, to_numpy(var).reshape(c) * (count / (count - 1)), factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` input, per channel ``C``."""

    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` input, per channel ``C``."""

    dims = (4,)
