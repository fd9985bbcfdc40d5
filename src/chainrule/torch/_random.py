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


def _values(x: Any) -> np.ndarray:
    return np.asarray(x._data if isinstance(x, Tensor) else x)


def normal(
    mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Any = None, dtype: Any = None, **_: Any
) -> Tensor:
    """``torch.normal``: a draw from N(mean, std²) elementwise (tensors) or of ``size`` (numbers)."""
    fn = _provided("normal")
    if fn is not None:
        return fn(mean, std, size, generator=generator)
    m, s = _values(mean), _values(std)
    shape = tuple(size) if size is not None else np.broadcast_shapes(m.shape, s.shape)
    float_in = [v.dtype for v in (m, s) if v.dtype.kind == "f" and v.ndim]
    out_dtype = dtype or (float_in[0] if float_in else np.float32)
    return Tensor((m + s * _numpy(generator).standard_normal(shape)).astype(out_dtype))


def bernoulli(input: Any, p: Any = None, *, generator: Any = None, **_: Any) -> Tensor:  # noqa: A002
    """``torch.bernoulli``: 1 with probability ``input`` (or ``p``), else 0, in ``input``'s dtype."""
    fn = _provided("bernoulli")
    if fn is not None:
        return fn(input, p, generator=generator)
    probs = _values(input) if p is None else np.broadcast_to(np.asarray(p), _values(input).shape)
    if probs.size and (probs.min() < 0 or probs.max() > 1):
        raise RuntimeError("bernoulli: probabilities must lie in [0, 1]")
    draw = _numpy(generator).random(probs.shape) < probs
    return Tensor(draw.astype(_values(input).dtype))


def multinomial(input: Any, num_samples: int, replacement: bool = False, *, generator: Any = None, **_: Any) -> Tensor:  # noqa: A002
    """``torch.multinomial``: ``num_samples`` category indices per row of weights ``input``."""
    fn = _provided("multinomial")
    if fn is not None:
        return fn(input, num_samples, replacement, generator=generator)
    w = _values(input).astype(np.float64)
    if w.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {w.shape}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise RuntimeError("multinomial: probabilities must be finite and non-negative")
    rows = w.reshape(-1, w.shape[-1])
    if (rows.sum(-1) <= 0).any():
        raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > rows.shape[-1]:
        raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    g = _numpy(generator)
    out = np.stack([g.choice(rows.shape[-1], num_samples, replace=replacement, p=r / r.sum()) for r in rows])
    return Tensor(out.reshape(w.shape[:-1] + (num_samples,)).astype(np.int64))


def _passthrough(name: str) -> Any:
    return _provided(name) or _missing(name)


poisson = _passthrough("poisson")
