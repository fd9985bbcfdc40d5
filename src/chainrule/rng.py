"""The default random generator: what ``cr.manual_seed`` resets and every ``rng=None`` draws from."""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from . import torch_random as tr
from .torch_random_fill import fill_values

_DEFAULT = np.random.default_rng(0)


class _Refusal(threading.local):
    """Set (per thread) while ``cr.vmap`` traces a function: random draws and in-place writes are refused."""

    reason: Optional[str] = None


REFUSE = _Refusal()


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator layers draw from (like ``torch.manual_seed``); returns it."""
    global _DEFAULT
    _DEFAULT = np.random.default_rng(seed)
    STREAM.torch = False
    return _DEFAULT


class _Stream:
    """Which stream a tensor's in-place draw (``t.uniform_()``, ``w.data.normal_()``) takes without ``generator=``.

    ``cr.manual_seed`` chooses chainrule's NumPy generator (the start); ``chainrule.torch.manual_seed``
    chooses torch's default stream (:mod:`chainrule.torch_random`), so a seeded torch program fills as torch.
    """

    torch: bool = False


STREAM = _Stream()


def torch_stream(generator: Any) -> Any:
    """The torch generator an in-place draw uses, or None for chainrule's NumPy generator."""
    if generator is None:
        return tr.default_generator if STREAM.torch else None
    return generator if isinstance(generator, tr.Generator) else None


def draw_into(arr: np.ndarray, name: str, args: tuple, kwargs: dict, generator: Any) -> Optional[np.ndarray]:
    """torch's values for ``Tensor.<name>(*args)`` on ``arr`` when a torch stream applies, else None."""
    g = torch_stream(generator)
    if g is None:
        return None
    get_rng(None)  # refuses under vmap, as every draw does
    return fill_values(arr, name, args, kwargs, g)


def get_rng(rng: Any = None) -> np.random.Generator:
    """``rng`` as a Generator: the default one for ``None``, a fresh seeded one for an int."""
    if REFUSE.reason is not None:
        raise RuntimeError(
            f"{REFUSE.reason}: random operations (dropout, randn, rand, normal_ ...) are not supported under vmap "
            "(as torch.func.vmap's default randomness='error'); draw the random values outside and pass them in"
        )
    if rng is None:
        return _DEFAULT
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng: expected None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")
