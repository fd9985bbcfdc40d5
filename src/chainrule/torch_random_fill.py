"""torch's in-place draws (``uniform_``, ``normal_``, ``bernoulli_``, ``exponential_``, ``random_``) into an array.

:mod:`chainrule.torch_random` gives the values torch writes, in the order torch visits
memory; this module places them into an existing NumPy array (a tensor's storage) the
way torch does: a C-contiguous array in order, a permuted one (``w.t()``) along its
dimensions sorted by stride, largest first. ``normal_`` on a non-contiguous array takes
torch's one-at-a-time path. Arrays whose elements overlap (a zero stride over a
dimension longer than 1) are refused, as torch refuses to write into them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import torch_random as tr

__all__ = ["FILLS", "fill_values"]

FILLS = ("uniform_", "normal_", "bernoulli_", "exponential_", "random_")


def _memory_order(arr: np.ndarray, where: str) -> tuple[int, ...]:
    """The permutation of ``arr``'s axes that visits its memory in increasing address order."""
    for size, stride in zip(arr.shape, arr.strides):
        if size > 1 and stride == 0:
            raise RuntimeError(
                f"{where}: unsupported operation: the tensor of shape {arr.shape} has overlapping memory (an "
                "expanded/broadcast view); torch refuses to write into it too. Call .clone() first"
            )
    if arr.flags.c_contiguous:
        return tuple(range(arr.ndim))
    keys = [(-abs(stride) if size > 1 else 0, axis) for axis, (size, stride) in enumerate(zip(arr.shape, arr.strides))]
    return tuple(axis for _, axis in sorted(keys))


def fill_values(arr: np.ndarray, name: str, args: tuple, kwargs: dict, generator: tr.Generator | None) -> np.ndarray:
    """The values torch's ``Tensor.<name>(*args, **kwargs)`` writes into a tensor laid out as ``arr``.

    Returns an array of ``arr``'s shape and dtype; the caller writes it in (``arr[...] = values``).
    """
    if name not in FILLS:
        raise ValueError(f"fill_values: unknown in-place draw {name!r}; one of {FILLS}")
    arr = np.asarray(arr)
    where = f"Tensor.{name}"
    order = _memory_order(arr, where)
    shape = tuple(arr.shape[a] for a in order)
    dtype = arr.dtype
    kw = dict(kwargs)
    if name == "uniform_":
        a = kw.pop("from", kw.pop("a", args[0] if len(args) > 0 else 0.0))
        b = kw.pop("to", kw.pop("b", args[1] if len(args) > 1 else 1.0))
        _no_more(kw, args, 2, where)
        values = tr.uniform_(shape, float(a), float(b), generator=generator, dtype=dtype)
    elif name == "normal_":
        mean = kw.pop("mean", args[0] if len(args) > 0 else 0.0)
        std = kw.pop("std", args[1] if len(args) > 1 else 1.0)
        _no_more(kw, args, 2, where)
        contiguous = bool(arr.flags.c_contiguous)
        values = tr.normal_(shape, float(mean), float(std), generator=generator, dtype=dtype, contiguous=contiguous)
    elif name == "bernoulli_":
        p = kw.pop("p", args[0] if len(args) > 0 else 0.5)
        _no_more(kw, args, 1, where)
        if not isinstance(p, (int, float, np.integer, np.floating)):
            p = np.asarray(getattr(p, "_data", p))
            if p.ndim:
                p = np.broadcast_to(p, arr.shape).transpose(order)
        values = tr.bernoulli_(shape, p, generator=generator, dtype=dtype)
    elif name == "exponential_":
        lambd = kw.pop("lambd", args[0] if len(args) > 0 else 1.0)
        _no_more(kw, args, 1, where)
        values = tr.exponential_(shape, float(lambd), generator=generator, dtype=dtype)
    else:
        frm = kw.pop("from_", kw.pop("from", args[0] if len(args) > 0 else None))
        to = kw.pop("to", args[1] if len(args) > 1 else None)
        _no_more(kw, args, 2, where)
        values = tr.random_(shape, frm, to, generator=generator, dtype=dtype)
    inverse = np.argsort(order)
    return np.asarray(values, dtype=dtype).transpose(inverse)


def _no_more(kw: dict, args: tuple, most: int, where: str) -> None:
    if kw or len(args) > most:
        raise TypeError(f"{where}: unexpected arguments {args[most:]!r} {sorted(kw)}; see torch's signature")


def is_torch_generator(generator: Any) -> bool:
    """Whether ``generator`` is one of torch's streams (``chainrule.torch.Generator``)."""
    return isinstance(generator, tr.Generator)
