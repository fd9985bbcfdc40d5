"""Anomaly detection: find the operation where a NaN or Inf first appears.

Inside ``with cr.detect_anomaly():`` every recorded operation remembers the
line of user code that created it, and its result is checked for NaN/Inf; so is
every gradient the backward pass computes.  The first non-finite value raises
:class:`AnomalyError` naming the primitive, the shapes, and that source line.

Outside the mode nothing of this runs: the engine tests one thread-local flag
(``MODE.anomaly``) only where it records a node or applies a rule, and no source
lines are stored.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
import weakref
from typing import Any, Optional

import numpy as np

from .grad_mode import FORWARD_CHECKS, MODE, set_anomaly_enabled
from .graph import node_of
from .tensor import Tensor, node_parts
from .walk import BACKWARD_CHECKS, current_step

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# id(tensor) -> (weak reference, "file:line in function: code") for nodes recorded while the mode
# was on.  Keyed by id because Tensor.__eq__ is elementwise; the weak reference's callback drops
# the entry when the tensor dies, so the table never keeps a graph alive.
_SOURCES: dict[int, tuple[weakref.ref, str]] = {}


_UNKNOWN = "<unknown: the node was created outside detect_anomaly()>"


def _remember(t: Tensor, source: str) -> None:
    key = id(t)
    _SOURCES[key] = (weakref.ref(t, lambda _ref, key=key: _SOURCES.pop(key, None)), source)


class AnomalyError(FloatingPointError):
    """A forward or backward value became NaN or Inf inside :func:`detect_anomaly`."""


class detect_anomaly:
    """Context manager: raise :class:`AnomalyError` where a value first becomes NaN or Inf.

    The mode is per thread and nests; leaving the block restores the previous
    setting.  Only operations on tensors that are being recorded (some input
    requires grad, grad mode on) are checked.
    """

    def __init__(self) -> None:
        self._local = threading.local()  # one instance may be entered by several threads

    def __enter__(self) -> detect_anomaly:
        self._local.__dict__.setdefault("saved", []).append(MODE.anomaly)
        set_anomaly_enabled(True)
        return self

    def __exit__(self, *exc: Any) -> None:
        set_anomaly_enabled(self._local.saved.pop())


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on in this thread."""
    return MODE.anomaly


def _user_frame_text() -> str:
    """``file:line in function: code`` of the innermost frame outside the chainrule package."""
    frame: Optional[Any] = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    code = linecache.getline(filename, lineno).strip()
    where = f"{filename}:{lineno} in {frame.f_code.co_name}"
    return f"{where}: {code}" if code else where


def _nonfinite(value: Any) -> Optional[str]:
    """``"NaN"``, ``"Inf"`` or ``"NaN and Inf"`` when ``value`` holds such numbers, else None."""
    if type(value) is Tensor:
        value = value._data
    if type(value) is float:
        if value == value and value not in (float("inf"), float("-inf")):
            return None
        return "NaN" if value != value else "Inf"
    arr = np.asarray(value)
    if arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all()):
        return None
    has_nan, has_inf = bool(np.isnan(arr).any()), bool(np.isinf(arr).any())
    return "NaN and Inf" if has_nan and has_inf else ("NaN" if has_nan else "Inf")


def _shape(value: Any) -> tuple[int, ...]:
    if type(value) is Tensor:
        return value.shape
    return tuple(np.shape(value))


def source_of(t: Tensor) -> Optional[str]:
    """The user source line that created ``t``, if it was recorded under :func:`detect_anomaly`."""
    entry = _SOURCES.get(id(t))
    return entry[1] if entry is not None and entry[0]() is t else None


def check_forward(t: Tensor) -> None:
    """Called by the engine for each node recorded in anomaly mode: remember the source, check the value."""
    source = _user_frame_text()
    _remember(t, source)
    bad = _nonfinite(t._data)
    if bad is None:
        return
    node = node_of(t)
    assert node is not None
    prim, inputs, args = node
    shapes = ", ".join(str(_shape(a)) for a in args[: len(inputs)])
    step = current_step()
    if step is not None and step[0] is not None:  # a recorded backward (create_graph=True): blame the rule
        node_t, i = step
        raise AnomalyError(
            f"detect_anomaly: backward of '{node_t.op}' produced {bad} in the gradient for its "
            f"input {i} (its rule's '{prim.name}' on shapes {shapes} gave {bad}; output shape {node_t.shape}).\n"
            f"  the node was created at {source_of(node_t) or _UNKNOWN}"
        )
    tainted = [i for i, a in enumerate(args[: len(inputs)]) if _nonfinite(a) is not None]
    cause = (
        f"input {', '.join(map(str, tainted))} already contained NaN/Inf"
        if tainted
        else "all of its inputs were finite"
    )
    raise AnomalyError(
        f"detect_anomaly: forward of '{prim.name}' produced {bad} (inputs with shapes {shapes} -> output shape "
        f"{t.shape}; {cause}).\n  created at {source}"
    )


def check_backward(t: Tensor, i: int, gi: Any) -> None:
    """Called by the engine for each gradient a rule returns in anomaly mode."""
    bad = _nonfinite(gi)
    if bad is None:
        return
    prim, inputs = t._node, node_parts(t)[0]  # (not node_of: no saved value is needed, and some may be released)
    source = source_of(t) or _UNKNOWN
    inp = inputs[i]
    in_shape = inp.shape if inp is not None else "?"
    raise AnomalyError(
        f"detect_anomaly: backward of '{prim.name}' produced {bad} in the gradient for its input {i} "
        f"(input shape {in_shape}, output shape {t.shape}).\n"
        f"  the node was created at {source}"
    )


# The engine calls these (looked up at call time, so a test may replace check_forward / check_backward).
FORWARD_CHECKS.append(lambda t: check_forward(t))
BACKWARD_CHECKS.append(lambda t, i, gi: check_backward(t, i, gi))
