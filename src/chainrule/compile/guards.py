"""Guards: what a trace is valid for, checked before each replay.

The signature (the cache key) covers grad mode, each argument (a tensor's library, device,
shape, dtype and ``requires_grad``; numbers and strings by value; other objects by identity)
and the Python numbers the function's code reads from its closure and globals.  Before a
replay, the state the trace assumed is checked too: the modules it called (mode, the very
tensors they hold), the parameters (kind of value, ``requires_grad``), whether each ``.grad``
starts as ``None``, and the sign and range of integer index arrays taken from the arguments.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import device_of, library_name, namespace_of, to_numpy
from ..grad_mode import MODE
from ..tensor import Tensor
from .errors import CompileError
from .runtime import is_array

ndarray = np.ndarray


def signature(fn: Callable, args: tuple, kwargs: dict) -> tuple:
    """The cache key of a call: grad mode, the arguments' kinds, and the numbers ``fn`` reads by name."""
    parts: list = [MODE.enabled]
    for j, a in enumerate(list(args) + [kwargs[k] for k in sorted(kwargs)]):
        t = type(a)
        if t is Tensor:
            d = a._data
            if type(d) is float:
                parts.append(("T", True, (), None, a.requires_grad))
            else:  # the array's library and device too: a trace on torch CPU tensors is not one for CUDA
                parts.append(("T", type(d), tuple(d.shape), d.dtype, a.requires_grad, device(d)))
        elif t is ndarray or is_array(a):
            lib = "NumPy" if t is ndarray else library_name(a)
            raise CompileError(
                f"compile: argument {j} is a {lib} array; pass cr.tensor(array) instead (a tensor's uses are "
                "recorded, an array's own operations are not)"
            )
        elif t in (int, float, bool, str, type(None)) or isinstance(a, np.generic):
            parts.append(("V", t, a))
        else:
            try:
                hash(a)
            except TypeError:
                raise CompileError(
                    f"compile: argument {j} ({t.__name__}) can be neither replayed nor guarded; pass tensors, "
                    "NumPy arrays, numbers, or objects that are the same on every call"
                ) from None
            parts.append(("O", id(a)))
    parts.append(tuple(sorted(kwargs)))
    parts.append(number_guards(fn))
    return tuple(parts)


def number_guards(fn: Callable) -> tuple:
    """Python numbers the function's code can read from its closure and globals (part of the cache key)."""
    out = []
    code = getattr(fn, "__code__", None)
    if code is None:
        return ()
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if type(v) in (int, float, bool, str) or isinstance(v, np.generic):
            out.append((name, v))
    g = getattr(fn, "__globals__", {})
    for name in global_names(code):
        v = g.get(name)
        if type(v) in (int, float, bool, str) or isinstance(v, np.generic):
            out.append((name, v))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def global_names(code: types.CodeType) -> tuple[str, ...]:
    """Names the code reads as globals (not attribute names, which co_names lists too)."""
    import dis

    return tuple(sorted({i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}))


def device(d: Any) -> Any:
    return "cpu" if type(d) is ndarray else str(device_of(d))


def leaf_state(t: Tensor) -> tuple:
    """What a replay assumes of a parameter: its kind of value (library, shape, dtype, device), requires_grad."""
    d = t._data
    if type(d) is float:
        return (float, t.requires_grad, t._node is None)
    return (type(d), tuple(d.shape), d.dtype, device(d), t.requires_grad, t._node is None)


def module_state(mod: Any) -> tuple:
    """What a replay assumes of a module it called: its mode and which parameter and buffer objects it holds."""
    d = vars(mod)
    held = [*d.get("_parameters", {}).items(), *d.get("_buffers", {}).items()]
    return (mod.training, tuple((name, id(t)) for name, t in held))


def state_matches(entry: Any) -> bool:
    """Whether the modules, the ``.grad`` states and the parameters are as the trace of ``entry`` found them."""
    for mod, state in entry.module_guard:  # train()/eval(), and the very tensors each module holds
        if module_state(mod) != state:
            return False
    for leaf, was_none in entry.grad_guard:  # accumulate into .grad, or start it: as in the trace
        if (leaf.grad is None) != was_none:
            return False
    for t, guard in zip(entry.leaves, entry.leaf_guard):
        if leaf_state(t) != guard:
            return False
    return True


def indices_match(entry: Any, values: list) -> bool:
    """Integer index arrays from the arguments: the same sign, and within the axis they index, as when traced."""
    for j, had_negative, bound in entry.index_guard:
        low, high = _extremes(values[j]._data)
        if (low < 0) != had_negative or (bound is not None and high >= bound):
            return False
    return True


def _extremes(v: Any) -> tuple[int, int]:
    """The smallest and largest value of an integer array (0, -1 when empty), read with one transfer to the host
    (on a GPU: one synchronisation per replay, not two)."""
    if type(v) is ndarray:
        return (int(v.min()), int(v.max())) if v.size else (0, -1)
    n = 1
    for s in v.shape:
        n *= s
    if not n:
        return 0, -1
    xp = namespace_of(v).xp
    low, high = to_numpy(xp.stack([xp.min(v), xp.max(v)])).tolist()
    return int(low), int(high)
