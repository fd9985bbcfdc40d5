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

The node slots are set only on nodes, so read them after checking ``_node``.
Tools read nodes through :mod:`chainrule.graph`, never these slots.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Optional

import numpy as np

from . import primitives as _registered  # noqa: F401  (registers every primitive)
from .primitive import Primitive
from .primitives import elementwise as E
from .primitives import shape as S

ndarray = np.ndarray

# The primitive of a node whose saved values were released by backward().
FREED = Primitive("<freed by backward>", lambda *a: None)


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
    """
    with _EPOCH_LOCK:
        EPOCHS.value += 1
        t._version = EPOCHS.value
        if t._node is None:
            for ref in getattr(t, "_a", None) or ():
                source = ref()
                if source is not None:
                    source._version = EPOCHS.value


class _Mode(threading.local):
    """Per-thread switches read on every operation.

    ``record`` folds the two switches into the one value the hot path reads:
    0 (grad mode off), 1 (recording), 2 (recording with anomaly checks).
    Change the switches only through :func:`set_grad_enabled` / :func:`set_anomaly_enabled`.
    """

    enabled = True  # grad mode: record the graph
    anomaly = False  # detect_anomaly: check values and remember source lines
    record = 1


MODE = _Mode()


def _refresh() -> None:
    MODE.record = (2 if MODE.anomaly else 1) if MODE.enabled else 0


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


class enable_grad(_GradModeSwitch):
    """Record operations again inside a ``no_grad`` region."""

    _target = True


_NUMERIC_KINDS = frozenset("biuf")


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
    return np.asarray(out)


def _shape_text(v: Any) -> str:
    return str(tuple(np.shape(v)))


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


def _scalar_fallback(prim: Primitive, values: tuple) -> Any:
    """Python math raised (log(0), 1/0, exp(1000)): redo it with NumPy's IEEE semantics."""
    with np.errstate(all="ignore"):
        return prim.fwd(*(np.float64(v) if type(v) in (float, int) else v for v in values))


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
        else:
            try:
                out = fwd(v)
            except Exception as exc:
                raise op_error(prim, (v,), 1, exc) from None
            if type(out) is not ndarray:
                out = _norm(out)
        if x.requires_grad and (record := MODE.record):
            t = Tensor(out, True, prim, _next_seq(), EPOCHS.value, x, UNARY, v)
            if record == 2:
                _anomaly_hook(t)
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
        else:
            try:
                out = fwd(av, bv)
            except Exception as exc:
                raise op_error(prim, (av, bv), 2, exc) from None
            if type(out) is not ndarray:
                out = _norm(out)
        if need and (record := MODE.record):
            t = Tensor(out, True, prim, _next_seq(), EPOCHS.value, a, b, av, bv)
            if record == 2:
                _anomaly_hook(t)
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
    for i in range(nin):
        a = args[i]
        if type(a) is Tensor:
            values[i] = a._data
            need = need or (a.requires_grad and prim.differentiable(i))
            inputs.append(a)
        else:
            values[i] = as_value(a, prim.name)
            inputs.append(None)
    values_t = tuple(values)
    try:
        out = prim.fwd(*values_t)
    except Exception as exc:
        raise op_error(prim, values_t, nin, exc) from None
    out = _norm(out)
    if need and (record := MODE.record):
        t = Tensor(out, True, prim, _next_seq(), EPOCHS.value, tuple(inputs), None, None, None, values_t)
        if record == 2:
            _anomaly_hook(t)
        return t
    return Tensor(out)


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
    return type(v) is float or v.dtype.kind == "f"


class Tensor:
    """An array that records the operations applied to it, for backpropagation.

    Make one with :func:`chainrule.tensor`.  ``Tensor(data)`` also works and does
    not copy NumPy arrays.
    """

    __slots__ = (
        "_data",
        "requires_grad",
        "_node",
        "grad",
        "_version",
        "_seq",
        "_epoch",
        "_a",
        "_b",
        "_av",
        "_bv",
        "_args",
        "__weakref__",
    )
    __array_ufunc__ = None  # NumPy defers to our reflected operators: np_array * t is a Tensor
    __array_priority__ = 1000

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
        self.grad: Optional[Tensor] = None
        self._version = 0
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
        """The value as a NumPy array (a 0-d array for scalars)."""
        d = self._data
        return d if type(d) is ndarray else np.array(d)

    @data.setter
    def data(self, value: Any) -> None:
        value = _norm(as_value(value, "Tensor.data"))
        if self.requires_grad and not _float_dtype(value):
            raise TypeError(f"Tensor.data: a tensor that requires grad needs float data, got {np.result_type(value)}")
        self._data = value
        mark_modified(self)

    @property
    def shape(self) -> tuple[int, ...]:
        d = self._data
        return () if type(d) is float else d.shape

    @property
    def ndim(self) -> int:
        d = self._data
        return 0 if type(d) is float else d.ndim

    @property
    def size(self) -> int:
        d = self._data
        return 1 if type(d) is float else d.size

    @property
    def dtype(self) -> np.dtype:
        d = self._data
        return np.dtype(np.float64) if type(d) is float else d.dtype

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
        d = self._data
        if type(d) is float:
            return d
        if d.size != 1:
            raise ValueError(f"item: only a tensor with one element converts to a Python number, got shape {d.shape}")
        return d.item()

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            return self.data.copy()
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.data
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def detach(self) -> Tensor:
        """The same value, cut from the graph (shares memory, and in-place changes count for both)."""
        out = Tensor(self._data)
        if type(self._data) is ndarray:  # a float is immutable: nothing to share
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
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return apply(S.astype, self, dtype)

    float = lambda self: self.astype(np.float32)  # noqa: E731  (torch's .float())
    double = lambda self: self.astype(np.float64)  # noqa: E731

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
    def backward(self, grad: Any = None, retain_graph: Optional[bool] = None, create_graph: bool = False) -> None:
        """Backpropagate from this tensor, accumulating into the leaves' ``.grad``.

        ``grad`` is the seed (required unless the tensor is a scalar).  The
        graph's saved values are freed afterwards unless ``retain_graph`` is
        true (it defaults to ``create_graph``).  With ``create_graph=True`` the
        backward pass is recorded too, so gradients can be differentiated again.
        """
        from .autodiff import run_backward

        run_backward([self], [grad], retain_graph=retain_graph, create_graph=create_graph)

    def zero_(self) -> Tensor:
        d = self._data
        if type(d) is float:
            self._data = 0.0
        else:
            d[...] = 0
        mark_modified(self)
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        if self.requires_grad and self._node is None and MODE.enabled:
            raise RuntimeError(
                "setitem: a leaf tensor that requires grad cannot be modified in place "
                "while recording; wrap the update in cr.no_grad()"
            )
        if type(self._data) is float:
            arr = np.array(self._data)
            arr[_raw_index(index)] = as_value(value)
            self._data = float(arr)
        else:
            self._data[_raw_index(index)] = as_value(value)
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
        return Tensor(np.asarray(fn(self._data, as_value(other, "compare"))))

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

    # --- methods mirroring the functions in chainrule.ops -------------------------
    @property
    def T(self) -> Tensor:
        from .ops import transpose

        return transpose(self)

    @property
    def mT(self) -> Tensor:
        from .ops import swapaxes

        return swapaxes(self, -1, -2)

    exp = make_unary(E.exp)

    log = make_unary(E.log)

    log1p = make_unary(E.log1p)

    sqrt = make_unary(E.sqrt)

    sin = make_unary(E.sin)

    cos = make_unary(E.cos)

    tanh = make_unary(E.tanh)

    sigmoid = make_unary(E.sigmoid)

    relu = make_unary(E.relu)

    def abs(self) -> Tensor:
        return unary(E.absolute, self)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:
        from .ops import clip

        return clip(self, min, max)

    clamp = clip

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        from .ops import sum as _sum

        return _sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        from .ops import mean

        return mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        from .ops import max as _max

        return _max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        from .ops import min as _min

        return _min(self, axis, keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        from .ops import logsumexp

        return logsumexp(self, axis, keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        from .ops import softmax

        return softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        from .ops import log_softmax

        return log_softmax(self, axis)

    def reshape(self, *shape: Any) -> Tensor:
        from .ops import reshape

        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    view = reshape

    def transpose(self, *axes: Any) -> Tensor:
        from .ops import transpose

        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        from .ops import broadcast_to

        return broadcast_to(self, shape)

    def matmul(self, other: Any) -> Tensor:
        from .ops import matmul

        return matmul(self, other)

    maximum = make_binary(E.maximum)
    minimum = make_binary(E.minimum)


def _raw_index(index: Any) -> Any:
    """An index with any tensors in it replaced by their arrays."""
    if type(index) is Tensor:
        return index.data
    if type(index) is tuple:
        return tuple(i.data if type(i) is Tensor else i for i in index)
    if type(index) is list:
        return np.asarray(index)
    return index


def clear_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset the ``.grad`` of each tensor: to ``None`` (the default, as in PyTorch 2) or to zeros in place."""
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        else:
            p.grad.zero_()


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a tensor from a number, a nested list, a NumPy array or a tensor (always copies).

    Python floats and float64 scalars keep the scalar fast path; ``dtype`` picks
    a NumPy dtype (``"float32"``, ``np.float64``, ...).  Only floating-point
    tensors can require gradients.
    """
    if isinstance(data, Tensor):
        data = data._data
    if dtype is None and type(data) is float:
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
        value = float(arr) if arr.ndim == 0 and arr.dtype == np.float64 else arr
    if requires_grad and not _float_dtype(value):
        raise TypeError(
            f"tensor: only floating-point tensors can require gradients, got dtype {np.result_type(value)}; "
            "pass float data or dtype=float64"
        )
    return Tensor(value, requires_grad)
