"""Machine-checkable forms of derive's steps (``derive --steps``), and their numerical check.

Every step that states a formula carries a :class:`Claim`, built from the same
symbolic values the walk computes (never parsed back from the text).  A claim
compares two things at the values the program was recorded at:

* what the step says, evaluated from its own formula (:func:`chainrule.symbolic.evaluate`), from the
  matrix its text names (``diag(v)``, ``I_m ⊗ yᵀ``, blocks ``diag(p) − p pᵀ``), or from its index form
  written as explicit loops over the indices;
* a reference built independently of the engine's rules: the local Jacobian of the operation by float64
  central differences of its forward (columns of ``∂y/∂x``), and ``Jᵀ g`` from those columns.

No VJP rule is called here.  Large Jacobians are compared at sampled columns and along one random direction
(each column costs two forwards of one operation), so the check's work stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S

EPS = float(np.finfo(np.float64).eps)
H = 1e-3  # central-difference step, relative to each entry; two steps, extrapolated (Richardson): error ~ H⁴
TOLERANCE = 1e-5  # the largest relative error a true step shows (central differences are good to about 1e-8)
MAX_COLUMNS = 120  # columns of one local Jacobian compared at most (the rest: one random direction)
WORK = 4_000_000  # elements recomputed by the probes of one claim, about (the step check shares a total)
TOTAL_WORK = 40_000_000  # elements recomputed by all claims of one derivation, about


@dataclass
class Edge:
    """One operand of one recorded operation: the forward, the operand values, and the upstream gradient.

    ``roles`` are the operand positions that hold the value (``q * q``: both), perturbed together, so the
    Jacobian is the whole operation's with respect to that value."""

    fwd: Callable[..., Any]
    params: tuple
    operands: list
    roles: tuple[int, ...]
    out_shape: tuple[int, ...]
    upstream: Any = None  # a Sym, or None where no product is claimed

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.operands[self.roles[0]]))

    def output(self, x: np.ndarray) -> np.ndarray:
        vals = list(self.operands)
        for r in self.roles:
            vals[r] = x
        with np.errstate(all="ignore"):
            out = self.fwd(*vals, *self.params)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), self.out_shape).reshape(-1)

    def scale(self) -> np.ndarray:
        """Each entry's own scale (its size, at least 1e-6): a step relative to it is small for a small entry
        (log near 0) and loses nothing to rounding for a large one."""
        x = np.asarray(self.operands[self.roles[0]], dtype=np.float64)
        size = np.abs(x).reshape(-1)
        return np.where(np.isfinite(size), np.maximum(size, 1e-6), 1.0)  # (an overflowed entry: its probe is NaN)

    def jvp(self, v: np.ndarray, rungs: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """``J v`` by central differences, with a bound on its rounding error: ``(estimate, noise)``.

        Two steps extrapolated (Richardson).  Where rounding in the output (a big sum) could hide the
        difference, the step grows tenfold, up to ``rungs`` times; what rounding still allows is ``noise``."""
        x = np.asarray(self.operands[self.roles[0]], dtype=np.float64)
        step = H * v.reshape(x.shape)
        factor = 1.0
        for _ in range(max(1, rungs)):
            a, b = self.output(x + step), self.output(x - step)
            c, d = self.output(x + step / 2), self.output(x - step / 2)
            est = (4 * (c - d) / H - (a - b) / (2 * H)) / 3 / factor
            noise = 4 * EPS * (np.abs(a) + np.abs(b) + np.abs(c) + np.abs(d)) / H / factor
            finite = np.isfinite(est) & np.isfinite(noise)
            size = float(np.max(np.abs(est[finite]))) if np.any(finite) else 0.0
            if np.all(noise[finite] <= 1e-8 * max(size, 1e-3 * float(np.max(np.abs(v))) * factor)):
                break
            step, factor = step * 10, factor * 10
        return est, noise

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Column ``j`` of the Jacobian, and its rounding bound (steps grow from the entry's own size)."""
        e = np.zeros(math.prod(self.in_shape))
        scale = self.scale()
        s = float(scale[j])
        e[j] = s
        top = max(float(np.max(scale)), 1.0) * 10
        est, noise = self.jvp(e, rungs=max(1, int(math.ceil(math.log10(top / s))) + 1))
        return est / s, noise / s

    def direction(self, rng: np.random.Generator) -> np.ndarray:
        """A random direction moving every entry, each by its own scale, signs at random."""
        n = math.prod(self.in_shape)
        return rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.5, n) * self.scale()


def value(sym: Any, env: dict, shape: tuple[int, ...]) -> np.ndarray:
    """A formula's value, broadcast to ``shape``, float64."""
    out = S.evaluate(sym, env)
    out = np.asarray(getattr(out, "data", out), dtype=np.float64)
    return np.broadcast_to(out, shape).astype(np.float64)


class Claim:
    """What one step states, as something to evaluate: ``check(rng)`` returns its relative error (NaN: no finite
    entry to compare)."""

    kind = "claim"
    env: dict

    def size(self) -> int:
        """Elements one probe of this claim touches (its operand and its output), for the work budget."""
        edges = getattr(self, "edges", None) or ([self.edge] if hasattr(self, "edge") else [])
        if not edges:
            return math.prod(getattr(self, "shape", ()))
        return sum(math.prod(e.in_shape) + math.prod(e.out_shape) for e in edges)

    def check(self, rng: np.random.Generator, work: int = WORK) -> float:
        raise NotImplementedError


def _probes(n_in: int, n_out: int, rng: np.random.Generator, work: int) -> tuple[list[int], bool]:
    """Which columns to build (all where affordable), and whether to add a random direction."""
    affordable = work // max(1, 4 * (n_out + n_in))  # a column: four forwards on copies of the operand
    if n_in <= min(MAX_COLUMNS, affordable):
        return list(range(n_in)), False
    k = max(1, min(MAX_COLUMNS, affordable, n_in))
    return sorted(rng.choice(n_in, size=k, replace=False).tolist()), True


def _error(said: np.ndarray, ref: np.ndarray, noise: Any = 0.0) -> float:
    """The largest difference beyond what rounding allows, relative to the values' size; entries that rounding
    leaves undecided (or not finite) are left out, NaN where none is left."""
    said, ref = np.asarray(said, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), ref.shape)
    ok = np.isfinite(said) & np.isfinite(ref) & np.isfinite(noise)
    if not np.any(ok):
        return float("nan")
    scale = max(float(np.max(np.abs(ref[ok]))), float(np.max(np.abs(said[ok]))), 1e-3)
    ok &= noise <= 1e-3 * scale
    if not np.any(ok):
        return float("nan")
    diff = float(np.max(np.maximum(np.abs(said[ok] - ref[ok]) - noise[ok], 0.0)))
    return diff / scale


@dataclass
class Product(Claim):
    """``said`` (an array-valued function of the values) is ``Σ Jᵀ g`` over ``edges`` (one per path)."""

    said: Callable[[dict], np.ndarray]
    edges: list[Edge]
    env: dict = field(default_factory=dict, repr=False)
    kind: str = "vector-Jacobian product"

    def check(self, rng: np.random.Generator, work: int = WORK) -> float:
        shape = self.edges[0].in_shape
        n_in = math.prod(shape)
        said = np.broadcast_to(np.asarray(self.said(self.env), dtype=np.float64), shape).reshape(-1)
        cols, direction = _probes(n_in, sum(math.prod(e.out_shape) for e in self.edges), rng, work)
        ups = [value(e.upstream, self.env, e.out_shape).reshape(-1) for e in self.edges]
        ref, noise = np.zeros(len(cols)), np.zeros(len(cols))
        for e, u in zip(self.edges, ups):
            for k, j in enumerate(cols):
                col, bound = e.column(j)
                ref[k] += float(u @ col)
                noise[k] += float(np.abs(u) @ bound)
        errors = [_error(said[cols], ref, noise)]
        if direction:
            v = self.edges[0].direction(rng)
            errors.append(_error(np.array([said @ v]), *_along(v, self.edges, ups)))
        return _worst(errors)


@dataclass
class Matrix(Claim):
    """The local Jacobian the step names is the operation's: ``apply(env, V)`` is the named matrix times each
    column of ``V`` (operand-sized, flat), compared with the Jacobian's columns by central differences.

    ``full`` (optional) builds the named matrix itself, compared entry by entry where it is small;
    ``full_by_columns`` the same matrix with entries numbered by columns (``vec``), compared with the
    Jacobian reordered that way."""

    apply: Callable[[dict, np.ndarray], np.ndarray]
    edge: Edge
    env: dict = field(default_factory=dict, repr=False)
    full: Optional[Callable[[dict], np.ndarray]] = None
    full_by_columns: Optional[Callable[[dict], np.ndarray]] = None
    kind: str = "local Jacobian"

    def check(self, rng: np.random.Generator, work: int = WORK) -> float:
        n_in = math.prod(self.edge.in_shape)
        cols, direction = _probes(n_in, math.prod(self.edge.out_shape), rng, work)
        if n_in * len(cols) <= 2_000_000:
            eye = np.zeros((n_in, len(cols)))
            eye[cols, range(len(cols))] = 1.0
            said = np.asarray(self.apply(self.env, eye), dtype=np.float64)
        else:  # one column at a time (a big operand)
            parts = []
            for j in cols:
                e = np.zeros((n_in, 1))
                e[j, 0] = 1.0
                parts.append(np.asarray(self.apply(self.env, e), dtype=np.float64)[:, 0])
            said = np.stack(parts, axis=1)
        probes = [self.edge.column(j) for j in cols]
        ref = np.stack([c for c, _ in probes], axis=1)
        bound = np.stack([b for _, b in probes], axis=1)
        errors = [_error(said, ref, bound)]
        if direction:
            v = self.edge.direction(rng)
            errors.append(_error(self.apply(self.env, v[:, None])[:, 0], *self.edge.jvp(v)))
        elif self.full is not None:
            errors.append(_error(self.full(self.env), ref, bound))
            if self.full_by_columns is not None:
                out_f = _column_order(self.edge.out_shape)
                in_f = _column_order(self.edge.in_shape)
                cells = np.ix_(out_f, in_f)
                errors.append(_error(self.full_by_columns(self.env), ref[cells], bound[cells]))
        return _worst(errors)


@dataclass
class Pattern(Claim):
    """A structure the step states in words (a permutation, a selection): a test on the Jacobian's columns."""

    holds: Callable[[np.ndarray], bool]
    edge: Edge
    env: dict = field(default_factory=dict, repr=False)
    kind: str = "structure"

    def check(self, rng: np.random.Generator, work: int = WORK) -> float:
        n_in = math.prod(self.edge.in_shape)
        cols, _ = _probes(n_in, math.prod(self.edge.out_shape), rng, work)
        ref = np.stack([self.edge.column(j)[0] for j in cols], axis=1)
        if not np.all(np.isfinite(ref)):
            return float("nan")
        return 0.0 if self.holds(ref) else 1.0


@dataclass
class Same(Claim):
    """Two formulas of the step have the same value (a substitution), with ``change`` applied to the values
    first where the step holds under a condition (one-hot labels)."""

    said: Any
    ref: Any
    shape: tuple[int, ...]
    env: dict = field(default_factory=dict, repr=False)
    change: Optional[Callable[[dict], dict]] = None
    kind: str = "substitution"

    def check(self, rng: np.random.Generator, work: int = WORK) -> float:
        env = self.change(self.env) if self.change is not None else self.env
        ref = self.ref(env) if callable(self.ref) else value(self.ref, env, self.shape)
        return _error(value(self.said, env, self.shape), np.broadcast_to(ref, self.shape))


def _along(v: np.ndarray, edges: list[Edge], ups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``Σ gᵀ (J v)`` over the edges, and its rounding bound."""
    total, noise = 0.0, 0.0
    for e, u in zip(edges, ups):
        est, bound = e.jvp(v)
        total += float(u @ est)
        noise += float(np.abs(u) @ bound)
    return np.array([total]), np.array([noise])


def _worst(errors: list[float]) -> float:
    finite = [e for e in errors if not math.isnan(e)]
    return max(finite) if finite else float("nan")


def _column_order(shape: tuple[int, ...]) -> np.ndarray:
    """Row-major positions of the entries taken in column-major (``vec``) order."""
    n = math.prod(shape)
    return np.arange(n).reshape(shape if shape else ()).reshape(-1, order="F") if shape else np.arange(n)


# --- the matrices steps name, built from their own definitions ----------------------------------------------
def broadcast_matrix(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """The 0/1 matrix that copies an array of ``in_shape`` to ``out_shape`` (NumPy broadcasting), built from
    the indices: output entry o reads the input entry whose index is o's with broadcast axes set to 0."""
    lead = len(out_shape) - len(in_shape)
    n_out, n_in = math.prod(out_shape), math.prod(in_shape)
    m = np.zeros((n_out, n_in))
    for o, idx in enumerate(np.ndindex(*out_shape) if out_shape else [()]):
        src = tuple(0 if in_shape[a] == 1 else idx[a + lead] for a in range(len(in_shape)))
        m[o, np.ravel_multi_index(src, in_shape) if in_shape else 0] = 1.0
    return m


def reduce_matrix(in_shape: tuple[int, ...], axes: Optional[tuple[int, ...]], entry: float) -> np.ndarray:
    """One row per slice of a reduction over ``axes``, ``entry`` at the slice's entries (zeros elsewhere)."""
    axes = tuple(range(len(in_shape))) if axes is None else tuple(a % max(1, len(in_shape)) for a in axes)
    kept = [d for a, d in enumerate(in_shape) if a not in axes]
    m = np.zeros((math.prod(kept), math.prod(in_shape)))
    for i, idx in enumerate(np.ndindex(*in_shape) if in_shape else [()]):
        row = tuple(v for a, v in enumerate(idx) if a not in axes)
        m[np.ravel_multi_index(row, kept) if kept else 0, i] = entry
    return m


def softmax_blocks(p: np.ndarray, axes: Optional[tuple[int, ...]], log: bool) -> np.ndarray:
    """The block-diagonal matrix with ``diag(p_s) − p_s p_sᵀ`` (softmax) or ``I − 1 p_sᵀ`` (log_softmax) for
    each slice ``s`` along ``axes``, built slice by slice."""
    shape = p.shape
    axes = tuple(range(len(shape))) if axes is None else tuple(a % len(shape) for a in axes)
    n = p.size
    m = np.zeros((n, n))
    slices: dict[tuple, list[int]] = {}
    for i, idx in enumerate(np.ndindex(*shape)):
        slices.setdefault(tuple(v for a, v in enumerate(idx) if a not in axes), []).append(i)
    flat = p.reshape(-1)
    for members in slices.values():
        ps = flat[members]
        block = np.eye(len(members)) - np.outer(np.ones(len(members)), ps) if log else np.diag(ps) - np.outer(ps, ps)
        m[np.ix_(members, members)] = block
    return m


def is_permutation(J: np.ndarray) -> bool:
    nz = np.abs(J) > 1e-7
    return bool(np.all(nz.sum(axis=0) == 1) and np.allclose(J[nz], 1.0, atol=1e-6))


def is_selection(J: np.ndarray) -> bool:
    """At most one nonzero per row (a column here is one input entry: each output reads one input)."""
    nz = np.abs(J) > 1e-7
    return bool(np.all(nz.sum(axis=1) <= 1) and np.allclose(J[nz], np.round(J[nz] * 2) / 2, atol=1e-6))
