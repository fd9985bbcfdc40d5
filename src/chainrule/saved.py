"""What a node keeps for its backward pass, and releasing the rest early.

A recorded node used to keep every input value and its own result until
backward, so a chain of 999 elementwise ops on a 16 KiB array held 999 arrays
(16 MiB) where PyTorch holds only what its rules read.  Two things now release
large arrays (:data:`MIN_BYTES`, 8 KiB, and up) as soon as nothing can need them:

1. **Saved inputs a rule does not read.**  Which arguments a VJP rule reads is
   read off its bytecode (:func:`rule_reads`): ``mul``'s rule for ``x`` is
   ``g * y``, so a node of ``h * 1.0001`` does not keep ``h``'s array.  The
   dropped value is replaced by a :class:`Released` stand-in that keeps the
   shape and dtype (broadcasting's adjoint needs them) and refuses to be used
   as a value.
2. **Results nobody holds** (below :data:`MAX_RESULT_BYTES`, 128 KiB: see there why not larger ones).
   A node whose own rule does not read its result
   (``mul``, ``add``, ``matmul``, not ``exp`` or ``tanh``) becomes a
   *candidate*.  At the next few operations recorded in the same thread, a
   candidate whose only references are the edges of the nodes that read it
   (counted by walking those nodes' inputs, not by bookkeeping that could go
   stale), and whose array nothing else references (no saved copy, no view, no
   ``.data`` handed out), gets its array replaced by a :class:`Released`
   stand-in.  Nobody can read it any more: the user holds no reference to the
   tensor, and the rules that run on it do not read it.

Nothing is released while values are wanted: inside :func:`keep_values`, under
anomaly detection, while ``cr.compile`` traces, or while forward mode and the
explanation tools record their own graphs.  A tool shown a graph whose values
were released raises :class:`ValueReleasedError`, naming the operation and the
way to keep the values.
"""

from __future__ import annotations

import dis
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

# Arrays smaller than this are never released: their bookkeeping would cost more than the memory is worth
# (measured on the 999-op chain: at 1024 float32 elements releasing cost 1.3 us per op more than it saved).
MIN_BYTES = 8192

# Results this large or larger are not released early.  glibc serves them from mmap, so freeing one in the
# middle of a forward pass hands its pages back to the OS and the next allocation of that size faults them in
# again: on the 784-512-512-10 MLP step (batch 256) releasing the 512 KiB matmul results cost 1,520 page faults
# and 35-41% per step, while freeing them all after backward (as before) costs none.  128 KiB is glibc's default
# mmap threshold.
MAX_RESULT_BYTES = 128 * 1024

# How many later operations a candidate is checked at before it is forgotten (it is then held by the user).
CHECKS = 4

_getrefcount = sys.getrefcount
_ref = weakref.ref
ndarray = np.ndarray


class ValueReleasedError(RuntimeError):
    """A tool asked for a value that the engine released because no backward rule needs it."""


def released_message(what: str) -> str:
    return (
        f"{what}: chainrule released it after use, as PyTorch frees intermediate values that no backward rule "
        "reads (arrays of 8 KiB and more). To see every value, record the computation inside "
        "`with cr.keep_values():` (and if a rule was replaced with defvjp after the graph was recorded, "
        "record the graph again)"
    )


class Released:
    """Stands in for an array the engine released: it keeps the shape and dtype, and refuses to be a value."""

    __slots__ = ("shape", "dtype", "ref")

    def __init__(self, value: ndarray) -> None:
        self.shape = value.shape
        self.dtype = value.dtype
        self.ref = _ref(value)  # the array itself while something else (the input tensor, say) still holds it

    def value(self) -> Optional[ndarray]:
        """The released array if it is still alive elsewhere (an input tensor the program holds), else None."""
        return self.ref()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"<released array: shape {self.shape}, dtype {self.dtype}>"

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueReleasedError(released_message(f"an array of shape {self.shape} ({self.dtype})"))

    def __bool__(self) -> bool:
        raise ValueReleasedError(released_message(f"an array of shape {self.shape} ({self.dtype})"))


# --- which arguments a rule reads -------------------------------------------------------------

_NAME_OPS = ("FAST", "DEREF", "CLOSURE", "CELL")


def rule_reads(rule: Optional[Callable]) -> Optional[frozenset]:
    """The parameter names ``rule`` reads, from its bytecode; ``None`` when that cannot be told (then keep all).

    Conservative: a name counts as read if any instruction loads, stores or
    captures it, or a nested function closes over it.  A rule that takes
    ``*args``/``**kwargs``, calls ``locals()``/``vars()``, or is not a plain
    Python function is assumed to read everything.
    """
    if rule is None:
        return frozenset()
    if type(rule) is not types.FunctionType:
        return None
    code = rule.__code__
    if code.co_flags & (0x04 | 0x08):  # CO_VARARGS | CO_VARKEYWORDS
        return None
    if "locals" in code.co_names or "vars" in code.co_names or "eval" in code.co_names:
        return None
    params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    read = {p for p in params if p in code.co_cellvars}
    for ins in dis.get_instructions(code):
        if any(part in ins.opname for part in _NAME_OPS):
            value = ins.argval
            for name in value if isinstance(value, tuple) else (value,):
                if name in params:
                    read.add(name)
    return frozenset(read)


def _reads(rule: Optional[Callable], nargs: int) -> tuple[bool, tuple[bool, ...]]:
    """``(reads out, reads input i for i < nargs)`` for a rule called as ``rule(xp, g, out, *args)``."""
    if rule is None:
        return False, (False,) * nargs
    names = rule_reads(rule)
    params = rule.__code__.co_varnames[: rule.__code__.co_argcount] if names is not None else ()
    if names is None or len(params) < 3 + nargs:
        return True, (True,) * nargs
    return params[2] in names, tuple(params[3 + i] in names for i in range(nargs))


class Saves:
    """For one primitive's rules: what a node keeps, by which inputs need a gradient."""

    __slots__ = ("vjps", "table")

    def __init__(self, vjps: tuple, nin: int) -> None:
        self.vjps = vjps
        reads = [_reads(vjps[i] if i < len(vjps) else None, nin) for i in range(nin)]
        self.table: dict[tuple, tuple] = {}
        for mask in range(1 << nin):
            active = tuple(bool(mask >> i & 1) for i in range(nin))
            out = any(reads[i][0] for i in range(nin) if active[i])
            keep = tuple(any(reads[i][1][j] for i in range(nin) if active[i]) for j in range(nin))
            self.table[active] = keep + (out,)


def saves_of(prim: Any, nin: int) -> Optional[Saves]:
    """The :class:`Saves` of ``prim``'s current rules (recomputed when a rule is replaced); None if variadic."""
    if prim.variadic:
        return None
    s = prim.saves
    if s is None or s.vjps is not prim.vjps:
        s = prim.saves = Saves(prim.vjps, nin)
    return s


# --- the per-thread state ---------------------------------------------------------------------


class _State(threading.local):
    def __init__(self) -> None:
        self.keep = 0  # > 0: inside keep_values() (nested)
        # id(tensor) -> [weakref to it, weakrefs to its readers, checks so far, its primitive, that one's rules]
        self.cands: dict[int, list] = {}


STATE = _State()
ENABLED = True  # set False at import when this Python's reference counts do not behave as the check expects


class keep_values:
    """Keep every value a recorded graph saw, for tools that show them (``with cr.keep_values(): ...``).

    Without it, chainrule releases intermediate arrays of 8 KiB and more that no
    backward rule reads once the program drops them (as PyTorch does); graphs of
    small values are never affected.  Also a decorator.
    """

    def __enter__(self) -> keep_values:
        STATE.keep += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        STATE.keep -= 1

    def __call__(self, fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with keep_values():
                return fn(*args, **kwargs)

        return wrapper


def check(cands: dict, Released: type = Released, getrefcount: Callable = _getrefcount) -> None:  # noqa: N803
    """Release the candidates that nothing but their readers' edges holds (see the module docstring)."""
    for key, entry in list(cands.items()):
        if not entry[1]:  # no reader yet: the program still holds it (else it would be gone)
            entry[2] += 1
            if entry[2] >= CHECKS:
                del cands[key]
            continue
        t = entry[0]()
        if t is None:
            del cands[key]
            continue
        edges = 0
        for ref in entry[1]:
            reader = ref()
            if reader is not None and reader._node is not None:
                if reader._args is None:
                    edges += (reader._a is t) + (reader._b is t)
                elif type(reader._a) is tuple:
                    edges += sum(1 for x in reader._a if x is t)
        reader = None
        # References now: the readers' edges, the local ``t`` and getrefcount's argument.  The node must still
        # be the one judged (an in-place op makes the tensor a new node, whose rule may read its result).
        if getrefcount(t) == edges + 2 and t._node is entry[3] and entry[3].vjps is entry[4]:
            d = t._data
            # ``t._data``, the local ``d`` and the argument: nothing else (no saved copy, no view) holds it.
            if type(d) is ndarray and getrefcount(d) == 3:
                t._data = Released(d)
                del cands[key]
                continue
        entry[2] += 1
        if entry[2] >= CHECKS:
            del cands[key]


def note_readers(cands: dict, t: Any, inputs: tuple) -> None:
    """Node ``t`` reads ``inputs``: those that are candidates get ``t`` as a reader; then check them all."""
    for x in inputs:
        if x is not None:
            entry = cands.get(id(x))
            if entry is not None and entry[0]() is x:
                readers = entry[1]
                if not readers or readers[-1]() is not t:  # (x * x reads x twice: one reader, two edges)
                    readers.append(_ref(t))
    check(cands)


def nominate(cands: dict, t: Any) -> None:
    """Make node ``t`` a candidate; its entry remembers the rules it was judged by."""
    prim = t._node
    cands[id(t)] = [_ref(t), [], 0, prim, prim.vjps]


def _calibrate() -> bool:
    """Whether this Python's reference counts let :func:`check` tell a held tensor from a dropped one."""

    class Node:
        __slots__ = ("_data", "_node", "_a", "_b", "_args", "__weakref__")

    class Prim:
        vjps = ()

    def make(reader_holds: bool) -> tuple:
        t = Node()
        t._data = np.zeros(MIN_BYTES // 8)
        t._node = Prim()
        t._a = t._b = t._args = None
        r = Node()
        r._node, r._a, r._b, r._args = "node", t, None, None
        cands: dict = {}
        nominate(cands, t)
        cands[id(t)][1].append(_ref(r))
        return (t, r, cands) if reader_holds else (None, r, cands)

    held, r1, c1 = make(True)
    check(c1)
    _, r2, c2 = make(False)
    check(c2)
    ok_held = type(held._data) is ndarray
    ok_dropped = type(r2._a._data) is Released
    return ok_held and ok_dropped and r1 is not None


def _free_threaded() -> bool:
    """A free-threaded CPython build (3.13t and later), whose reference counts are not exact for the check."""
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


if _free_threaded() or not _calibrate():  # pragma: no cover  (counts that differ: keep everything, as before)
    ENABLED = False


# --- which saved values a rule needs, beyond their shapes (for the in-place checks) -----------------------------

_META_ATTRS = frozenset({"shape", "ndim", "dtype", "size"})
_VALUE_READS: dict[Any, Optional[tuple]] = {}


def _shape_only(code: types.CodeType, name: str) -> bool:
    """Whether every use of parameter ``name`` in ``code`` reads only its shape, ndim, dtype or size
    (``x.shape``, ``xp.shape(x)``): such a use is unaffected by an in-place change of the value."""
    if name in code.co_cellvars:
        return False
    ins = [i for i in dis.get_instructions(code) if i.opname not in ("CACHE", "EXTENDED_ARG", "PRECALL", "KW_NAMES")]
    for k, i in enumerate(ins):
        if not any(part in i.opname for part in _NAME_OPS):
            continue
        if type(i.argval) is tuple:  # (LOAD_FAST_LOAD_FAST and friends, Python 3.13): a use we do not judge
            if name in i.argval:
                return False
            continue
        if i.argval != name:
            continue
        after = ins[k + 1] if k + 1 < len(ins) else None
        before = ins[k - 1] if k else None
        if after is not None and after.opname in ("LOAD_ATTR", "LOAD_METHOD") and after.argval in _META_ATTRS:
            if after.opname == "LOAD_ATTR" or (k + 2 < len(ins) and ins[k + 2].opname == "CALL"):
                continue
        if (
            before is not None
            and before.opname in ("LOAD_ATTR", "LOAD_METHOD")
            and before.argval in _META_ATTRS
            and after is not None
            and after.opname == "CALL"
            and after.arg == 1
        ):
            continue
        return False
    return True


def _value_reads(rule: Callable) -> Optional[tuple]:
    """For each parameter of ``rule(xp, g, out, *args)``: whether it reads the value (not only the shape)."""
    if rule in _VALUE_READS:
        return _VALUE_READS[rule]
    names = rule_reads(rule)
    result = None
    if names is not None:
        code = rule.__code__
        params = code.co_varnames[: code.co_argcount]
        result = tuple(p in names and not _shape_only(code, p) for p in params)
    _VALUE_READS[rule] = result
    return result


def needed_values(prim: Any, nin: int, active: tuple) -> tuple:
    """``(needs input j for j < nin) + (needs the result,)``: the saved values whose values ``prim``'s rules read
    for the inputs in ``active`` (those that want a gradient), as torch's SavedVariables. Unknown: all needed."""
    if prim.kind == "linear":  # linear in its inputs: the rules read shapes and static arguments, no value
        return (False,) * (nin + 1)
    needs = [False] * (nin + 1)
    for i, want in enumerate(active):
        if not want:
            continue
        rule = prim.vjps[0] if prim.variadic else (prim.vjps[i] if i < len(prim.vjps) else None)
        if rule is None:
            continue
        reads = _value_reads(rule) if type(rule) is types.FunctionType else None
        if reads is None or (not prim.variadic and len(reads) < 3 + nin):
            return (True,) * (nin + 1)
        if prim.variadic:  # rule(xp, g, out, i, *args): any input it reads through *args counts
            return (True,) * (nin + 1)
        needs[nin] = needs[nin] or reads[2]
        for j in range(nin):
            needs[j] = needs[j] or reads[3 + j]
    return tuple(needs)
