"""The Tensor, graph recording, and grad mode.

A tensor's value lives in ``_data``: a NumPy array, or a Python ``float`` for a
float64 scalar (the scalar fast path; ``.data`` still returns a NumPy array).
A tensor made by a primitive while grad mode is on and some input requires grad
is a graph node.  Its record lives in the tensor's own slots, so recording an
operation allocates one tracked object (the tensor) and not two, which keeps
the cyclic garbage collector's share of a scalar graph small:

- ``_node``: the primitive that made it (``None`` for a leaf, ``FREED`` once
  backward released its saved values);
- ``_seq``: increases with every node made, so sorting by it gives a
  topological order for free;
- ``_epoch``: the global in-place counter when the node was made; a tensor
  modified in place later has ``_version`` above it (see :func:`mark_modified`);
- one- and two-input operations: ``_a``/``_b`` the input tensors (``None`` for a
  raw constant; ``_b`` is ``UNARY`` for one input) and ``_av``/``_bv`` the raw
  values the forward saw, with ``_args`` None;
- any other operation: ``_a`` the tuple of inputs and ``_args`` the forward's
  raw arguments (input values, then static parameters such as ``axis``).

``_bg`` (on every tensor) is scratch space for one backward walk at a time: the
gradient received so far, so the hot walk needs no dictionaries (None between walks).

The node slots are set only on nodes, so read them after checking ``_node``.
Tools read nodes through :mod:`chainrule.graph`, never these slots.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Optional

import numpy as np

from . import collector
from . import primitives as _registered  # noqa: F401  (registers every primitive)
from . import saved as _saved
from .backend import common_namespace, is_foreign, namespace_of, native_dtype, numpy_dtype, to_numpy
from .primitive import Primitive
from .primitives import elementwise as E
from .primitives import shape as S

ndarray = np.ndarray

_ECONOMY = _saved.ENABLED  # release arrays no rule reads (chainrule.saved); False on a Python where that is unsafe
_SAVED_STATE = _saved.STATE
_MIN_BYTES = _saved.MIN_BYTES
_MAX_RESULT_BYTES = _saved.MAX_RESULT_BYTES
_Released = _saved.Released
_saves_of = _saved.saves_of
_note_readers = _saved.note_readers
_nominate = _saved.nominate

# The primitive of a node whose saved values were released by backward().
FREED = Primitive("<freed by backward>", lambda *a: None, plain=True)


class _Unary:
    """Marks ``_b`` of a one-input node."""

    def __repr__(self) -> str:
        return "UNARY"


UNARY = _Unary()

_next_seq = itertools.count(1).__next__


class _Epoch:
    """The global count of in-place modifications (shared by all threads)."""

    value = 0


EPOCHS = _Epoch()


_EPOCH_LOCK = threading.Lock()


def mark_modified(t: Tensor) -> None:
    """Record that ``t``'s value changed in place: graphs that saved it become stale.

    A ``detach()``ed tensor shares memory with its source, so the change marks
    the source too (as torch shares the version counter): a detached leaf keeps
    a weak reference to its source in the otherwise unused ``_a`` slot, so it
    never keeps the source's graph alive.

    A view made by indexing, reshaping or transposing shares memory with its
    source too, so writing into the view marks the source (and its sources).
    """
    with _EPOCH_LOCK:
        EPOCHS.value += 1
        now = EPOCHS.value
        todo = [t]
        seen: set[int] = set()
        while todo:
            x = todo.pop()
            if id(x) in seen:
                continue
            seen.add(id(x))
            x._version = now
            node = x._node
            if node is None:
                for ref in getattr(x, "_a", None) or ():
                    source = ref()
                    if source is not None:
                        todo.append(source)
            elif node.name in VIEW_PRIMITIVES and node is not FREED:
                source = x._a[0] if type(x._a) is tuple else x._a
                if source is not None and _shares(x._data, source._data):
                    todo.append(source)


# Primitives whose NumPy forward may return a view of the first input (writes to it reach the input).
VIEW_PRIMITIVES = frozenset({"getitem", "reshape", "transpose", "broadcast_to"})


def _shares(a: Any, b: Any) -> bool:
    return type(a) is ndarray and type(b) is ndarray and np.may_share_memory(a, b)


_WRITING_FUNCTIONS = frozenset({"copyto", "putmask", "place", "put", "put_along_axis", "fill_diagonal"})


class DataView(np.ndarray):
    """The array ``Tensor.data`` hands out: it shares the tensor's memory, and a write through it
    (``[...] =``, ``-=``, ``fill``, ``np.copyto``, a ufunc's ``out=``) marks the tensor modified in
    place, so a graph that saved the old value raises at ``backward()`` instead of giving a stale
    gradient.  Results of arithmetic on it are plain NumPy arrays.
    """

    _owner: Optional[Tensor] = None
    _from_float = False  # made by Tensor.data from a tensor whose value was a Python float

    def __array_finalize__(self, obj: Any) -> None:
        # A view (slice, transpose) still writes into the tensor; a copy does not.
        self._owner = getattr(obj, "_owner", None) if self.base is not None else None

    def _touch(self) -> None:
        owner = self._owner
        if owner is not None:
            mark_modified(owner)

    def __setitem__(self, index: Any, value: Any) -> None:
        if type(value) is Tensor:
            value = value._data
        np.ndarray.__setitem__(self.view(np.ndarray), _raw_index(index), value)
        self._touch()

    def fill(self, value: Any) -> None:
        self.view(np.ndarray).fill(value)
        self._touch()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.view(np.ndarray).sort(*args, **kwargs)
        self._touch()

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain = tuple(_plain(a) for a in inputs)
        out = kwargs.get("out")
        written = [o for o in (out or ()) if type(o) is DataView]
        if method == "at" and type(inputs[0]) is DataView:
            written.append(inputs[0])
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        for view in written:
            view._touch()
        if out is not None and len(out) == 1:
            return out[0]
        return result

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        plain_args = tuple(_plain(a) for a in args)
        plain_kwargs = {k: _plain(v) for k, v in kwargs.items()}
        result = func(*plain_args, **plain_kwargs)
        if func.__name__ in _WRITING_FUNCTIONS and args and type(args[0]) is DataView:
            args[0]._touch()
        return result

    # torch's in-place methods, for the old idioms ``p.grad.data.zero_()`` and ``w.data.normal_(0, 0.02)``
    def _write(self, values: Any) -> DataView:
        np.copyto(self.view(np.ndarray), _plain(values), casting="same_kind")
        self._touch()
        return self

    def zero_(self) -> DataView:
        return self._write(0)

    def fill_(self, value: Any) -> DataView:
        return self._write(value)

    def copy_(self, src: Any) -> DataView:
        return self._write(src)

    def add_(self, other: Any, alpha: Any = 1) -> DataView:
        return self._write(self.view(np.ndarray) + alpha * np.asarray(_plain(other)))

    def sub_(self, other: Any, alpha: Any = 1) -> DataView:
        return self._write(self.view(np.ndarray) - alpha * np.asarray(_plain(other)))

    def mul_(self, other: Any) -> DataView:
        return self._write(self.view(np.ndarray) * _plain(other))

    def div_(self, other: Any) -> DataView:
        return self._write(self.view(np.ndarray) / _plain(other))

    def clamp_(self, min: Any = None, max: Any = None) -> DataView:  # noqa: A002
        return self._write(np.clip(self.view(np.ndarray), min, max))

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> DataView:
        from .nn.init import get_rng

        return self._write(get_rng().normal(mean, std, self.shape))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> DataView:
        from .nn.init import get_rng

        return self._write(get_rng().uniform(a, b, self.shape))

    def __repr__(self) -> str:
        return repr(self.view(np.ndarray))

    def __str__(self) -> str:
        return str(self.view(np.ndarray))

    def __reduce__(self) -> Any:
        return self.view(np.ndarray).__reduce__()


def _plain(a: Any) -> Any:
    """A DataView as a plain ndarray, a Tensor as its value; anything else unchanged."""
    t = type(a)
    if t is DataView:
        return a.view(np.ndarray)
    if t is Tensor:
        return a._data
    if t is tuple:
        return tuple(_plain(x) for x in a)
    if t is list:
        return [_plain(x) for x in a]
    return a


def check_grad_value(t: Tensor, value: Any) -> None:
    """Refuse a ``.grad`` that is not a tensor of the tensor's own shape and dtype (as torch does)."""
    if type(value) is not Tensor:
        hint = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            hint = "; to clear a gradient write p.grad = None (or p.grad.zero_())"
        else:
            hint = "; wrap an array as cr.tensor(array)"
        raise TypeError(f"Tensor.grad: assigned grad must be a Tensor or None, got {type(value).__name__}{hint}")
    if value.shape != t.shape:
        raise ValueError(f"Tensor.grad: assigned grad has shape {value.shape}, but the tensor has shape {t.shape}")
    if value.dtype != t.dtype:
        raise TypeError(
            f"Tensor.grad: assigned grad has dtype {value.dtype}, but the tensor has dtype {t.dtype}; "
            f"convert it with .to({t.dtype.name})"
        )


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


MODE = _Mode()


def _refresh() -> None:
    MODE.record = (2 if MODE.anomaly else 3 if MODE.gc_pending else 1) if MODE.enabled else 0


def _record_hook(t: Tensor, record: int) -> None:
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


_NUMERIC_KINDS = frozenset("biuf")


class _Defaults:
    """Process-wide defaults (``cr.set_default_dtype``)."""

    float = np.dtype(np.float64)


DEFAULTS = _Defaults()
_F64 = np.dtype(np.float64)
_INT_KINDS = "biu"


def promote_int(out: ndarray, *values: Any) -> ndarray:
    """torch's promotion where NumPy's differs, for a float64 result of integer (or bool) inputs: with a Python
    float, the default float dtype; with float32 arrays, float32 (NumPy gives float64 for both).  Also for
    several inputs (cat, stack, where)."""
    floats = [v.dtype for v in values if type(v) is ndarray and v.dtype.kind == "f"]
    target = (floats[0] if len(floats) == 1 else np.result_type(*floats)) if floats else DEFAULTS.float
    return out if target == out.dtype else out.astype(target)


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _zero_dim_operands(av: ndarray, bv: ndarray) -> tuple[ndarray, ndarray]:
    """torch's rule for a 0-d tensor meeting a dimensioned one: within the same category (or a lower one) the
    dimensioned operand's dtype wins (int32 + a 0-d int64 is int32, float16 + a 0-d float32 is float16), where
    NumPy promotes.  Only the forward sees the cast; the node keeps the operands as they were."""
    if av.ndim == 0:
        if _CATEGORY.get(av.dtype.kind, 9) <= _CATEGORY.get(bv.dtype.kind, -1):
            return av.astype(bv.dtype), bv
    elif _CATEGORY.get(bv.dtype.kind, 9) <= _CATEGORY.get(av.dtype.kind, -1):
        return av, bv.astype(av.dtype)
    return av, bv


def as_value(x: Any, op: str = "tensor") -> Any:
    """A raw value (float or ndarray) from user data; Python scalars stay Python scalars."""
    t = type(x)
    if t is float or t is int or t is ndarray:
        if t is ndarray and x.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"{op}: arrays of dtype {x.dtype} are not supported; use bool, int or float data")
        return x
    if t is Tensor:
        return x._data
    if t is np.float64:
        return float(x)
    if t is bool:
        return np.asarray(x)
    if is_foreign(x):  # another array library's array stays in its library (see chainrule.backend)
        return x
    if isinstance(x, (np.generic, list, tuple)) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"{op}: cannot make a tensor from {type(x).__name__} data of dtype {arr.dtype}; "
                "use numbers (bool, int or float)"
            )
        return arr
    if isinstance(x, (int, float)):
        return float(x) if isinstance(x, float) else int(x)
    raise TypeError(f"{op}: expected a number, array or Tensor, got {type(x).__name__}")


def _norm(out: Any) -> Any:
    """Keep the invariant: results are ndarrays, or Python floats for float64 scalars."""
    t = type(out)
    if t is ndarray:
        return out
    if t is float or t is np.float64:
        return float(out)
    if is_foreign(out):
        return out
    return np.asarray(out)


def _shape_text(v: Any) -> str:
    return str(tuple(v.shape)) if is_foreign(v) else str(tuple(np.shape(v)))


def op_error(prim: Primitive, values: tuple, nin: int, exc: Exception) -> Exception:
    """A clear error for a failed forward: names the operation and its input shapes."""
    shapes = ", ".join(_shape_text(v) for v in values[:nin])
    reason = str(exc)
    if "broadcast" in reason:
        reason = (
            "shapes cannot be broadcast together (NumPy rules: aligned from the right, "
            "each dimension pair must be equal or contain a 1)"
        )
    if isinstance(exc, MemoryError):  # (NumPy's "Unable to allocate ..." names the result's size)
        return MemoryError(f"{prim.name}: inputs with shapes {shapes}: {reason}")
    cls = type(exc) if isinstance(exc, (ValueError, TypeError, IndexError)) else ValueError
    return cls(f"{prim.name}: inputs with shapes {shapes}: {reason}")


_FLOAT_ONLY = frozenset(
    (
        "div",
        "pow",
        "exp",
        "log",
        "log1p",
        "log2",
        "log10",
        "sqrt",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "erf",
        "softmax",
        "log_softmax",
    )
    + ("logsumexp", "mean", "inv", "det")
)
_KEEPS_DTYPE = frozenset(("getitem", "scatter_add", "reshape", "transpose", "broadcast_to", "astype", "concatenate"))


def _adopt(const: ndarray, other: Any) -> Any:
    """A NumPy constant (not a tensor) meeting another library's array: a 0-d one as a Python number,
    a larger one converted to that library and device, as torch converts a NumPy operand."""
    if const.ndim == 0:
        return const.item()
    if not is_foreign(other):
        return const
    ns = namespace_of(other)
    return ns.xp.asarray(const, device=ns.device_of(other))


def foreign_forward(prim: Primitive, values: tuple, nin: int) -> Any:
    """Run ``prim`` on another array library's arrays (one library and one device per operation).

    Integer and bool inputs meeting floats become floats first (the first float
    input's dtype, else chainrule's default float dtype, as on NumPy arrays; the
    Array API standard itself refuses mixed kinds).
    """
    ns = common_namespace(prim.name, values[:nin])
    if ns is None:  # no foreign array after all (a NumPy 0-d array, say): the NumPy forward
        try:
            return _norm(prim.fwd(*values))
        except Exception as exc:
            raise op_error(prim, values, nin, exc) from None
    xp = ns.xp
    vals = list(values)
    for i in range(nin):  # NumPy scalars and 0-d arrays join as Python numbers
        v = vals[i]
        if isinstance(v, (np.ndarray, np.generic)):
            vals[i] = v.item()
    if prim.name not in _KEEPS_DTYPE:
        first = 1 if prim.name == "where" else 0
        ins = vals[first:nin]
        arrays = [v for v in ins if is_foreign(v)]
        floats = [v.dtype for v in arrays if xp.isdtype(v.dtype, "real floating")]
        if any(f != floats[0] for f in floats):
            raise TypeError(
                f"{prim.name}: {ns.library} arrays of dtypes {', '.join(sorted(set(map(str, floats))))} in one "
                "operation; on other libraries' arrays chainrule does not promote between float dtypes (torch's "
                "matmul refuses too): convert one side first, e.g. x.to(np.float32) or x.double()"
            )
        if len(floats) < len(arrays) and (floats or prim.name in _FLOAT_ONLY or any(type(v) is float for v in ins)):
            target = floats[0] if floats else native_dtype(ns, DEFAULTS.float)
            for i in range(first, nin):
                v = vals[i]
                if is_foreign(v) and not xp.isdtype(v.dtype, "real floating"):
                    vals[i] = xp.astype(v, target)
    try:
        return prim.xfwd(ns, *vals)
    except NotImplementedError:
        raise
    except Exception as exc:
        raise op_error(prim, tuple(vals), nin, exc) from None


def _scalar_fallback(prim: Primitive, values: tuple) -> Any:
    """Python math raised (log(0), 1/0, exp(1000)): redo it with NumPy's IEEE semantics."""
    with np.errstate(all="ignore"):
        return prim.fwd(*(np.float64(v) if type(v) in (float, int) else v for v in values))


_new_tensor = object.__new__


def make_unary(prim: Primitive) -> Callable[[Any], Tensor]:
    """The function ``f(x)`` applying a one-input primitive (hot path: one frame per call)."""
    fwd = prim.fwd
    scalar_fwd = prim.scalar_fwd

    def unary_op(x: Any) -> Tensor:
        if type(x) is not Tensor:
            x = Tensor(as_value(x, prim.name))
        v = x._data
        if type(v) is float and scalar_fwd is not None:
            try:
                out = scalar_fwd(v)
            except (ArithmeticError, ValueError):
                out = _scalar_fallback(prim, (v,))
            if type(out) is not float:
                out = float(out)
        elif type(v) is not ndarray and type(v) is not float:
            out = foreign_forward(prim, (v,), 1)
        else:
            try:
                out = fwd(v)
            except Exception as exc:
                raise op_error(prim, (v,), 1, exc) from None
            if type(out) is not ndarray:
                out = _norm(out)
            elif out.dtype is _F64 and v.dtype.kind in _INT_KINDS:
                out = promote_int(out, v)
        if x.requires_grad and (record := MODE.record):
            t = _new_tensor(Tensor)  # the node record, slot by slot (as Tensor(out, True, prim, ...) but faster)
            t._data = out
            t.requires_grad = True
            t._node = prim
            t._grad = t._bg = t._bv = t._args = None
            t._version = 0
            t._seq = _next_seq()
            t._epoch = EPOCHS.value
            t._a = x
            t._b = UNARY
            t._av = v
            if record != 1:
                _record_hook(t, record)
            if type(out) is ndarray and out.nbytes >= _MIN_BYTES and record != 2 and _ECONOMY:
                _economize(t, prim, (x,), (v,), out)
            return t
        return Tensor(out)

    unary_op.__name__ = prim.name
    return unary_op


def make_binary(prim: Primitive, reflected: bool = False) -> Callable[[Any, Any], Tensor]:
    """The function ``f(a, b)`` applying a two-input primitive (``f(b, a)`` when ``reflected``).

    Either side may be a raw number or array.  This is the hot path of every
    arithmetic operator, so the body is specialized per primitive.
    """
    fwd = prim.fwd
    scalar_fwd = prim.scalar_fwd
    name = prim.name

    def binary_op(a: Any, b: Any) -> Tensor:
        if reflected:
            a, b = b, a
        ta = type(a)
        if ta is Tensor:
            av = a._data
            need = a.requires_grad
        else:
            av = a if (ta is float or ta is int) else as_value(a, name)
            a = None
            need = False
        tb = type(b)
        if tb is Tensor:
            bv = b._data
            need = need or b.requires_grad
        else:
            bv = b if (tb is float or tb is int) else as_value(b, name)
            b = None
        ta = type(av)
        tb = type(bv)
        if (ta is float or ta is int) and (tb is float or tb is int) and scalar_fwd is not None:
            try:
                out = scalar_fwd(av, bv)
            except (ArithmeticError, ValueError):
                out = _scalar_fallback(prim, (av, bv))
            if type(out) is not float:
                out = float(out)
        elif (ta is not ndarray and ta is not float and ta is not int) or (
            tb is not ndarray and tb is not float and tb is not int
        ):
            if a is None and type(av) is ndarray:  # a NumPy constant joins the other side's library
                av = _adopt(av, bv)
            if b is None and type(bv) is ndarray:
                bv = _adopt(bv, av)
            out = foreign_forward(prim, (av, bv), 2)
        else:
            try:
                if ta is ndarray and tb is ndarray and av.dtype is not bv.dtype and (av.ndim == 0) != (bv.ndim == 0):
                    out = fwd(*_zero_dim_operands(av, bv))
                else:
                    out = fwd(av, bv)
            except Exception as exc:
                raise op_error(prim, (av, bv), 2, exc) from None
            if type(out) is not ndarray:
                out = _norm(out)
            elif out.dtype is _F64 and (
                (ta is ndarray and av.dtype.kind in _INT_KINDS) or (tb is ndarray and bv.dtype.kind in _INT_KINDS)
            ):
                out = promote_int(out, av, bv)
        if need and (record := MODE.record):
            t = _new_tensor(Tensor)  # the node record, slot by slot (as Tensor(out, True, prim, ...) but faster)
            t._data = out
            t.requires_grad = True
            t._node = prim
            t._grad = t._bg = t._args = None
            t._version = 0
            t._seq = _next_seq()
            t._epoch = EPOCHS.value
            t._a = a
            t._b = b
            t._av = av
            t._bv = bv
            if record != 1:
                _record_hook(t, record)
            if type(out) is ndarray and out.nbytes >= _MIN_BYTES and record != 2 and _ECONOMY:
                _economize(t, prim, (a, b), (av, bv), out)
            return t
        return Tensor(out)

    binary_op.__name__ = name
    return binary_op


_OPS: dict[Primitive, Callable] = {}


def unary(prim: Primitive, x: Any) -> Tensor:
    """Apply a one-input primitive."""
    op = _OPS.get(prim)
    if op is None:
        op = _OPS[prim] = make_unary(prim)
    return op(x)


def binary(prim: Primitive, a: Any, b: Any) -> Tensor:
    """Apply a two-input primitive."""
    op = _OPS.get(prim)
    if op is None:
        op = _OPS[prim] = make_binary(prim)
    return op(a, b)


def apply(prim: Primitive, *args: Any) -> Tensor:
    """Apply any primitive: tensor inputs first, then static parameters."""
    nin = len(args) - 1 if prim.variadic else prim.nin
    values = list(args)
    inputs: list = []
    need = False
    foreign = None  # the first input of another array library, if any
    for i in range(nin):
        a = args[i]
        if type(a) is Tensor:
            v = values[i] = a._data
            need = need or (a.requires_grad and prim.differentiable(i))
            inputs.append(a)
        else:
            v = values[i] = as_value(a, prim.name)
            inputs.append(None)
        if foreign is None and type(v) is not ndarray and type(v) is not float and type(v) is not int:
            foreign = v if is_foreign(v) else None
    values_t = tuple(values)
    if foreign is not None:
        values_t = tuple(  # NumPy constants join that library (in the record too)
            _adopt(x, foreign) if j < nin and inputs[j] is None and type(x) is ndarray else x
            for j, x in enumerate(values_t)
        )
        out = foreign_forward(prim, values_t, nin)
    else:
        try:
            out = prim.fwd(*values_t)
        except Exception as exc:
            raise op_error(prim, values_t, nin, exc) from None
        out = _norm(out)
        if type(out) is ndarray and out.dtype is _F64 and nin > 1:
            ins = values_t[:nin]
            if any(type(v) is ndarray and v.dtype.kind in _INT_KINDS for v in ins):
                out = promote_int(out, *ins)
    if need and (record := MODE.record):
        t = Tensor(out, True, prim, _next_seq(), EPOCHS.value, tuple(inputs), None, None, None, values_t)
        if record != 1:
            _record_hook(t, record)
        if type(out) is ndarray and out.nbytes >= _MIN_BYTES and record != 2 and _ECONOMY:
            _economize(t, prim, t._a, values_t, out)
        return t
    t = Tensor(out)
    if prim.name in VIEW_PRIMITIVES and inputs[0] is not None and _shares(out, values_t[0]):
        t._a = _view_sources(inputs[0])  # a view: in-place changes to it mark its sources (see mark_modified)
    return t


def _view_sources(src: Tensor) -> tuple:
    """Weak references to ``src`` and every tensor whose memory it views (so a dropped middle view breaks nothing)."""
    refs = [weakref.ref(src)]
    x = src
    while True:
        node = x._node
        if node is None:
            refs.extend(getattr(x, "_a", None) or ())
            break
        if node is FREED or node.name not in VIEW_PRIMITIVES:
            break
        parent = x._a[0] if type(x._a) is tuple else x._a
        if parent is None or not _shares(x._data, parent._data):
            break
        refs.append(weakref.ref(parent))
        x = parent
    return tuple(refs)


def _economize(t: Tensor, prim: Primitive, inputs: tuple, values: tuple, out: ndarray) -> None:
    """Release what node ``t`` need not keep (see :mod:`chainrule.saved`): saved inputs its rules do not read,
    and, once nothing but the graph holds them, results of earlier nodes that no rule reads."""
    state = _SAVED_STATE
    if state.keep:
        return
    cands = state.cands  # (a reader with a small result is not noted: its inputs are then simply kept)
    if cands:
        _note_readers(cands, t, inputs)
    saves = prim.saves
    if saves is None or saves.vjps is not prim.vjps:
        saves = _saves_of(prim, len(inputs))
        if saves is None:
            return
    # Every tensor input counts as one that will want a gradient: a leaf may be given requires_grad after
    # recording (backward reads requires_grad when it runs), and a node's result always requires grad.
    nin = len(inputs)
    if nin == 1:
        keep = saves.table[_GRAD_1]
    elif nin == 2:
        keep = saves.table[(inputs[0] is not None, inputs[1] is not None)]
    else:
        keep = saves.table[tuple(x is not None for x in inputs)]
    # Only a raw constant's value or a graph node's result is dropped: a leaf's array is the program's own, so
    # dropping the node's reference to it would free nothing.
    if t._args is None:
        v = values[0]
        if not keep[0] and type(v) is ndarray and v.nbytes >= _MIN_BYTES and _droppable(inputs[0]):
            t._av = _Released(v)
        if nin == 2:
            v = values[1]
            if not keep[1] and type(v) is ndarray and v.nbytes >= _MIN_BYTES and _droppable(inputs[1]):
                t._bv = _Released(v)
    else:
        stripped = None
        for i in range(nin):
            v = values[i]
            if not keep[i] and type(v) is ndarray and v.nbytes >= _MIN_BYTES and _droppable(inputs[i]):
                if stripped is None:
                    stripped = list(values)
                stripped[i] = _Released(v)
        if stripped is not None:
            t._args = tuple(stripped)
    # (a view frees no memory, and in-place marks walk from views to their sources)
    if not keep[nin] and out.nbytes < _MAX_RESULT_BYTES and prim.name not in VIEW_PRIMITIVES:
        _nominate(cands, t)


_GRAD_1 = (True,)


def _droppable(x: Optional[Tensor]) -> bool:
    """Whether a node may drop its saved copy of input ``x``: a raw constant, or another node's result."""
    return x is None or x._node is not None


def node_parts(t: Tensor) -> tuple[tuple, tuple]:
    """``(inputs, args)`` of a node: its input tensors (None for constants) and the forward's raw arguments."""
    args = t._args
    if args is not None:
        return t._a, args
    b = t._b
    if b is UNARY:
        return (t._a,), (t._av,)
    return (t._a, b), (t._av, t._bv)


def release(t: Tensor) -> None:
    """Free a node's saved values after backward; backprop through it again then raises."""
    t._node = FREED
    t._a = t._b = t._av = t._bv = t._args = None


def _anomaly_hook(t: Tensor) -> None:
    from .anomaly import check_forward

    check_forward(t)


def _float_dtype(v: Any) -> bool:
    if type(v) is float:
        return True
    kind = getattr(v.dtype, "kind", None)
    if kind is not None:
        return kind == "f"
    return namespace_of(v).xp.isdtype(v.dtype, "real floating")


class Size(int):
    """``t.size``: the element count (an int, as NumPy's ``.size``) that can also be called as torch's
    ``t.size()`` (the shape tuple) or ``t.size(dim)`` (one dim's length)."""

    def __new__(cls, count: int, shape: tuple) -> Size:
        obj = int.__new__(cls, count)
        obj.shape = shape
        return obj

    def __call__(self, dim: Optional[int] = None) -> Any:
        if dim is None:
            return self.shape
        nd = len(self.shape)
        if not -nd <= int(dim) < max(nd, 1) or nd == 0:
            raise IndexError(f"size: dim {dim} is out of range for a tensor with {nd} dims (shape {self.shape})")
        return self.shape[int(dim)]


class Tensor:
    """An array that records the operations applied to it, for backpropagation.

    Make one with :func:`chainrule.tensor`.  ``Tensor(data)`` also works and does
    not copy NumPy arrays.
    """

    __slots__ = (
        "_data",
        "requires_grad",
        "_node",
        "_grad",
        "_version",
        "_seq",
        "_epoch",
        "_a",
        "_b",
        "_av",
        "_bv",
        "_args",
        "_bg",
        "__weakref__",
    )
    __array_priority__ = 1000

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """``np_array * t`` and ``np.float64(2) + t`` stay in the graph; ``np.exp(t)`` names ``cr.exp``."""
        from .interop import tensor_ufunc

        return tensor_ufunc(ufunc, method, inputs, kwargs)

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        _node: Optional[Primitive] = None,
        _seq: int = 0,
        _epoch: int = 0,
        _a: Any = None,
        _b: Any = None,
        _av: Any = None,
        _bv: Any = None,
        _args: Optional[tuple] = None,
    ) -> None:
        td = type(data)
        if td is not ndarray and td is not float:
            data = _norm(as_value(data))
        elif _node is None and td is ndarray and data.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"Tensor: arrays of dtype {data.dtype} are not supported; use bool, int or float data")
        if requires_grad and _node is None and not _float_dtype(data):
            raise TypeError(
                f"Tensor: only floating-point tensors can require gradients, got dtype {np.result_type(data)}"
            )
        self._data = data
        self.requires_grad = requires_grad
        self._node = _node
        self._grad: Optional[Tensor] = None
        self._version = 0
        self._bg = None  # backward's gradient accumulator while a walk holds the slots (see autodiff._walk_slots)
        if _node is not None:  # the graph-node record (see the module docstring)
            self._seq = _seq
            self._epoch = _epoch
            self._a = _a
            self._b = _b
            self._av = _av
            self._bv = _bv
            self._args = _args

    # --- value and metadata ----------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The value as a NumPy array (a 0-d array for scalars).

        The array shares memory with the tensor, and writes through it
        (``t.data[0] = 1``, ``t.data -= lr * g``) count as in-place changes, so
        a graph that saved the old value refuses to backpropagate.
        """
        d = self._data
        if MODE.observer is not None and MODE.observer.read(self, "data", d) is d:
            return d  # the array itself, to chainrule's own code while cr.compile traces (chainrule.compile.tracer)
        if type(d) is not ndarray and type(d) is not float:
            if type(d) is _Released:  # (reachable only by walking a graph, or through a weak reference)
                raise _saved.ValueReleasedError(_saved.released_message(f"the value of '{self.op}' (shape {d.shape})"))
            return d  # another library's array, as it is (writes through it are not tracked)
        from_float = type(d) is float
        if from_float:  # memory to share: writes through .data must reach the tensor, as in torch
            d = self._data = np.array(d)
        view = d.view(DataView)
        if from_float:
            view._from_float = True
        view._owner = self
        return view

    @data.setter
    def data(self, value: Any) -> None:
        if MODE.observer is not None:
            MODE.observer.read(self, "data=", value)
        d = self._data
        if (
            type(value) is DataView
            and type(d) is ndarray
            and value.base is d
            and value.shape == d.shape
            and value.strides == d.strides
        ):
            mark_modified(self)  # ``t.data -= x`` already wrote into the tensor's own array
            # A Python float moved into an array for this write goes back to the scalar fast path when nothing
            # else shares the array (references: the tensor, the view's base, ``d`` and getrefcount's argument),
            # where reference counts are exact enough to tell (the check chainrule.saved calibrates).
            if value._from_float and _ECONOMY and sys.getrefcount(d) == 4:
                self._data = float(d)
            return
        value = _norm(as_value(value, "Tensor.data"))
        if type(d) is float and type(value) is ndarray and value.shape == () and value.dtype == np.float64:
            value = float(value)  # keep the scalar fast path of a tensor made from a Python float
        if self.requires_grad and not _float_dtype(value):
            raise TypeError(f"Tensor.data: a tensor that requires grad needs float data, got {np.result_type(value)}")
        self._data = value
        mark_modified(self)

    @property
    def grad(self) -> Optional[Tensor]:
        """The accumulated gradient (None until a backward pass reaches this leaf)."""
        return self._grad

    @grad.setter
    def grad(self, value: Optional[Tensor]) -> None:
        if value is not None:
            check_grad_value(self, value)
        self._grad = value

    @property
    def shape(self) -> tuple[int, ...]:
        d = self._data
        return () if type(d) is float else d.shape

    @property
    def ndim(self) -> int:
        d = self._data
        return 0 if type(d) is float else d.ndim

    @property
    def size(self) -> Size:
        """The number of elements, as NumPy's ``.size``; called, torch's ``size()``/``size(dim)`` (the shape)."""
        d = self._data
        if type(d) is float:
            return Size(1, ())
        if type(d) is not ndarray:
            return Size(math.prod(d.shape), tuple(d.shape))
        return Size(d.size, d.shape)

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype (for another library's array, the NumPy dtype of the same name)."""
        d = self._data
        if type(d) is float:
            return _F64
        dt = d.dtype
        return dt if type(d) is ndarray else numpy_dtype(dt)

    @property
    def device(self) -> Any:
        """``"cpu"`` for NumPy data; for another library's array, that library's device object."""
        from .backend import device_of

        return device_of(self._data)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def op(self) -> Optional[str]:
        """Name of the primitive that produced this tensor (None for leaves)."""
        node = self._node
        if node is None or node is FREED:
            return None
        return node.name

    def item(self) -> Any:
        if MODE.observer is not None:
            MODE.observer.read(self, "item", None)
        d = self._data
        if type(d) is float:
            return d
        if type(d) is not ndarray:
            if math.prod(d.shape) != 1:
                raise ValueError(
                    f"item: only a tensor with one element converts to a Python number, got shape {tuple(d.shape)}"
                )
            return to_numpy(d).item()
        if d.size != 1:
            raise ValueError(f"item: only a tensor with one element converts to a Python number, got shape {d.shape}")
        return d.item()

    def numpy(self) -> np.ndarray:
        """The value as a NumPy array: a copy if the tensor requires grad, else shared (writes are tracked).

        Another library's array is copied to host memory."""
        if MODE.observer is not None:
            MODE.observer.read(self, "numpy", None)
        d = self._data
        if type(d) is not ndarray and type(d) is not float:
            return np.array(to_numpy(d))
        if self.requires_grad:
            return np.array(d)
        return self.data

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        d = self._data
        if type(d) is not ndarray and type(d) is not float:
            d = to_numpy(d)
        arr = d if type(d) is ndarray else np.array(d)
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        arr = arr.copy() if copy else arr
        return arr if MODE.observer is None else MODE.observer.read(self, "__array__", arr)

    def detach(self) -> Tensor:
        """The same value, cut from the graph (shares memory, and in-place changes count for both)."""
        if type(self._data) is float:  # a Python float cannot be shared: move the value into a 0-d array first
            self._data = np.array(self._data)
        out = Tensor(self._data)
        if type(self._data) is ndarray:
            earlier = getattr(self, "_a", None) if self._node is None else None
            out._a = (weakref.ref(self),) + (earlier or ())
        return out

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and not _float_dtype(self._data):
            raise TypeError(f"requires_grad_: only floating-point tensors can require gradients, got {self.dtype}")
        if self._node is not None and not flag:
            raise RuntimeError("requires_grad_: cannot turn off gradients of a non-leaf tensor; use detach()")
        self.requires_grad = flag
        return self

    def astype(self, dtype: Any) -> Tensor:
        """This tensor converted to ``dtype`` (itself when it already has it); differentiable between floats.

        A conversion to an integer or bool dtype is not recorded: as in torch, its result does not
        require grad, and no gradient flows back through it."""
        d = self._data
        if type(d) is not ndarray and type(d) is not float:
            dtype = native_dtype(namespace_of(d), dtype)
            if dtype == d.dtype:
                return self
            floating = namespace_of(d).xp.isdtype(dtype, ("real floating", "complex floating"))
        else:
            dtype = np.dtype(dtype)
            if dtype == self.dtype:
                return self
            floating = dtype.kind in "fc"
        if floating:
            return apply(S.astype, self, dtype)
        with no_grad():
            return apply(S.astype, self, dtype)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor with shape {self.shape} is ambiguous; use .all() or .any() on .data"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.size != 1:
            raise TypeError("only integer scalar tensors can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        d = self._data
        if type(d) is _Released:  # (reachable only by walking a graph: the program dropped this tensor)
            return f"tensor(<released after use>, shape={d.shape}, dtype={d.dtype}, op={self.op!r})"
        if type(d) is not ndarray and type(d) is not float:
            return _foreign_repr(self, d)
        body = (
            repr(d)
            if type(d) is float
            else np.array2string(d, separator=", ", threshold=20, edgeitems=3, prefix="tensor(")
        )
        extras = []
        if type(d) is not float and d.dtype != np.float64:
            extras.append(f"dtype={d.dtype}")
        if self._node is not None and self._node is not FREED:
            extras.append(f"op={self._node.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        tail = "".join(", " + e for e in extras)
        return f"tensor({body}{tail})"

    # --- autodiff --------------------------------------------------------------
    def backward(
        self,
        grad: Any = None,
        retain_graph: Optional[bool] = None,
        create_graph: bool = False,
        *,
        gradient: Any = None,
    ) -> None:
        """Backpropagate from this tensor, accumulating into the leaves' ``.grad``.

        ``gradient=`` is torch's name for the seed ``grad``.
        ``grad`` is the seed (required unless the tensor is a scalar).  The
        graph's saved values are freed afterwards unless ``retain_graph`` is
        true (it defaults to ``create_graph``).  With ``create_graph=True`` the
        backward pass is recorded too, so gradients can be differentiated again.
        """
        from .autodiff import run_backward

        if gradient is not None:
            if grad is not None:
                raise TypeError("backward: give the seed as grad or gradient, not both")
            grad = gradient
        MODE.in_backward += 1
        try:
            run_backward([self], [grad], retain_graph=retain_graph, create_graph=create_graph)
        finally:
            MODE.in_backward -= 1

    # --- in-place operations (see inplace()) -----------------------------------------
    def __iadd__(self, other: Any) -> Tensor:
        return inplace(self, "+=", lambda: self + other)

    def __isub__(self, other: Any) -> Tensor:
        return inplace(self, "-=", lambda: self - other)

    def __imul__(self, other: Any) -> Tensor:
        return inplace(self, "*=", lambda: self * other)

    def __itruediv__(self, other: Any) -> Tensor:
        return inplace(self, "/=", lambda: self / other)

    def __ipow__(self, other: Any) -> Tensor:
        return inplace(self, "**=", lambda: self**other)

    def zero_(self) -> Tensor:
        """Set every element to 0 in place."""
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        """Set every element to ``value`` in place."""
        if type(value) is Tensor and value.size != 1:
            raise ValueError(f"fill_: the value must be a number or a one-element tensor, got shape {value.shape}")
        return inplace(self, "fill_", lambda: _constant_like(self, value))

    def __setitem__(self, index: Any, value: Any) -> None:
        index = _raw_index(index)
        if MODE.enabled and (self.requires_grad or (type(value) is Tensor and value.requires_grad)):
            inplace(self, "setitem", lambda: _put(self, index, value))
            return
        if type(value) is Tensor:
            value = value._data
        if type(self._data) is float:
            arr = np.array(self._data)
            arr[index] = as_value(value)
            self._data = float(arr)
        elif type(self._data) is not ndarray:  # another library's array: its index and values
            ns = namespace_of(self._data)
            raw = as_value(value)
            if not is_foreign(raw):
                raw = (
                    float(raw) if np.ndim(raw) == 0 else ns.xp.asarray(np.asarray(raw), device=ns.device_of(self._data))
                )
            try:
                self._data[ns.index(index, len(self._data.shape), ns.device_of(self._data))] = raw
            except (IndexError, TypeError) as exc:
                raise IndexError(
                    f"setitem: {ns.library} cannot assign at index {index!r} ({exc}); the Array API standard "
                    "assigns only at ints and slices: use cr.where for a masked or indexed update"
                ) from None
        else:
            try:
                self._data[index] = as_value(value)
            except ValueError as exc:
                raise ValueError(
                    f"setitem: cannot write a value of shape {np.shape(value)} into index {index!r} "
                    f"of a tensor of shape {self.shape}: {exc}"
                ) from None
        mark_modified(self)

    # --- operators -------------------------------------------------------------
    __add__ = make_binary(E.add)
    __radd__ = make_binary(E.add, reflected=True)

    __sub__ = make_binary(E.sub)
    __rsub__ = make_binary(E.sub, reflected=True)

    __mul__ = make_binary(E.mul)
    __rmul__ = make_binary(E.mul, reflected=True)

    __truediv__ = make_binary(E.div)
    __rtruediv__ = make_binary(E.div, reflected=True)

    __pow__ = make_binary(E.power)
    __rpow__ = make_binary(E.power, reflected=True)

    def __matmul__(self, other: Any) -> Tensor:
        from .ops import matmul

        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        from .ops import matmul

        return matmul(other, self)

    __neg__ = make_unary(E.neg)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return unary(E.absolute, self)

    def __getitem__(self, index: Any) -> Tensor:
        return apply(S.getitem, self, _raw_index(index))

    # Comparisons are not differentiable: they give boolean tensors.
    def _compare(self, other: Any, fn: Callable) -> Tensor:
        a, b = self._data, as_value(other, "compare")
        if (type(a) is not ndarray and is_foreign(a)) or (type(b) is not ndarray and is_foreign(b)):
            ns = common_namespace("compare", (a, b))
            return Tensor(getattr(ns.xp, fn.__name__)(a, b))  # NumPy's names for these are the standard's
        return Tensor(np.asarray(fn(a, b)))

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __and__(self, other: Any) -> Tensor:
        return self._compare(other, np.logical_and)

    def __or__(self, other: Any) -> Tensor:
        return self._compare(other, np.logical_or)

    def __invert__(self) -> Tensor:
        return Tensor(np.asarray(np.logical_not(self._data)))

    # torch-style methods (sum, mean, permute, add_, ...) are attached by chainrule.methods.


# register_hook on leaves: id(leaf) -> (weak reference to the leaf, hooks in order).
LEAF_HOOKS: dict[int, tuple[Any, list]] = {}


def add_leaf_hook(leaf: Tensor, hook: Callable) -> Callable[[], None]:
    """Register ``hook(grad)`` to run when backward() delivers ``leaf``'s gradient; returns a remover."""
    key = id(leaf)
    entry = LEAF_HOOKS.get(key)
    if entry is None or entry[0]() is not leaf:
        entry = LEAF_HOOKS[key] = (weakref.ref(leaf, lambda _ref, k=key: LEAF_HOOKS.pop(k, None)), [])
    entry[1].append(hook)

    def remove() -> None:
        if hook in entry[1]:
            entry[1].remove(hook)

    return remove


def run_leaf_hooks(leaf: Tensor, g: Any) -> Any:
    """The gradient after ``leaf``'s hooks (each may return a replacement; raw arrays stay raw)."""
    raw = type(g) is not Tensor
    for hook in list(LEAF_HOOKS[id(leaf)][1]):
        replaced = hook(Tensor(g) if raw else g)
        if replaced is not None:
            if type(replaced) is not Tensor or replaced.shape != leaf.shape:
                raise RuntimeError(
                    f"register_hook: a hook must return None or a tensor of shape {leaf.shape}, got "
                    f"{type(replaced).__name__} {getattr(replaced, 'shape', '')}"
                )
            g = replaced._data if raw else replaced
    if raw and type(g) is ndarray and g.dtype != leaf.dtype:
        g = g.astype(leaf.dtype)
    return g


def _constant_like(t: Tensor, value: Any) -> Tensor:
    """``value`` broadcast to ``t``'s shape; recorded as ``where`` (gradient 0 to ``t``) when ``t`` is in a graph."""
    v = value._data if type(value) is Tensor else value
    d = t._data
    if type(d) is not ndarray and type(d) is not float:  # another library's array: its own full()
        ns = namespace_of(d)
        filled = ns.xp.full(tuple(d.shape), float(v) if not is_foreign(v) else v, dtype=d.dtype, device=ns.device_of(d))
        if MODE.enabled and t.requires_grad:
            from .ops import where

            never = ns.xp.zeros(tuple(d.shape), dtype=ns.xp.bool, device=ns.device_of(d))
            return where(never, t, filled)
        return Tensor(filled)
    if MODE.enabled and t.requires_grad:
        from .ops import where

        return where(np.zeros(t.shape, dtype=bool), t, v)
    return Tensor(np.broadcast_to(np.asarray(v, dtype=t.dtype), t.shape))


def _put(t: Tensor, index: Any, value: Any) -> Tensor:
    """``t`` with ``t[index]`` replaced by ``value``, as a recorded (differentiable) expression."""
    from .ops import astype, broadcast_to, scatter_add, where

    d = t._data
    if type(d) is not ndarray and type(d) is not float:  # another library's array: masks and values there
        from .backend import to_numpy

        items = index if type(index) is tuple else (index,)
        host = tuple(to_numpy(i) if is_foreign(i) else i for i in items)
        host_index = host if type(index) is tuple else host[0]
        shape = tuple(d.shape)
        mask = np.zeros(shape, dtype=bool)
        mask[host_index] = True
        selected_shape = np.zeros(shape, dtype=bool)[host_index].shape
        ns = namespace_of(d)
        chosen: Any = ns.xp.asarray(mask, device=ns.device_of(d))
        if type(value) is not Tensor:
            value = tensor(as_value(value, "setitem"), dtype=t.dtype, device=t.device)
        v = astype(value, t.dtype) if value.dtype != t.dtype else value
        v = broadcast_to(v, selected_shape)
        return where(chosen, scatter_add(v, index, shape), t)
    base = np.asarray(d)
    chosen = np.zeros(base.shape, dtype=bool)
    chosen[index] = True
    selected_shape = base[index].shape
    v = value if type(value) is Tensor else Tensor(np.asarray(as_value(value, "setitem"), dtype=t.dtype))
    if v.dtype != t.dtype:
        v = astype(v, t.dtype)
    try:
        v = broadcast_to(v, selected_shape)
    except ValueError:
        raise ValueError(
            f"setitem: cannot write a value of shape {v.shape} into index {index!r} of a tensor of shape {t.shape} "
            f"(the selection has shape {selected_shape})"
        ) from None
    return where(chosen, scatter_add(v, index, base.shape), t)


_GRAPH_SLOTS = ("_node", "_seq", "_epoch", "_a", "_b", "_av", "_bv", "_args")

_LEAF_MESSAGE = (
    "{op}: a leaf tensor that requires grad is being used in an in-place operation while gradients are "
    "recorded (torch: 'a leaf Variable that requires grad is being used in an in-place operation'). "
    "Update parameters inside `with cr.no_grad():`, e.g. `with cr.no_grad(): w -= lr * w.grad`."
)


def inplace(t: Tensor, op: str, compute: Callable[[], Tensor]) -> Tensor:
    """Overwrite ``t``'s memory with ``compute()`` (the out-of-place result), as torch's in-place ops do.

    - A leaf that requires grad may change in place only with grad mode off
      (``cr.no_grad()``), and keeps ``requires_grad``.
    - The dtype stays ``t``'s: a result that cannot be cast safely (``int += 0.5``) raises.
    - The change bumps ``t``'s version, so a graph that saved the old value raises at backward().
    - If the result was recorded (``t`` or the operand is in a graph), ``t`` becomes that node:
      the old value lives on in a fresh tensor the new node reads, as torch rebases history.
    """
    if t.requires_grad and t._node is None and MODE.enabled:
        raise RuntimeError(_LEAF_MESSAGE.format(op=op))
    if MODE.enabled and t._node is not None and t._node is not FREED and t._node.name in VIEW_PRIMITIVES:
        base = _view_base(t)
        if base._node is None and base.requires_grad:  # torch refuses this too: the write would reach the leaf
            raise RuntimeError(
                f"{op}: this tensor is a view of a leaf tensor that requires grad (shape {base.shape}), and an "
                "in-place change would change the leaf; do it inside `with cr.no_grad():`, or modify a clone()"
            )
    result = compute()
    new = result._data
    d = t._data
    if type(d) is float:
        if np.shape(new) != () or not np.can_cast(np.result_type(new), np.float64, "same_kind"):
            raise RuntimeError(
                f"{op}: a result of shape {np.shape(new)} and dtype {np.result_type(new)} cannot be written "
                "into a float64 scalar tensor"
            )
    else:
        if np.broadcast_shapes(np.shape(new), d.shape) != d.shape:
            raise RuntimeError(
                f"{op}: the result has shape {np.shape(new)}, which does not fit the tensor's shape {d.shape} "
                "(an in-place operation cannot change the shape); write t = t op x instead"
            )
        rtype = _numpy_dtype_of(new)
        if not np.can_cast(rtype, _numpy_dtype_of(d), "same_kind"):
            raise RuntimeError(
                f"{op}: the result type {rtype} cannot be cast to the tensor's dtype {d.dtype} in place "
                f"(torch refuses too); write t = t op x, or convert first with t.to(...)"
            )
        if type(d) is ndarray and not d.flags.writeable:
            raise RuntimeError(f"{op}: this tensor's memory is read-only (a broadcast view?); clone() it first")
    foreign = type(d) is not ndarray and type(d) is not float
    recorded = result._node is not None
    if recorded:
        old = history_copy(t)
        _redirect(result, t, d, old)
    if type(d) is float:
        t._data = float(new)
    elif foreign:
        _write_foreign(t, d, new)
    else:
        d[...] = new
    mark_modified(t)
    if recorded:
        for slot in _GRAPH_SLOTS:
            setattr(t, slot, getattr(result, slot))
        t._epoch = EPOCHS.value
        t.requires_grad = True
    return t


def history_copy(t: Tensor) -> Tensor:
    """A fresh tensor holding a copy of ``t``'s value and ``t``'s graph record: what an in-place overwrite of
    ``t`` computed by several operations reads, so none of them reads the tensor being overwritten."""
    old = Tensor(copy_value(t._data), t.requires_grad)
    if t._node is not None:
        for slot in _GRAPH_SLOTS:
            setattr(old, slot, getattr(t, slot))
    old._version = t._version
    return old


def copy_value(d: Any) -> Any:
    """A copy of a tensor's value with memory of its own (a Python float is immutable: itself)."""
    if type(d) is ndarray:
        return np.array(d)
    if type(d) is float:
        return d
    return namespace_of(d).xp.asarray(d, copy=True)


def _view_base(t: Tensor) -> Tensor:
    """The tensor whose memory view ``t`` writes into (following views while they share memory)."""
    x = t
    while x._node is not None and x._node is not FREED and x._node.name in VIEW_PRIMITIVES:
        parent = x._a[0] if type(x._a) is tuple else x._a
        if parent is None or not _shares(x._data, parent._data):
            break
        x = parent
    return x


def _numpy_dtype_of(v: Any) -> np.dtype:
    if type(v) is ndarray:
        return v.dtype
    if type(v) is not float and is_foreign(v):
        return numpy_dtype(v.dtype)
    return np.result_type(v)


def _write_foreign(t: Tensor, d: Any, new: Any) -> None:
    """``d[...] = new`` for another library's array; a library without item assignment (JAX) gets a new array."""
    xp = namespace_of(d).xp
    if not is_foreign(new) or namespace_of(new).xp is not xp:
        new = xp.asarray(np.asarray(new), device=namespace_of(d).device_of(d))
    if new.dtype != d.dtype:
        new = xp.astype(new, d.dtype)
    try:
        d[...] = new
    except (TypeError, ValueError, NotImplementedError):
        t._data = xp.broadcast_to(new, tuple(d.shape))


def _redirect(node: Tensor, t: Tensor, d: Any, old: Tensor) -> None:
    """In ``node``'s record, make the inputs that were ``t`` (and its saved value ``d``) point at ``old``."""
    if node._args is None:
        if node._a is t:
            node._a = old
        if _saved_as(node._av, d):
            node._av = _moved(node._av, old)
        if node._b is t:
            node._b = old
        if _saved_as(node._bv, d):
            node._bv = _moved(node._bv, old)
        return
    node._a = tuple(old if x is t else x for x in node._a)
    node._args = tuple(_moved(v, old) if _saved_as(v, d) else v for v in node._args)


def _saved_as(v: Any, d: Any) -> bool:
    """Whether a node's saved value ``v`` is array ``d`` (or a stand-in for it, see chainrule.saved)."""
    return v is d or (type(v) is _Released and v.value() is d)


def _moved(v: Any, old: Tensor) -> Any:
    """``old``'s value in place of the saved value ``v`` (a stand-in stays a stand-in, now for ``old``'s array)."""
    return _Released(old._data) if type(v) is _Released else old._data


def source_placement(value: Any) -> Any:
    """Where ``value`` lives, as :func:`chainrule.backend.move` takes it back: ``"numpy"`` or a device object."""
    if type(value) is float or type(value) is ndarray:
        return "numpy"
    from .backend import device_of

    return device_of(value)


def _foreign_repr(t: Tensor, d: Any) -> str:
    from .backend import library_name

    body = np.array2string(np.asarray(to_numpy(d)), separator=", ", threshold=20, edgeitems=3, prefix="tensor(")
    extras = [f"dtype={d.dtype}", f"device={t.device}", f"library={library_name(d)}"]
    if t._node is not None and t._node is not FREED:
        extras.append(f"op={t._node.name}")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return f"tensor({body}, {', '.join(extras)})"


def _raw_index(index: Any) -> Any:
    """An index with any tensors in it replaced by their arrays (a 0-d integer tensor by its int, as torch
    reads it: ``a[torch.tensor(1)]`` is a view, where a 0-d index array would make NumPy copy)."""
    if type(index) is Tensor:
        return _index_part(index)
    if type(index) is tuple:
        return tuple(_index_part(i) if type(i) is Tensor else i for i in index)
    if type(index) is list:
        return np.asarray(index)
    return index


def _index_part(i: Tensor) -> Any:
    d = i._data
    if type(d) is ndarray and d.ndim == 0 and d.dtype.kind in "iu":
        return int(d)
    return i.data


def clear_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset the ``.grad`` of each tensor: to ``None`` (the default, as in PyTorch 2) or to zeros in place."""
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        else:
            p.grad.zero_()


def _foreign_tensor(data: Any, requires_grad: bool, dtype: Any, device: Any) -> Tensor:
    """``tensor()`` for another library's array, or for any data sent to a device that is not NumPy's."""
    from .backend import move

    if not is_foreign(data):
        data = tensor(data, dtype=dtype)._data  # NumPy's reading of lists and numbers, then the move
        dtype = None
    value = move(data, device)
    ns = namespace_of(value) if is_foreign(value) else None
    if ns is None:  # the move came back to NumPy (cuda -> "cpu" for CuPy)
        return tensor(value, requires_grad, dtype)
    xp = ns.xp
    if not (xp.isdtype(value.dtype, "numeric") or xp.isdtype(value.dtype, "bool")):
        raise TypeError(f"tensor: {ns.library} data of dtype {value.dtype} is not supported; use bool, int or float")
    if dtype is not None:
        value = xp.astype(value, native_dtype(ns, dtype), copy=True)
    elif value is data:
        value = xp.asarray(value, copy=True)
    if ns.library == "torch" and value.requires_grad:
        value = value.detach()
    if requires_grad and not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"tensor: only floating-point tensors can require gradients, got dtype {value.dtype}; pass float data"
        )
    return Tensor(value, requires_grad)


def _has_dtype(data: Any) -> bool:
    """Whether ``data`` carries its own dtype (an array or NumPy scalar), which tensor() keeps."""
    return isinstance(data, (np.ndarray, np.generic, Tensor))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    """Make a tensor from a number, a nested list, an array or a tensor (always copies).

    Python floats and float64 scalars keep the scalar fast path; ``dtype`` picks
    a dtype (``"float32"``, ``np.float64``, ...).  Only floating-point
    tensors can require gradients.

    An array of another library (a torch tensor, a CuPy or JAX array,
    ``array_api_strict``) stays in that library and on its device.  ``device``
    moves the data: ``"cpu"``, ``"cuda"``/``"cuda:N"`` (CuPy if installed, else
    torch) or a library's own device object (see :mod:`chainrule.backend`).
    """
    if isinstance(data, Tensor):
        if dtype is None and device is None and type(data._data) is float:
            return Tensor(data._data, requires_grad)
        data = data._data
    if is_foreign(data) or (device is not None and device != "cpu"):
        return _foreign_tensor(data, requires_grad, dtype, device)
    if dtype is None and type(data) is float and DEFAULTS.float is _F64:
        value: Any = data
    else:
        try:
            arr = np.array(data, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: cannot convert {type(data).__name__} to a numeric array: {exc}") from None
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"tensor: cannot make a tensor from {type(data).__name__} data (NumPy dtype {arr.dtype}); "
                "use bool, int or float values"
            )
        if dtype is None and arr.dtype == np.float64 and DEFAULTS.float != arr.dtype and not _has_dtype(data):
            arr = arr.astype(DEFAULTS.float)  # Python floats and lists take the default dtype, as in torch
        value = float(arr) if arr.ndim == 0 and arr.dtype == np.float64 else arr
    if requires_grad and not _float_dtype(value):
        raise TypeError(
            f"tensor: only floating-point tensors can require gradients, got dtype {np.result_type(value)}; "
            "pass float data or dtype=float64"
        )
    return Tensor(value, requires_grad)
