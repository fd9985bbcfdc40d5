"""The chain of Jacobians behind each gradient: ``∂E/∂a = ∂E/∂h · ∂h/∂z · ∂(W @ a)/∂a   (1×4)(4×4)(4×3)``.

For each value that gets a gradient (the inputs and the named intermediates),
the Jacobian of the output with respect to it is the sum, over every path from
the output to that value in the recorded program, of the ordered product of the
local Jacobians along the path (each edge of the graph is one operand of one
primitive, and its factor is the one the Jacobian notes of :mod:`.derive_jacobian`
describe).  Where the graph fans out (a value used twice) there is more than one
path and the products add.  Identity factors (``∂(x + y)/∂x`` with equal shapes)
are kept in the record but left out of the printed product.

The record also says what a learner should do instead of multiplying the
matrices: the vector-Jacobian product from the left, one factor at a time,
which never builds a factor, and the size of the largest one it avoids.

:meth:`Chain.evaluate` works at given values: each factor is built explicitly by
float64 central differences of its own operation's forward (never from a VJP
rule), the products are summed over the paths, and the sum is compared with the
Jacobian the engine computes (:func:`chainrule.transforms.jacobian`) and with
central differences of the whole forward program.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..autodiff import toposort
from ..creation import tensor
from ..grad_mode import no_grad
from ..graph import node_of, value_of
from ..saved import keep_values
from ..tensor import Tensor
from ..transforms import jacobian as engine_jacobian
from .derive_check import TOLERANCE, _run_forward
from .derive_jacobian import GATES, _size_text, structure
from .derive_records import _bytes, _count
from .derive_steps import operand_text
from .derive_walk import _Walk
from .parse import ParseError, Program, evaluate, generic_program, parse_program

MAX_PATHS = 12  # paths listed one by one; more are counted (and summed, with values, at the nodes they share)
MAX_LABEL = 32  # an unnamed value whose program text is longer is called v1, v2, ... (listed under "where")
MAX_FACTOR = 1_000_000  # entries of one factor built with values (central differences: 2 forwards per column)
MAX_COLUMNS = 4_096  # entries of a value whose whole Jacobian is built with values
EXAMPLE_SIZE = 100  # a symbolic size is also stated at this value (the full matrices a learner never builds)


@dataclass
class Factor:
    """One local Jacobian on a path: ``∂of/∂wrt`` of one operation with respect to one operand."""

    of: str  # the consumer's label (its name, or its program text)
    wrt: str  # the operand's label
    rows: int
    cols: int
    size: str  # "4×12", "4B×4B" (flattened sizes, symbolic where the shapes are)
    operation: str  # the operation in the program's syntax (as the Jacobian notes write it)
    structure: str  # the Jacobian note's kind: "diagonal", "identity", ...
    description: str
    vjp: str
    role: int = 0
    shared: int = 0  # the operand occurs this often in the operation (q * q): each occurrence is its own path
    key: tuple = field(default=(), repr=False)  # (position of the consumer in the graph, operand) for values
    shapes: tuple = field(default=((), ()), repr=False)  # (the consumer's shape, the operand's shape)
    entries: Optional[np.ndarray] = field(default=None, repr=False)
    kink: bool = False  # with values: an operand sits where the operation has no derivative (relu at 0)

    @property
    def dropped(self) -> bool:
        """An identity: kept in the record, left out of the printed product."""
        return self.structure == "identity" and self.rows == self.cols

    @property
    def symbol(self) -> str:
        wrt = self.wrt if self.wrt.isidentifier() else f"({self.wrt})"
        of = self.of if self.of.isidentifier() else f"({self.of})"
        operand = f" [operand {self.role + 1}]" if self.shared else ""
        return f"∂{of}/∂{wrt}{operand}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "of": self.of,
            "wrt": self.wrt,
            "symbol": self.symbol,
            "rows": self.rows,
            "cols": self.cols,
            "size": self.size,
            "of_expr": self.operation,
            "operand": self.role,
            "structure": self.structure,
            "description": self.description,
            "vjp": self.vjp,
            "left_out_of_the_product": self.dropped,
        }
        if self.entries is not None:
            out["entries"] = np.asarray(self.entries).tolist()
            out["at_a_kink"] = self.kink
        return out


@dataclass
class Path:
    """The factors along one path from the output to the value, output first."""

    factors: list[Factor]
    product: Optional[np.ndarray] = field(default=None, repr=False)

    def shown(self) -> list[Factor]:
        """The factors printed: all but the identities inside the path (the last one is always shown)."""
        return [f for k, f in enumerate(self.factors) if not f.dropped or k == len(self.factors) - 1]

    def left_out(self) -> list[Factor]:
        shown = self.shown()
        return [f for f in self.factors if all(f is not g for g in shown)]

    def text(self) -> str:
        return " · ".join(f.symbol for f in self.shown())

    def sizes(self) -> str:
        return "".join(f"({f.size})" for f in self.shown())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text(),
            "sizes": self.sizes(),
            "factors": [f.as_dict() for f in self.factors],
        }
        if self.product is not None:
            out["product"] = self.product.tolist()
        return out


@dataclass
class Link:
    """∂(output)/∂(one value) as a sum over paths of products of local Jacobians."""

    of: str
    wrt: str
    rows: int
    cols: int
    size: str
    paths: list[Path]
    n_paths: int  # all paths (only the first MAX_PATHS are listed)
    shortcut: str
    largest: str  # the largest factor on any listed path and its size, as text
    # with values: the summed product, the engine's Jacobian, central differences, the worst relative error
    product: Optional[np.ndarray] = field(default=None, repr=False)
    engine: Optional[np.ndarray] = field(default=None, repr=False)
    central: Optional[np.ndarray] = field(default=None, repr=False)
    error: float = float("nan")
    kinks: list[str] = field(default_factory=list)  # factors at a kink at the values: not compared (see text)
    scale: float = 0.0  # the largest entry of the sum of |products| (what the error is relative to)

    @property
    def symbol(self) -> str:
        return f"∂{self.of}/∂{self.wrt}"

    def text(self) -> str:
        """``∂E/∂a = ∂E/∂h · ∂h/∂z · ∂(W @ a)/∂a   (1×4)(4×4)(4×3)``, a sum where paths fan out."""
        if len(self.paths) == 1 and self.n_paths == 1:
            return f"{self.symbol} = {self.paths[0].text()}   {self.paths[0].sizes()}" + self.identities()
        terms = " + ".join(p.text() for p in self.paths)
        more = f" + … ({self.n_paths - len(self.paths)} more paths)" if self.n_paths > len(self.paths) else ""
        return f"{self.symbol} = {terms}{more}   (the sum over {self.n_paths} paths; {self.size})" + self.identities()

    def identities(self) -> str:
        """The identity factors left out of the printed products."""
        out = list(dict.fromkeys(f.symbol for p in self.paths for f in p.left_out()))
        return f"   [{', '.join(out)} = I, left out]" if out else ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "of": self.of,
            "wrt": self.wrt,
            "text": self.text(),
            "rows": self.rows,
            "cols": self.cols,
            "size": self.size,
            "n_paths": self.n_paths,
            "paths": [p.as_dict() for p in self.paths],
            "shortcut": self.shortcut,
        }
        if self.product is not None:
            out["product"] = self.product.tolist()
            out["engine"] = None if self.engine is None else self.engine.tolist()
            out["central_differences"] = None if self.central is None else self.central.tolist()
            out["max_error"] = _json_float(self.error)
            out["not_compared_kinks"] = list(self.kinks)
        return out


@dataclass
class Chain:
    """For each value that gets a gradient, ∂(output)/∂(value) as the chain of local Jacobians."""

    program: str
    output: str
    constants: tuple[str, ...]
    links: list[Link]
    where: dict[str, str] = field(default_factory=dict)  # v1 -> the program text it stands for
    generic: bool = False
    # with values (evaluate): "passed", "failed" or "not made", the worst error, and each factor once
    status: str = ""
    max_error: float = float("nan")
    reason: str = ""
    factors: list[Factor] = field(default_factory=list)

    @property
    def evaluated(self) -> bool:
        return bool(self.status)

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def link(self, wrt: str) -> Link:
        for ln in self.links:
            if ln.wrt == wrt:
                return ln
        raise KeyError(f"derive --chain: no chain for {wrt!r}; there are {[ln.wrt for ln in self.links]}")

    def check_text(self) -> str:
        """One line: what the product of the factors was compared with, and the result."""
        against = "the engine's Jacobian (cr.jacobian) and central differences of the forward"
        skipped = [ln.symbol for ln in self.links if ln.kinks]
        left = f"; {', '.join(skipped)} not compared: at a kink" if skipped else ""
        if self.status == "passed":
            return (
                f"chain checked: the sum of the products of the factors agrees with {against}: "
                f"max relative error {self.max_error:.1e} (tolerance {TOLERANCE:g}){left}"
            )
        if self.status == "failed":
            bad = ", ".join(
                f"{ln.symbol} {ln.error:.1e}" for ln in self.links if not ln.kinks and not ln.error <= TOLERANCE
            )
            return (
                f"chain check FAILED: the product of the factors disagrees with {against}: "
                f"relative errors {bad} (tolerance {TOLERANCE:g})"
            )
        return f"chain check FAILED: could not be checked ({self.reason})"

    def evaluate(self, values: Mapping[str, Any]) -> Chain:
        """Build every factor at ``values`` and check the chain; this record takes the numbers (and returns itself)."""
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        prog = parse_program(generic_program(self.program))
        missing = [n for n in prog.inputs if n not in arrays]
        if missing:
            raise ParseError(f"derive --chain: values are needed for {', '.join(missing)}", kind="missing value")
        env = record(prog, arrays)
        fresh = build_chain(self.program, prog, env, self.constants, generic=self.generic)
        _evaluate(fresh, prog, env, arrays)
        self.status, self.max_error, self.reason = fresh.status, fresh.max_error, fresh.reason
        if _same_sizes(self, fresh):  # the numbers go into this record's own factors, paths and links
            entries = {f.key: f.entries for f in fresh.factors}
            kinks = {f.key: f.kink for f in fresh.factors}
            for f in self.factors:
                f.entries, f.kink = entries.get(f.key), kinks.get(f.key, False)
            for old, new in zip(self.links, fresh.links):
                old.product, old.engine, old.central = new.product, new.engine, new.central
                old.error, old.scale, old.kinks = new.error, new.scale, new.kinks
                for p, q in zip(old.paths, new.paths):
                    p.product = q.product
        else:  # (built at other sizes, a symbolic B): the record at the values' sizes replaces it
            self.links, self.where, self.factors = fresh.links, fresh.where, fresh.factors
        return self

    def __repr__(self) -> str:
        status = f", check {self.status}, max relative error {self.max_error:.1e}" if self.evaluated else ""
        return f"<Chain of {len(self.links)} Jacobians of {self.output}{status}>"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "output": self.output,
            "links": [ln.as_dict() for ln in self.links],
            "where": dict(self.where),
        }
        if self.evaluated:
            out["status"] = self.status
            out["max_error"] = _json_float(self.max_error)
            out["tolerance"] = TOLERANCE
            out["factors"] = [f.as_dict() for f in self.factors]
            if self.reason:
                out["reason"] = self.reason
        return out


def _same_sizes(a: Chain, b: Chain) -> bool:
    def sizes(c: Chain) -> list:
        return [(f.key, f.rows, f.cols, f.symbol) for f in c.factors] + [
            (ln.wrt, ln.rows, ln.cols, [p.text() for p in ln.paths]) for ln in c.links
        ]

    return sizes(a) == sizes(b)


def _json_float(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def record(prog: Program, values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Run ``prog`` through the engine at ``values`` (float64), keeping every value; the environment of tensors."""
    env: dict[str, Any] = {}
    for name in prog.inputs:
        v = values[name]
        env[name] = tensor(v if v.shape else float(v), requires_grad=True)
    with np.errstate(all="ignore"), keep_values():
        for st in prog.statements:
            out = evaluate(st.expr, env)
            env[st.target] = out if isinstance(out, Tensor) else tensor(out)
    return env


def build_chain(
    program: str, prog: Program, env: Mapping[str, Any], constants: tuple[str, ...] = (), generic: bool = False
) -> Chain:
    """The chain record of a recorded program (call inside ``S.dims_context`` so sizes print as ``B``)."""
    out_t = env[prog.output]
    order = toposort([out_t])  # the output first, each node before its inputs
    live = {id(env[n]) for n in prog.inputs if n not in constants}
    for t in reversed(order):
        if any(x is not None and id(x) in live for x in node_of(t).inputs):
            live.add(id(t))
    edges: dict[int, list[tuple[int, Tensor]]] = {}
    for t in order:
        view = node_of(t)
        edges[id(t)] = [
            (i, x) for i, x in enumerate(view.inputs) if x is not None and id(x) in live and view.prim.differentiable(i)
        ]
    names = {id(t): n for n, t in reversed(list(env.items())) if isinstance(t, Tensor)}
    walk = _Walk(dict(env), dict(names), generic=generic)
    labels = _Labels(walk)
    for t in reversed(order):  # inputs first: a long value is named v1, ..., and later texts use those names
        if id(t) in live:
            labels(t)
    position = {id(t): k for k, t in enumerate(order)}
    factor_of: dict[tuple[int, int], Factor] = {}

    def factor(t: Tensor, i: int, x: Tensor) -> Factor:
        key = (position[id(t)], i)
        if key not in factor_of:
            factor_of[key] = _factor(walk, labels, t, i, x, key)
        return factor_of[key]

    # the values that get a gradient: named intermediates (the newest first), then the inputs
    targets: list[tuple[str, Tensor]] = []
    seen = {id(out_t)}
    for st in reversed(prog.statements):
        t = env.get(st.target)
        if isinstance(t, Tensor) and id(t) not in seen and id(t) in live:
            seen.add(id(t))
            targets.append((st.target, t))
    for name in prog.inputs:
        t = env[name]
        if name not in constants and id(t) not in seen:
            seen.add(id(t))
            targets.append((name, t))

    links = []
    for name, target in targets:
        reach = {id(target)}
        for t in reversed(order):
            if any(id(x) in reach for _, x in edges[id(t)]):
                reach.add(id(t))
        if id(out_t) not in reach:
            continue  # the output does not depend on it
        count = {id(out_t): 1}
        for t in order:
            c = count.get(id(t), 0)
            if c and id(t) != id(target):
                for _, x in edges[id(t)]:
                    if id(x) in reach:
                        count[id(x)] = count.get(id(x), 0) + c
        paths = [Path([factor(*e) for e in p]) for p in _paths(out_t, target, edges, reach, MAX_PATHS)]
        if count[id(target)] > len(paths):  # the sum over all paths is made at the values they share
            for t in order:
                if id(t) in reach and t is not target:
                    for i, x in edges[id(t)]:
                        if id(x) in reach:
                            factor(t, i, x)
        links.append(_link(prog.output, name, out_t, target, paths, count[id(target)]))
    chain = Chain(program, prog.output, tuple(constants), links, labels.where, generic)
    chain.factors = sorted(factor_of.values(), key=lambda f: f.key)
    return chain


class _Labels:
    """How the chain calls a value: its name, its program text, or ``v1`` where that text is long."""

    def __init__(self, walk: _Walk) -> None:
        self.walk = walk
        self.where: dict[str, str] = {}
        self.short: dict[int, str] = {}

    def __call__(self, t: Tensor) -> str:
        name = self.walk.names.get(id(t))
        if name is not None:
            return name
        if id(t) in self.short:
            return self.short[id(t)]
        text = S.program_text(self.walk.fwd(t))
        if len(text) > MAX_LABEL:
            label = f"v{len(self.where) + 1}"
            self.where[label] = text
            text = label
            self.walk.names[id(t)] = label  # (later texts refer to it by this name)
            self.walk.cache.clear()
        self.short[id(t)] = text
        return text


def _factor(walk: _Walk, labels: _Labels, t: Tensor, i: int, x: Tensor, key: tuple) -> Factor:
    view = node_of(t)
    st = structure(
        view.prim.name,
        i,
        x.shape,
        t.shape,
        view.params,
        tuple(y.shape if y is not None else np.shape(view.args[k]) for k, y in enumerate(view.inputs)),
        tuple(operand_text(walk, y) for y in view.inputs),
    )
    times = sum(1 for y in view.inputs if y is x)
    return Factor(
        labels(t),
        labels(x),
        t.size,
        x.size,
        _size_text(list(t.shape)) + "×" + _size_text(list(x.shape)),
        S.program_text(walk.fwd(t, expand=True)),
        st.kind,
        st.description,
        st.vjp,
        i,
        times if times > 1 else 0,
        key,
        (tuple(t.shape), tuple(x.shape)),
    )


def _paths(out_t: Tensor, target: Tensor, edges: dict, reach: set, limit: int) -> list[list[tuple]]:
    """Up to ``limit`` paths from the output to ``target``, each a list of edges (consumer, operand, value)."""
    found: list[list[tuple]] = []
    stack: list[tuple[Tensor, list[tuple]]] = [(out_t, [])]
    while stack and len(found) < limit:
        t, acc = stack.pop()
        if t is target:
            found.append(acc)
            continue
        nexts = [(t, i, x) for i, x in edges.get(id(t), ()) if id(x) in reach]
        for e in reversed(nexts):  # operand 1 first
            stack.append((e[2], acc + [e]))
    return found


def _link(output: str, name: str, out_t: Tensor, target: Tensor, paths: list[Path], n_paths: int) -> Link:
    rows, cols = out_t.size, target.size
    size = _size_text(list(out_t.shape)) + "×" + _size_text(list(target.shape))
    listed = [f for p in paths for f in p.factors]
    big = max(listed, key=lambda f: f.rows * f.cols) if listed else None
    largest = f"{big.symbol}, {big.size}" if big is not None else ""
    return Link(output, name, rows, cols, size, paths, n_paths, _shortcut(output, name, out_t, paths, big), largest)


def _grad(label: str) -> str:
    return f"d{label}" if label.isidentifier() else f"d({label})"


def _shortcut(output: str, name: str, out_t: Tensor, paths: list[Path], big: Optional[Factor]) -> str:
    """What to compute instead of the matrices: one vector-Jacobian product per factor, from the left."""
    start = f"d{output} = 1" if out_t.size == 1 else f"d{output} = ones({S.shape_text(out_t.shape)}) (the seed)"
    # the gradients in the order backprop forms them (the listed paths' values, each after all its consumers)
    steps: list[str] = []
    incoming: dict[str, list[Factor]] = {}
    sequence: list[str] = []
    for p in paths:
        for f in p.factors:
            incoming.setdefault(f.wrt, [])
            if all(g is not f for g in incoming[f.wrt]):
                incoming[f.wrt].append(f)
            if f.wrt not in sequence:
                sequence.append(f.wrt)
    position = {label: k for k, label in enumerate(sequence)}
    runs: list[list] = []  # consecutive gradients formed the same way are written once
    for label in sorted(sequence, key=lambda lb: _depth(lb, paths, position)):
        fs = incoming[label]
        how = "; ".join(dict.fromkeys(f.vjp for f in fs)) + (f", {len(fs)} terms added" if len(fs) > 1 else "")
        if runs and runs[-1][1] == how:
            runs[-1][0].append(label)
        else:
            runs.append([[label], how])
    for run, how in runs:
        if len(run) < 3:
            steps += [f"{_grad(label)} ({how})" for label in run]
        else:
            steps.append(f"{_grad(run[0])} → … → {_grad(run[-1])} ({len(run)} products, each {how})")
    parts = [
        f"{start} → "
        + " → ".join(steps)
        + ": one vector-Jacobian product per factor, from the left, each a vector the size of its value"
    ]
    if out_t.size > 1:
        parts.append(
            f"the chain is the whole {out_t.size}-row Jacobian of {output}; backprop only takes the row vector of "
            f"ones through it (the gradient of sum({output}))"
        )
    if len(paths) > 1:
        parts.append("the paths share their start, and backprop adds their terms once, where they meet")
    if big is not None and big.rows > 1:
        parts.append(f"it never builds a factor: the largest, {big.symbol}, would be {_sized(big)}")
    return "; ".join(parts)


def _depth(label: str, paths: list[Path], position: dict[str, int]) -> tuple[int, int]:
    """Backprop's order: a value after every value that consumes it (the longest distance from the output)."""
    deepest = 0
    for p in paths:
        for k, f in enumerate(p.factors):
            if f.wrt == label:
                deepest = max(deepest, k)
    return deepest, position[label]


def _sized(f: Factor) -> str:
    """``4096B×4096B, at B = 100: 409,600×409,600 (1.3 TB of float64)`` or ``64×64 (4,096 numbers, 32.8 KB)``."""
    n = f.rows * f.cols
    here = f"{f.size} ({_count(n)} numbers, {_bytes(8 * n)} of float64)"
    symbols = sorted({S.dim_text(d) for shape in f.shapes for d in shape if not S.dim_text(d).isdigit()})
    if not symbols:
        return here
    rows, cols = (math.prod(EXAMPLE_SIZE if not S.dim_text(d).isdigit() else d for d in s) for s in f.shapes)
    names = ", ".join(f"{v} = {EXAMPLE_SIZE}" for v in symbols)
    return f"{f.size}; at {names}: {_count(rows)}×{_count(cols)} ({_bytes(8 * rows * cols)} of float64)"


# --- with values ---------------------------------------------------------------------------------------


def _local_jacobian(t: Tensor, i: int) -> np.ndarray:
    """∂t/∂(operand i) at the recorded values, by float64 central differences of the operation's forward."""
    view = node_of(t)
    vals = [
        np.asarray(value_of(x), dtype=np.float64) if x is not None else view.args[k] for k, x in enumerate(view.inputs)
    ]
    base = np.asarray(vals[i], dtype=np.float64)
    flat = base.reshape(-1)
    cols = []
    with no_grad(), np.errstate(all="ignore"):
        for j in range(flat.size):
            h = 1e-6 * max(1.0, abs(float(flat[j])))
            pair = []
            for step in (h, -h):
                moved = flat.copy()
                moved[j] += step
                args = list(vals)
                args[i] = moved.reshape(base.shape)
                pair.append(np.asarray(view.prim.fwd(*args, *view.params), dtype=np.float64).reshape(-1))
            cols.append((pair[0] - pair[1]) / (2 * h))
    return np.stack(cols, axis=1).reshape(t.size, flat.size)


def _at_a_kink(t: Tensor, i: int) -> bool:
    """Whether operand i of a gate (relu, max, abs, ...) sits at a kink: its one-sided differences disagree."""
    view = node_of(t)
    if view.prim.name not in GATES:
        return False
    vals = [
        np.asarray(value_of(x), dtype=np.float64) if x is not None else view.args[k] for k, x in enumerate(view.inputs)
    ]
    base = np.asarray(vals[i], dtype=np.float64)
    flat = base.reshape(-1)
    with no_grad(), np.errstate(all="ignore"):
        here = np.asarray(view.prim.fwd(*vals, *view.params), dtype=np.float64).reshape(-1)
        for j in range(flat.size):
            h = 1e-6 * max(1.0, abs(float(flat[j])))
            sides = []
            for step in (h, -h):
                moved = flat.copy()
                moved[j] += step
                args = list(vals)
                args[i] = moved.reshape(base.shape)
                out = np.asarray(view.prim.fwd(*args, *view.params), dtype=np.float64).reshape(-1)
                sides.append((out - here) / step)
            if np.max(np.abs(sides[0] - sides[1]), initial=0.0) > 1e-3:
                return True
    return False


def _evaluate(chain: Chain, prog: Program, env: Mapping[str, Any], values: Mapping[str, np.ndarray]) -> None:
    out_t = env[prog.output]
    order = toposort([out_t])
    by_key = {(k, i): (t, i) for k, t in enumerate(order) for i in range(len(node_of(t).inputs))}
    too_big = [f for f in chain.factors if f.rows * f.cols > MAX_FACTOR]
    wide = [ln for ln in chain.links if ln.rows * ln.cols > MAX_FACTOR or ln.cols > MAX_COLUMNS]
    if too_big or wide:
        what = (
            f"the factor {too_big[0].symbol} has {too_big[0].rows * too_big[0].cols:,} entries"
            if too_big
            else f"{wide[0].symbol} has {wide[0].cols:,} columns"
        )
        chain.status, chain.reason = (
            "not made",
            (
                f"{what}; with values the chain is built only where each factor has at most {MAX_FACTOR:,} entries and "
                f"each value at most {MAX_COLUMNS:,}: use smaller values"
            ),
        )
        return
    for f in chain.factors:
        f.entries = _local_jacobian(*by_key[f.key])
        f.kink = _at_a_kink(*by_key[f.key])
    worst = 0.0
    for ln in chain.links:
        on_it = [f for p in ln.paths for f in p.factors] if ln.n_paths == len(ln.paths) else chain.factors
        ln.kinks = list(dict.fromkeys(f.symbol for f in on_it if f.kink))
        for p in ln.paths:
            p.product = _product(p.factors, ln.rows)
        if ln.n_paths == len(ln.paths):
            ln.product = sum((p.product for p in ln.paths), np.zeros((ln.rows, ln.cols)))
            size = sum((_product(p.factors, ln.rows, True) for p in ln.paths), np.zeros((ln.rows, ln.cols)))
        else:
            ln.product = _accumulated(chain, ln, env, order)
            size = _accumulated(chain, ln, env, order, True)
        # the error is relative to the size of the terms summed (where they cancel, as in ∂(x / Σx)/∂x, it is 0)
        ln.scale = float(np.max(size, initial=0.0)) if np.all(np.isfinite(size)) else float("nan")
        ln.engine = _engine(prog, values, env, ln.wrt, ln.rows)
        ln.central = _central(prog, values, env, ln.wrt, ln.rows)
        ln.error = max(_error(ln.product, ln.engine, ln.scale), _error(ln.product, ln.central, ln.scale))
        if not ln.kinks:
            worst = max(worst, ln.error) if math.isfinite(ln.error) else float("nan")
    compared = [ln for ln in chain.links if not ln.kinks]
    chain.max_error = worst if compared else float("nan")
    if not compared:
        kinks = ", ".join(dict.fromkeys(k for ln in chain.links for k in ln.kinks))
        chain.status, chain.reason = "not made", f"every value's chain goes through a kink ({kinks}) at these values"
    elif not math.isfinite(worst):
        chain.status, chain.reason = "not made", "a product or a reference Jacobian is NaN or infinite"
    else:
        chain.status = "passed" if all(ln.error <= TOLERANCE for ln in compared) else "failed"


def _product(factors: list[Factor], rows: int, absolute: bool = False) -> np.ndarray:
    """The product of the factors' entries, output first (of their absolute values: the size of the terms)."""
    out = np.eye(rows)
    for f in factors:
        out = out @ (np.abs(f.entries) if absolute else np.asarray(f.entries))
    return out


def _accumulated(chain: Chain, ln: Link, env: Mapping[str, Any], order: list, absolute: bool = False) -> np.ndarray:
    """The sum over all paths (too many to list) by accumulating at shared values: J[x] += J[t] · ∂t/∂x."""
    target = env[ln.wrt]
    acc: dict[int, np.ndarray] = {id(order[0]): np.eye(ln.rows)}
    cache = {f.key: np.abs(f.entries) if absolute else np.asarray(f.entries) for f in chain.factors}
    for k, t in enumerate(order):
        if id(t) not in acc or t is target:
            continue
        view = node_of(t)
        for i, x in enumerate(view.inputs):
            if x is None or (k, i) not in cache:  # (every edge toward the value has its factor)
                continue
            term = acc[id(t)] @ cache[(k, i)]
            acc[id(x)] = acc[id(x)] + term if id(x) in acc else term
    return acc.get(id(target), np.zeros((ln.rows, ln.cols)))


def _program_at(prog: Program, values: Mapping[str, np.ndarray], env: Mapping[str, Any], wrt: str) -> Any:
    """The program's output as a function of the value ``wrt`` (an input or a named intermediate), others fixed."""
    fixed = {n: np.asarray(value_of(t), dtype=np.float64) for n, t in env.items() if isinstance(t, Tensor)}

    def f(x: Any) -> Any:
        scope: dict[str, Any] = {n: tensor(v) for n, v in values.items()}
        scope[wrt] = x
        for st in prog.statements:
            if st.target == wrt:
                scope[wrt] = x
                continue
            out = evaluate(st.expr, scope)
            scope[st.target] = out if isinstance(out, Tensor) else tensor(out)
        return scope[prog.output]

    return f, fixed[wrt]


def _engine(prog: Program, values: Mapping[str, np.ndarray], env: Mapping[str, Any], wrt: str, rows: int) -> Any:
    """The engine's Jacobian (reverse mode, one backward pass per output entry) as a rows × cols matrix."""
    f, x0 = _program_at(prog, values, env, wrt)
    with np.errstate(all="ignore"):
        J = engine_jacobian(f)(np.array(x0, dtype=np.float64))
    return np.asarray(J, dtype=np.float64).reshape(rows, -1)


def _central(prog: Program, values: Mapping[str, np.ndarray], env: Mapping[str, Any], wrt: str, rows: int) -> Any:
    """float64 central differences of the whole forward program with respect to ``wrt``."""
    x0 = np.asarray(value_of(env[wrt]), dtype=np.float64)
    flat = x0.reshape(-1)
    cols = []
    for j in range(flat.size):
        h = 1e-6 * max(1.0, abs(float(flat[j])))
        pair = []
        for step in (h, -h):
            moved = flat.copy()
            moved[j] += step
            out = _run_forward(prog, values, (wrt, moved.reshape(x0.shape)))[prog.output]
            pair.append(np.asarray(out.data, dtype=np.float64).reshape(-1))
        cols.append((pair[0] - pair[1]) / (2 * h))
    return np.stack(cols, axis=1).reshape(rows, flat.size)


def _error(got: np.ndarray, ref: np.ndarray, terms: float = 0.0) -> float:
    """The largest entry difference, relative to the larger of the reference's largest entry and ``terms`` (the
    largest sum of the absolute values of the terms that make an entry), and at least 1e-3."""
    if got.shape != ref.shape:
        return float("inf")
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(ref)) and math.isfinite(terms)):
        return float("nan")
    scale = max(float(np.max(np.abs(ref), initial=0.0)), terms, 1e-3)
    return float(np.max(np.abs(got - ref), initial=0.0)) / scale
