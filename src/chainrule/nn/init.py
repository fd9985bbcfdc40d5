"""Weight initialization from a seedable NumPy generator.

Every layer takes ``rng=`` (a ``numpy.random.Generator`` or an int seed).
Without one it draws from a module-wide default generator, which
:func:`manual_seed` resets, so ``cr.nn.manual_seed(0)`` followed by building a
model always gives the same weights.

The functions fill a tensor in place (trailing underscore, as in
``torch.nn.init``) and return it.  Fans follow PyTorch's convention for a weight
of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``, ``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..rng import get_rng, manual_seed  # noqa: F401  (re-exported: cr.nn.manual_seed, the layers' rng=)
from ..tensor import Tensor
from ..versions import mark_modified

GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}


def calculate_gain(nonlinearity: str) -> float:
    """The recommended scale for weights feeding ``nonlinearity`` (as ``torch.nn.init.calculate_gain``)."""
    try:
        return GAINS[nonlinearity]
    except KeyError:
        raise ValueError(
            f"calculate_gain: unknown nonlinearity {nonlinearity!r}; choose from {sorted(GAINS)}"
        ) from None


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape``."""
    if len(shape) < 2:
        raise ValueError(f"fans: a weight needs at least 2 dimensions to have fans, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"init: expected a Tensor, got {type(t).__name__}")
    if type(t._data) is float:
        t._data = float(values)
    else:
        t._data[...] = values
    mark_modified(t)
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, rng: Any = None) -> Tensor:
    return _fill(t, get_rng(rng).uniform(a, b, size=t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, rng: Any = None) -> Tensor:
    return _fill(t, get_rng(rng).normal(mean, std, size=t.shape))


def zeros_(t: Tensor) -> Tensor:
    return _fill(t, np.zeros(t.shape))


def ones_(t: Tensor) -> Tensor:
    return _fill(t, np.ones(t.shape))


def kaiming_uniform_(t: Tensor, nonlinearity: str = "relu", mode: str = "fan_in", rng: Any = None) -> Tensor:
    """He initialization: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan)``, keeping activations' variance."""
    bound = calculate_gain(nonlinearity) * math.sqrt(3.0 / _fan(t, mode))
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(t: Tensor, nonlinearity: str = "relu", mode: str = "fan_in", rng: Any = None) -> Tensor:
    return normal_(t, 0.0, calculate_gain(nonlinearity) / math.sqrt(_fan(t, mode)), rng)


def xavier_uniform_(t: Tensor, gain: float = 1.0, rng: Any = None) -> Tensor:
    """Glorot initialization: ``U(-b, b)`` with ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(t.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, rng)


def xavier_normal_(t: Tensor, gain: float = 1.0, rng: Any = None) -> Tensor:
    fan_in, fan_out = fans(t.shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _fan(t: Tensor, mode: str) -> int:
    fan_in, fan_out = fans(t.shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")


def init_weight(t: Tensor, scheme: str, nonlinearity: str, rng: Optional[np.random.Generator]) -> Tensor:
    """Fill a weight by scheme name: ``"kaiming"`` (He, uniform) or ``"xavier"`` (Glorot, uniform)."""
    if scheme == "kaiming":
        return kaiming_uniform_(t, nonlinearity, rng=rng)
    if scheme == "xavier":
        return xavier_uniform_(t, calculate_gain(nonlinearity), rng=rng)
    raise ValueError(f"init: unknown scheme {scheme!r}; choose 'kaiming' or 'xavier'")
