"""``cr.trace(output)``: the backward pass as data, one step per node in the order backprop visits it.

Each :class:`Step` records the operation, its forward value, the upstream
gradient arriving (with the branches it is the sum of, where the value fans
out), and per input the local derivative (as a formula and, for elementwise
operations, its value) and the gradient sent back.  The rules applied are the
primitives' own VJP rules, the same the engine runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..autodiff import _deliver, _seed, toposort
from ..format import Table, fmt_const, fmt_value
from ..graph import is_freed, node_of, value_of
from ..numeric import NUMPY
from ..primitive import Primitive
from ..tensor import Tensor
from ..walk import Backprop, GraphFreedError, _fit, _namespace, call_rule, walk

# Operations whose local derivative is a diagonal (one number per element), so its value can be shown.
ELEMENTWISE = frozenset(
    (
        "add sub mul div neg pow abs exp log log1p log2 log10 sqrt sin cos tanh sigmoid relu maximum minimum where clip"
    ).split()
)
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}


@dataclass
class Edge:
    """One input of a step: what it is, the local derivative, and the gradient sent to it."""

    label: str  # the input's name, or the constant as written
    value: Any  # its forward value
    formula: str  # the local derivative, e.g. "-1/x²" ("" for a constant)
    local: Any = None  # its value where it is elementwise, else None
    grad: Any = None  # the gradient sent back (reduced to the input's shape); None for constants
    constant: bool = False
    # For tensors small enough (see JACOBIAN_LIMIT): d output / d input, one row per output element, built by
    # running the rule on each unit upstream gradient, and what its entries show (measured, not assumed).
    jacobian: Any = None
    structure: str = ""


@dataclass
class Step:
    """One node of the backward pass."""

    index: int
    label: str
    op: str  # primitive name
    expression: str  # e.g. "1 / n8"
    value: Any
    upstream: Any
    branches: list[tuple[str, Any]]  # (consumer, contribution): more than one where the value fans out
    inputs: list[Edge]


@dataclass
class LeafGrad:
    label: str
    value: Any
    grad: Any
    branches: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Trace:
    """The backward pass of ``output``: ``steps`` in backprop order, then the leaves' gradients."""

    output: str
    value: Any
    steps: list[Step]
    leaves: list[LeafGrad]
    precision: int = 2

    # --- lookups -----------------------------------------------------------------------
    def step(self, label: str) -> Step:
        for s in self.steps:
            if s.label == label:
                return s
        raise KeyError(f"trace: no step named {label!r}; the steps are {[s.label for s in self.steps]}")

    def steps_for(self, op: str) -> list[Step]:
        return [s for s in self.steps if s.op == op]

    def grad(self, label: str) -> Any:
        for leaf in self.leaves:
            if leaf.label == label:
                return leaf.grad
        raise KeyError(f"trace: no input named {label!r}; the inputs are {[v.label for v in self.leaves]}")

    # --- rendering -----------------------------------------------------------------------
    def tables(self) -> tuple[Table, Table]:
        p = self.precision
        rows = []
        for s in self.steps:
            upstream = fmt_value(s.upstream, p)
            if len(s.branches) > 1:
                upstream = fmt_branches(s.branches, s.upstream, p)
            head = [str(s.index), s.label, s.expression, fmt_value(s.value, p), upstream]
            first = True
            for e in s.inputs:
                if e.constant:
                    continue
                shown = e.local is not None and not _is_number(e.formula)
                local = f"{e.formula} = {fmt_value(e.local, p)}" if shown else e.formula
                edge = [f"{e.label} = {fmt_value(e.value, p)}", local, fmt_value(e.grad, p)]
                rows.append((head if first else [""] * 5) + edge)
                first = False
            if not any(not e.constant for e in s.inputs):
                rows.append(head + ["", "", ""])
        steps = Table(
            f"backward pass of {self.output} = {fmt_value(self.value, p)}, one step per node, output first",
            ["step", "node", "operation", "value", "upstream grad", "input", "local grad", "grad to input"],
            rows,
            keep_whole=(6,),
        )
        leaf_rows = []
        for leaf in self.leaves:
            g = fmt_value(leaf.grad, p)
            if len(leaf.branches) > 1:
                g = fmt_branches(leaf.branches, leaf.grad, p)
            leaf_rows.append([leaf.label, fmt_value(leaf.value, p), g])
        leaves = Table(f"gradients of {self.output}", ["input", "value", f"d{self.output}/dinput"], leaf_rows)
        return steps, leaves

    def __str__(self) -> str:
        a, b = self.tables()
        return a.text() + "\n" + b.text()

    def __repr__(self) -> str:
        return f"<Trace of {self.output}: {len(self.steps)} steps, {len(self.leaves)} inputs>"

    def __rich_console__(self, console: Any, options: Any) -> Any:
        a, b = self.tables()
        yield a.rich(options.max_width)
        yield b.rich(options.max_width)

    def to_markdown(self) -> str:
        a, b = self.tables()
        return a.markdown() + "\n\n" + b.markdown() + "\n"

    def _repr_html_(self) -> str:
        a, b = self.tables()
        return a.html() + b.html()


def fmt_branches(branches: list[tuple[str, Any]], total: Any, precision: int) -> str:
    """A fan-out sum, each term labelled by the node it comes back from: ``1.00 (from n3) + 3.00 (from n5) = 4.00``."""
    terms = " + ".join(f"{fmt_value(v, precision)} (from {who})" for who, v in branches)
    return f"{terms} = {fmt_value(total, precision)}"


def _is_number(text: str) -> bool:
    try:
        float(text.replace("−", "-"))
    except ValueError:
        return False
    return True


# --- labels and formulas ---------------------------------------------------------------------


def _index_text(index: Any) -> str:
    items = index if isinstance(index, tuple) else (index,)
    parts = []
    for it in items:
        if isinstance(it, slice):
            parts.append(
                (str(it.start) if it.start is not None else "")
                + ":"
                + (str(it.stop) if it.stop is not None else "")
                + (f":{it.step}" if it.step is not None else "")
            )
        elif it is None:
            parts.append("None")
        elif it is Ellipsis:
            parts.append("...")
        elif isinstance(it, np.ndarray):
            parts.append(str(it.tolist()) if it.size <= 6 else f"<{it.size} indices>")
        else:
            parts.append(str(it))
    return ", ".join(parts)


def expression(prim: Primitive, operands: list[str], params: tuple) -> str:
    """How the operation reads with its operands' labels: ``1 / n8``, ``exp(n5)``, ``sum(h, axis=0)``."""
    name = prim.name
    if name in _INFIX and len(operands) == 2:
        return f"{operands[0]} {_INFIX[name]} {operands[1]}"
    if name == "neg":
        return f"-{operands[0]}"
    if name == "transpose":
        return f"{operands[0]}ᵀ"
    if name == "getitem":
        return f"{operands[0]}[{_index_text(params[0])}]"
    extra = []
    if name in ("sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax") and params:
        if params[0] is not None:
            axis = params[0]
            extra.append(f"axis={axis[0] if len(axis) == 1 else axis}")
        if len(params) > 1 and params[1]:
            extra.append("keepdims=True")
    elif name in ("reshape", "broadcast_to") and params:
        extra.append(str(tuple(params[0])))
    return f"{name}({', '.join(list(operands) + extra)})"


def local_derivative(
    prim: Primitive, i: int, inputs: list[Any], params: tuple, out_shape: tuple[int, ...], upstream: Any
) -> Any:
    """Run ``prim``'s own VJP rule on symbolic arrays (``chainrule.symbolic``) and return the formula it computes
    for input ``i``: with a unit ``upstream`` (``const(1)``) that is the local derivative of an elementwise
    operation; with a named upstream (``var("g")``) it is the rule itself, as for a matrix product."""
    from .. import symbolic as S

    out = S.prim(prim, tuple(inputs), params, out_shape)
    return S.simplify(call_rule(prim, S.SYM, upstream, out, i, tuple(inputs) + tuple(params)))


_SQUARED = re.compile(r" / ([A-Za-z_][\w.]*) / \1(?![\w.^(])")


def local_formula(
    prim: Primitive,
    i: int,
    operands: list[str],
    constants: list[Optional[Any]],
    args: tuple,
    out_shape: Optional[tuple[int, ...]] = None,
    names_in_use: frozenset = frozenset(),
) -> str:
    """The local derivative of input ``i`` as the rule computes it, printed.

    A gate with one variable input reads as in the lecture notes: that input is ``x`` (``1/x`` has
    ``−1 / x²``), unless the program has a variable of its own called ``x`` (in ``names_in_use``), when
    the operand keeps its name; with several, every operand keeps its name (``∂(w0·x0)/∂w0 = x0``).
    Constants appear as numbers.  For a non-elementwise operation the formula is the VJP with the upstream
    gradient ``g``.
    """
    from .. import symbolic as S

    nin = len(operands)
    tensors, params = args[:nin], args[nin:]
    lone = sum(c is None for c in constants) == 1
    inputs = []
    for j in range(nin):
        shape = tuple(np.shape(tensors[j]))
        if constants[j] is not None:
            c = np.asarray(constants[j], dtype=np.float64)
            inputs.append(S.const(float(c), shape) if c.ndim == 0 else S.var(fmt_const(c), shape))
        else:
            placeholder = "x" if "x" not in names_in_use or operands[j] == "x" else operands[j]
            inputs.append(S.var(placeholder if lone else operands[j], shape))
    if out_shape is None:
        with np.errstate(all="ignore"):
            out_shape = tuple(np.shape(prim.fwd(*[np.asarray(t) for t in tensors], *params)))
    elementwise = prim.name in ELEMENTWISE
    upstream = S.const(1.0, out_shape) if elementwise else S.var("g", out_shape)
    try:
        text = S.render(local_derivative(prim, i, inputs, params, out_shape, upstream))
    except Exception:  # an operation the symbolic namespace cannot follow: say so rather than guess
        return "(see the rule)"
    text = _tidy(text, scalar=not out_shape and all(np.ndim(t) == 0 for t in tensors))
    return text if elementwise else f"{text}  (g = upstream)"


_NONZERO_TEST = re.compile(r" ⊙ \[(-?[0-9.]+) ≠ 0\]")
_POWER_ONE = re.compile(r"([A-Za-z_)][\w.]*)¹(?![⁰¹²³⁴⁵⁶⁷⁸⁹])")
# where([a = b], 0.5, [a > b]) is [a > b] + ½[a = b] exactly (the two brackets never both hold)
_TIE_HALF = re.compile(r"where\(\[([\w.]+) = ([\w.]+)\], 0\.5, \[([\w.]+ [<>] [\w.]+)\]\)")
_LONG_DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d{6,})(?![\w.])")


def _fraction(m: re.Match) -> str:
    from fractions import Fraction

    v = float(m.group(1))
    f = Fraction(v).limit_denominator(1000)
    return f"{f.numerator}/{f.denominator}" if abs(float(f) - v) <= 1e-12 * max(1.0, abs(v)) else f"{v:.6g}"


def _tidy(text: str, scalar: bool) -> str:
    """Write the printed rule as a person would, without changing what it says.

    ``a / y / y`` is ``a / y²``; the tie rule ``where([a = b], 0.5, [a > b])`` is ``[a > b] + ½[a = b]``;
    ``x¹`` is ``x``; a factor ``[2 ≠ 0]`` is 1; ``0.333…`` is ``1/3``; ``−`` is ``-``; for scalars ``⊙`` is ``·``.
    """
    text = _SQUARED.sub(r" / \1²", text)
    text = _TIE_HALF.sub(r"[\3] + ½[\1 = \2]", text)
    text = _NONZERO_TEST.sub(lambda m: "" if float(m.group(1)) != 0 else m.group(0), text)
    text = _POWER_ONE.sub(r"\1", text)
    text = _LONG_DECIMAL.sub(_fraction, text)
    text = text.replace("−", "-")  # the table's numbers use the ASCII minus: so do its formulas
    return text.replace(" ⊙ ", "·") if scalar else text


def parameter_names(model: Any) -> dict[int, str]:
    """``id(parameter) -> name`` from a module's ``named_parameters()`` (several modules: prefixed ``m0.``, ``m1.``)."""
    if model is None:
        return {}
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    out: dict[int, str] = {}
    for k, m in enumerate(models):
        named = getattr(m, "named_parameters", None)
        if named is None:
            raise TypeError(f"trace: model= expects a cr.nn.Module (or a list of them), got {type(m).__name__}")
        prefix = f"m{k}." if len(models) > 1 else ""
        for name, p in named():
            out.setdefault(id(p), prefix + name)
    return out


def _name_unlabelled_leaves(leaves: list[Tensor], labels: dict[int, str]) -> None:
    """Leaves without a label: a module's parameter takes its registered name (``0.weight``), others ``x1, x2, ...``.

    A registered name that two leaves share (two models' ``0.weight``) is not used.
    """
    from ..nn.module import qualified_name

    found = {id(t): qualified_name(t) for t in leaves if id(t) not in labels}
    taken = set(labels.values())
    counts: dict[str, int] = {}
    for name in found.values():
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    k = 0
    for leaf in leaves:
        if id(leaf) in labels:
            continue
        name = found[id(leaf)]
        if name is not None and counts[name] == 1 and name not in taken:
            labels[id(leaf)] = name
        else:
            k += 1
            while f"x{k}" in taken:
                k += 1
            labels[id(leaf)] = f"x{k}"
        taken.add(labels[id(leaf)])


# --- the walk ------------------------------------------------------------------------------


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


def _call_rule(prim: Primitive, xp: Any, g: Any, out: Any, i: int, args: tuple) -> Any:
    with np.errstate(all="ignore"):
        return call_rule(prim, xp, g, out, i, args)


def _local_value(prim: Primitive, xp: Any, out: Any, i: int, args: tuple) -> Any:
    if prim.name not in ELEMENTWISE:
        return None
    ones = 1.0 if type(out) is float else np.ones(np.shape(out), dtype=np.result_type(out))
    try:
        v = _call_rule(prim, xp, ones, out, i, args)
    except Exception:
        return None
    if type(v) is not float:
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), np.shape(out)).copy()
        if v.ndim == 0:
            v = float(v)
    return v


JACOBIAN_LIMIT = 1024  # build a local Jacobian only when out.size * in.size is at most this


def local_jacobian(prim: Primitive, xp: Any, out: Any, i: int, args: tuple) -> Optional[np.ndarray]:
    """The local Jacobian d out / d input ``i`` as an (out.size, in.size) matrix, row k being the gradient the
    rule (and the engine's broadcasting adjoint) sends for the unit upstream gradient at output element k."""
    n_out, n_in = int(np.size(out)), int(np.size(args[i]))
    if n_out * n_in > JACOBIAN_LIMIT or (np.ndim(out) == 0 and np.ndim(args[i]) == 0):
        return None
    rows = np.zeros((n_out, n_in))
    for k in range(n_out):
        unit = np.zeros(np.shape(out), dtype=np.float64)
        unit.flat[k] = 1.0
        try:
            gi = _fit(_call_rule(prim, NUMPY, unit if np.ndim(out) else 1.0, np.asarray(out), i, args), args[i])
        except Exception:
            return None
        rows[k] = np.broadcast_to(np.asarray(gi, dtype=np.float64), np.shape(args[i])).ravel()
    return rows


def jacobian_structure(J: Optional[np.ndarray]) -> str:
    """What a measured Jacobian looks like: identity, diagonal, all entries equal, or how many are nonzero."""
    if J is None:
        return ""
    nonzero = int(np.count_nonzero(J))
    n_out, n_in = J.shape
    if nonzero == 0:
        return "zero"
    if n_out == n_in and nonzero == np.count_nonzero(np.diag(J)):
        d = np.diag(J)
        if np.all(d == 1):
            return "identity"
        return "diagonal (elementwise: one number per element)"
    if np.all(J == J.flat[0]):
        return f"every entry {fmt_value(float(J.flat[0]), 2)} (each output depends equally on every input)"
    if n_out > 1 and n_in > 1 and np.all(np.count_nonzero(J, axis=0) <= 1):
        return f"each input reaches one output ({nonzero} of {J.size} entries nonzero)"
    if nonzero == J.size:
        return "dense: every entry nonzero at these values"
    return f"{nonzero} of {J.size} entries nonzero at these values"


class _StepRecorder(Backprop):
    """The trace as an observer of the engine's one walk: each node reached becomes a Step, each edge an Edge."""

    def __init__(self, labels: dict[int, str], leaf_names: frozenset, seed: Any, output: Tensor) -> None:
        super().__init__()
        self.labels = labels
        self.leaf_names = leaf_names
        self.steps: list[Step] = []
        self.branches: dict[int, list[tuple[str, Any]]] = {id(output): [("seed", seed)]}

    def start(self, t: Tensor, g: Any) -> Any:
        labels = self.labels
        view = node_of(t)
        prim, inputs, args = view.prim, view.inputs, view.args
        # an input tensor outside the graph (a constant such as exp(2), computed without gradients) reads as a constant
        in_graph = [x is not None and id(x) in labels for x in inputs]
        self.operands = [labels[id(x)] if c else fmt_const(args[j]) for j, (x, c) in enumerate(zip(inputs, in_graph))]
        self.constants = [None if c else args[j] for j, c in enumerate(in_graph)]
        self.view, self.out = view, value_of(t)
        self.xp = _namespace(prim, self.out)  # (the walk's own choice of namespace)
        self.edges: list[Edge] = []
        key = id(t)
        expr = expression(prim, self.operands, args[len(inputs) :])
        self.steps.append(
            Step(
                len(self.steps) + 1,
                labels[key],
                prim.name,
                expr,
                _copy(self.out),
                _copy(g),
                self.branches.get(key, []),
                self.edges,
            )
        )
        return g

    def follow(self, t: Tensor, i: int, inp: Any) -> bool:
        if inp is None or not inp.requires_grad or not self.view.prim.differentiable(i):
            self.edges.append(Edge(self.operands[i], _copy(self.view.args[i]), "", constant=True))
            return False
        return True

    def downstream(self, t: Tensor, i: int, g: Any) -> Any:
        return _fit(_call_rule(self.view.prim, self.xp, g, self.out, i, self.view.args), self.view.args[i])

    def edge(self, t: Tensor, i: int, inp: Tensor, gi: Any) -> None:
        prim, args, out, xp = self.view.prim, self.view.args, self.out, self.xp
        jac = local_jacobian(prim, xp, out, i, args)
        formula = local_formula(prim, i, self.operands, self.constants, args, tuple(np.shape(out)), self.leaf_names)
        self.edges.append(
            Edge(
                self.operands[i],
                _copy(args[i]),
                formula,
                _local_value(prim, xp, out, i, args),
                _copy(gi),
                jacobian=jac,
                structure=jacobian_structure(jac),
            )
        )
        self.branches.setdefault(id(inp), []).append((self.labels[id(t)], _copy(gi)))


def trace(
    output: Tensor,
    grad: Any = None,
    *,
    names: Optional[Mapping[str, Tensor]] = None,
    accumulate: bool = True,
    output_name: Optional[str] = None,
    precision: int = 2,
    model: Any = None,
) -> Trace:
    """Run the backward pass of ``output`` step by step and return it as a :class:`Trace`.

    Use it *instead of* ``output.backward()``: by default it also accumulates the
    gradients into the inputs' ``.grad`` as backward does (``accumulate=False``
    leaves them alone, for example after ``backward(retain_graph=True)``).  The
    graph is not freed, so ``cr.draw`` can follow.  ``names`` maps display names
    to tensors (``{"x": x, "w": w}``); other inputs are called ``x1, x2, ...`` and
    intermediate values ``n1, n2, ...`` in the order they were computed.
    ``model`` (a ``cr.nn.Module``, or a list of them) names its parameters as
    ``named_parameters()`` does (``0.weight``, ``0.bias``); ``names`` wins where both name a tensor.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"trace: expected a Tensor, got {type(output).__name__}")
    if is_freed(output):
        raise GraphFreedError(
            "trace: the graph of this tensor was freed by backward(). Call cr.trace(y) instead of y.backward() "
            "(it runs the backward pass and fills .grad), or call y.backward(retain_graph=True) first and then "
            "cr.trace(y, accumulate=False)."
        )
    try:
        order = toposort([output])
    except GraphFreedError:
        raise GraphFreedError(
            "trace: part of this graph was freed by an earlier backward(); recompute the forward pass, or use "
            "backward(retain_graph=True) before tracing"
        ) from None
    seed = _seed(output, grad, False)

    labels: dict[int, str] = parameter_names(model)
    for name, t in (names or {}).items():
        labels[id(t)] = name
    out_label = output_name or labels.get(id(output), "out")
    labels[id(output)] = out_label
    counter = 0
    leaf_order: list[Tensor] = []
    leaf_ids: set[int] = set()
    for t in reversed(order):  # forward order
        if id(t) not in labels:
            counter += 1
            labels[id(t)] = f"n{counter}"
        for inp in node_of(t).inputs:
            if inp is not None and inp._node is None and inp.requires_grad and id(inp) not in leaf_ids:
                leaf_ids.add(id(inp))
                leaf_order.append(inp)
    _name_unlabelled_leaves(leaf_order, labels)
    leaf_names = frozenset(labels[id(t)] for t in leaf_order)  # a variable called x: formulas keep operand names
    named = [id(t) for t in (names or {}).values()]
    leaf_order.sort(key=lambda t: named.index(id(t)) if id(t) in named else len(named))

    recorder = _StepRecorder(labels, leaf_names, seed, output)
    grads = {id(leaf): g for leaf, g in walk([output], [seed], True, recorder)}  # the engine's walk, watched
    steps, branches = recorder.steps, recorder.branches

    leaves = [
        LeafGrad(labels[id(leaf)], _copy(leaf._data), _copy(grads[id(leaf)]), branches.get(id(leaf), []))
        for leaf in leaf_order
        if id(leaf) in grads
    ]
    if output._node is None and output.requires_grad:
        leaves.append(LeafGrad(out_label, _copy(output._data), _copy(seed), []))
    if accumulate:
        delivered = {id(t): _copy(grads[id(t)]) for t in leaf_order if id(t) in grads}
        targets = {id(t): t for t in leaf_order}
        if output._node is None and output.requires_grad:  # the output is an input itself: as backward(), seed it
            delivered[id(output)], targets[id(output)] = _copy(seed), output
        _deliver([(targets[key], g) for key, g in delivered.items()], False)
    return Trace(out_label, _copy(output._data), steps, leaves, precision)
