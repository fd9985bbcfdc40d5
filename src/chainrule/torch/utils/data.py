"""``torch.utils.data``: chainrule's datasets and loader under torch's names, shuffled with torch's streams.

A ``DataLoader`` draws as torch's does: each ``iter(loader)`` first takes the loader's base seed (one int64
draw from ``generator`` or the default generator), then with ``shuffle=True`` its ``RandomSampler`` orders
the epoch (a fresh generator seeded from the default one, ``randperm(n)``; or ``randperm`` from
``generator``). ``random_split`` orders by ``randperm(n, generator=generator)``. So after
``torch.manual_seed(s)`` the batches come in torch's order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ...data import loader as _loader
from ...torch_names import module_getattr
from ...utils.data import Dataset, Subset, TensorDataset, default_collate  # noqa: F401
from .. import _random


class DataLoader(_loader.DataLoader):
    """torch.utils.data.DataLoader (single process): torch's base-seed draw and shuffled order."""

    def __init__(self, dataset: Any, *args: Any, generator: Any = None, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        self.generator = _random._gen(generator, "DataLoader")

    def _order(self) -> list[int] | np.ndarray:
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        return _random.sampler_order(n, self.generator) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[Any]:
        _random.base_seed(self.generator)  # torch draws it when the iterator is made, before any batch
        return super().__iter__()


def random_split(dataset: Any, lengths: Sequence[float], generator: Any = None) -> list[Subset]:
    """Non-overlapping random subsets of the given lengths (or fractions), in torch's order."""
    n = len(dataset)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1.0) and sum(lengths) != n:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # the remainder goes round-robin, as torch
            counts[i % len(counts)] += 1
    else:
        counts = [int(k) for k in lengths]
    if sum(counts) != n or any(k < 0 for k in counts):
        raise ValueError(f"random_split: lengths {list(lengths)} do not add up to the dataset's {n} items")
    order = _random.split_order(n, generator)
    out, at = [], 0
    for k in counts:
        out.append(Subset(dataset, order[at : at + k]))
        at += k
    return out


__getattr__ = module_getattr("torch.utils.data")
