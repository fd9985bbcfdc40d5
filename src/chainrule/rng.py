"""The default random generator: what ``cr.manual_seed`` resets and every ``rng=None`` draws from."""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

_DEFAULT = np.random.default_rng(0)


class _Refusal(threading.local):
    """Set (per thread) while ``cr.vmap`` traces a function: random draws and in-place writes are refused."""

    reason: Optional[str] = None


REFUSE = _Refusal()


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator layers draw from (like ``torch.manual_seed``); returns it."""
    global _DEFAULT
    _DEFAULT = np.random.default_rng(seed)
    return _DEFAULT


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
