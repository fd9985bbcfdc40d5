"""The compiled function: a small cache of schedules, one per signature, and the replay of one.

A call whose signature (see :mod:`.guards`) has a cached schedule, and whose guarded state
still holds, runs that schedule; any other call traces (:mod:`.tracer`) and writes a new
schedule (:mod:`.schedule`).  The last ``cache_size`` schedules are kept.
"""

from __future__ import annotations

import functools
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Optional

from ..autodiff import TRACING
from ..grad_mode import MODE
from ..tensor import Tensor
from .errors import CompileError
from .guards import indices_match, leaf_state, module_state, signature, state_matches
from .tracer import TRACE_LOCK, trace


class Entry:
    """One cached schedule and what it assumes."""

    __slots__ = (
        "replay",
        "source",
        "leaves",
        "leaf_guard",
        "grad_guard",
        "index_guard",
        "events",
        "out_spec",
        "module_guard",
        "lock",
    )


class Compiled:
    """A function traced once per signature and replayed from its schedule (see :func:`compile`)."""

    def __init__(self, fn: Callable, cache_size: int = 8) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        if cache_size < 1:
            raise ValueError(f"compile: cache_size must be at least 1, got {cache_size}")
        self.fn = fn
        self.cache_size = cache_size
        self.cache: OrderedDict = OrderedDict()
        self.traces = 0  # how many times the function was traced
        self.replays = 0
        self._last: Optional[Entry] = None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<cr.compile of {getattr(self.fn, '__qualname__', self.fn)}: {len(self.cache)} traces cached>"

    def __get__(self, obj: Any, owner: Any = None) -> Any:  # decorating a method
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not MODE.enabled or MODE.anomaly or TRACING.tracer is not None:
            return self.fn(*args, **kwargs)
        key = signature(self.fn, args, kwargs)
        entry = self.cache.get(key)
        if entry is not None:
            values = list(args) + [kwargs[k] for k in sorted(kwargs)]
            if state_matches(entry) and indices_match(entry, values):
                self.cache.move_to_end(key)
                return self._replay(entry, values, args, kwargs)
        return self._trace(key, args, kwargs)

    def _replay(self, entry: Entry, values: list, args: tuple, kwargs: dict) -> Any:
        raw = [a._data if type(a) is Tensor else a for a in values]
        ran = [False]
        events = [_flagged(f, ran) for f in entry.events]
        lock = entry.lock
        if lock is not None and not lock.acquire(blocking=False):
            return self.fn(*args, **kwargs)  # the buffers are in use (another thread, or a call from a hook)
        try:
            outs = entry.replay(values, raw, entry.leaves, events)
        except (ArithmeticError, ValueError):
            if ran[0]:
                raise
            return self.fn(*args, **kwargs)  # math-domain trouble on floats: eager has the IEEE fallbacks
        finally:
            if lock is not None:
                lock.release()
        self.replays += 1
        return _build(entry.out_spec, outs, values)

    def _trace(self, key: tuple, args: tuple, kwargs: dict) -> Any:
        from .schedule import generate

        with TRACE_LOCK:
            values = list(args) + [kwargs[k] for k in sorted(kwargs)]
            tracer, result, fresh = trace(self.fn, args, kwargs, values)
            spec, out_tensors = _spec(result, values)
            tracer.see(out_tensors)
            schedule = generate(tracer, values, fresh, out_tensors)
            entry = Entry()
            entry.replay = schedule.replay
            entry.source = schedule.source
            entry.leaves = schedule.leaves
            entry.leaf_guard = [leaf_state(t) for t in schedule.leaves]
            entry.events = schedule.events
            entry.grad_guard = list(tracer.grad_guard)
            entry.module_guard = [(m, module_state(m)) for m in tracer.modules.values()]
            entry.index_guard = schedule.index_guard
            entry.out_spec = spec
            entry.lock = threading.Lock() if schedule.holds_buffers else None
            self.traces += 1
            self.cache[key] = entry
            self.cache.move_to_end(key)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
            self._last = entry
            return _detach(result)

    def code(self) -> str:
        """The schedule of the most recent trace, as Python source."""
        if self._last is None:
            raise RuntimeError("compile: nothing traced yet; call the compiled function once first")
        return self._last.source


def _flagged(f: Callable, ran: list) -> Callable:
    def go(*values: Any) -> Any:  # an update of buffers gets this replay's values (running statistics)
        ran[0] = True
        return f(*values)

    return go


def _spec(result: Any, values: list) -> tuple[Any, list[Tensor]]:
    """How to rebuild the function's return value from the replay's outputs."""
    outs: list[Tensor] = []

    def one(r: Any) -> Any:
        if r is None:
            return ("none",)
        if type(r) is Tensor:
            for j, a in enumerate(values):
                if a is r:
                    return ("arg", j)
            outs.append(r)
            return ("tensor", len(outs) - 1)
        if type(r) in (tuple, list):
            return (type(r).__name__, [one(x) for x in r])
        raise CompileError(
            f"compile: the function returned a {type(r).__name__}; a compiled function returns tensors "
            "(or tuples / lists of them, or None): return the loss tensor and call .item() outside"
        )

    return one(result), outs


def _detach(r: Any) -> Any:
    if type(r) is Tensor and r._node is not None:
        return Tensor(r._data)
    if type(r) in (tuple, list):
        return type(r)(_detach(x) for x in r)
    return r


def _build(spec: Any, outs: list, values: list) -> Any:
    kind = spec[0]
    if kind == "none":
        return None
    if kind == "arg":
        return values[spec[1]]
    if kind == "tensor":
        o = outs[spec[1]]
        return o if type(o) is Tensor else Tensor(o)
    items = [_build(s, outs, values) for s in spec[1]]
    return tuple(items) if kind == "tuple" else items


def compile(fn: Optional[Callable] = None, *, cache_size: int = 8) -> Any:  # noqa: A001  (cr.compile, as torch.compile)
    """Trace ``fn`` once per signature and replay later calls from the recorded schedule.

    Use as ``step = cr.compile(step)`` or as a decorator (``@cr.compile`` or
    ``@cr.compile(cache_size=4)``).  See :mod:`chainrule.compile` for what is guarded
    and what is refused; ``step.code()`` prints the schedule.
    """
    if fn is None:
        return lambda f: Compiled(f, cache_size)
    return Compiled(fn, cache_size)
