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

import math
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Optional

import numpy as np

from . import primitives as _registered  # noqa: F401  (registers every primitive)
from . import saved as _saved
from . import versions
from .backend import common_namespace, is_foreign, namespace_of, native_dtype, numpy_dtype, to_numpy
from .grad_mode import MODE, _record_hook, no_grad
from .primitive import Primitive
from .primitives import elementwise as E
from .primitives import shape as S
from .values import (
    _F64,
    _INT_KINDS,
    _NUMERIC_KINDS,
    _adopt,
    _float_dtype,
    _norm,
    _scalar_fallback,
    _zero_dim_operands,
    foreign_forward,
    op_error,
    promote_int,
    promote_int_scalar,
)
from .versions import (
    EPOCHS,
    FREED,
    UNARY,
    VIEW_PRIMITIVES,
    DataView,
    _next_seq,
    _raw_index,
    _shares,
    mark_modified,
    note_view,
    torch_order,
)

ndarray = np.ndarray


_ECONOMY = _saved.ENABLED  # release arrays no rule reads (chainrule.saved); False on a Python where that is unsafe


_SAVED_STATE = _saved.STATE


_MIN_BYTES = _saved.MIN_BYTES


_MAX_RESULT_BYTES = _saved.MAX_RESULT_BYTES


_Released = _saved.Released


_saves_of = _saved.saves_of


_note_readers = _saved.note_readers


_nominate = _saved.nominate


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


def as_value(x: Any, op: str = "tensor") -> Any:
    """A raw value (float or ndarray) from user data; Python scalars stay Python scalars."""
    t = type(x)
    if t is float or t is int or t is ndarray:
        if t is ndarray and x.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"{op}: arrays of dtype {x.dtype} are not supported; use bool, int or float data")
        return x
    if t is Tensor:
        if MODE.batch is not None:  # cr.vmap traces: a batched value taken out of the graph cannot be batched
            MODE.batch.read(x, "value", None)
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


_new_tensor = object.__new__


# A float64 0-d tensor holds a Python float; to promotion it is a float64 tensor, not a Python number (which would
# take the default dtype): this empty array stands for it.
_F64_MARK = np.empty(0)


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
                if type(out) is float and v.dtype.kind in _INT_KINDS:
                    out = promote_int_scalar(out, v)
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
        if MODE.batch is None:
            return Tensor(out)
        return _off_graph(Tensor(out), prim, (x,))

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
            if (type(out) is float or out.dtype is _F64) and (
                (ta is ndarray and av.dtype.kind in _INT_KINDS) or (tb is ndarray and bv.dtype.kind in _INT_KINDS)
            ):
                out = (promote_int_scalar if type(out) is float else promote_int)(
                    out,
                    _F64_MARK if a is not None and ta is float else av,
                    bv if b is None or tb is not float else _F64_MARK,
                )
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
        if MODE.batch is None:
            return Tensor(out)
        return _off_graph(Tensor(out), prim, (av if a is None else a, bv if b is None else b))

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
        if (type(out) is float or type(out) is ndarray and out.dtype is _F64) and nin > 1:
            ins = values_t[:nin]
            if any(type(v) is ndarray and v.dtype.kind in _INT_KINDS for v in ins):
                out = (promote_int_scalar if type(out) is float else promote_int)(
                    out, *(_F64_MARK if type(v) is float and inputs[j] is not None else v for j, v in enumerate(ins))
                )
    if need and (record := MODE.record):
        t = Tensor(out, True, prim, _next_seq(), EPOCHS.value, tuple(inputs), None, None, None, values_t)
        if record != 1:
            _record_hook(t, record)
        if prim.name in VIEW_PRIMITIVES and inputs[0] is not None and inputs[0]._node is not None:
            note_view(inputs[0], t)  # (an in-place change of the source takes this view again: chainrule.inplace)
        if type(out) is ndarray and out.nbytes >= _MIN_BYTES and record != 2 and _ECONOMY:
            _economize(t, prim, t._a, values_t, out)
        return t
    t = Tensor(out)
    if prim.name in VIEW_PRIMITIVES and inputs[0] is not None and _shares(out, values_t[0]):
        t._a = _view_sources(inputs[0])  # a view: in-place changes to it mark its sources (see mark_modified)
    if MODE.batch is not None:
        _off_graph(t, prim, args)
    return t


def _off_graph(t: Tensor, how: Any, operands: tuple) -> Tensor:
    """Tell ``cr.vmap``'s tracer (``MODE.batch``) of a value computed without a graph node (a primitive under
    ``no_grad`` or on inputs that need no gradient, a comparison, ``detach``), so it is batched too."""
    if MODE.batch is not None:
        MODE.batch.derived(t, how, operands)
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


class Size(int):
    """``t.size``: the element count (an int, as NumPy's ``.size``) that can also be called as torch's
    ``t.size()`` (the shape tuple) or ``t.size(dim)`` (one dim's length)."""

    def __new__(cls, count: int, shape: tuple) -> Size:
        obj = int.__new__(cls, count)
        obj.shape = shape
        return obj

    def __call__(self, dim: Optional[int] = None) -> Any:
        if dim is None:
            return self.shape if PRINT.shape is None else PRINT.shape(self.shape)
        nd = len(self.shape)
        if not -nd <= int(dim) < max(nd, 1) or nd == 0:
            raise IndexError(f"size: dim {dim} is out of range for a tensor with {nd} dims (shape {self.shape})")
        return self.shape[int(dim)]


class _Print:
    """How tensors print: chainrule's own form, or ``style(tensor)`` where a higher layer sets one; ``shape``,
    where set, wraps a shape tuple (torch's ``torch.Size``, which prints as ``torch.Size([2, 3])``)."""

    style: Optional[Callable[[Any], str]] = None
    shape: Optional[Callable[[tuple], tuple]] = None


PRINT = _Print()


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
        s = () if type(d) is float else d.shape
        return s if PRINT.shape is None else PRINT.shape(s)

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
        return out if MODE.batch is None else _off_graph(out, "detach", (self,))

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
        if self.ndim == 0:  # raised by iter() itself, as torch does, so np.iterable(t) is False
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

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
        if PRINT.style is not None:  # torch's printed form, once chainrule.torch is imported (chainrule.torch._print)
            return PRINT.style(self)
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

    # --- operators (the matrix product, indexing writes and .backward() are attached by the layers above:
    # chainrule.methods and chainrule.interop) ----------------------------------------------------------
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

    __neg__ = make_unary(E.neg)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return unary(E.absolute, self)

    def __getitem__(self, index: Any) -> Tensor:
        index = _raw_index(index)
        if type(index) is tuple and (split := torch_order(index)) is not None:
            return apply(S.getitem, apply(S.getitem, self, split[0]), split[1])  # torch's order (see torch_order)
        return apply(S.getitem, self, index)

    # Comparisons are not differentiable: they give boolean tensors.
    def _compare(self, other: Any, fn: Callable) -> Tensor:
        a, b = self._data, (other._data if type(other) is Tensor else as_value(other, "compare"))
        if (type(a) is not ndarray and is_foreign(a)) or (type(b) is not ndarray and is_foreign(b)):
            ns = common_namespace("compare", (a, b))
            return Tensor(getattr(ns.xp, fn.__name__)(a, b))  # NumPy's names for these are the standard's
        return _off_graph(Tensor(np.asarray(fn(a, b))), fn, (self, other))

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
        return _off_graph(Tensor(np.asarray(np.logical_not(self._data))), np.logical_not, (self,))


# register_hook on leaves: id(leaf) -> (weak reference to the leaf, hooks in order).
versions.Tensor = Tensor  # (versions' DataView and index helpers read tensors' values)


def _foreign_repr(t: Tensor, d: Any) -> str:
    from .backend import library_name

    body = np.array2string(np.asarray(to_numpy(d)), separator=", ", threshold=20, edgeitems=3, prefix="tensor(")
    extras = [f"dtype={d.dtype}", f"device={t.device}", f"library={library_name(d)}"]
    if t._node is not None and t._node is not FREED:
        extras.append(f"op={t._node.name}")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return f"tensor({body}, {', '.join(extras)})"
