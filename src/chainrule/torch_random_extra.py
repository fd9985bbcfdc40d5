"""torch's rarer CPU draws, bit for bit: ``cauchy_``, ``log_normal_``, ``geometric_``, and a DataLoader's shuffle.

Each is one double-precision uniform (or torch's cached-pair double normal)
through a C-library function, as in torch's ``DistributionsHelper.h``; see
:mod:`chainrule.torch_random` for the generator and the common draws.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import torch_random as tr
from chainrule import torch_random_math as _m

__all__ = ["cauchy_", "log_normal_", "geometric_", "random_sampler_indices", "dataloader_base_seed"]


def cauchy_(
    shape: Any, median: float = 0.0, sigma: float = 1.0, *, generator: tr.Generator | None = None, dtype: Any = None
) -> np.ndarray:
    """``Tensor.cauchy_(median, sigma)``: ``median + sigma * tan(pi * (u - 0.5))`` in double, then cast."""
    shp = tr._shape(shape, "cauchy_")
    dt = tr._float_dtype(dtype, "cauchy_")
    u = tr._uniform01(tr._gen(generator, "cauchy_"), math.prod(shp), np.float64)
    t = _m._map(math.tan, math.pi * (u - 0.5), np.float64)
    if tr.cpu_capability() == "default":
        out = median + sigma * t
    else:  # the AVX2 build fuses the multiply-add
        out = _m.fma(t, np.full_like(t, sigma), np.full_like(t, median))
    return out.astype(dt).reshape(shp)


def log_normal_(
    shape: Any, mean: float = 1.0, std: float = 2.0, *, generator: tr.Generator | None = None, dtype: Any = None
) -> np.ndarray:
    """``Tensor.log_normal_(mean, std)``: ``exp`` of torch's one-at-a-time double normal (cached pairs)."""
    shp = tr._shape(shape, "log_normal_")
    dt = tr._float_dtype(dtype, "log_normal_")
    if not std > 0:
        raise ValueError(f"log_normal_ expects std > 0.0, but found std={std}")
    z = tr._normal_scalar(tr._gen(generator, "log_normal_"), math.prod(shp), float(mean), float(std))
    return _m._map(math.exp, z, np.float64).astype(dt).reshape(shp)


def geometric_(shape: Any, p: float, *, generator: tr.Generator | None = None, dtype: Any = None) -> np.ndarray:
    """``Tensor.geometric_(p)``: ``ceil(log(u) / log1p(-p))`` with a 53-bit uniform u (float32 result by default)."""
    shp = tr._shape(shape, "geometric_")
    if not 0 < p < 1:
        raise ValueError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    u = tr._uniform01(tr._gen(generator, "geometric_"), math.prod(shp), np.float64)
    logs = _m._map(math.log, u, np.float64) if u.size else u
    values = np.ceil(logs / math.log1p(-p))
    name = "float32" if dtype is None else tr._dtype_name(dtype)
    return values.astype(np.dtype(name)).reshape(shp)


def random_sampler_indices(
    n: int, num_samples: int | None = None, replacement: bool = False, *, generator: tr.Generator | None = None
) -> list[int]:
    """The indices one pass of ``torch.utils.data.RandomSampler(range(n))`` yields, drawn as torch draws them.

    Without a generator torch first takes a 63-bit seed from the default generator and
    seeds a fresh ``Generator`` with it; then ``randperm(n)`` (or ``randint`` in chunks
    of 32 with replacement).
    """
    total = n if num_samples is None else int(num_samples)
    if generator is None:
        seed_value = int(tr.random_((), dtype="int64")[()])
        g = tr.Generator().manual_seed(seed_value)
    else:
        g = tr._gen(generator, "RandomSampler")
    out: list[int] = []
    if replacement:
        for _ in range(total // 32):
            out += tr.randint(0, n, (32,), generator=g).tolist()
        out += tr.randint(0, n, (total % 32,), generator=g).tolist()
        return out
    for _ in range(total // n):
        out += tr.randperm(n, generator=g).tolist()
    out += tr.randperm(n, generator=g).tolist()[: total % n]
    return out


def dataloader_base_seed(generator: tr.Generator | None = None) -> int:
    """The ``_base_seed`` every ``iter(DataLoader)`` draws (one int64 ``random_()``) before any batch."""
    return int(tr.random_((), dtype="int64", generator=generator)[()])
