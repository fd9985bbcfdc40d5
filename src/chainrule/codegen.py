"""One code generator over the recorded graph: symbolic formulas written as code.

The primitives' forwards and VJP rules, run on the symbolic namespaces
(:data:`chainrule.symbolic.SYM`, :data:`chainrule.compile.symbolic_forward.FWD`), give formulas;
this module writes them out.  Two tools use it:

* ``chainrule derive --numpy`` (:mod:`chainrule.explain.derive_numpy`) writes each
  printed equation as one NumPy expression (:func:`code`), in float64 (comparisons
  as 0/1 floats);
* ``cr.compile`` (:mod:`chainrule.compile`) writes every forward and VJP line of a
  replay schedule with :func:`lower`: the formula as assignments, shared subterms
  once, large results written into given arrays (``out=``), in the spelling whose
  semantics are the rules' own (``exact=True``: a comparison stays a boolean array,
  as ``NUMPY.indicator`` leaves it), in one of three dialects: NumPy (:func:`code`),
  torch (:func:`torch_code`) and Python floats (:func:`float_code`, operators only).
  Every such line is checked against the primitive when traced (see
  :mod:`chainrule.compile.prove`).

Only NumPy is imported (and the symbolic module), never ``rich``, ``graphviz`` or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from . import symbolic as S

# forward helpers a formula may call (plain NumPy, numerically stable); derive --numpy defines the ones it uses
HELPERS = {
    "sigmoid": "def sigmoid(x):\n    e = np.exp(-np.abs(x))\n    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))\n",
    "relu": "def relu(x):\n    return np.maximum(x, 0)\n",
    "softmax": (
        "def softmax(x, axis):\n    e = np.exp(x - np.max(x, axis=axis, keepdims=True))\n"
        "    return e / np.sum(e, axis=axis, keepdims=True)\n"
    ),
    "log_softmax": (
        "def log_softmax(x, axis):\n    z = x - np.max(x, axis=axis, keepdims=True)\n"
        "    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))\n"
    ),
    "logsumexp": (
        "def logsumexp(x, axis, keepdims):\n    m = np.max(x, axis=axis, keepdims=True)\n"
        "    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m\n"
        "    return out if keepdims else np.squeeze(out, axis=axis)\n"
    ),
    "fn": "def f(x):  # the generic f: sin stands in for it so the equations can be checked; put yours here\n"
    "    return np.sin(x)\n",
    "fprime": "def f_prime(x):  # the derivative of f (here of the stand-in, sin)\n    return np.cos(x)\n",
    "scatter": (
        "def scatter(g, index, shape):\n    out = np.zeros(shape)\n    np.add.at(out, index, g)\n    return out\n"
    ),
    # conv2d's im2col and its adjoint, loop-free: rows[i, a] = i·dilation + a·stride picks every patch at once
    "patches": (
        "def patches(size, kernel, dilation, padding, stride):  # (rows, cols) of each patch entry, and the grid\n"
        "    oh = (size[0] + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1\n"
        "    ow = (size[1] + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1\n"
        "    rows = np.arange(kernel[0])[:, None] * dilation[0] + np.arange(oh)[None, :] * stride[0]\n"
        "    cols = np.arange(kernel[1])[:, None] * dilation[1] + np.arange(ow)[None, :] * stride[1]\n"
        "    return (rows[:, None, :, None], cols[None, :, None, :], oh, ow)\n"
    ),
    "unfold": (
        "def im2col(x, kernel, dilation, padding, stride):  # (N, C, H, W) -> (N, C·kh·kw, oh·ow)\n"
        "    grid = patches(x.shape[2:], kernel, dilation, padding, stride)\n"
        "    pad = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))\n"
        "    blocks = np.pad(x, pad)[:, :, grid[0], grid[1]]\n"
        "    shape = (x.shape[0], x.shape[1] * kernel[0] * kernel[1], grid[2] * grid[3])\n"
        "    return np.reshape(blocks, shape)\n"
    ),
    "fold": (
        "def col2im(g, size, kernel, dilation, padding, stride):  # the adjoint of im2col: copies add up\n"
        "    grid = patches(size, kernel, dilation, padding, stride)\n"
        "    c = g.shape[1] // (kernel[0] * kernel[1])\n"
        "    out = np.zeros((g.shape[0], c, size[0] + 2 * padding[0], size[1] + 2 * padding[1]))\n"
        "    shape = (g.shape[0], c, kernel[0], kernel[1], grid[2], grid[3])\n"
        "    np.add.at(out, (slice(None), slice(None), grid[0], grid[1]), np.reshape(g, shape))\n"
        "    return out[:, :, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]]\n"
    ),
}
NP_FORWARD = {
    "tanh": "np.tanh",
    "abs": "np.abs",
    "log1p": "np.log1p",
    "log2": "np.log2",
    "log10": "np.log10",
    "maximum": "np.maximum",
    "minimum": "np.minimum",
    "mean": "np.mean",
    "max": "np.max",
    "min": "np.min",
    "where": "np.where",
}
NP_CMP = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "ne": "!="}

# An index in a formula (getitem, scatter) as text: ``index(params, subscript)``; None: its repr.
IndexText = Optional[Callable[[Any, bool], str]]


class ExportError(ValueError):
    """A formula uses an operation the NumPy export does not know."""


def _shape(shape: Sequence[int]) -> str:
    parts = [S.dim_text(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _num(v: float) -> str:
    return repr(float(v))


def _num_or_none(v: Any) -> str:
    return "None" if v is None else _num(v)


def _axes(axes: Any) -> str:
    if axes is None:
        return "None"
    axes = tuple(axes)
    return "(" + ", ".join(str(a) for a in axes) + ("," if len(axes) == 1 else "") + ")"


def code(x: Any, used: set[str], exact: bool = False, index: IndexText = None) -> str:
    """``x`` as a NumPy expression (fully parenthesized); names of forward helpers it needs go into ``used``.

    ``exact=False`` (derive --numpy) writes a comparison as a float64 0/1 array; ``exact=True``
    (cr.compile) leaves it boolean, as the rules' NumPy namespace does.  ``index`` writes the
    index of a ``getitem`` / ``scatter`` (default: its repr).
    """
    if not isinstance(x, S.Sym):
        return _num(x) if np.ndim(x) == 0 else f"np.asarray({np.asarray(x).tolist()!r})"
    op, a = x.op, x.args
    if op == "var":
        return x.name
    if op == "const":
        v = _num(x.params[0])
        return f"np.full({_shape(x.shape)}, {v})" if x.shape else v
    if op == "sconst":
        k, powers = x.params[1], x.params[2]
        num = [str(k.numerator)] + [f"{n} ** {p}" if p > 1 else n for n, p in powers if p > 0]
        den = [str(k.denominator)] + [f"{n} ** {-p}" if p < -1 else n for n, p in powers if p < 0]
        v = f"(({' * '.join(num)}) / ({' * '.join(den)}))"
        return f"np.full({_shape(x.shape)}, {v})" if x.shape else v
    c = [code(y, used, exact, index) for y in a]
    if op in ("add", "sub", "mul", "div"):
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
        return f"({c[0]} {sym} {c[1]})"
    if op == "pow":
        return f"np.power({c[0]}, {c[1]})"
    if op == "neg":
        return f"(-{c[0]})"
    if op in S.UNARY:
        return f"np.{op}({c[0]})"
    if op == "matmul":
        return f"({c[0]} @ {c[1]})"
    if op == "sum":
        return f"np.sum({c[0]}, axis={_axes(x.params[0])}, keepdims={bool(x.params[1])})"
    if op == "reshape":
        return f"np.reshape({c[0]}, {_shape(x.params[0])})"
    if op == "broadcast":
        return f"np.broadcast_to({c[0]}, {_shape(x.params[0])})"
    if op == "transpose" and tuple(x.params[0]) == (1, 0):
        return f"{c[0]}.T"
    if op == "transpose":
        return f"np.transpose({c[0]}, {tuple(x.params[0])!r})"
    if op == "getitem":
        where = repr(x.params[0]) if index is None else index(x.params[0], True)
        return f"{c[0]}[{where}]"
    if op in ("fn", "fprime"):
        used.add(op)
        return f"{'f' if op == 'fn' else 'f_prime'}({c[0]})"
    if op == "outer":
        return f"np.outer({c[0]}, {c[1]})"
    if op == "scatter":
        if exact:  # the helper accumulates in float64 and with np.add.at: not the rules' scatter_add
            raise ExportError("no exact NumPy spelling for scatter")
        used.add("scatter")
        where = repr(x.params[0]) if index is None else index(x.params[0], False)
        return f"scatter({c[0]}, {where}, {_shape(x.shape)})"
    if op == "where":
        return f"np.where({c[0]}, {c[1]}, {c[2]})"
    if op == "cmp":
        if exact:
            return f"({c[0]} {NP_CMP[x.params[0]]} {c[1]})"
        return f"({c[0]} {NP_CMP[x.params[0]]} {c[1]}).astype(np.float64)"
    if op == "prim":
        p = x.params[0]
        static = x.params[1:]
        if p.name in ("sigmoid", "relu"):
            used.add(p.name)
            return f"{p.name}({c[0]})"
        if p.name in ("softmax", "log_softmax"):
            used.add(p.name)
            return f"{p.name}({c[0]}, axis={_axes(static[0])})"
        if p.name == "logsumexp":
            used.add(p.name)
            return f"logsumexp({c[0]}, axis={_axes(static[0])}, keepdims={bool(static[1])})"
        if p.name in ("mean", "max", "min"):
            return f"{NP_FORWARD[p.name]}({c[0]}, axis={_axes(static[0])}, keepdims={bool(static[1])})"
        if p.name in NP_FORWARD:
            return f"{NP_FORWARD[p.name]}({', '.join(c)})"
        if p.name == "clip":  # (a bound of None is no bound)
            return f"np.clip({c[0]}, {_num_or_none(static[0])}, {_num_or_none(static[1])})"
        if p.name in ("unfold", "fold"):
            used.update(("patches", p.name))
            spelled = ", ".join(repr(tuple(int(v) for v in a)) for a in static)
            return f"{'im2col' if p.name == 'unfold' else 'col2im'}({c[0]}, {spelled})"
        if p.name in ("concatenate", "stack"):
            return f"np.{p.name}([{', '.join(c)}], axis={int(static[0])})"
    raise ExportError(f"derive --numpy: no NumPy spelling for the operation {op!r} in {S.render(x)}")


# --- the torch dialect (cr.compile on torch tensors): the same formulas, spelled with torch's functions ---

TORCH_FORWARD = {"tanh": "torch.tanh", "abs": "torch.abs", "log1p": "torch.log1p", "log2": "torch.log2"}
TORCH_FORWARD.update({"log10": "torch.log10", "maximum": "torch.maximum", "minimum": "torch.minimum"})
TORCH_FORWARD.update({"mean": "torch.mean", "max": "torch.amax", "min": "torch.amin"})
TORCH_OUT = {"add": "torch.add", "sub": "torch.sub", "mul": "torch.mul", "div": "torch.div", "pow": "torch.pow"}
TORCH_OUT.update({"neg": "torch.neg", "matmul": "torch.matmul", "sum": "torch.sum"})
TORCH_OUT.update({op: f"torch.{op}" for op in S.UNARY})
TORCH_OUT_CMP = {"gt": "torch.gt", "lt": "torch.lt", "ge": "torch.ge", "le": "torch.le", "eq": "torch.eq"}
TORCH_OUT_CMP["ne"] = "torch.ne"


def torch_code(x: Any, used: set[str], index: IndexText = None) -> str:
    """``x`` as a torch expression, with the exact semantics of :func:`code` with ``exact=True``."""
    if not isinstance(x, S.Sym):
        if np.ndim(x) != 0:
            raise ExportError("no torch spelling for an array constant")
        return _num(x)
    if x.op == "var":
        return x.name
    if x.op == "const" and not x.shape:
        return _num(x.params[0])
    return _torch_node(x, [torch_code(y, used, index) for y in x.args], index)


def _torch_node(x: S.Sym, c: list[str], index: IndexText, out: Optional[str] = None) -> str:
    op = x.op
    o = "" if out is None else f", out={out}"
    if out is not None and op in TORCH_OUT and op != "sum":
        return f"{TORCH_OUT[op]}({', '.join(c)}{o})"
    if op in ("add", "sub", "mul", "div"):
        return f"({c[0]} {dict(add='+', sub='-', mul='*', div='/')[op]} {c[1]})"
    if op == "neg":
        return f"(-{c[0]})"
    if op == "matmul":
        return f"({c[0]} @ {c[1]})"
    if op == "pow" or op in S.UNARY:
        return f"{TORCH_OUT[op]}({', '.join(c)})"
    if op == "sum" and x.params[0]:
        return f"torch.sum({c[0]}, dim={_axes(x.params[0])}, keepdim={bool(x.params[1])}{o})"
    if op == "cmp":
        if out is not None:
            return f"{TORCH_OUT_CMP[x.params[0]]}({c[0]}, {c[1]}{o})"
        return f"({c[0]} {NP_CMP[x.params[0]]} {c[1]})"
    if op == "reshape":
        return f"torch.reshape({c[0]}, {_shape(x.params[0])})"
    if op == "broadcast":
        return f"torch.broadcast_to({c[0]}, {_shape(x.params[0])})"
    if op == "transpose":
        perm = tuple(x.params[0])
        return f"{c[0]}.T" if perm == (1, 0) else f"torch.permute({c[0]}, {perm!r})"
    if op == "getitem":
        return f"{c[0]}[{repr(x.params[0]) if index is None else index(x.params[0], True)}]"
    if op == "where":
        return f"torch.where({c[0]}, {c[1]}, {c[2]})"
    name = _prim_name(x)
    if name in ("maximum", "minimum"):  # a number operand becomes a 0-d tensor first, as the namespace's does
        tensor = next((t for t, a in zip(c, x.args) if isinstance(a, S.Sym)), "")
        if not tensor.isidentifier():
            raise ExportError("no torch spelling for maximum or minimum of numbers")
        like = f"dtype={tensor}.dtype, device={tensor}.device"
        c = [t if isinstance(a, S.Sym) else f"torch.asarray({t}, {like})" for t, a in zip(c, x.args)]
        return f"{TORCH_FORWARD[name]}({c[0]}, {c[1]}{o})"
    if name in _PRIM_UFUNCS and name in TORCH_FORWARD:
        return f"{TORCH_FORWARD[name]}({c[0]}{o})"
    if name in _PRIM_REDUCTIONS and x.params[1]:  # over given axes (torch keeps no dims over all of them)
        return f"{TORCH_FORWARD[name]}({c[0]}, dim={_axes(x.params[1])}, keepdim={bool(x.params[2])}{o})"
    raise ExportError(f"no torch spelling for the operation {op!r}")


# --- Python floats (cr.compile on a scalar graph): operators only, the arithmetic eager's float path does ---


def float_code(x: Any, used: set[str], index: IndexText = None) -> str:
    """``x`` on Python floats: arithmetic, comparisons, and maximum / minimum as conditional expressions
    (NaN propagating, as the primitives' float forwards); anything needing a function raises ExportError
    (eager's float path calls the math module, not NumPy)."""
    if not isinstance(x, S.Sym):
        if np.ndim(x) != 0:
            raise ExportError("no float spelling for an array constant")
        return _num(x)
    if x.op == "var":
        return x.name
    if x.op == "const" and not x.shape:
        return _num(x.params[0])
    c = [float_code(y, used, index) for y in x.args]
    if x.op in ("add", "sub", "mul", "div"):
        return f"({c[0]} {dict(add='+', sub='-', mul='*', div='/')[x.op]} {c[1]})"
    if x.op == "neg":
        return f"(-{c[0]})"
    if x.op == "cmp":
        return f"({c[0]} {NP_CMP[x.params[0]]} {c[1]})"
    name = _prim_name(x)
    if name in ("maximum", "minimum") and all(t.isidentifier() or _is_number(t) for t in c):
        a, b = c
        return f"({a} if ({a} {'>' if name == 'maximum' else '<'} {b} or {a} != {a}) else {b})"
    raise ExportError(f"no float spelling for the operation {x.op!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- statements: a formula as a list of assignments, results written into given arrays (cr.compile) -----

# NumPy's functions for the operations that have an ``out=`` form (ufuncs, and np.sum)
NP_OUT = {"add": "np.add", "sub": "np.subtract", "mul": "np.multiply", "div": "np.divide", "pow": "np.power"}
NP_OUT.update({"neg": "np.negative", "matmul": "np.matmul", "sum": "np.sum"})
NP_OUT.update({op: f"np.{op}" for op in S.UNARY})
NP_OUT_CMP = {"gt": "np.greater", "lt": "np.less", "ge": "np.greater_equal", "le": "np.less_equal"}
NP_OUT_CMP.update({"eq": "np.equal", "ne": "np.not_equal"})
# primitives whose NumPy forward (NP_FORWARD) is a ufunc applied elementwise, and reductions that take out=
_PRIM_UFUNCS = ("tanh", "abs", "log1p", "log2", "log10", "maximum", "minimum")
_PRIM_REDUCTIONS = ("mean", "max", "min")


class Step(NamedTuple):
    """One assignment of :func:`lower`: ``target = text``.

    ``out``: the name of the array the result is written into (``text`` ends in ``out=...``), or None.
    ``operands``: the operands' texts (a bare name: that variable itself).  ``elementwise``: each
    element of the result depends on the elements at the same place only (so ``out`` may be an operand).
    """

    target: str
    text: str
    out: Optional[str]
    operands: tuple[str, ...]
    elementwise: bool


def _prim_name(x: S.Sym) -> str:
    return x.params[0].name if x.op == "prim" else ""


def elementwise(x: S.Sym) -> bool:
    """Whether ``x`` is an elementwise operation (each result element reads its own place only)."""
    return (
        x.op in ("add", "sub", "mul", "div", "pow", "neg", "cmp", "where")
        or x.op in S.UNARY
        or (_prim_name(x) in _PRIM_UFUNCS)
    )


def has_out_form(x: S.Sym, lib: str = "numpy") -> bool:
    """Whether :func:`code_into` can write ``x`` into a given array."""
    name = _prim_name(x)
    if lib == "float":
        return False
    if lib == "torch":  # torch's functions take a tensor first
        if x.args and not isinstance(x.args[0], S.Sym):
            return False
        return x.op in TORCH_OUT or x.op == "cmp" or name in _PRIM_UFUNCS or name in _PRIM_REDUCTIONS
    if x.op in NP_OUT or x.op == "cmp":
        return True
    return (name in _PRIM_UFUNCS and NP_FORWARD.get(name, "").startswith("np.")) or name in _PRIM_REDUCTIONS


def code_into(x: S.Sym, used: set[str], out: str, lib: str = "numpy") -> str:
    """``x`` (whose operands are variables or constants) written into the array named ``out`` (NumPy's ``out=``)."""
    if lib == "torch":
        return _torch_node(x, [torch_code(y, used) for y in x.args], None, out)
    c = [code(y, used, True) for y in x.args]
    if x.op == "sum":
        return f"np.sum({c[0]}, axis={_axes(x.params[0])}, keepdims={bool(x.params[1])}, out={out})"
    if x.op == "cmp":
        return f"{NP_OUT_CMP[x.params[0]]}({c[0]}, {c[1]}, out={out})"
    if x.op in NP_OUT:
        return f"{NP_OUT[x.op]}({', '.join(c)}, out={out})"
    name = _prim_name(x)
    if name in _PRIM_REDUCTIONS:
        static = x.params[1:]
        return f"{NP_FORWARD[name]}({c[0]}, axis={_axes(static[0])}, keepdims={bool(static[1])}, out={out})"
    if name in _PRIM_UFUNCS:
        return f"{NP_FORWARD[name]}({', '.join(c)}, out={out})"
    raise ExportError(f"no out= form for the operation {x.op!r}")


def lower(
    x: Any,
    used: set[str],
    statement: Callable[[S.Sym], bool],
    into: Callable[[S.Sym], Optional[str]],
    index: IndexText = None,
    lib: str = "numpy",
) -> tuple[list[Step], str]:
    """``x`` as assignments (exact spellings): ``(steps, result)``, ``result`` the text of ``x`` after the steps.

    Each operation that ``statement`` picks (and any used twice: one computation per subterm) is
    assigned to a name ``_t0``, ``_t1``, ...; one that ``into`` gives an array name is written into
    that array (``np.add(a, b, out=name)``; ``into`` is asked only where :func:`has_out_form`).  The
    other operations stay inline in the expression that reads them.  Each node is spelled by
    :func:`code` (or :func:`code_into`) over its operands' names, so the spellings are ``code``'s.
    """
    if lib == "torch":
        spell: Callable[..., str] = lambda y, used, exact, index: torch_code(y, used, index)  # noqa: E731
    elif lib == "float":
        spell = lambda y, used, exact, index: float_code(y, used, index)  # noqa: E731
    else:
        spell = code
    counts: dict[int, int] = {}
    for y in S.nodes(x):
        for a in y.args:
            if isinstance(a, S.Sym):
                counts[id(a)] = counts.get(id(a), 0) + 1
    steps: list[Step] = []
    done: dict[int, str] = {}

    def walk(y: Any) -> str:
        if not isinstance(y, S.Sym) or y.op in ("var", "const", "sconst"):
            return spell(y, used, True, index)
        hit = done.get(id(y))
        if hit is not None:
            return hit
        kids = [walk(a) for a in y.args]
        named = tuple(S.var(k, a.shape) if isinstance(a, S.Sym) else a for k, a in zip(kids, y.args))
        shallow = S.Sym(y.op, named, y.shape, y.params, y.name)
        if statement(y) or y is x or counts.get(id(y), 0) > 1:
            out = into(y) if has_out_form(y, lib) else None
            if out is not None:
                text = code_into(shallow, used, out, lib)
            else:
                text = strip_outer(spell(shallow, used, True, index))
            name = f"_t{len(steps)}"
            steps.append(Step(name, text, out, tuple(kids), elementwise(y)))
            done[id(y)] = name
        else:
            done[id(y)] = spell(shallow, used, True, index)
        return done[id(y)]

    return steps, walk(x)


def index_text(index: Any, names: dict[int, str], subscript: bool) -> str:
    """An index as source: arrays by the names in ``names`` (by identity), ``1:3`` slices in a subscript."""
    items = index if type(index) is tuple else (index,)
    parts = []
    for item in items:
        if type(item) is np.ndarray:
            parts.append(names[id(item)])  # KeyError: an array the schedule has no name for
        elif item is None or item is Ellipsis:
            parts.append("..." if item is Ellipsis and subscript else repr(item))
        elif type(item) is slice:
            ends = (item.start, item.stop, item.step)
            if not all(e is None or type(e) is int for e in ends):
                raise ExportError(f"no spelling for the slice {item!r}")
            if subscript:
                text = ":".join("" if e is None else str(e) for e in ends[:2])
                parts.append(text if item.step is None else f"{text}:{item.step}")
            else:
                parts.append(repr(item))
        elif type(item) in (int, bool):
            parts.append(repr(item))
        elif isinstance(item, np.integer):
            parts.append(str(int(item)))
        else:
            raise ExportError(f"no spelling for the index {item!r}")
    if type(index) is not tuple:
        return parts[0]
    text = ", ".join(parts) + ("," if len(parts) == 1 else "")
    return text if subscript else f"({text})"


def strip_outer(text: str) -> str:
    """An expression without the parentheses that enclose all of it (``(g / c1)`` -> ``g / c1``)."""
    while True:
        inner = S.strip_outer(text)
        if inner == text:
            return text
        text = inner


_HELPER_NS: dict[str, Any] = {}


def helper_namespace() -> dict[str, Any]:
    """``np`` and every helper of :data:`HELPERS`, defined (the globals a written expression runs in)."""
    if not _HELPER_NS:
        ns: dict[str, Any] = {"np": np}
        for source in HELPERS.values():
            exec(source, ns)  # our own helper text above
        _HELPER_NS.update(ns)
    return _HELPER_NS
