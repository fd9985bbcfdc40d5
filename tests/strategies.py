"""Hypothesis strategies that generate random chainrule programs over the whole primitive set.

A :class:`Program` is straight-line code: named inputs (``x0, x1 ...``, which
require grad), named constants (``c0 ...``), lines ``vK = <expression>`` each
built around one registered primitive, and a final ``out = cr.sum(v * c)``
that reduces to a scalar.  Its ``repr`` is runnable chainrule code, so a
failing example shrinks to a program you can paste into a file.

The code is run in two namespaces: ``cr`` is chainrule itself, or
:data:`TORCH_NS`, a thin adapter that maps the same names onto PyTorch; the
printed program is exactly what ran on both sides.  Only lines generated here
are ever executed.

Every primitive has a *template* in :data:`TEMPLATES` (keyed by its registry
name) that writes one line using it; templates see the concrete values computed
so far, so they keep inputs inside the domain (``log`` of a positive value) and
record how close any kink (relu at 0, ties in max, clip edges) came to being
hit.  Values are decimals with two digits, or half-integers (the "grid" style),
which makes exact ties and exact zeros common: the edge cases by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

import chainrule as cr

MAX_SIZE = 36  # elements per value, so finite differences stay cheap
MAX_RANK = 4
DTYPES = {"float32": np.float32, "float64": np.float64}


# --- the PyTorch side ------------------------------------------------------------------------
def _dims(x: torch.Tensor, axis: Any) -> Any:
    if axis is None:
        return tuple(range(x.ndim))
    return axis


def _reduce(fn: Callable) -> Callable:
    def reduce(x: torch.Tensor, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        dims = _dims(x, axis)
        if x.ndim == 0:
            return fn(x, dim=0) if fn is torch.logsumexp else fn(x)
        return fn(x, dim=dims, keepdim=keepdims)

    return reduce


def _as_torch(x: Any, like: torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=like.dtype)


def _scatter_add(g: torch.Tensor, index: Any, shape: tuple) -> torch.Tensor:
    return torch.zeros(shape, dtype=g.dtype).index_put((torch.as_tensor(index),), g, accumulate=True)


# The names the generated programs use, implemented with PyTorch.
TORCH_NS = SimpleNamespace(
    tensor=lambda data, requires_grad=False: torch.tensor(np.asarray(data), requires_grad=requires_grad),
    exp=torch.exp,
    log=torch.log,
    log1p=torch.log1p,
    log2=torch.log2,
    log10=torch.log10,
    sqrt=torch.sqrt,
    sin=torch.sin,
    cos=torch.cos,
    tanh=torch.tanh,
    sigmoid=torch.sigmoid,
    relu=torch.relu,
    linear=torch.nn.functional.linear,
    abs=torch.abs,
    sum=_reduce(torch.sum),
    mean=_reduce(torch.mean),
    max=_reduce(torch.amax),
    min=_reduce(torch.amin),
    logsumexp=_reduce(torch.logsumexp),
    maximum=lambda x, y: torch.maximum(x, _as_torch(y, x)),
    minimum=lambda x, y: torch.minimum(x, _as_torch(y, x)),
    where=torch.where,
    clip=lambda x, lo=None, hi=None: torch.clamp(x, lo, hi),
    softmax=lambda x, axis: torch.softmax(x, dim=axis),
    log_softmax=lambda x, axis: torch.log_softmax(x, dim=axis),
    reshape=torch.reshape,
    transpose=lambda x, axes=None: x.permute(tuple(axes) if axes else tuple(range(x.ndim))[::-1]),
    permute=lambda x, dims: x.permute(tuple(dims)),
    linalg=torch.linalg,
    eye=lambda n, dtype=None: torch.eye(n, dtype=getattr(torch, np.dtype(dtype).name) if dtype else None),
    einsum=torch.einsum,
    broadcast_to=torch.broadcast_to,
    concatenate=lambda ts, axis=0: torch.cat(ts, dim=axis),
    stack=lambda ts, axis=0: torch.stack(ts, dim=axis),
    astype=lambda x, dtype: x.to(getattr(torch, np.dtype(dtype).name)),
    scatter_add=_scatter_add,
    nn=SimpleNamespace(
        functional=SimpleNamespace(
            unfold=torch.nn.functional.unfold,
            fold=torch.nn.functional.fold,
            erf=torch.erf,
            conv2d=torch.nn.functional.conv2d,
            conv2d_input=torch.nn.grad.conv2d_input,
            conv2d_weight=torch.nn.grad.conv2d_weight,
            max_pool2d=torch.nn.functional.max_pool2d,
            fused_conv2d=torch.nn.functional.conv2d,
            fused_max_pool2d=torch.nn.functional.max_pool2d,
        )
    ),
    torch_more=SimpleNamespace(
        asin=torch.asin,
        acos=torch.acos,
        atan=torch.atan,
        asinh=torch.asinh,
        acosh=torch.acosh,
        atanh=torch.atanh,
        expm1=torch.expm1,
        atan2=torch.atan2,
    ),
)


# --- programs --------------------------------------------------------------------------------
def _array_code(values: np.ndarray, dtype: str) -> str:
    return f"np.array({values.tolist()!r}, dtype=np.{dtype})"


class Program:
    """A generated chainrule program (see the module docstring)."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.inputs: dict[str, np.ndarray] = {}  # name -> values (float64 decimals; cast when run)
        self.consts: dict[str, np.ndarray] = {}
        self.lines: list[str] = []  # "vK = expr"; "{dt}" stands for the program's dtype
        self.prims: list[str] = []  # the primitive each line was written for
        self.tie = False  # some kink argument sat exactly on its kink (a tie, relu(0), abs(0) ...)
        self.margin = math.inf  # otherwise: the closest any kink argument came to its kink

    def body(self, dtype: str | None = None) -> str:
        dt = f"np.{dtype or self.dtype}"
        return "\n".join(line.replace("{dt}", dt) for line in self.lines)

    def source(self, dtype: str | None = None) -> str:
        dtype = dtype or self.dtype
        head = ["import numpy as np", "import chainrule as cr", ""]
        for name, values in self.inputs.items():
            head.append(f"{name} = cr.tensor({_array_code(values, dtype)}, requires_grad=True)")
        for name, values in self.consts.items():
            head.append(f"{name} = cr.tensor({_array_code(values, dtype)})")
        grads = ", ".join(f"{n}.grad" for n in self.inputs)
        tail = ["out.backward()", f"print(out, {grads})"]
        return "\n".join(head + [self.body(dtype)] + tail)

    def __repr__(self) -> str:
        return f"# {self.dtype} program; primitives: {', '.join(self.prims)}\n{self.source()}"

    def run(self, ns: Any, dtype: str | None = None, inputs: dict | None = None, grad: bool = True) -> dict:
        """Execute the program with ``cr`` bound to ``ns`` (chainrule or TORCH_NS); returns its variables."""
        dt = DTYPES[dtype or self.dtype]
        inputs = self.inputs if inputs is None else inputs
        env: dict[str, Any] = {n: ns.tensor(np.asarray(v, dtype=dt), requires_grad=grad) for n, v in inputs.items()}
        env.update({n: ns.tensor(np.asarray(v, dtype=dt)) for n, v in self.consts.items()})
        code = compile(self.body(dtype), "<generated program>", "exec")
        exec(code, {"cr": ns, "np": np}, env)  # noqa: S102  (our own generated code)
        return env


# --- building programs -----------------------------------------------------------------------
def _decimals(n: int, style: str) -> st.SearchStrategy:
    if style == "grid":  # half-integers: exact ties and zeros
        elem = st.integers(-4, 4).map(lambda k: k / 2)
    else:
        elem = st.integers(-250, 250).map(lambda k: k / 100)
    return st.lists(elem, min_size=n, max_size=n)


class Builder:
    """Draws one program line by line, evaluating it (with chainrule) as it goes."""

    def __init__(self, draw: Callable, dtype: str) -> None:
        self.draw = draw
        self.prog = Program(dtype)
        self.env: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.style = draw(st.sampled_from(["decimal", "grid"]))

    # values and names
    def values(self, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        return np.array(self.draw(_decimals(n, self.style)), dtype=np.float64).reshape(shape)

    def _add(self, table: dict, prefix: str, shape: tuple[int, ...]) -> str:
        name = f"{prefix}{len(table)}"
        table[name] = values = self.values(shape)
        self.env[name] = cr.tensor(np.asarray(values, dtype=DTYPES[self.prog.dtype]))
        self.shapes[name] = shape
        return name

    def new_input(self, shape: tuple[int, ...]) -> str:
        return self._add(self.prog.inputs, "x", shape)

    def new_const(self, shape: tuple[int, ...]) -> str:
        return self._add(self.prog.consts, "c", shape)

    def val(self, name: str) -> np.ndarray:
        return np.asarray(self.env[name].data, dtype=np.float64)

    def emit(self, prim: str, expr: str) -> str:
        name = f"v{len(self.prog.lines) + 1}"
        line = f"{name} = {expr}"
        local = dict(self.env)
        code = line.replace("{dt}", f"np.{self.prog.dtype}")
        exec(compile(code, "<generated line>", "exec"), {"cr": cr, "np": np}, local)  # noqa: S102
        value = local[name]
        assume(np.all(np.abs(value.data) < 1e4))  # keep magnitudes where finite differences are meaningful
        self.env[name] = value
        self.shapes[name] = value.shape
        self.prog.lines.append(line)
        self.prog.prims.append(prim)
        return name

    def kink(self, distance: Any) -> None:
        """Record how far an argument is from a kink (0 means exactly on it)."""
        d = float(np.min(distance)) if np.size(distance) else math.inf
        if d == 0:
            self.prog.tie = True
            d = float(np.min(np.where(np.asarray(distance) == 0, np.inf, distance)))
        self.prog.margin = min(self.prog.margin, d)

    # operands
    def one_of(self, options: list) -> Any:
        return self.draw(st.sampled_from(options))

    def compatible_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts with ``shape`` (the same, with 1s, shorter, longer, or stretching 1s)."""
        drop = self.draw(st.integers(0, len(shape)))
        dims = []
        for s in shape[drop:]:
            dims.append(self.one_of([1, 2, 3]) if s == 1 else self.one_of([s, 1]))
        lead = () if drop or len(shape) >= MAX_RANK or not self.draw(st.booleans()) else (self.one_of([2, 1]),)
        out = lead + tuple(dims)
        if math.prod(np.broadcast_shapes(out, shape)) > MAX_SIZE:
            return shape
        return out

    def partner(self, v: str) -> str:
        """A second operand for ``v``: itself, an earlier value that broadcasts with it, or a new input."""
        kind = self.one_of(["new", "self", "earlier"])
        if kind == "self":
            return v
        if kind == "earlier":
            size = max(MAX_SIZE, math.prod(self.shapes[v]))  # v itself always fits
            fits = [
                n for n, s in self.shapes.items() if not n.startswith("c") and _broadcastable(s, self.shapes[v], size)
            ]
            return self.one_of(fits)
        return self.new_input(self.compatible_shape(self.shapes[v]))

    def positive(self, v: str, floor: float = 0.1) -> str:
        """An expression for ``v`` if it is safely positive, else ``(v * v + 0.5)``."""
        return v if np.min(self.val(v)) >= floor else f"({v} * {v} + 0.5)"

    def axis_args(self, v: str, single: bool = False) -> tuple[str, Any]:
        """Reduction arguments as text (``, axis=(0, 2), keepdims=True``) and the axes as a tuple or None."""
        nd = len(self.shapes[v])
        if nd == 0:
            return "", None
        if single:
            a = self.draw(st.integers(-nd, nd - 1))
            return f", axis={a}", (a % nd,)
        form = self.one_of(["all", "one", "several"] if nd > 1 else ["all", "one"])
        if form == "all":
            text, axes = "", None
        elif form == "one":
            a = self.draw(st.integers(-nd, nd - 1))
            text, axes = f", axis={a}", (a % nd,)
        else:
            chosen = self.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=nd, unique=True))
            text, axes = f", axis={tuple(chosen)}", tuple(chosen)
        if self.draw(st.booleans()):
            text += ", keepdims=True"
        return text, axes


def _broadcastable(a: tuple, b: tuple, cap: int) -> bool:
    try:
        return math.prod(np.broadcast_shapes(a, b)) <= cap
    except ValueError:
        return False


# --- one template per primitive ---------------------------------------------------------------
Template = Callable[[Builder, str], str]
TEMPLATES: dict[str, tuple[Callable[[Builder, str], bool], Template]] = {}


def template(name: str, when: Callable[[Builder, str], bool] = lambda b, v: True) -> Callable:
    def register(fn: Template) -> Template:
        TEMPLATES[name] = (when, fn)
        return fn

    return register


def _nd(k: int) -> Callable[[Builder, str], bool]:
    return lambda b, v: len(b.shapes[v]) >= k


def _simple_unary(name: str, fn: str) -> None:
    template(name)(lambda b, v: b.emit(name, f"cr.{fn}({v})"))


for _name in ("sin", "cos", "tanh", "sigmoid"):
    _simple_unary(_name, _name)


@template("neg")
def _neg(b: Builder, v: str) -> str:
    return b.emit("neg", f"-{v}")


@template("exp")
def _exp(b: Builder, v: str) -> str:
    return b.emit("exp", f"cr.exp({v})" if np.max(b.val(v)) <= 4 else f"cr.exp(cr.tanh({v}))")


@template("log")
def _log(b: Builder, v: str) -> str:
    return b.emit("log", f"cr.log({b.positive(v)})")


@template("log2")
def _log2(b: Builder, v: str) -> str:
    return b.emit("log2", f"cr.log2({b.positive(v)})")


@template("log10")
def _log10(b: Builder, v: str) -> str:
    return b.emit("log10", f"cr.log10({b.positive(v)})")


@template("sqrt")
def _sqrt(b: Builder, v: str) -> str:
    return b.emit("sqrt", f"cr.sqrt({b.positive(v)})")


@template("log1p")
def _log1p(b: Builder, v: str) -> str:
    return b.emit("log1p", f"cr.log1p({v})" if np.min(b.val(v)) > -0.8 else f"cr.log1p({v} * {v})")


@template("relu")
def _relu(b: Builder, v: str) -> str:
    b.kink(np.abs(b.val(v)))
    return b.emit("relu", f"cr.relu({v})")


@template("abs")
def _abs(b: Builder, v: str) -> str:
    b.kink(np.abs(b.val(v)))
    return b.emit("abs", f"cr.abs({v})")


def _arith(name: str, op: str, constant: str) -> None:
    @template(name)
    def arith(b: Builder, v: str) -> str:
        form = b.one_of(["left", "right", "constant"])
        if form == "constant":
            return b.emit(name, f"{v} {op} {constant}")
        w = b.partner(v)
        return b.emit(name, f"{v} {op} {w}" if form == "left" else f"{w} {op} {v}")


_arith("add", "+", "1.5")
_arith("sub", "-", "0.25")
_arith("mul", "*", "0.5")


@template("div")
def _div(b: Builder, v: str) -> str:
    form = b.one_of(["tensor", "reciprocal", "constant"])
    if form == "constant":
        return b.emit("div", f"{v} / 3.0")
    if form == "reciprocal":
        return b.emit("div", f"1.0 / {b.positive(v, 0.2)}")
    w = b.partner(v)
    den = w if np.min(np.abs(b.val(w))) >= 0.2 else f"({w} * {w} + 0.5)"
    return b.emit("div", f"{v} / {den}")


@template("pow")
def _pow(b: Builder, v: str) -> str:
    form = b.one_of(["int", "float", "base", "tensor"])
    if form == "int":
        return b.emit("pow", f"{v} ** {b.one_of([2, 3, 0, 1])}")
    if form == "float":
        return b.emit("pow", f"{b.positive(v)} ** {b.one_of([1.5, 0.5, -1.0, 2.0])}")
    if form == "base" and np.max(np.abs(b.val(v))) <= 8:
        return b.emit("pow", f"{b.one_of([2.0, 0.5])} ** {v}")
    w = b.partner(v)
    exponent = w if np.max(np.abs(b.val(w))) <= 3 else f"cr.tanh({w})"
    return b.emit("pow", f"{b.positive(v)} ** {exponent}")


def _gate(name: str) -> None:
    @template(name)
    def gate(b: Builder, v: str) -> str:
        if b.draw(st.booleans()):
            b.kink(np.abs(b.val(v)))
            return b.emit(name, f"cr.{name}({v}, 0.0)")
        w = b.partner(v)
        b.kink(np.abs(b.val(v) - b.val(w)))
        return b.emit(name, f"cr.{name}({v}, {w})")


_gate("maximum")
_gate("minimum")


@template("where")
def _where(b: Builder, v: str) -> str:
    t = b.one_of([0.0, 0.5])
    w = b.partner(v)
    b.kink(np.abs(b.val(v) - t))
    return b.emit("where", f"cr.where({v} > {t}, {v}, {w})")


@template("clip")
def _clip(b: Builder, v: str) -> str:
    lo, hi = b.one_of([(-0.5, 0.5), (0.0, None), (None, 1.0), (-1.0, 0.0)])
    x = b.val(v)
    b.kink(np.minimum(np.abs(x - (lo if lo is not None else -np.inf)), np.abs(x - (hi if hi is not None else np.inf))))
    return b.emit("clip", f"cr.clip({v}, {lo}, {hi})")


def _reduction(name: str) -> None:
    @template(name)
    def reduce(b: Builder, v: str) -> str:
        text, axes = b.axis_args(v)
        if name in ("max", "min"):
            x = b.val(v)
            axes_t = tuple(range(x.ndim)) if axes is None else axes
            groups = np.moveaxis(x, axes_t, tuple(range(x.ndim - len(axes_t), x.ndim))).reshape(
                -1, math.prod(x.shape[a] for a in axes_t)
            )
            if groups.shape[1] > 1:
                s = np.sort(groups, axis=1)
                b.kink(s[:, -1] - s[:, -2] if name == "max" else s[:, 1] - s[:, 0])
        return b.emit(name, f"cr.{name}({v}{text})")


for _name in ("sum", "mean", "max", "min", "logsumexp"):
    _reduction(_name)


def _normalization(name: str) -> None:
    @template(name, when=_nd(1))
    def normalize(b: Builder, v: str) -> str:
        text, _ = b.axis_args(v, single=True)
        return b.emit(name, f"cr.{name}({v}{text})")


_normalization("softmax")
_normalization("log_softmax")


@template("matmul", when=_nd(1))
def _matmul(b: Builder, v: str) -> str:
    s = b.shapes[v]
    k = b.one_of([2, 1, 3])
    form = b.one_of(["right", "left", "batched"])
    if form == "right":  # v @ W: (..., n) @ (n, k)
        w = b.new_input((s[-1], k))
        return b.emit("matmul", f"{v} @ {w}")
    if form == "left":  # W @ v: (k, n) @ (n,) or (..., k, m) @ (..., m, n)
        inner = s[0] if len(s) == 1 else s[-2]
        w = b.new_input((k, inner))
        return b.emit("matmul", f"{w} @ {v}")
    # batched: a stack of matrices on one side, broadcasting against the other's batch
    batch = b.one_of([2, 1])
    if len(s) == 1:
        w = b.new_input((batch, s[0], k))
        return b.emit("matmul", f"{v} @ {w}")
    if len(s) + 1 > MAX_RANK or math.prod(s[:-1]) * k * batch > MAX_SIZE:
        w = b.new_input((s[-1], k))
        return b.emit("matmul", f"{v} @ {w}")
    w = b.new_input((batch,) + (1,) * (len(s) - 2) + (s[-1], k))
    return b.emit("matmul", f"{v} @ {w}")


@template("linear", when=_nd(1))
def _linear(b: Builder, v: str) -> str:
    k = b.one_of([2, 1, 3])
    w = b.new_input((k, b.shapes[v][-1]))
    bias = b.new_input((k,))
    return b.emit("linear", f"cr.linear({v}, {w}, {bias})")


def _factor_shapes(size: int) -> list[tuple[int, ...]]:
    shapes = [(size,), (1, size), (size, 1), (-1,)]
    for d in range(2, size):
        if size % d == 0:
            shapes.append((d, size // d))
            shapes.append((size // d, 1, d))
    if size == 1:
        shapes.append(())
    return shapes


@template("reshape")
def _reshape(b: Builder, v: str) -> str:
    size = math.prod(b.shapes[v])
    return b.emit("reshape", f"cr.reshape({v}, {b.one_of(_factor_shapes(size))})")


@template("transpose", when=_nd(2))
def _transpose(b: Builder, v: str) -> str:
    nd = len(b.shapes[v])
    perm = b.draw(st.permutations(range(nd)))
    if perm == list(range(nd)):  # the identity records nothing; reverse instead
        perm = perm[::-1]
    if perm == list(range(nd))[::-1] and b.draw(st.booleans()):
        return b.emit("transpose", f"cr.transpose({v})")
    return b.emit("transpose", f"cr.permute({v}, {tuple(perm)})")


@template("inv", when=_nd(1))
def _inv(b: Builder, v: str) -> str:
    n = b.shapes[v][-1]
    w = b.new_input((n, n))
    # a well-conditioned matrix built from w (0.1 w wᵀ + I: eigenvalues >= 1), applied to v
    return b.emit("inv", f"{v} @ cr.linalg.inv(0.1 * ({w} @ {w}.mT) + cr.eye({n}, dtype={{dt}}))")


@template("det", when=_nd(1))
def _det(b: Builder, v: str) -> str:
    n = b.shapes[v][-1]
    w = b.new_input((n, n))
    # det(0.1 w wᵀ + I) >= 1: far from singular (its gradient det·A⁻ᵀ is well defined) and of modest size
    return b.emit("det", f"cr.linalg.det(0.1 * ({w} @ {w}.mT) + cr.eye({n}, dtype={{dt}})) * {v}")


@template("einsum", when=_nd(1))
def _einsum(b: Builder, v: str) -> str:
    s = b.shapes[v]
    letters = "abcdefgh"[: len(s)]  # one letter per axis (a fold can hand over 5-D values)
    k = b.one_of([2, 3])
    w = b.new_input((s[-1], k))
    out = letters[:-1] + "z" if b.draw(st.booleans()) else "z"
    return b.emit("einsum", f'cr.einsum("{letters},{letters[-1]}z->{out}", {v}, {w})')


@template("broadcast_to")
def _broadcast_to(b: Builder, v: str) -> str:
    s = b.shapes[v]
    target = tuple(np.broadcast_shapes(s, b.compatible_shape(s)))
    if target == s:
        target = (2,) + s if len(s) < MAX_RANK and 2 * math.prod(s) <= MAX_SIZE else (1,) + s
    return b.emit("broadcast_to", f"cr.broadcast_to({v}, {target})")


def _index_array(b: Builder, n: int) -> str:
    idx = b.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
    return f"np.array({idx})"


@template("getitem", when=_nd(1))
def _getitem(b: Builder, v: str) -> str:
    s = b.shapes[v]
    form = b.one_of(["repeated", "int", "slice", "last"])
    if form == "repeated":  # integer arrays, repeats allowed: the gradient must accumulate
        return b.emit("getitem", f"{v}[{_index_array(b, s[0])}]")
    if form == "int":
        return b.emit("getitem", f"{v}[{b.draw(st.integers(-s[0], s[0] - 1))}]")
    if form == "slice":
        start = b.draw(st.integers(0, s[0] - 1))
        step = b.one_of([1, 2])
        return b.emit("getitem", f"{v}[{start}::{step}]")
    if len(s) >= 2 and b.draw(st.booleans()):
        return b.emit("getitem", f"{v}[:, {_index_array(b, s[1])}]")
    return b.emit("getitem", f"{v}[..., {b.draw(st.integers(0, s[-1] - 1))}]")


@template("scatter_add", when=_nd(1))
def _scatter_add(b: Builder, v: str) -> str:
    s = b.shapes[v]
    m = b.one_of([2, 1, 3])
    idx = b.draw(st.lists(st.integers(0, m - 1), min_size=s[0], max_size=s[0]))
    return b.emit("scatter_add", f"cr.scatter_add({v}, np.array({idx}), {(m,) + s[1:]})")


@template("concatenate", when=_nd(1))
def _concatenate(b: Builder, v: str) -> str:
    s = b.shapes[v]
    axis = b.draw(st.integers(0, len(s) - 1))
    if b.draw(st.booleans()):
        other = v
    else:
        d = b.one_of([1, 2])
        other = b.new_input(s[:axis] + (d,) + s[axis + 1 :])
    return b.emit("concatenate", f"cr.concatenate([{v}, {other}], axis={axis})")


@template("stack", when=lambda b, v: len(b.shapes[v]) < MAX_RANK)
def _stack(b: Builder, v: str) -> str:
    s = b.shapes[v]
    axis = b.draw(st.integers(0, len(s)))
    other = v if b.draw(st.booleans()) else b.new_input(s)
    return b.emit("stack", f"cr.stack([{v}, {other}], axis={axis})")


@template("astype")
def _astype(b: Builder, v: str) -> str:
    # float32 programs round-trip through float64 (exact); float64 programs make it a no-op,
    # so the float64 rendering used for finite differences stays smooth.
    return b.emit("astype", f"cr.astype(cr.astype({v}, np.float64), {{dt}})")


def _image_shape(size: int) -> tuple[int, int, int, int]:
    """``(1, 1, h, w)`` holding ``size`` values, as square as the factors allow."""
    h = max(d for d in range(1, int(math.isqrt(size)) + 1) if size % d == 0)
    return (1, 1, h, size // h)


@template("unfold")
def _unfold(b: Builder, v: str) -> str:
    shape = _image_shape(math.prod(b.shapes[v]))
    h, w = shape[2:]
    padding = b.one_of([0, 1])
    kernel = (b.draw(st.integers(1, h + 2 * padding)), b.draw(st.integers(1, min(w + 2 * padding, 3))))
    stride = b.one_of([1, 2])
    args = f"{kernel}, padding={padding}, stride={stride}"
    return b.emit("unfold", f"cr.nn.functional.unfold(cr.reshape({v}, {shape}), {args})")


@template("fold")
def _fold(b: Builder, v: str) -> str:
    size = math.prod(b.shapes[v])
    k = max(d for d in (1, 2, 3) if size % d == 0)  # columns of k values, one block per column
    blocks = size // k
    return b.emit(
        "fold",
        f"cr.nn.functional.fold(cr.reshape({v}, (1, {k}, {blocks})), (1, {k + blocks - 1}), (1, {k}))",
    )


@template("conv2d")
def _conv2d(b: Builder, v: str) -> str:
    shape = _image_shape(math.prod(b.shapes[v]))
    h, w = shape[2:]
    padding = b.one_of([0, 1])
    kernel = (b.draw(st.integers(1, min(h + 2 * padding, 3))), b.draw(st.integers(1, min(w + 2 * padding, 3))))
    weight = b.new_input((2, 1) + kernel)
    stride = b.one_of([1, 2])
    args = f"padding={padding}, stride={stride}"
    return b.emit("conv2d", f"cr.nn.functional.fused_conv2d(cr.reshape({v}, {shape}), {weight}, {args})")


@template("conv2d_input")
def _conv2d_input(b: Builder, v: str) -> str:
    shape = _image_shape(math.prod(b.shapes[v]))  # the gradient of a conv2d's output, one channel
    oh, ow = shape[2:]
    kernel = (b.one_of([1, 2, 3]), b.one_of([1, 2]))
    weight = b.new_input((1, 2) + kernel)
    size = (1, 2, oh + kernel[0] - 1, ow + kernel[1] - 1)
    return b.emit("conv2d_input", f"cr.nn.functional.conv2d_input({size}, {weight}, cr.reshape({v}, {shape}))")


@template("conv2d_weight")
def _conv2d_weight(b: Builder, v: str) -> str:
    shape = _image_shape(math.prod(b.shapes[v]))
    h, w = shape[2:]
    kernel = (b.draw(st.integers(1, min(h, 3))), b.draw(st.integers(1, min(w, 3))))
    grad = b.new_input((1, 2, h - kernel[0] + 1, w - kernel[1] + 1))
    return b.emit(
        "conv2d_weight", f"cr.nn.functional.conv2d_weight(cr.reshape({v}, {shape}), {(2, 1) + kernel}, {grad})"
    )


@template("max_pool2d_pick")
def _max_pool2d(b: Builder, v: str) -> str:
    shape = _image_shape(math.prod(b.shapes[v]))
    h, w = shape[2:]
    kernel = (b.draw(st.integers(1, min(h, 3))), b.draw(st.integers(1, min(w, 3))))
    if kernel[0] * kernel[1] > 1:  # a tie for a window's maximum is a kink: record how close each window came
        x = np.asarray(b.val(v), dtype=np.float64).reshape(shape)
        oh, ow = h // kernel[0], w // kernel[1]
        windows = x[:, :, : oh * kernel[0], : ow * kernel[1]].reshape(shape[0], shape[1], oh, kernel[0], ow, kernel[1])
        ranked = np.sort(windows.transpose(0, 1, 2, 4, 3, 5).reshape(-1, kernel[0] * kernel[1]), axis=1)
        b.kink(ranked[:, -1] - ranked[:, -2])
    return b.emit("max_pool2d_pick", f"cr.nn.functional.fused_max_pool2d(cr.reshape({v}, {shape}), {kernel})")


@template("erf")
def _erf(b: Builder, v: str) -> str:
    return b.emit("erf", f"cr.nn.functional.erf({v})")


# torch's inverse trigonometry (issue 25): arguments kept inside each domain, as log's are kept positive
for _name, _arg in (
    ("asin", "cr.tanh({v}) * 0.9"),
    ("acos", "cr.tanh({v}) * 0.9"),
    ("atanh", "cr.tanh({v}) * 0.9"),
    ("atan", "{v}"),
    ("asinh", "{v}"),
    ("acosh", "{v} * {v} + 1.5"),
    ("expm1", "cr.tanh({v})"),
):
    template(_name)(lambda b, v, n=_name, a=_arg: b.emit(n, f"cr.torch_more.{n}({a.format(v=v)})"))


@template("atan2")
def _atan2(b: Builder, v: str) -> str:
    return b.emit("atan2", f"cr.torch_more.atan2({v}, {v} * {v} + 0.5)")


# primitives with a kink or a tie rule, where the subgradient convention matters
KINKS = ("relu", "abs", "maximum", "minimum", "max", "min", "clip", "where")


# --- the strategies --------------------------------------------------------------------------
def _applicable(b: Builder, v: str) -> list[str]:
    return [name for name, (when, _) in TEMPLATES.items() if when(b, v)]


@st.composite
def programs(draw: Callable, dtypes: tuple[str, ...] = ("float64", "float32"), require: str | None = None) -> Program:
    """A random program; ``require`` forces one primitive to appear (the first step)."""
    dtype = draw(st.sampled_from(dtypes))
    b = Builder(draw, dtype)
    rank = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    v = b.new_input(shape)
    steps = draw(st.integers(1, 5))
    for step in range(steps):
        if step == 0 and require is not None:
            when, _ = TEMPLATES[require]
            if not when(b, v):  # give it a shape it applies to
                v = b.emit("reshape", f"cr.reshape({v}, {(1, 1) + b.shapes[v]})")
            name = require
        else:
            options = _applicable(b, v)
            if b.style == "grid" and draw(st.booleans()):  # half-integer data: aim at the kinks and ties
                options = [n for n in options if n in KINKS]
            name = draw(st.sampled_from(options))
        v = TEMPLATES[name][1](b, v)
    c = b.new_const(b.shapes[v])
    b.prog.lines.append(f"out = cr.sum({v} * {c})")
    b.prog.prims.extend(["mul", "sum"])
    return b.prog
