"""Minibatches the torch way: ``Dataset``, ``TensorDataset``, ``Subset``, ``random_split`` and ``DataLoader``.

>>> import numpy as np, chainrule as cr
>>> ds = cr.data.TensorDataset(cr.tensor(np.arange(10.0).reshape(5, 2)), cr.tensor(np.arange(5)))
>>> [tuple(x.shape) for x, y in cr.data.DataLoader(ds, batch_size=2)]
[(2, 2), (2, 2), (1, 2)]

Shuffling draws from a NumPy generator: ``generator=`` (a ``numpy.random.Generator``
or an int seed), else the default generator that ``cr.manual_seed`` resets, so a
seeded run gives the same batches every time.  Loading happens in the calling
process: ``num_workers`` and ``pin_memory`` are accepted and have no effect on
the batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Base class: define ``__getitem__(i)`` and ``__len__()``."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")


def _rows(x: Any) -> int:
    return len(x) if not isinstance(x, Tensor) else (x.shape[0] if x.ndim else 0)


class TensorDataset(Dataset):
    """Rows of tensors (or arrays) of equal length: item ``i`` is ``tuple(t[i] for t in tensors)``."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        ts = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors]
        for t in ts:
            if t.ndim == 0:
                raise ValueError("TensorDataset: every tensor needs a first dimension to index rows, got a 0-d one")
        sizes = [t.shape[0] for t in ts]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: all tensors must have the same first dimension, got sizes {sizes}")
        self.tensors = tuple(ts)

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(int(i) for i in indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def _generator(generator: Any) -> np.random.Generator:
    from ..nn.init import get_rng

    try:
        return get_rng(generator)
    except TypeError:
        raise TypeError(
            f"generator: expected None, an int seed or a numpy.random.Generator, got {type(generator).__name__} "
            "(chainrule shuffles with NumPy generators, not torch.Generator)"
        ) from None


def random_split(dataset: Any, lengths: Sequence[float], generator: Any = None) -> list[Subset]:
    """Split into non-overlapping random subsets of the given lengths (or fractions summing to 1, as torch)."""
    n = len(dataset)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1.0) and sum(lengths) != n:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # the remainder goes round-robin, as torch
            counts[i % len(counts)] += 1
    else:
        counts = [int(k) for k in lengths]
    if sum(counts) != n or any(k < 0 for k in counts):
        raise ValueError(f"random_split: lengths {list(lengths)} do not add up to the dataset's {n} items")
    order = _generator(generator).permutation(n)
    out, at = [], 0
    for k in counts:
        out.append(Subset(dataset, order[at : at + k]))
        at += k
    return out


def default_collate(batch: list[Any]) -> Any:
    """Stack a list of items into a batch: tensors, arrays and numbers become one tensor with a new first axis;
    tuples and lists (collated entry by entry) become lists, dicts stay dicts, as in torch."""
    first = batch[0]
    if isinstance(first, Tensor):
        from ..ops import stack

        return stack(batch, 0)
    if isinstance(first, (np.ndarray, np.generic, bool, int, float)):
        arr = np.stack([np.asarray(b) for b in batch])
        if arr.dtype.kind == "i":
            arr = arr.astype(np.int64)  # torch collates Python ints to int64
        return Tensor(arr)
    if isinstance(first, Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise ValueError("default_collate: items of a batch have different lengths")
        columns = [default_collate(list(col)) for col in zip(*batch)]
        if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple keeps its type
            return type(first)(*columns)
        return columns  # tuples and lists both become lists, as torch's default_collate does
    if isinstance(first, str):
        return list(batch)
    raise TypeError(f"default_collate: cannot batch items of type {type(first).__name__}; pass collate_fn=")


class DataLoader:
    """Iterate over ``dataset`` in minibatches.

    ``batch_size`` items per batch (``None``: single items, not collated);
    ``shuffle`` draws a new order each epoch from ``generator``; ``drop_last``
    drops a final incomplete batch.  A :class:`TensorDataset` is sliced a whole
    batch at a time (one fancy index per tensor); other datasets are read item
    by item and joined by ``collate_fn`` (default: :func:`default_collate`).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: Optional[int] = 1,
        shuffle: bool = False,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Optional[Callable[[list[Any]], Any]] = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Any = None,
        generator: Any = None,
        **kwargs: Any,
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None, got {batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be a non-negative integer, got {num_workers!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive (as in torch)")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError(
                "DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, sampler, drop_last"
            )
        unknown = set(kwargs) - {"prefetch_factor", "persistent_workers", "pin_memory_device", "in_order"}
        if unknown:
            raise TypeError(f"DataLoader: unexpected arguments {sorted(unknown)}")
        try:
            len(dataset)
        except TypeError:
            raise TypeError(
                f"DataLoader: the dataset must define __len__ and __getitem__, got {type(dataset).__name__}"
            ) from None
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = bool(drop_last)
        self.generator = _generator(generator)

    def _order(self) -> list[int] | np.ndarray:
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def _batches(self) -> Iterator[Any]:
        if self.batch_sampler is not None:
            yield from self.batch_sampler
            return
        order = self._order()
        if self.batch_size is None:
            yield from order
            return
        bs = self.batch_size
        stop = (len(order) // bs) * bs if self.drop_last else len(order)
        for start in range(0, stop, bs):
            yield order[start : start + bs]

    def __iter__(self) -> Iterator[Any]:
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is None
        for idx in self._batches():
            if self.batch_size is None and self.batch_sampler is None:
                item = self.dataset[int(idx)]
                yield item if self.collate_fn is None else self.collate_fn(item)
            elif fast:
                yield list(self.dataset[np.asarray(idx, dtype=np.int64)])
            else:
                items = [self.dataset[int(i)] for i in idx]
                yield (self.collate_fn or default_collate)(items)

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
