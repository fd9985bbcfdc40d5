"""The cyclic garbage collector waits while a graph is recorded.

Every recorded operation makes one tensor, and CPython's cyclic collector runs a
pass each time 700 more container objects exist than before: a scalar graph of
65,000 operations sets off about 90 young and a few full collections, each of
which walks the graph built so far (issue 15 measured 40% of a micrograd-style
training step).  chainrule's graphs hold no reference cycles (a node refers to
its inputs, never the other way), so reference counting frees them and those
passes find nothing.

So the first operation recorded after a backward raises the collector's first
threshold to :data:`THRESHOLD`, and the thresholds it found come back at the end
of the next ``backward()`` (or ``cr.grad``), or as soon as that first node is
freed (a graph dropped without a backward: an evaluation loop that forgot
``no_grad()``), whichever comes first.  Collections still happen meanwhile, once
per :data:`THRESHOLD` new objects instead of 700, so cycles made by other code
are still collected; a collector the user switched off (``gc.disable()``) or
tuned to a threshold at or above :data:`THRESHOLD` is left as it is, and so is
one the user re-tuned while the graph was alive.

``chainrule.collector.PAUSE = False`` turns this off.
"""

from __future__ import annotations

import gc
import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any, Optional

PAUSE = True
THRESHOLD = 100_000

_lock = threading.Lock()
_saved: list = []  # (pause number, the thresholds found when it began); empty when no pause is in force
_numbers = itertools.count(1)


def pause(first: Any = None, on_free: Optional[Callable[[], None]] = None) -> None:
    """Raise the first collector threshold while a graph is being recorded (see the module docstring).

    ``first`` is the graph's first node: when it is freed, this pause ends (and ``on_free`` runs).
    """
    if not PAUSE or _saved:
        return
    with _lock:
        if _saved:
            return
        found = gc.get_threshold()
        if not (gc.isenabled() and 0 < found[0] < THRESHOLD):
            return
        number = next(_numbers)
        _saved.append((number, found))
        gc.set_threshold(THRESHOLD, *found[1:])
    if first is not None:
        weakref.finalize(first, _freed, number, on_free)


def _freed(number: int, on_free: Optional[Callable[[], None]]) -> None:
    if _saved and _saved[0][0] == number:  # this graph's pause, not a later graph's
        resume()
        if on_free is not None:
            on_free()


def resume() -> None:
    """Put back the thresholds :func:`pause` found (unless someone re-tuned the collector since)."""
    if not _saved:
        return
    with _lock:
        if _saved:
            _, found = _saved.pop()
            if gc.get_threshold()[0] == THRESHOLD:
                gc.set_threshold(*found)


def paused() -> bool:
    """Whether a pause is in force now."""
    return bool(_saved)
