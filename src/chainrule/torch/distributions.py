"""``torch.distributions``: ``Normal``, ``Uniform``, ``Bernoulli``, ``Categorical`` (log-densities, entropies,
means and reparameterised samples as differentiable expressions; draws through chainrule.torch's
random source) and ``kl_divergence`` between two Normals or two Categoricals."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import ops
from ..nn import functional as _F
from ..tensor import Tensor
from ..torch_names import module_getattr
from . import _random
from ._core import DEFAULTS, Size, tensor


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else tensor(x, dtype=DEFAULTS.float)


def _shape(sample_shape: Any) -> tuple:
    return tuple(sample_shape) if not isinstance(sample_shape, int) else (sample_shape,)


class Distribution:
    has_rsample = False

    def __init__(self, batch_shape: tuple = (), event_shape: tuple = (), validate_args: Optional[bool] = None) -> None:
        self._batch_shape, self._event_shape = Size(batch_shape), Size(event_shape)

    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    @property
    def stddev(self) -> Tensor:
        return ops.sqrt(self.variance)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from ..grad_mode import no_grad  # noqa: PLC0415

        with no_grad():
            return self.rsample(sample_shape).detach()

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sample (rsample)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normal(Distribution):
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: Optional[bool] = None) -> None:
        self.loc, self.scale = _t(loc), _t(scale)
        shape = np.broadcast_shapes(self.loc.shape, self.scale.shape)
        self.loc, self.scale = ops.broadcast_to(self.loc, shape), ops.broadcast_to(self.scale, shape)
        super().__init__(shape)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return self.scale**2

    @property
    def stddev(self) -> Tensor:
        return self.scale

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = _shape(sample_shape) + tuple(self.batch_shape)
        eps = _random.randn(shape, None, self.loc.dtype)
        return self.loc + eps * self.scale

    def log_prob(self, value: Any) -> Tensor:
        v = _t(value)
        var = self.scale**2
        return -((v - self.loc) ** 2) / (2 * var) - ops.log(self.scale) - math.log(math.sqrt(2 * math.pi))

    def cdf(self, value: Any) -> Tensor:
        return 0.5 * (1 + _F.erf((_t(value) - self.loc) * (1.0 / math.sqrt(2)) / self.scale))

    def entropy(self) -> Tensor:
        return 0.5 + 0.5 * math.log(2 * math.pi) + ops.log(self.scale)

    def __repr__(self) -> str:
        return f"Normal(loc: {self.loc.detach()}, scale: {self.scale.detach()})"


class Uniform(Distribution):
    has_rsample = True

    def __init__(self, low: Any, high: Any, validate_args: Optional[bool] = None) -> None:
        self.low, self.high = _t(low), _t(high)
        shape = np.broadcast_shapes(self.low.shape, self.high.shape)
        self.low, self.high = ops.broadcast_to(self.low, shape), ops.broadcast_to(self.high, shape)
        super().__init__(shape)

    @property
    def mean(self) -> Tensor:
        return (self.high + self.low) / 2

    @property
    def variance(self) -> Tensor:
        return (self.high - self.low) ** 2 / 12

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = _shape(sample_shape) + tuple(self.batch_shape)
        u = _random.rand(shape, None, self.low.dtype)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value: Any) -> Tensor:
        v = _t(value)
        inside = (np.asarray(self.low.data) <= np.asarray(v.data)) & (np.asarray(self.high.data) > np.asarray(v.data))
        return ops.log(Tensor(inside.astype(v.dtype))) - ops.log(self.high - self.low)

    def cdf(self, value: Any) -> Tensor:
        return ops.clip((_t(value) - self.low) / (self.high - self.low), 0, 1)

    def entropy(self) -> Tensor:
        return ops.log(self.high - self.low)


def _clamp_probs(p: Tensor) -> Tensor:
    eps = float(np.finfo(p.dtype).eps)
    return ops.clip(p, eps, 1 - eps)


class Bernoulli(Distribution):
    def __init__(self, probs: Any = None, logits: Any = None, validate_args: Optional[bool] = None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            self.probs = _t(probs)
            p = _clamp_probs(self.probs)
            self.logits = ops.log(p) - ops.log1p(-p)
        else:
            self.logits = _t(logits)
            self.probs = ops.sigmoid(self.logits)
        super().__init__(self.probs.shape)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = _shape(sample_shape) + tuple(self.batch_shape)
        p = ops.broadcast_to(self.probs.detach(), shape)
        return _random.bernoulli(p)

    def log_prob(self, value: Any) -> Tensor:
        return -_F.binary_cross_entropy_with_logits(self.logits, _t(value), reduction="none")

    def entropy(self) -> Tensor:
        return _F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")


class Categorical(Distribution):
    def __init__(self, probs: Any = None, logits: Any = None, validate_args: Optional[bool] = None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            p = _t(probs)
            self.probs = p / p.sum(-1, keepdim=True)
            self.logits = ops.log(_clamp_probs(self.probs))
        else:
            lg = _t(logits)
            self.logits = lg - ops.logsumexp(lg, dim=-1, keepdim=True)
            self.probs = ops.softmax(self.logits, dim=-1)
        self._num_events = self.probs.shape[-1]
        super().__init__(self.probs.shape[:-1])

    @property
    def param_shape(self) -> Size:
        return Size(self.probs.shape)

    @property
    def mean(self) -> Tensor:
        return Tensor(np.full(tuple(self.batch_shape), np.nan, self.probs.dtype))

    def sample(self, sample_shape: Any = ()) -> Tensor:
        n = int(np.prod(_shape(sample_shape))) if _shape(sample_shape) else 1
        rows = self.probs.detach().reshape(-1, self._num_events)
        draws = _random.multinomial(rows, n, True)  # (batch, n)
        out = draws.T.reshape(_shape(sample_shape) + tuple(self.batch_shape))
        return out

    def log_prob(self, value: Any) -> Tensor:
        v = np.asarray(value.data if isinstance(value, Tensor) else value).astype(np.int64)
        shape = np.broadcast_shapes(v.shape, tuple(self.batch_shape))
        logits = ops.broadcast_to(self.logits, shape + (self._num_events,))
        idx = np.broadcast_to(v, shape)[..., None]
        return ops.gather(logits, -1, idx).squeeze(-1)

    def entropy(self) -> Tensor:
        min_real = float(np.finfo(self.logits.dtype).min)
        logits = ops.clip(self.logits, min_real, None)
        return -(logits * self.probs).sum(-1)


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    if isinstance(p, Normal) and isinstance(q, Normal):
        var_ratio = (p.scale / q.scale) ** 2
        t1 = ((p.loc - q.loc) / q.scale) ** 2
        return 0.5 * (var_ratio + t1 - 1 - ops.log(var_ratio))
    if isinstance(p, Categorical) and isinstance(q, Categorical):
        t = p.probs * (p.logits - q.logits)
        return t.sum(-1)
    raise NotImplementedError(
        f"kl_divergence({type(p).__name__}, {type(q).__name__}) is not supported in chainrule.torch "
        "(Normal-Normal and Categorical-Categorical are)"
    )


__getattr__ = module_getattr("torch.distributions")
