"""Symbolic arrays: a formula with a shape (``Sym``), its constructors, and ``SYM``, the namespace the VJP
rules run in to print their own formulas (``derive``, the trace's local derivatives)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from ..numeric import normalize_axes

_RENDER: list = []  # chainrule.symbolic.render puts its render() here (Sym's repr prints the formula)


ELEMENTWISE_BINARY = ("add", "sub", "mul", "div", "pow")


UNARY = ("exp", "log", "sin", "cos", "sqrt", "sign")


CMP = {"gt": ">", "lt": "<", "ge": "≥", "le": "≤", "eq": "=", "ne": "≠"}


_NP_CMP = {"gt": np.greater, "lt": np.less, "ge": np.greater_equal, "le": np.less_equal, "eq": np.equal}


_NP_CMP["ne"] = np.not_equal


def shape_of(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Sym) else tuple(np.shape(x))


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if not a or not b:
        raise ValueError(f"matmul: operands must be at least 1-D, got {a} @ {b}")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: shapes {a} @ {b} do not align")
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return tuple(out)


class Sym:
    """A symbolic array: an operation ``op`` on ``args`` (Syms or constants) with a known ``shape``.

    ``op`` is ``"var"`` (``name``), ``"const"`` (``value``), an elementwise or
    unary operation, ``"matmul"``, ``"sum"``/``"reshape"``/``"broadcast"``/
    ``"transpose"``/``"getitem"``/``"scatter"`` (with ``params``), ``"where"``,
    ``"cmp"`` (``params[0]`` is the comparison) or ``"prim"`` (a forward
    primitive, ``params = (primitive, *static)``).
    """

    __slots__ = ("op", "args", "shape", "params", "name")
    __array_ufunc__ = None
    __hash__ = object.__hash__

    def __init__(self, op: str, args: tuple = (), shape: tuple = (), params: tuple = (), name: str = "") -> None:
        self.op = op
        self.args = args
        self.shape = tuple(int(s) for s in shape)
        self.params = params
        self.name = name

    def __repr__(self) -> str:
        return f"Sym({_RENDER[0](self)} : {self.shape})"

    # --- arithmetic the rules use ----------------------------------------------------------------
    def _bin(self, op: str, other: Any, swap: bool = False) -> Sym:
        a, b = (other, self) if swap else (self, other)
        return binary(op, a, b)

    def __add__(self, o: Any) -> Sym:
        return self._bin("add", o)

    def __radd__(self, o: Any) -> Sym:
        return self._bin("add", o, True)

    def __sub__(self, o: Any) -> Sym:
        return self._bin("sub", o)

    def __rsub__(self, o: Any) -> Sym:
        return self._bin("sub", o, True)

    def __mul__(self, o: Any) -> Sym:
        return self._bin("mul", o)

    def __rmul__(self, o: Any) -> Sym:
        return self._bin("mul", o, True)

    def __truediv__(self, o: Any) -> Sym:
        return self._bin("div", o)

    def __rtruediv__(self, o: Any) -> Sym:
        return self._bin("div", o, True)

    def __pow__(self, o: Any) -> Sym:
        return self._bin("pow", o)

    def __rpow__(self, o: Any) -> Sym:
        return self._bin("pow", o, True)

    def __matmul__(self, o: Any) -> Sym:
        return matmul(self, o)

    def __rmatmul__(self, o: Any) -> Sym:
        return matmul(o, self)

    def __neg__(self) -> Sym:
        return Sym("neg", (self,), self.shape)

    def _cmp(self, op: str, o: Any) -> Sym:
        return Sym("cmp", (self, o), np.broadcast_shapes(self.shape, shape_of(o)), (op,))

    def __gt__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("gt", o)

    def __lt__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("lt", o)

    def __ge__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("ge", o)

    def __le__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("le", o)

    def __eq__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("eq", o)

    def __ne__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("ne", o)


def var(name: str, shape: tuple[int, ...]) -> Sym:
    return Sym("var", (), shape, name=name)


def const(value: float, shape: tuple[int, ...] = ()) -> Sym:
    return Sym("const", (), shape, (float(value),))


def binary(op: str, a: Any, b: Any) -> Sym:
    return Sym(op, (a, b), np.broadcast_shapes(shape_of(a), shape_of(b)))


def matmul(a: Any, b: Any) -> Sym:
    return Sym("matmul", (a, b), _matmul_shape(shape_of(a), shape_of(b)))


def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Sym:
    shape = shape_of(x)
    axes = normalize_axes(axis, len(shape))
    if keepdims:
        out = tuple(1 if i in axes else s for i, s in enumerate(shape))
    else:
        out = tuple(s for i, s in enumerate(shape) if i not in axes)
    return Sym("sum", (x,), out, (axes, bool(keepdims)))


def _reshape(x: Any, shape: Any) -> Any:
    shape = tuple(int(s) for s in shape)
    if shape_of(x) == shape:
        return x
    return Sym("reshape", (x,), shape, (shape,))


def _broadcast(x: Any, shape: Any) -> Any:
    shape = tuple(int(s) for s in shape)
    if shape_of(x) == shape:
        return x
    return Sym("broadcast", (x,), shape, (shape,))


def _transpose(x: Any, axes: Optional[tuple[int, ...]] = None) -> Any:
    shape = shape_of(x)
    axes = tuple(range(len(shape) - 1, -1, -1)) if axes is None else tuple(a % len(shape) for a in axes)
    if axes == tuple(range(len(shape))):
        return x
    return Sym("transpose", (x,), tuple(shape[a] for a in axes), (axes,))


def _swapaxes(x: Any, a: int, b: int) -> Any:
    n = len(shape_of(x))
    perm = list(range(n))
    perm[a % n], perm[b % n] = perm[b % n], perm[a % n]
    return _transpose(x, tuple(perm))


def _getitem(x: Any, index: Any) -> Sym:
    shape = np.broadcast_to(np.zeros(()), shape_of(x))[index].shape
    return Sym("getitem", (x,), shape, (index,))


def _scatter(g: Any, index: Any, shape: Any) -> Sym:
    return Sym("scatter", (g,), tuple(shape), (index,))


def _where(c: Any, a: Any, b: Any) -> Sym:
    return Sym("where", (c, a, b), np.broadcast_shapes(shape_of(c), shape_of(a), shape_of(b)))


def _unary(op: str) -> Any:
    return lambda x: Sym(op, (x,), shape_of(x))


def _unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    gshape = shape_of(g)
    if gshape == tuple(shape):
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    return _reshape(_sum(g, axes), shape)


SYM = SimpleNamespace(
    name="symbolic",
    exp=_unary("exp"),
    log=_unary("log"),
    sin=_unary("sin"),
    cos=_unary("cos"),
    sign=_unary("sign"),
    sqrt=_unary("sqrt"),
    power=lambda x, y: binary("pow", x, y),
    where=_where,
    shape=shape_of,
    sum=_sum,
    reshape=_reshape,
    broadcast_to=_broadcast,
    transpose=_transpose,
    swapaxes=_swapaxes,
    getitem=_getitem,
    scatter_add=_scatter,
    astype=lambda x, dtype: x,
    matmul=matmul,
    unbroadcast=_unbroadcast,
    indicator=lambda cond, like: cond,  # a comparison prints as its 0/1 indicator already
    dtype_of=lambda x: None,
    apply=lambda primitive, *args: apply(primitive, *args),
    guarded=lambda mask, safe, x: x,  # the guard matters only where the formula is 0 · ∞; print x itself
)


def apply(primitive: Any, *args: Any) -> Any:
    """A primitive called inside a rule (fold inside unfold's VJP), as a formula with its result's shape."""
    nin = len(args) - 1 if primitive.variadic else primitive.nin
    inputs, params = args[:nin], args[nin:]
    shapes = tuple(shape_of(x) for x in inputs)
    if primitive.shape is not None:
        shape = tuple(primitive.shape(shapes, *params))
    else:  # run the forward on zeros of those shapes (the stand-in sizes are small)
        shape = tuple(np.shape(primitive.fwd(*(np.zeros(s) for s in shapes), *params)))
    return prim(primitive, inputs, params, shape)


def prim(primitive: Any, inputs: tuple, params: tuple, shape: tuple[int, ...]) -> Sym:
    """A forward operation as a formula: native ops where the printer knows them, else a named call."""
    name = primitive.name
    if name in ELEMENTWISE_BINARY:
        return binary(name, *inputs)
    if name == "neg":
        return -inputs[0] if isinstance(inputs[0], Sym) else const(-inputs[0])
    if name in UNARY:
        return Sym(name, inputs, shape)
    if name == "matmul":
        return matmul(*inputs)
    if name == "sum":
        axes = params[0] if params[0] is not None else tuple(range(len(shape_of(inputs[0]))))
        return Sym("sum", inputs, shape, (axes, params[1]))
    if name == "transpose":
        return _transpose(inputs[0], params[0])
    if name == "reshape":
        return _reshape(inputs[0], params[0])
    if name == "broadcast_to":
        return _broadcast(inputs[0], params[0])
    if name == "getitem":
        return _getitem(inputs[0], params[0])
    if name == "to_device":  # a move between devices is the identity in the mathematics
        return inputs[0]
    return Sym("prim", inputs, shape, (primitive,) + tuple(params))


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
