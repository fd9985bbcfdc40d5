"""Grad mode, per thread: whether operations are recorded (``no_grad``, ``enable_grad``, ``inference_mode``), the
anomaly switch, and the rare cases the recorders hand to ``_record_hook``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from . import collector


class _Mode(threading.local):
    """Per-thread switches read on every operation.

    ``record`` folds the switches into the one value the hot path reads:
    0 (grad mode off), 1 (recording), 2 (recording with anomaly checks), 3 (recording;
    the next node recorded pauses the cyclic collector, see :mod:`chainrule.collector`).
    Change the switches only through :func:`set_grad_enabled` / :func:`set_anomaly_enabled`.
    """

    enabled = True  # grad mode: record the graph
    in_backward = 0  # inside backward() or autograd.grad (retain_grad fills .grad only then)
    anomaly = False  # detect_anomaly: check values and remember source lines
    gc_pending = True  # the next recorded node should pause the collector (until the next backward)
    record = 3
    observer: Any = None  # told of value reads (.data, item(), ...) while cr.compile traces this thread
    batch: Any = None  # cr.vmap's tracer in this thread: told of values computed off the graph (comparisons ...)


MODE = _Mode()


class _Depth(threading.local):
    """How many function transforms (grad, jacfwd, vmap ...) are evaluating their function in this thread."""

    value = 0


TRANSFORM_DEPTH = _Depth()  # (chainrule.transforms counts it; cr.vmap reads it)


def _refresh() -> None:
    MODE.record = (2 if MODE.anomaly else 3 if MODE.gc_pending else 1) if MODE.enabled else 0


def _record_hook(t: Any, record: int) -> None:
    """The rare cases of recording a node: anomaly checks (2), or the first node since a backward (3)."""
    if record == 2:
        _anomaly_hook(t)
    else:
        MODE.gc_pending = False
        _refresh()
        collector.pause(t, _pause_again)


def _pause_again() -> None:
    """The graph that paused the collector was freed without a backward: the next node recorded pauses it again."""
    if not MODE.gc_pending:
        MODE.gc_pending = True
        _refresh()


def graph_done() -> None:
    """A backward finished: the collector's thresholds go back, and the next node recorded pauses it again."""
    collector.resume()
    if not MODE.gc_pending:
        MODE.gc_pending = True
        _refresh()


def set_grad_enabled(flag: bool) -> None:
    """Turn recording on or off in this thread."""
    MODE.enabled = bool(flag)
    _refresh()


def set_anomaly_enabled(flag: bool) -> None:
    """Turn anomaly checks on or off in this thread (see ``cr.detect_anomaly``)."""
    MODE.anomaly = bool(flag)
    _refresh()


def is_grad_enabled() -> bool:
    """Whether operations in this thread are being recorded."""
    return MODE.enabled


class _GradModeSwitch:
    """Base of no_grad / enable_grad: a context manager and a decorator."""

    _target = True

    def __init__(self) -> None:
        self._local = threading.local()  # one instance may be entered by several threads

    def __enter__(self) -> None:
        stack = self._local.__dict__.setdefault("saved", [])
        stack.append(MODE.enabled)
        set_grad_enabled(self._target)

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self._local.saved.pop())

    def __call__(self, fn: Callable) -> Callable:
        import functools

        target = self._target

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            saved = MODE.enabled
            set_grad_enabled(target)
            try:
                return fn(*args, **kwargs)
            finally:
                set_grad_enabled(saved)

        return wrapper


class no_grad(_GradModeSwitch):
    """Stop recording operations (in this thread): ``with cr.no_grad(): ...`` or ``@cr.no_grad()``."""

    _target = False


class inference_mode(_GradModeSwitch):
    """torch's ``inference_mode``: here the same as ``no_grad`` (nothing is recorded).

    ``cr.inference_mode(False)`` leaves grad mode as it is.
    """

    _target = False

    def __init__(self, mode: bool = True) -> None:
        super().__init__()
        self._mode = bool(mode)

    def __enter__(self) -> None:
        stack = self._local.__dict__.setdefault("saved", [])
        stack.append(MODE.enabled)
        if self._mode:
            set_grad_enabled(False)


class grad_enabled:
    """torch's ``set_grad_enabled(flag)``: switches grad mode at once; as a context manager, restores it after."""

    def __init__(self, mode: bool) -> None:
        self._saved = MODE.enabled
        set_grad_enabled(mode)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self._saved)


class enable_grad(_GradModeSwitch):
    """Record operations again inside a ``no_grad`` region."""

    _target = True


# Checks run on every node recorded in anomaly mode; chainrule.anomaly (a layer above) fills this list.
FORWARD_CHECKS: list[Callable[[Any], None]] = []


def _anomaly_hook(t: Any) -> None:
    for check in FORWARD_CHECKS:
        check(t)
