"""Symbolic arrays: the ``xp`` namespace that ``derive`` runs the primitives' VJP rules on.

A :class:`Sym` is an expression tree with a shape.  It supports the operators
the rules use (``+ - * / ** @``, unary ``-``, comparisons) and :data:`SYM`
provides the namespace functions (``xp.sum``, ``xp.reshape``, ``xp.swapaxes``
...), so ``rule(SYM, g, out, *args)`` returns the gradient as a formula.
:func:`simplify` rewrites it the way a person would write it, :func:`render`
prints it (Unicode or LaTeX) and :func:`evaluate` computes it with NumPy.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from .format import fmt_const
from .numeric import normalize_axes

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
        return f"Sym({render(self)} : {self.shape})"

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
)


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
    return Sym("prim", inputs, shape, (primitive,) + tuple(params))


# --- forwards on symbols -----------------------------------------------------------------------------
# cr.compile runs a primitive's own forward (``prim.xfwd(FWD, *inputs, *statics)``) in this namespace:
# the symbolic vocabulary of the rules, plus the forwards' names.  A name the forwards share with a
# primitive (``xp.tanh``, ``xp.maximum``) becomes that primitive's formula node; functions without an
# exact symbolic form (``astype``, ``widesum``, ``isfinite``, ...) raise, and the forward is then not
# written out.


def _named(name: str, nin: int) -> Any:
    def forward(*args: Any) -> Sym:
        from .primitive import REGISTRY

        inputs, params = args[:nin], args[nin:]
        shape = np.broadcast_shapes(*(shape_of(a) for a in inputs))
        return Sym("prim", tuple(inputs), shape, (REGISTRY[name], *params))

    return forward


def _reduction(name: str) -> Any:
    def forward(x: Any, axis: Any = None, keepdims: bool = False) -> Sym:
        from .primitive import REGISTRY

        return Sym("prim", (x,), _sum(x, axis, keepdims).shape, (REGISTRY[name], axis, keepdims))

    return forward


def _no_symbolic_form(*args: Any) -> Any:
    raise TypeError("no exact symbolic form")


FWD = SimpleNamespace(**vars(SYM))
FWD.add = FWD.add_fresh = lambda x, y: binary("add", x, y)
FWD.subtract = lambda x, y: binary("sub", x, y)
FWD.multiply = lambda x, y: binary("mul", x, y)
FWD.divide = lambda x, y: binary("div", x, y)
FWD.pow = lambda x, y: binary("pow", x, y)
FWD.negative = lambda x: -x
FWD.astype = FWD.dtype_of = _no_symbolic_form  # (SYM's are the identity and None: right for printing only)
for _name in ("tanh", "abs", "log1p", "log2", "log10", "erf"):
    setattr(FWD, _name, _named(_name, 1))
FWD.maximum, FWD.minimum, FWD.clip = _named("maximum", 2), _named("minimum", 2), _named("clip", 1)
FWD.mean, FWD.max, FWD.min = _reduction("mean"), _reduction("max"), _reduction("min")


# --- evaluation -------------------------------------------------------------------------------------


def evaluate(x: Any, env: Mapping[str, Any]) -> Any:
    """The value of ``x`` with NumPy; ``env`` maps variable names to arrays."""
    if not isinstance(x, Sym):
        return x
    op, a = x.op, x.args
    if op == "var":
        return env[x.name]
    if op in ("const", "sconst"):
        return np.broadcast_to(np.float64(x.params[0]), x.shape) if x.shape else np.float64(x.params[0])
    v = [evaluate(y, env) for y in a]
    with np.errstate(all="ignore"):
        if op == "add":
            return v[0] + v[1]
        if op == "sub":
            return v[0] - v[1]
        if op == "mul":
            return v[0] * v[1]
        if op == "div":
            return v[0] / v[1]
        if op == "pow":
            return np.power(v[0], v[1])
        if op == "neg":
            return -v[0]
        if op in UNARY:
            return getattr(np, op)(v[0])
        if op == "matmul":
            return np.matmul(v[0], v[1])
        if op == "sum":
            return np.sum(v[0], axis=x.params[0], keepdims=x.params[1])
        if op == "reshape":
            return np.reshape(v[0], x.params[0])
        if op == "broadcast":
            return np.broadcast_to(v[0], x.params[0])
        if op == "transpose":
            return np.transpose(v[0], x.params[0])
        if op == "getitem":
            return np.asarray(v[0])[x.params[0]]
        if op == "outer":
            return np.multiply.outer(v[0], v[1])
        if op == "scatter":
            out = np.zeros(x.shape)
            np.add.at(out, x.params[0], v[0])
            return out
        if op == "where":
            return np.where(v[0], v[1], v[2])
        if op == "cmp":
            return _NP_CMP[x.params[0]](v[0], v[1]).astype(np.float64)
        if op == "prim":
            return x.params[0].fwd(*v, *x.params[1:])
        if op == "fn":  # the generic f, checked with sin standing in
            return np.sin(v[0])
        if op == "fprime":
            return np.cos(v[0])
    raise ValueError(f"cannot evaluate symbolic operation {op!r}")


# --- simplification -----------------------------------------------------------------------------------


def is_const(x: Any, value: Optional[float] = None) -> bool:
    if isinstance(x, Sym):
        if x.op != "const":
            return False
        return value is None or x.params[0] == value
    if np.ndim(x) != 0:
        return False
    return value is None or float(x) == value


def const_value(x: Any) -> float:
    return x.params[0] if isinstance(x, Sym) else float(x)


def _strip1(shape: tuple[int, ...]) -> tuple[int, ...]:
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return shape[i:]


def _loose(x: Any) -> Any:
    """Drop broadcasts and reshapes that only add or remove leading 1s (NumPy broadcasting redoes them)."""
    while isinstance(x, Sym) and x.op in ("broadcast", "reshape"):
        inner = x.args[0]
        if x.op == "reshape" and _strip1(shape_of(inner)) != _strip1(x.shape):
            break
        x = inner
    return x


def _factors(x: Any) -> list:
    if isinstance(x, Sym) and x.op == "mul":
        return _factors(x.args[0]) + _factors(x.args[1])
    return [x]


def _product(factors: list, shape: tuple[int, ...]) -> Any:
    c = 1.0
    rest = []
    for f in factors:
        if is_const(f):
            c *= const_value(f)
        else:
            rest.append(f)
    if c == 0:
        return const(0.0, shape)
    merged: list = []
    counts: list[int] = []
    for f in rest:
        for k, m in enumerate(merged):
            if isinstance(f, Sym) and f.op == "var" and isinstance(m, Sym) and m.op == "var" and m.name == f.name:
                counts[k] += 1
                break
        else:
            merged.append(f)
            counts.append(1)
    rest = [m if n == 1 else binary("pow", m, const(float(n))) for m, n in zip(merged, counts)]
    if not rest:
        return const(c, shape)
    out = rest[0]
    for f in rest[1:]:
        out = Sym("mul", (out, f), np.broadcast_shapes(shape_of(out), shape_of(f)))
    if shape_of(out) != shape:  # a dropped constant (ones) carried the broadcast shape: keep it
        out = _broadcast(out, shape)
    if c == -1:
        return Sym("neg", (out,), shape_of(out))
    if c != 1:
        out = Sym("mul", (const(c), out), shape_of(out))
    return out


def same(a: Any, b: Any, depth: int = 0) -> bool:
    """Structurally equal formulas (compared to a small depth; deeper ones are reported different)."""
    if a is b:
        return True
    if not isinstance(a, Sym) or not isinstance(b, Sym) or depth > 8:
        return False
    if a.op != b.op or a.shape != b.shape or a.name != b.name or len(a.args) != len(b.args):
        return False
    if a.op in ("const", "sconst"):
        return a.params[0] == b.params[0]
    if a.params != b.params:
        try:
            if not bool(a.params == b.params):
                return False
        except ValueError:
            return False
    return all(same(u, v, depth + 1) for u, v in zip(a.args, b.args))


def _is_T(x: Any) -> bool:
    """A transpose of the last two axes (``xᵀ`` for a matrix, batched otherwise)."""
    if not (isinstance(x, Sym) and x.op == "transpose" and len(x.shape) >= 2):
        return False
    n = len(x.shape)
    return tuple(x.params[0]) == tuple(range(n - 2)) + (n - 1, n - 2)


def simplify(x: Any, memo: Optional[dict] = None) -> Any:
    """Rewrite ``x`` as a person would write it: no ``1 ⊙``, no double transposes, no identity reshapes.

    Shared subterms are simplified once (``memo``), so a formula that is a DAG stays linear to simplify.
    """
    if not isinstance(x, Sym) or x.op in ("var", "const", "sconst"):
        return x
    if memo is None:
        memo = {}
    hit = memo.get(id(x))
    if hit is not None:
        return hit[1]
    out = _simplify(x, memo)
    memo[id(x)] = (x, out)  # (x is kept alive so its id is not reused)
    return out


def _simplify(x: Sym, memo: dict) -> Any:
    def simplify(y: Any) -> Any:
        return _simplify_memo(y, memo)

    args = tuple(simplify(a) for a in x.args)
    op = x.op
    if op in ("add", "sub", "mul", "div", "where", "cmp", "pow"):
        loose = tuple(_loose(a) for a in args)
        if np.broadcast_shapes(*(shape_of(a) for a in loose)) == x.shape:
            args = loose
    if op in ("add", "sub", "div") and is_const(args[0]) and is_const(args[1]):
        a, b = const_value(args[0]), const_value(args[1])
        if op != "div" or b != 0:
            return const(a + b if op == "add" else a - b if op == "sub" else a / b, x.shape)
    if op == "mul" and len(x.shape) == 2:
        a, b = args
        for u, v in ((a, b), (b, a)):
            col = isinstance(u, Sym) and u.op == "reshape" and len(shape_of(u.args[0])) == 1 and u.shape[1] == 1
            if col and len(shape_of(v)) == 1 and not is_const(v):
                return Sym("outer", (u.args[0], v), x.shape)  # u vᵀ for 1-D u, v
    if op == "mul":
        factors = [f for a in args for f in _factors(a)]
        negs = 0
        plain = []
        for f in factors:
            while isinstance(f, Sym) and f.op == "neg":
                negs += 1
                f = f.args[0]
            plain.append(f)
        plain = _cancel(plain)
        spread = _distribute(plain, x.shape, simplify)
        if spread is not None:
            return spread if negs % 2 == 0 else simplify(Sym("neg", (spread,), x.shape))
        if negs % 2:
            plain.append(const(-1.0))
        return _product(plain, x.shape)
    if op == "sum" and isinstance(args[0], Sym) and args[0].op == "mul":
        c, rest = _scalar_factor(args[0])
        if c is not None:
            inner = Sym("sum", (rest,), x.shape, x.params)
            return simplify(Sym("mul", (c, inner), x.shape))
    if op in ("add", "sub"):
        (ca, ra), (cb, rb) = _scalar_factor(args[0]), _scalar_factor(args[1])
        if ca is not None and cb is not None and same(ca, cb):
            if ca.op == "sconst" and ca.params[1] < 0:  # (−1/B) a − (−1/B) b = (1/B) (b − a)
                flipped = Sym("sconst", (), ca.shape, (-ca.params[0], -ca.params[1], ca.params[2]))
                pair = (rb, ra) if op == "sub" else (ra, rb)
                inner = Sym(op, pair, x.shape)
                if op == "add":
                    return simplify(Sym("neg", (Sym("mul", (flipped, inner), x.shape),), x.shape))
                return simplify(Sym("mul", (flipped, inner), x.shape))
            return simplify(Sym("mul", (ca, Sym(op, (ra, rb), x.shape)), x.shape))
    if op == "sum" and isinstance(args[0], Sym) and args[0].op == "neg":
        return simplify(Sym("neg", (Sym("sum", args[0].args, x.shape, x.params),), x.shape))
    if (
        op == "add"
        and isinstance(args[0], Sym)
        and args[0].op == "neg"
        and not (isinstance(args[1], Sym) and args[1].op == "neg")
    ):
        return simplify(Sym("sub", (args[1], args[0].args[0]), x.shape))
    if op == "neg":
        a = args[0]
        if is_const(a):
            return const(-const_value(a), x.shape)
        if isinstance(a, Sym) and a.op == "neg":
            return a.args[0]
        return Sym("neg", (a,), x.shape)
    if op == "add":
        a, b = args
        if is_const(a, 0.0):
            return _fit(b, x.shape)
        if is_const(b, 0.0):
            return _fit(a, x.shape)
        if isinstance(b, Sym) and b.op == "neg":
            return Sym("sub", (a, b.args[0]), x.shape)
        if same(a, b):
            return simplify(Sym("mul", (const(2.0), a), x.shape))
        return Sym("add", args, x.shape)
    if op == "sub":
        a, b = args
        if is_const(b, 0.0):
            return _fit(a, x.shape)
        if is_const(a, 0.0):
            return simplify(Sym("neg", (b,), x.shape))
        if isinstance(b, Sym) and b.op == "neg":
            return Sym("add", (a, b.args[0]), x.shape)
        return Sym("sub", args, x.shape)
    if op == "div":
        a, b = args
        if is_const(b, 1.0):
            return _fit(a, x.shape)
        if isinstance(a, Sym) and a.op == "neg":
            return Sym("neg", (Sym("div", (a.args[0], b), x.shape),), x.shape)
        return Sym("div", args, x.shape)
    if op == "transpose":
        a = args[0]
        if isinstance(a, Sym) and a.op == "transpose":
            perm = tuple(a.params[0][p] for p in x.params[0])
            return simplify(_transpose(a.args[0], perm)) if perm != tuple(range(len(perm))) else a.args[0]
        if _is_T(x) and isinstance(a, Sym) and a.op == "matmul" and (_is_T(a.args[0]) or _is_T(a.args[1])):
            left, right = a.args
            if len(shape_of(left)) >= 2 and len(shape_of(right)) >= 2:
                return simplify(matmul(_swapaxes(right, -1, -2), _swapaxes(left, -1, -2)))
        return Sym("transpose", (a,), x.shape, x.params)
    if op == "sum":
        a = args[0]
        if isinstance(a, Sym) and a.op == "broadcast" and is_const(a.args[0]):
            n = math.prod(a.shape) // max(1, math.prod(x.shape))
            return const(const_value(a.args[0]) * n, x.shape)
        return Sym("sum", (a,), x.shape, x.params)
    if op == "reshape":
        a = args[0]
        if isinstance(a, Sym) and a.op == "matmul" and len(x.shape) == len(a.shape) - 1:
            left, right = a.args
            if isinstance(right, Sym) and right.op == "reshape" and len(shape_of(right.args[0])) == 1:
                if x.shape == a.shape[:-1]:
                    return simplify(matmul(left, right.args[0]))
        if is_const(a):
            return const(const_value(a), x.shape)
        if isinstance(a, Sym) and a.op == "sum" and not a.params[1]:
            inner = shape_of(a.args[0])
            if tuple(1 if i in a.params[0] else d for i, d in enumerate(inner)) == x.shape:
                return Sym("sum", a.args, x.shape, (a.params[0], True))  # a sum that keeps its axes
        if isinstance(a, Sym) and a.op == "reshape":
            a = a.args[0]
        if shape_of(a) == x.shape:
            return a
        return Sym("reshape", (a,), x.shape, x.params)
    if op == "broadcast":
        a = args[0]
        if is_const(a):
            return const(const_value(a), x.shape)
        return Sym("broadcast", (a,), x.shape, x.params)
    if op == "where":
        c, a, b = args
        if is_const(b, 0.0):
            return simplify(Sym("mul", (a, c), x.shape))
        if is_const(a, 0.0) and isinstance(c, Sym) and c.op == "cmp":
            flip = {"gt": "le", "lt": "ge", "ge": "lt", "le": "gt", "eq": "ne", "ne": "eq"}[c.params[0]]
            return simplify(Sym("mul", (b, Sym("cmp", c.args, c.shape, (flip,))), x.shape))
        return Sym("where", args, x.shape)
    return Sym(op, args, x.shape, x.params, x.name)


def _scalar_factor(x: Any) -> tuple[Any, Any]:
    """``c ⊙ rest`` with ``c`` a scalar constant (or size constant such as 1/B): ``(c, rest)``; else ``(None, x)``."""
    if isinstance(x, Sym) and x.op == "mul":
        factors = _factors(x)
        for i, c in enumerate(factors):
            if isinstance(c, Sym) and c.op in ("const", "sconst") and c.shape == ():
                others = factors[:i] + factors[i + 1 :]
                rest = others[0]
                for f in others[1:]:
                    rest = Sym("mul", (rest, f), np.broadcast_shapes(shape_of(rest), shape_of(f)))
                if shape_of(rest) == x.shape:
                    return c, rest
    return None, x


def _cancel(factors: list) -> list:
    """``(a / b) ⊙ b`` -> ``a`` (a factor that divides another factor's numerator away)."""
    out = list(factors)
    changed = True
    while changed:
        changed = False
        for i, f in enumerate(out):
            if not (isinstance(f, Sym) and f.op == "div"):
                continue
            for j, g in enumerate(out):
                if j != i and same(g, f.args[1]) and shape_of(g) == shape_of(f):
                    keep = [h for k, h in enumerate(out) if k not in (i, j)]
                    out = keep + [f.args[0]]
                    changed = True
                    break
            if changed:
                break
    return out


def _divides(term: Any, f: Any) -> bool:
    while isinstance(term, Sym) and term.op == "neg":
        term = term.args[0]
    return isinstance(term, Sym) and term.op == "div" and same(term.args[1], f)


def _distribute(factors: list, shape: tuple[int, ...], simplify: Any) -> Any:
    """``p ⊙ (a / p − b)`` -> ``a − p ⊙ b``: spread a factor over a sum when that cancels a division."""
    for i, f in enumerate(factors):
        if not (isinstance(f, Sym) and f.op in ("add", "sub")):
            continue
        others = [g for j, g in enumerate(factors) if j != i]
        if not any(_divides(term, g) for term in f.args for g in others):
            continue
        terms = []
        for term in f.args:
            prod = term
            for g in others:
                prod = Sym("mul", (prod, g), np.broadcast_shapes(shape_of(prod), shape_of(g)))
            terms.append(prod)
        return simplify(Sym(f.op, tuple(terms), shape))
    return None


def _simplify_memo(y: Any, memo: dict) -> Any:
    return simplify(y, memo)


def _fit(a: Any, shape: tuple[int, ...]) -> Any:
    if shape_of(a) == shape or not isinstance(a, Sym):
        return a
    return const(const_value(a), shape) if is_const(a) else _broadcast(a, shape)  # (a + 0 keeps the sum's shape)


# --- sizes that stay symbolic ---------------------------------------------------------------------------

_NO_DIMS: Mapping[int, str] = {}
_DIMS: contextvars.ContextVar[Mapping[int, str]] = contextvars.ContextVar("derive_dims", default=_NO_DIMS)


@contextlib.contextmanager
def dims_context(dims: Mapping[int, str]) -> Iterator[None]:
    """While active, sizes equal to a placeholder (7) print as their symbol (B)."""
    token = _DIMS.set(dict(dims))
    try:
        yield
    finally:
        _DIMS.reset(token)


def dim_text(d: int) -> str:
    return str(_DIMS.get().get(d, d))


def shape_text(shape: tuple[int, ...], sep: str = "×") -> str:
    return sep.join(dim_text(d) for d in shape) if shape else "scalar"


def sconst(value: float, k: Fraction, powers: tuple[tuple[str, int], ...], shape: tuple[int, ...] = ()) -> Sym:
    """A constant that depends on symbolic sizes: ``k · Π name**power`` (``value`` at the placeholder sizes)."""
    return Sym("sconst", (), shape, (float(value), k, powers))


def _sconst_parts(x: Sym) -> tuple[str, str]:
    """``(numerator, denominator)`` texts of a size-dependent constant, e.g. ``("1", "4B")``."""
    k, powers = x.params[1], x.params[2]
    num = [str(abs(k.numerator))] if abs(k.numerator) != 1 or not any(p > 0 for _, p in powers) else []
    den = [str(k.denominator)] if k.denominator != 1 else []
    for name, p in powers:
        (num if p > 0 else den).append(name + (str(abs(p)).translate(_SUPERSCRIPT) if abs(p) > 1 else ""))
    d = "".join(den)
    return "".join(num) or "1", (f"({d})" if len(den) > 1 else d)


def symbolize(a: Any, b: Any, sizes_a: Mapping[str, int], sizes_b: Mapping[str, int]) -> Any:
    """``a`` with each constant that differs from its twin in ``b`` written as a power product of the sizes.

    ``a`` and ``b`` are the same formula derived at two different placeholder sizes; a
    constant ``1/7`` at B = 7 that is ``1/11`` at B = 11 is ``1/B``.  A constant whose
    dependence is not a small power product is left as a number (the check, made at
    other sizes, then fails loudly).
    """
    memo: dict[int, Any] = {}
    names = sorted(sizes_a)

    def walk(x: Any, y: Any) -> Any:
        if not isinstance(x, Sym) and not isinstance(y, Sym) and np.ndim(x) == 0 and np.ndim(y) == 0:
            if float(x) != float(y):  # a plain number in a rule (mean's 1/n)
                fitted = _fit_powers(const(float(x)), float(y), names, sizes_a, sizes_b)
                return fitted if fitted.op == "sconst" else x
            return x
        if not isinstance(x, Sym) or not isinstance(y, Sym) or x.op != y.op or len(x.args) != len(y.args):
            return x
        if id(x) in memo:
            return memo[id(x)]
        if x.op == "const":
            out = x
            if x.params[0] != y.params[0]:
                out = _fit_powers(x, y.params[0], names, sizes_a, sizes_b)
        elif x.op == "var":
            out = x
        else:
            args = tuple(walk(u, v) for u, v in zip(x.args, y.args))
            out = x if all(u is v for u, v in zip(args, x.args)) else Sym(x.op, args, x.shape, x.params, x.name)
        memo[id(x)] = out
        return out

    return walk(a, b)


def _fit_powers(x: Sym, other: float, names: list[str], sa: Mapping[str, int], sb: Mapping[str, int]) -> Sym:
    va = x.params[0]
    for combo in itertools.product(range(-2, 3), repeat=len(names)):
        if not any(combo):
            continue
        fa = math.prod(float(sa[n]) ** p for n, p in zip(names, combo))
        fb = math.prod(float(sb[n]) ** p for n, p in zip(names, combo))
        ka, kb = va / fa, other / fb
        if ka != 0 and abs(ka - kb) <= 1e-9 * abs(ka):
            k = Fraction(ka).limit_denominator(10_000)
            if abs(float(k) - ka) <= 1e-9 * abs(ka):
                powers = tuple((n, p) for n, p in zip(names, combo) if p)
                return sconst(va, k, powers, x.shape)
    return x


def tree_size(x: Any, cap: int = 10_000) -> int:
    """How many nodes ``x`` has when written out as a tree (counting stops at ``cap``)."""
    count = 0
    stack = [x]
    while stack and count < cap:
        y = stack.pop()
        count += 1
        if isinstance(y, Sym):
            stack.extend(y.args)
    return count


def count_refs(x: Any, target: Any) -> int:
    """How many times ``target`` (by identity) occurs in the tree of ``x`` (shared subterms counted once each use)."""
    memo: dict[int, int] = {}

    def walk(y: Any) -> int:
        if y is target:
            return 1
        if not isinstance(y, Sym) or not y.args:
            return 0
        if id(y) not in memo:
            memo[id(y)] = min(sum(walk(a) for a in y.args), 1_000_000)
        return memo[id(y)]

    return walk(x)


def substitute(x: Any, mapping: Mapping[int, Any]) -> Any:
    """``x`` with the subterms whose ids are in ``mapping`` replaced."""
    memo: dict[int, Any] = {}

    def walk(y: Any) -> Any:
        if id(y) in mapping:
            return mapping[id(y)]
        if not isinstance(y, Sym) or not y.args:
            return y
        if id(y) not in memo:
            args = tuple(walk(a) for a in y.args)
            memo[id(y)] = y if all(u is v for u, v in zip(args, y.args)) else Sym(y.op, args, y.shape, y.params, y.name)
        return memo[id(y)]

    return walk(x)


def nodes(x: Any) -> Iterator[Sym]:
    """Every distinct subterm of ``x`` (each shared one once)."""
    seen: set[int] = set()
    stack = [x]
    while stack:
        y = stack.pop()
        if not isinstance(y, Sym) or id(y) in seen:
            continue
        seen.add(id(y))
        yield y
        stack.extend(y.args)


# --- printing ------------------------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_FN = {"sigmoid": "σ", "tanh": "tanh", "relu": "relu", "log_softmax": "log_softmax"}
# precedences: a child whose precedence is below what its parent needs gets parentheses
_ATOM, _POSTFIX, _POW, _PREFIX, _MUL, _ADD, _SUM = 9, 8, 7, 6, 4, 2, 1


def _latex_name(name: str) -> str:
    base = name.rstrip("0123456789")
    digits = name[len(base) :]
    if len(base) > 1 and not (base.startswith("d") and len(base) == 2):
        base = r"\mathit{" + base + "}"
    return base + (f"_{{{digits}}}" if digits else "")


def axis_label(in_ndim: int, axes: tuple[int, ...]) -> str:
    """``rows`` / ``cols`` / ``axis 0,2`` / ``""`` (all axes) for a reduction of an ``in_ndim``-D value."""
    if len(axes) == in_ndim:
        return ""
    if in_ndim == 2 and tuple(axes) == (0,):
        return "rows"
    if in_ndim == 2 and tuple(axes) == (1,):
        return "cols"
    return "axis " + ",".join(str(a) for a in axes)


def _sum_name(x: Sym, latex: bool) -> str:
    label = axis_label(len(shape_of(x.args[0])), x.params[0])
    if latex:
        return r"\sum" + (rf"_{{\text{{{label}}}}}" if label else "")
    return "Σ" + ("_" + label.replace(" ", "") if label else "")


def render(x: Any, latex: bool = False) -> str:
    r"""``x`` as text: ``dh ⊙ h ⊙ (1 − h)`` (or LaTeX: ``dh \odot h \odot \left(1 - h\right)``)."""
    return _render(x, latex)[0]


def _paren(text_prec: tuple[str, int], need: int, latex: bool) -> str:
    text, prec = text_prec
    if prec < need:
        return (r"\left(" + text + r"\right)") if latex else f"({text})"
    return text


def _ones(shape: tuple[int, ...], latex: bool) -> str:
    if latex:
        return r"\mathbf{1}_{" + shape_text(shape, r"\times ") + "}"
    return f"ones({shape_text(shape)})"


def _const_text(x: Sym, latex: bool, bare: bool) -> tuple[str, int]:
    """A constant; a shaped one that is not absorbed by broadcasting shows its shape (``0.5 ones(B×4)``)."""
    minus = "-" if latex else "−"
    if x.op == "sconst":
        num, den = _sconst_parts(x)
        sign = minus if x.params[1] < 0 else ""
        if latex:
            text = sign + (rf"\frac{{{num}}}{{{den}}}" if den else num)
        else:
            text = sign + (f"{num}/{den}" if den else num)
        prec = _PREFIX if sign else (_MUL if den else _ATOM)
    else:
        v = x.params[0]
        text, prec = _number(abs(v), latex)
        text, prec = (minus + text, _PREFIX) if v < 0 else (text, prec)
    if x.shape and not bare:
        if text == "1":
            return _ones(x.shape, latex), _ATOM
        return f"{_paren((text, prec), _MUL + 1, latex)} {_ones(x.shape, latex)}", _MUL
    return text, prec


def _number(v: float, latex: bool) -> tuple[str, int]:
    """A non-negative constant: ``0.5``, ``2/3`` (a simple fraction that is not a short decimal), ``1e-05``."""
    text = fmt_const(v)
    if len(text) > 6 and v != 0:
        f = Fraction(v).limit_denominator(100)
        if f.denominator > 1 and abs(float(f) - v) <= 1e-12 * abs(v):
            if latex:
                return rf"rac{{{f.numerator}}}{{{f.denominator}}}", _ATOM
            return f"{f.numerator}/{f.denominator}", _MUL
    return text, _ATOM


def _child(y: Any, parent_shape: tuple[int, ...], others: tuple, latex: bool) -> tuple[str, int]:
    """Render an operand of an elementwise operation; a shaped constant may print bare if broadcasting restores it."""
    if isinstance(y, Sym) and y.op in ("const", "sconst") and y.shape:
        rest = np.broadcast_shapes(*(shape_of(o) for o in others)) if others else ()
        return _const_text(y, latex, bare=tuple(rest) == tuple(parent_shape))
    return _render(y, latex)


def _render(x: Any, latex: bool) -> tuple[str, int]:
    if not isinstance(x, Sym):
        v = np.asarray(x)
        return (fmt_const(x), _ATOM) if v.ndim == 0 and float(v) >= 0 else (fmt_const(x), _PREFIX)
    op, a = x.op, x.args
    minus = "-" if latex else "−"
    odot = r" \odot " if latex else " ⊙ "
    if op == "var":
        return (_latex_name(x.name) if latex else x.name), _ATOM
    if op in ("const", "sconst"):
        return _const_text(x, latex, bare=False)
    if op == "neg":
        inner = a[0]
        need = _POW if isinstance(inner, Sym) and inner.op in ("mul", "matmul", "outer") else _MUL
        return minus + _paren(_render(inner, latex), need, latex), _PREFIX
    if op in ("add", "sub"):
        left = _paren(_child(a[0], x.shape, a[1:], latex), _ADD, latex)
        right = _paren(_child(a[1], x.shape, a[:1], latex), _ADD + 1, latex)
        return f"{left} {'+' if op == 'add' else minus} {right}", _ADD
    if op == "mul":
        factors = _factors(x)
        parts = []
        for j, f in enumerate(factors):
            r = _child(f, x.shape, tuple(factors[:j] + factors[j + 1 :]), latex)
            parts.append(_paren(r, _POW if r[1] != _MUL or not _is_scalar_factor(f) else _MUL + 1, latex))
        scal = [p for p, f in zip(parts, factors) if _is_scalar_factor(f)]
        rest = [p for p, f in zip(parts, factors) if not _is_scalar_factor(f)]
        if scal and rest:
            return " ".join(scal) + " " + odot.join(rest), _MUL
        return (" " if not rest else odot).join(parts), _MUL
    if op == "div":
        if latex:
            return r"\frac{" + _render(a[0], True)[0] + "}{" + _render(a[1], True)[0] + "}", _ATOM
        # a / b / c reads left to right, as in NumPy; a product on the left is parenthesized: (a ⊙ b) / c
        left_need = _POW if isinstance(a[0], Sym) and a[0].op in ("mul", "matmul", "outer") else _MUL
        left = _paren(_child(a[0], x.shape, a[1:], False), left_need, False)
        right = _paren(_child(a[1], x.shape, a[:1], False), _MUL + 1, False)
        return f"{left} / {right}", _MUL
    if op == "matmul":
        sep = r" \, " if latex else " · "
        left = _paren(_render(a[0], latex), _POW, latex)
        right = _paren(_render(a[1], latex), _POW, latex)
        return left + sep + right, _MUL
    if op == "pow":
        base = _paren(_render(a[0], latex), _ATOM, latex)
        if is_const(a[1]):
            e = fmt_const(const_value(a[1]))
            if latex:
                return f"{base}^{{{e}}}", _POW
            return base + e.translate(_SUPERSCRIPT), _POW
        e = _render(a[1], latex)[0]
        return (f"{base}^{{{e}}}" if latex else f"{base}^({e})"), _POW
    if op == "transpose":
        inner = _paren(_render(a[0], latex), _ATOM, latex)
        if _is_T(x):
            return inner + (r"^\top" if latex else "ᵀ"), _POSTFIX
        return f"transpose({_render(a[0], latex)[0]}, {x.params[0]})", _ATOM
    if op == "sum":
        name = _sum_name(x, latex)
        inner = _render(a[0], latex)
        if x.params[1]:  # keepdims: written out, as NumPy's keyword
            kd = r",\ \text{keepdims}" if latex else ", keepdims"
            return name + (r"\left(" if latex else "(") + inner[0] + kd + (r"\right)" if latex else ")"), _ATOM
        return name + " " + _paren(inner, _POSTFIX, latex), _SUM
    if op in UNARY:
        if latex and op == "sqrt":
            return r"\sqrt{" + _render(a[0], True)[0] + "}", _ATOM
        if latex:
            fn = {"exp": r"\exp", "log": r"\log", "sin": r"\sin", "cos": r"\cos"}.get(op, r"\operatorname{sign}")
            return rf"{fn}\left({_render(a[0], True)[0]}\right)", _ATOM
        return f"{op.replace('sqrt', '√')}({_render(a[0], False)[0]})", _ATOM
    if op == "cmp":
        sym = CMP[x.params[0]]
        if latex:
            sym = {"≥": r"\ge", "≤": r"\le", "≠": r"\ne"}.get(sym, sym)
            return rf"\left[{_render(a[0], True)[0]} {sym} {_render(a[1], True)[0]}\right]", _ATOM
        return f"[{_render(a[0], False)[0]} {sym} {_render(a[1], False)[0]}]", _ATOM
    if op in ("reshape", "broadcast"):
        dims = shape_text(x.params[0], r"\times " if latex else "×")
        word = r"\operatorname{" + op + "}" if latex else op
        return f"{word}({_render(a[0], latex)[0]}, {dims})", _ATOM
    if op == "getitem":
        return f"{_paren(_render(a[0], latex), _ATOM, latex)}[{x.params[0]}]", _POSTFIX
    if op == "outer":
        left = _paren(_render(a[0], latex), _POSTFIX, latex)
        right = _paren(_render(a[1], latex), _POSTFIX, latex)
        return left + (r" \otimes " if latex else " ⊗ ") + right, _MUL
    if op == "scatter":
        word = r"\operatorname{scatter}" if latex else "scatter"
        return f"{word}({_render(a[0], latex)[0]}, {x.params[0]}, {shape_text(x.shape)})", _ATOM
    if op == "where":
        parts = ", ".join(_render(y, latex)[0] for y in a)
        return (r"\operatorname{where}" if latex else "where") + f"({parts})", _ATOM
    if op == "fn":
        return f"{x.params[0]}({_render(a[0], latex)[0]})", _ATOM
    if op == "fprime":
        name = x.params[0]
        return (f"{name}'" if latex else f"{name}′") + f"({_render(a[0], latex)[0]})", _ATOM
    if op == "prim":
        p = x.params[0]
        name = _FN.get(p.name, p.name)
        if latex:
            name = r"\sigma" if p.name == "sigmoid" else r"\operatorname{" + p.name.replace("_", r"\_") + "}"
        inner = ", ".join(_render(y, latex)[0] for y in a)
        extra = ""
        static = x.params[1:]
        if static and p.name in ("softmax", "log_softmax", "logsumexp", "mean", "max", "min"):
            if static[0] is not None:
                extra = f", axis={static[0][0] if len(static[0]) == 1 else static[0]}"
            if len(static) > 1 and static[1]:
                extra += ", keepdims"
        return f"{name}({inner}{extra})", _ATOM
    return f"{op}({', '.join(_render(y, latex)[0] for y in a)})", _ATOM


def _is_scalar_factor(f: Any) -> bool:
    return shape_of(f) == () and (not isinstance(f, Sym) or f.op in ("const", "sconst", "var"))


# --- the program's own syntax (for Jacobian notes that anyone can rebuild) -----------------------------

_PY_BIN = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2), "matmul": ("@", 2), "pow": ("**", 4)}


def program_text(x: Any) -> str:
    """``x`` in the expression language ``derive`` reads (``W @ a + b``, ``sigmoid(z)``, ``sum(h, axis=1)``)."""
    return _program_text(x)[0]


def _pt(x: Any, need: int) -> str:
    text, prec = _program_text(x)
    return f"({text})" if prec < need else text


def _program_text(x: Any) -> tuple[str, int]:
    if not isinstance(x, Sym):
        return fmt_const(x), 5
    op, a = x.op, x.args
    if op == "var":
        return x.name, 5
    if op in ("const", "sconst"):
        v = x.params[0]
        return fmt_const(v), (3 if v < 0 else 5)
    if op in _PY_BIN:
        sym, prec = _PY_BIN[op]
        if op == "pow":
            return f"{_pt(a[0], 5)} ** {_pt(a[1], 4)}", 4
        return f"{_pt(a[0], prec)} {sym} {_pt(a[1], prec + 1)}", prec
    if op == "neg":
        return f"-{_pt(a[0], 3)}", 3
    if op == "transpose":
        return f"{_pt(a[0], 5)}.T", 5
    if op in UNARY:
        return f"{op}({program_text(a[0])})", 5
    if op == "sum":
        axes = x.params[0]
        extra = "" if len(axes) == len(shape_of(a[0])) else f", axis={axes[0] if len(axes) == 1 else axes}"
        return f"sum({program_text(a[0])}{extra}{', keepdims=True' if x.params[1] else ''})", 5
    if op in ("broadcast", "reshape"):
        return _program_text(a[0])
    if op == "fn":
        return f"{x.params[0]}({program_text(a[0])})", 5
    if op == "prim":
        p = x.params[0]
        static = x.params[1:]
        extra = ""
        if static and p.name in ("softmax", "log_softmax", "logsumexp", "mean", "max", "min") and static[0] is not None:
            extra = f", axis={static[0][0] if len(static[0]) == 1 else static[0]}"
        if len(static) > 1 and static[1] is True:
            extra += ", keepdims=True"
        return f"{p.name}({', '.join(program_text(y) for y in a)}{extra})", 5
    return f"{op}({', '.join(program_text(y) for y in a)})", 5


def strip_outer(text: str) -> str:
    """``(W @ a)`` -> ``W @ a`` (only when the parentheses enclose the whole text)."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return text
    return text[1:-1]
