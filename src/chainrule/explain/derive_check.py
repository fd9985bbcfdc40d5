"""The check behind ``derive``: the exported NumPy code against float64 central differences.

Nothing here calls a VJP rule.  The generated ``backward(**inputs)`` (written from
the printed equations) is run on random inputs, and each gradient it returns is
compared with central differences of the *forward* program, at two values of each
symbolic size.  A gradient that is NaN or infinite, or a program whose forward
overflows at every draw, makes the check *not made*; it never passes silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..tensor import Tensor, no_grad, tensor
from .parse import Program, evaluate

TOLERANCE = 1e-5  # relative error above which a gradient is wrong (central differences are good to ~1e-8)
MAX_ENTRIES = 200  # per gradient: more entries are sampled at random
WORK_BUDGET = 60_000_000  # elements touched by all forward passes of one check, roughly


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

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def sizes_text(self) -> str:
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
            extra = [", ".join(f"{n}: {k} sampled entries" for n, k in self.sampled.items())] if self.sampled else []
            extra += [self.note] if self.note else []
            return line + (f" ({'; '.join(extra)})" if extra else "")
        if self.status == "failed" and self.reason:
            return f"check FAILED {where}: {self.reason}"
        if self.status == "failed":
            bad = ", ".join(f"{n} {e:.1e}" for n, e in self.errors.items() if not e <= TOLERANCE)
            return f"check FAILED against central differences {where}: relative errors {bad} (tolerance {TOLERANCE:g})"
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
        }


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
            out = evaluate(st.expr, env)
            env[st.target] = out if isinstance(out, Tensor) else tensor(out)
    return env


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
    errors: dict[str, float] = {}
    sampled: dict[str, int] = {}
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
            outcome = _compare(prog, backward, env, values, targets, rng, len(size_sets))
            if isinstance(outcome, CheckResult):
                outcome.sizes = sizes_list
                outcome.errors = {**errors, **outcome.errors}
                return outcome
            if isinstance(outcome, str):
                reason = outcome
                continue
            for dname, (err, count) in outcome.items():
                errors[dname] = max(errors.get(dname, 0.0), err)
                if count is not None:
                    sampled[dname] = count
            reason = ""
            break
        if reason:
            return CheckResult("not made", sizes_list, errors, reason=reason)
    worst = max(errors.values(), default=0.0)
    status = "passed" if all(e <= TOLERANCE for e in errors.values()) else "failed"
    return CheckResult(status, sizes_list, errors, worst, sampled=sampled)


def _compare(
    prog: Program,
    backward: Callable[..., dict],
    env: Mapping[str, Any],
    values: Mapping[str, np.ndarray],
    targets: Sequence[tuple[str, str]],
    rng: Any,
    n_sizes: int,
) -> Any:
    """Per target ``(error, sampled count)``; a string when this draw cannot decide; a result when it failed."""
    with np.errstate(all="ignore"):
        try:
            got = backward(**{n: v.copy() for n, v in values.items()})
        except Exception as exc:  # the generated code itself failed: loud, with the reason
            return CheckResult("failed", [], reason=f"the exported code raised {exc!r}")
    cost = sum(int(np.size(t.data)) for t in env.values()) + 1
    per_target = max(4, WORK_BUDGET // (2 * cost * max(1, len(targets)) * n_sizes))
    out: dict[str, tuple[float, Optional[int]]] = {}
    for name, dname in targets:
        base = np.asarray(env[name].data, dtype=np.float64)
        g = np.asarray(got[name], dtype=np.float64) if name in got else None
        if g is None or g.shape != base.shape:
            shown = None if g is None else g.shape
            return CheckResult(
                "failed", [], {dname: float("inf")}, reason=f"{dname} has shape {shown}, not {base.shape}"
            )
        ref, noise, idx, size, kink = _central(prog, values, name, base, rng, min(per_target, MAX_ENTRIES), prog.output)
        mine = g.reshape(-1)[idx] if idx is not None else g.reshape(-1)
        if kink.any():  # not differentiable there: those entries say nothing; too many, and this draw cannot decide
            if kink.mean() > 0.25:
                return f"the program is not differentiable (a kink such as relu at 0) at most values tried for {dname}"
            ref, mine, noise = ref[~kink], mine[~kink], noise[~kink]
        if not np.all(np.isfinite(mine)):
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
        out[dname] = (err, None if idx is None else len(idx))
    return out


def _draw(rng: Any, shape: tuple[int, ...], draw: int) -> np.ndarray:
    if draw == 0:
        v = rng.standard_normal(shape)
    elif draw == 1:
        v = rng.uniform(0.2, 1.0, shape)
    else:
        v = rng.uniform(0.05, 0.3, shape)
    return np.asarray(v, dtype=np.float64)


def _central(
    prog: Program,
    values: Mapping[str, np.ndarray],
    name: str,
    base: np.ndarray,
    rng: Any,
    limit: int,
    output: str,
) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], float, np.ndarray]:
    """Central differences of the output for each (or a sample of) entry of ``name``, with their rounding bound."""
    n = base.size
    idx = None if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))
    which = range(n) if idx is None else idx
    flat = base.reshape(-1)
    ref = np.empty(len(which))
    noise = np.empty(len(which))
    kink = np.zeros(len(which), dtype=bool)
    is_input = name in values
    eps = np.finfo(np.float64).eps
    f0 = _eval_with(prog, values, name, base, is_input, output)
    for j, i in enumerate(which):
        h = 1e-5 * max(1e-2, abs(flat[i]))
        plus, minus = flat.copy(), flat.copy()
        plus[i] += h
        minus[i] -= h
        fp = _eval_with(prog, values, name, plus.reshape(base.shape), is_input, output)
        fm = _eval_with(prog, values, name, minus.reshape(base.shape), is_input, output)
        ref[j] = (fp - fm) / (2 * h)
        noise[j] = 2 * eps * max(abs(fp), abs(fm)) / (2 * h)
        # a kink (relu at 0, a tie in max): the one-sided slopes differ by far more than curvature explains
        right, left = (fp - f0) / h, (f0 - fm) / h
        kink[j] = abs(right - left) > 1e-3 * max(1.0, abs(right), abs(left)) + 4 * noise[j]
    return ref, noise, idx, max(1.0, abs(f0)), kink


def _eval_with(
    prog: Program, values: Mapping[str, np.ndarray], name: str, value: np.ndarray, is_input: bool, output: str
) -> float:
    if is_input:
        return _scalar(_run_forward(prog, dict(values, **{name: value})), output)
    return _scalar(_run_forward(prog, values, override=(name, value)), output)
