"""The one place chainrule.torch takes its random numbers from.

torch's own streams (a Mersenne Twister with torch's transforms) come from ``chainrule.torch_random``
when that module is present: ``Generator``, ``manual_seed``, ``seed``, ``initial_seed``,
``get_rng_state``, ``set_rng_state`` and the draws below.  Until then the draws fall back to
chainrule's NumPy generator (``cr.manual_seed`` seeds it): the same distributions, not torch's
numbers, and ``Generator`` / ``get_rng_state`` raise a clear ``NotImplementedError``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .. import rng as _cr_rng
from ..tensor import Tensor
from ..torch_names import NotSupportedError
from ..versions import mark_modified

try:  # the torch-exact streams, built separately (issue 25, item 3)
    _TR: Any = importlib.import_module("chainrule.torch_random")
except ImportError:
    _TR = None

TORCH_STREAMS = _TR is not None


def _provided(name: str) -> Any:
    return getattr(_TR, name, None) if _TR is not None else None


def _missing(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(
            f"torch.{name} is not available yet: chainrule.torch's torch-exact random streams "
            "(chainrule.torch_random) are not installed in this build; use torch.manual_seed(s) or "
            "cr.manual_seed(s) to seed chainrule's NumPy generator"
        )

    refuse.__name__ = name
    return refuse


def manual_seed(seed: int) -> Any:
    """Seed the default generator: torch's stream when available, else chainrule's NumPy one."""
    fn = _provided("manual_seed")
    if fn is not None:
        return fn(seed)
    return _cr_rng.manual_seed(int(seed))


Generator = _provided("Generator") or _missing("Generator")
seed = _provided("seed") or _missing("seed")
initial_seed = _provided("initial_seed") or _missing("initial_seed")
get_rng_state = _provided("get_rng_state") or _missing("get_rng_state")
set_rng_state = _provided("set_rng_state") or _missing("set_rng_state")


def _numpy(generator: Any) -> np.random.Generator:
    if generator is not None:
        raise NotSupportedError(
            "generator=: torch.Generator objects need chainrule.torch_random (torch's streams), which this "
            "build lacks; leave generator out and seed with torch.manual_seed(s)"
        )
    return _cr_rng.get_rng(None)


def _made(arr: np.ndarray, requires_grad: bool) -> Tensor:
    return Tensor(arr, requires_grad) if requires_grad else Tensor(arr)


def rand(size: tuple, generator: Any, dtype: np.dtype, requires_grad: bool = False) -> Tensor:
    fn = _provided("rand")
    if fn is not None:
        return fn(*size, generator=generator, dtype=dtype, requires_grad=requires_grad)
    return _made(_numpy(generator).random(tuple(size)).astype(dtype), requires_grad)


def randn(size: tuple, generator: Any, dtype: np.dtype, requires_grad: bool = False) -> Tensor:
    fn = _provided("randn")
    if fn is not None:
        return fn(*size, generator=generator, dtype=dtype, requires_grad=requires_grad)
    return _made(_numpy(generator).standard_normal(tuple(size)).astype(dtype), requires_grad)


def randint(low: int, high: int, size: tuple, generator: Any, dtype: np.dtype) -> Tensor:
    fn = _provided("randint")
    if fn is not None:
        return fn(low, high, size, generator=generator, dtype=dtype)
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low} and high={high}")
    return Tensor(_numpy(generator).integers(low, high, size=tuple(size)).astype(dtype))


def randperm(n: int, generator: Any, dtype: np.dtype) -> Tensor:
    fn = _provided("randperm")
    if fn is not None:
        return fn(n, generator=generator, dtype=dtype)
    return Tensor(_numpy(generator).permutation(n).astype(dtype))


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    if type(t._data) is float:
        t._data = float(values)
    else:
        t._data[...] = values
    mark_modified(t)
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fill ``t`` (in place, no graph) from U(a, b)."""
    fn = _provided("uniform_")
    if fn is not None:
        return fn(t, a, b, generator=generator)
    return _fill(t, _numpy(generator).uniform(a, b, size=t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fill ``t`` (in place, no graph) from N(mean, std²)."""
    fn = _provided("normal_")
    if fn is not None:
        return fn(t, mean, std, generator=generator)
    return _fill(t, _numpy(generator).normal(mean, std, size=t.shape))


def _passthrough(name: str) -> Any:
    return _provided(name) or _missing(name)


normal = _passthrough("normal")
bernoulli = _passthrough("bernoulli")
multinomial = _passthrough("multinomial")
poisson = _passthrough("poisson")
