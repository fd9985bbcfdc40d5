"""The check behind ``derive``: the exported NumPy code against float64 central differences.

Nothing here calls a VJP rule.  The generated ``backward(**inputs)`` (written from
the printed equations) is run on random inputs, and each gradient it returns is
compared with central differences of the *forward* program, at two values of each
symbolic size.  A gradient that is NaN or infinite, or a program whose forward
overflows at every draw, makes the check *not made*; it never passes silently.

The cost is bounded: all probes of one check recompute at most about
:data:`WORK_BUDGET` elements, shared among the gradients, and a probe of an
intermediate value recomputes only the statements that depend on it.  A gradient
with more entries than its share allows (or than :data:`MAX_ENTRIES`) is checked
at a random sample of entries and along one random direction that moves every
entry at once, so an error anywhere in it shows, not only in the sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..creation import tensor
from ..grad_mode import no_grad
from ..tensor import Tensor
from .parse import Program, evaluate, names_in

TOLERANCE = 1e-5  # relative error above which a gradient is wrong (central differences are good to ~1e-8)
MAX_ENTRIES = 200  # per gradient: more entries are sampled at random (and one random direction is probed)
WORK_BUDGET = 60_000_000  # elements recomputed by all probes of one check; each gradient gets at least one probe


@dataclass
class CheckResult:
    """``status`` is ``"passed"``, ``"failed"`` or ``"not made"``; ``errors`` maps ``dname`` to its worst error."""

    status: str
    sizes: list[dict[str, int]]
    errors: dict[str, float] = field(default_factory=dict)
    max_relative_error: float = float("nan")
    reason: str = ""
    sampled: dict[str, int] = field(default_factory=dict)  # dname -> entries compared where not all were
    note: str = ""  # e.g. "f = sin standing in for the generic f"
    unchecked: list[str] = field(default_factory=list)  # gradients over the work budget, not checked on their own
    recorded: bool = False  # cr.derive(tensor): checked at the recorded values, not at drawn ones
    steps: Any = None  # the steps' own check (derive_stepcheck.StepCheck), where made

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def sizes_text(self) -> str:
        if self.recorded:
            return "at the recorded values"
        if not self.sizes or not self.sizes[0]:
            return "at the given sizes"
        names = list(self.sizes[0])
        if len(names) == 1:
            return "at " + " and ".join(f"{names[0]} = {s[names[0]]}" for s in self.sizes)
        tup = "(" + ", ".join(names) + ")"
        vals = " and ".join("(" + ", ".join(str(s[n]) for n in names) + ")" for s in self.sizes)
        return f"at {tup} = {vals}"

    def text(self) -> str:
        where = self.sizes_text()
        if self.status == "passed":
            line = f"checked against central differences {where}: max relative error {self.max_relative_error:.1e}"
            extra = [_probes_text(self.sampled)] if self.sampled else []
            if self.unchecked:
                extra.append(f"{_names(self.unchecked)}: not checked on their own, over the check's work budget")
            extra += [self.note] if self.note else []
            return line + (f" ({'; '.join(extra)})" if extra else "")
        if self.status == "failed" and self.reason and not any(e > TOLERANCE for e in self.errors.values()):
            return f"check FAILED {where}: {self.reason}"
        if self.status == "failed":
            bad = ", ".join(f"{n} {e:.1e}" for n, e in self.errors.items() if not e <= TOLERANCE)
            extra = f"; {self.reason}" if self.reason else ""
            return (
                f"check FAILED against central differences {where}: relative errors {bad} (tolerance {TOLERANCE:g})"
                + extra
            )
        return f"check FAILED: could not be checked ({self.reason})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "method": "central differences of the forward program, float64",
            "sizes": self.sizes,
            "max_relative_error": None if math.isnan(self.max_relative_error) else self.max_relative_error,
            "errors": {k: (None if not math.isfinite(v) else v) for k, v in self.errors.items()},
            "tolerance": TOLERANCE,
            "reason": self.reason,
            "sampled": dict(self.sampled),
            "unchecked": list(self.unchecked),
            **({"steps": self.steps.as_dict()} if self.steps is not None else {}),
        }


def _names(names: Sequence[str]) -> str:
    """``dW, dh and dz``; past four, ``dh98, dh97, dh96 and 40 more``."""
    if len(names) > 4:
        return f"{', '.join(names[:3])} and {len(names) - 3} more"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def _probes_text(sampled: Mapping[str, int]) -> str:
    """``dW: 200 sampled entries and a random direction``, gradients with the same probes named together."""
    groups: dict[int, list[str]] = {}
    for name, k in sampled.items():
        groups.setdefault(k, []).append(name)
    parts = []
    for k, names in groups.items():
        entries = "" if k == 0 else f"{k} sampled entr{'y' if k == 1 else 'ies'} and "
        probes = entries + "a random direction"
        parts.append(f"{_names(names)}: {probes}{' each' if len(names) > 1 else ''}")
    return "; ".join(parts)


def _run_forward(prog: Program, values: Mapping[str, np.ndarray], override: Optional[tuple[str, Any]] = None) -> Any:
    """The program's output (float64, through the primitives' forwards only); ``override`` replaces one value."""
    env: dict[str, Any] = {n: tensor(v) for n, v in values.items()}
    if override is not None and override[0] in env:
        env[override[0]] = tensor(override[1])
    with no_grad(), np.errstate(all="ignore"):
        for st in prog.statements:
            if override is not None and st.target == override[0]:
                env[st.target] = tensor(override[1])
                continue
            out = _evaluate(st, env)
            env[st.target] = out if isinstance(out, Tensor) else tensor(out)
    return env


def _evaluate(st: Any, env: Mapping[str, Any]) -> Any:
    """One statement: an expression of the program, or a recorded graph's node (which runs its own forward)."""
    return st.run(env) if hasattr(st, "run") else evaluate(st.expr, env)


def _reads(st: Any) -> set:
    return set(st.reads) if hasattr(st, "run") else names_in(st.expr)


def _scalar(env: Mapping[str, Any], output: str) -> float:
    return float(np.sum(np.asarray(env[output].data, dtype=np.float64)))  # a non-scalar output is seeded with ones


def check(
    prog: Program,
    backward: Callable[..., dict],
    shapes_at: Callable[[dict[str, int]], dict[str, tuple[int, ...]]],
    size_sets: Sequence[dict[str, int]],
    targets: Sequence[tuple[str, str]],
    constants: Sequence[str],
    seed: int = 0,
) -> CheckResult:
    """Compare ``backward(**inputs)[name]`` with central differences for each ``(name, dname)`` in ``targets``.

    ``shapes_at(sizes)`` gives the inputs' shapes at one value of each symbolic size.
    """
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng([seed, 1])  # the random directions of sampled gradients, drawn apart
    errors: dict[str, float] = {}
    sampled: dict[str, int] = {}
    unchecked: list[str] = []
    sizes_list = list(size_sets)
    for sizes in size_sets:
        shapes = shapes_at(sizes)
        reason = ""
        for draw in range(3):  # overflow or rounding at one draw: try tamer values (small programs, cheap)
            values = {n: _draw(rng, s, draw) for n, s in shapes.items()}
            env = _run_forward(prog, values)
            if not all(np.all(np.isfinite(np.asarray(t.data))) for t in env.values()):
                reason = "the forward pass overflows (inf or NaN) at every value tried"
                continue
            outcome = _compare(prog, backward, env, values, targets, rng, len(size_sets), directions)
            if isinstance(outcome, CheckResult):
                outcome.sizes = sizes_list
                outcome.errors = {**errors, **outcome.errors}
                return outcome
            if isinstance(outcome, str):
                reason = outcome
                continue
            for dname, (err, count) in outcome.items():
                if err is None:
                    if dname not in errors and dname not in unchecked:
                        unchecked.append(dname)
                    continue
                if dname in unchecked:
                    unchecked.remove(dname)  # (checked at the other size)
                errors[dname] = max(errors.get(dname, 0.0), err)
                if count is not None:
                    sampled[dname] = count
            reason = ""
            break
        if reason:
            return CheckResult("not made", sizes_list, errors, reason=reason)
    worst = max(errors.values(), default=0.0)
    status = "passed" if all(e <= TOLERANCE for e in errors.values()) else "failed"
    return CheckResult(status, sizes_list, errors, worst, sampled=sampled, unchecked=unchecked)


def _compare(
    prog: Program,
    backward: Callable[..., dict],
    env: Mapping[str, Any],
    values: Mapping[str, np.ndarray],
    targets: Sequence[tuple[str, str]],
    rng: Any,
    n_sizes: int,
    directions: Any = None,
) -> Any:
    """Per target ``(error, sampled count)``; a string when this draw cannot decide; a result when it failed."""
    with np.errstate(all="ignore"):
        try:
            got = backward(**{n: v.copy() for n, v in values.items()})
        except Exception as exc:  # the generated code itself failed: loud, with the reason
            return CheckResult("failed", [], reason=f"the exported code raised {exc!r}")
    rerun = _Rerun(prog, values, env)
    directions = np.random.default_rng(0) if directions is None else directions
    probes_of = _allot(rerun, [name for name, _ in targets], values, WORK_BUDGET // n_sizes)
    out: dict[str, tuple[Optional[float], Optional[int]]] = {}
    for name, dname in targets:
        probes = probes_of[name]
        if not probes:
            out[dname] = (None, None)  # over the work budget: not checked on its own (said so)
            continue
        base = np.asarray(env[name].data, dtype=np.float64)
        g = np.asarray(got[name], dtype=np.float64) if name in got else None
        if g is None or g.shape != base.shape:
            shown = None if g is None else g.shape
            return CheckResult(
                "failed", [], {dname: float("inf")}, reason=f"{dname} has shape {shown}, not {base.shape}"
            )
        sampled = base.size > min(probes, MAX_ENTRIES)  # then one probe goes to a random direction
        limit = min(probes - 1, MAX_ENTRIES) if sampled else base.size
        ref, noise, idx, size, kink = _central(rerun, name, base, rng, limit)
        mine = g.reshape(-1)[idx] if idx is not None else g.reshape(-1)
        if kink.any():  # not differentiable there: those entries say nothing; too many, and this draw cannot decide
            if kink.mean() > 0.25:
                return f"the program is not differentiable (a kink such as relu at 0) at most values tried for {dname}"
            ref, mine, noise = ref[~kink], mine[~kink], noise[~kink]
        if not np.all(np.isfinite(g if sampled else mine)):
            return CheckResult(
                "not made",
                [],
                {dname: float("nan")},
                reason=f"the exported gradient {dname} is NaN or infinite at the test values",
            )
        if not np.all(np.isfinite(ref)):
            return f"the central difference for {dname} is NaN or infinite at every value tried"
        # relative to the gradient's size, or to 1e-3 of the output's where the gradient is (nearly) zero
        scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-3 * size)
        if ref.size and float(np.max(noise)) > TOLERANCE * scale:
            return (
                f"central differences for {dname} are swamped by rounding at every value tried (the output is "
                f"far larger than its change), so they cannot confirm the gradient"
            )
        err = float(np.max(np.abs(mine - ref))) / scale if ref.size else 0.0
        if sampled:  # one random direction moves every entry at once: an error outside the sample shows too
            err = max(err, _direction(rerun, name, base, g, directions))
        out[dname] = (err, None if idx is None else len(idx))
    return out


def _allot(rerun: _Rerun, names: Sequence[str], values: Mapping[str, Any], budget: int) -> dict[str, int]:
    """How many probes (two evaluations each) every gradient gets from ``budget`` recomputed elements.

    The inputs' gradients come first (every backward equation feeds them), then the intermediates', cheapest
    first; each takes its fair share of what is left, or one probe where the share is less but the rest allows
    it.  The first always gets one, so a check is never empty; a gradient left with none is not checked on
    its own, and the result says so.
    """
    order = [n for n in names if n in values] + sorted((n for n in names if n not in values), key=rerun.cost)
    left = budget
    probes: dict[str, int] = {}
    for k, name in enumerate(order):
        each = 2 * rerun.cost(name)
        count = (left // (len(order) - k)) // each
        if count == 0 and (k == 0 or each <= left):
            count = 1
        probes[name] = count
        left = max(0, left - count * each)
    return probes


class _Rerun:
    """The output with one value replaced, recomputing only the statements that depend on it.

    ``env`` is the forward pass at ``values``; a statement that does not read the replaced value
    (directly or through another recomputed one) keeps its value from ``env``.
    """

    def __init__(self, prog: Program, values: Mapping[str, np.ndarray], env: Mapping[str, Any]) -> None:
        self.prog = prog
        self.env = dict(env)
        self.output = prog.output
        self.f0 = _scalar(env, prog.output)
        self.plans: dict[str, list[Any]] = {}
        self.costs: dict[str, int] = {}

    def plan(self, name: str) -> list[Any]:
        if name not in self.plans:
            changed, todo = {name}, []
            for st in self.prog.statements:
                if st.target != name and changed.intersection(_reads(st)):
                    todo.append(st)
                    changed.add(st.target)
            self.plans[name] = todo
        return self.plans[name]

    def cost(self, name: str) -> int:
        """Elements one evaluation with ``name`` replaced computes, every intermediate counted (at least 1)."""
        from .budget import expression_values

        if name not in self.costs:
            shapes = {n: tuple(t.shape) for n, t in self.env.items()}
            total = math.prod(shapes[name])
            for st in self.plan(name):
                if hasattr(st, "run"):  # a recorded graph's node: its result's size
                    total += st.size
                    continue
                total += expression_values(st.expr, {n: shapes[n] for n in names_in(st.expr)})
            self.costs[name] = max(1, total)
        return self.costs[name]

    def __call__(self, name: str, value: np.ndarray) -> float:
        env = dict(self.env)
        env[name] = tensor(value)
        with no_grad(), np.errstate(all="ignore"):
            for st in self.plan(name):
                result = _evaluate(st, env)
                env[st.target] = result if isinstance(result, Tensor) else tensor(result)
        return _scalar(env, self.output)


def _direction(rerun: _Rerun, name: str, base: np.ndarray, g: np.ndarray, rng: Any) -> float:
    """The relative error of ``g`` along one random direction: every entry moves by its own step (random sign),
    the steps scaled by 1/sqrt(n) so the whole move is as large as one entry's; 0.0 where the direction cannot
    decide (a kink crossed, or an overflow)."""
    n = base.size
    flat = base.reshape(-1)
    step = 1e-5 * np.maximum(1e-2, np.abs(flat)) / math.sqrt(n)
    step *= rng.integers(0, 2, size=n, dtype=np.int8) * 2.0 - 1.0
    length = float(np.sqrt(np.sum(step * step)))
    work = flat + step
    fp = rerun(name, work.reshape(base.shape))
    np.subtract(flat, step, out=work)
    fm = rerun(name, work.reshape(base.shape))
    del work
    f0 = rerun.f0
    ref = (fp - fm) / (2 * length)  # the derivative along the unit direction step / length
    step /= length
    mine = float(np.dot(g.reshape(-1), step))
    eps = np.finfo(np.float64).eps
    noise = 2 * eps * max(abs(fp), abs(fm)) / (2 * length)
    right, left = (fp - f0) / length, (f0 - fm) / length
    if not np.isfinite(ref) or abs(right - left) > 1e-3 * max(1.0, abs(right), abs(left)) + 4 * noise:
        return 0.0  # a kink on the way, or an overflow: the sampled entries decide alone
    typical = float(np.sqrt(np.sum((g.reshape(-1) * step) ** 2)))  # the size of such a sum of signed terms
    # where the gradient is (nearly) zero, the floor is where rounding makes the comparison meaningless: an
    # error of the rounding's size reads as a tenth of the tolerance (not 1e-3 of the output, as for the
    # entries: a sum over a million entries would hide any error along one direction)
    scale = max(abs(ref), typical, 10 * noise / TOLERANCE)
    return abs(mine - ref) / scale


def _draw(rng: Any, shape: tuple[int, ...], draw: int) -> np.ndarray:
    if draw == 0:
        v = rng.standard_normal(shape)
    elif draw == 1:
        v = rng.uniform(0.2, 1.0, shape)
    else:
        v = rng.uniform(0.05, 0.3, shape)
    return np.asarray(v, dtype=np.float64)


def _central(
    rerun: _Rerun, name: str, base: np.ndarray, rng: Any, limit: int
) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], float, np.ndarray]:
    """Central differences of the output for each (or a sample of) entry of ``name``, with their rounding bound."""
    n = base.size
    idx = None if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))
    which = range(n) if idx is None else idx
    work = base.astype(np.float64, copy=True).reshape(-1)  # one copy, moved entry by entry and put back
    shaped = work.reshape(base.shape)
    ref = np.empty(len(which))
    noise = np.empty(len(which))
    kink = np.zeros(len(which), dtype=bool)
    eps = np.finfo(np.float64).eps
    f0 = rerun.f0
    for j, i in enumerate(which):
        x = work[i]
        h = 1e-5 * max(1e-2, abs(x))
        work[i] = x + h
        fp = rerun(name, shaped)
        work[i] = x - h
        fm = rerun(name, shaped)
        work[i] = x
        ref[j] = (fp - fm) / (2 * h)
        noise[j] = 2 * eps * max(abs(fp), abs(fm)) / (2 * h)
        # a kink (relu at 0, a tie in max): the one-sided slopes differ by far more than curvature explains
        right, left = (fp - f0) / h, (f0 - fm) / h
        kink[j] = abs(right - left) > 1e-3 * max(1.0, abs(right), abs(left)) + 4 * noise[j]
    return ref, noise, idx, max(1.0, abs(f0)), kink
