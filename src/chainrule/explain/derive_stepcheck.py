"""derive's steps finished and checked: their formulas written in the symbolic sizes, each claim evaluated.

``derive`` makes the derivation twice (at two values of each symbolic size, the
second at other input values).  :func:`finish` writes each step's formulas out,
fitting size-dependent constants to the symbols (``1/B``) from the two runs, and
compares the two texts: a step whose text differs between them would print a
stand-in size, and fails.  :func:`check` evaluates every step's claim
(:mod:`.derive_claims`) in both runs; a false step, or one that states a formula
with nothing to check it, fails the check as a false equation does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from .derive_claims import TOLERANCE, TOTAL_WORK, WORK


@dataclass
class StepCheck:
    """Per step of the printed derivation: its twin in the second run; after :func:`check`, the results."""

    pairs: list[tuple[str, int, Any, Any]] = field(default_factory=list)  # (dname, index, step, twin)
    leaks: list[str] = field(default_factory=list)  # steps whose text depends on the run's sizes
    checked: int = 0
    max_error: float = 0.0
    failures: list[str] = field(default_factory=list)
    sizes: list[dict] = field(default_factory=list)
    by_name: dict = field(default_factory=dict, repr=False)  # dname -> the printed steps
    unchecked: list[str] = field(default_factory=list)  # steps the work budget left out (named, never passed)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "max_error": self.max_error,
            "tolerance": TOLERANCE,
            "failed": list(self.failures),
            "unchecked": list(self.unchecked),
            "sizes": self.sizes,
            "method": "each step's formula against local Jacobians by float64 central differences of the "
            "operation's forward (and its index form as explicit sums), at two values of each symbolic size",
        }


def finish(
    first: Sequence[Any],
    second: Sequence[Any],
    sizes: tuple[Mapping[str, int], Mapping[str, int]],
    dims: tuple[Mapping[int, str], Mapping[int, str]],
) -> StepCheck:
    """Write the steps of both runs out (``first`` is printed) and pair them; texts that differ are leaks."""
    out = StepCheck(sizes=[dict(sizes[0]), dict(sizes[1])])
    twins = {ln.name: ln for ln in second}
    for ln in first:
        out.by_name[ln.name] = ln.steps
        other = twins.get(ln.name)
        twin_steps = other.steps if other is not None and len(other.steps) == len(ln.steps) else None
        for i, st in enumerate(ln.steps):
            twin = twin_steps[i] if twin_steps is not None else None
            with S.dims_context(dims[0]):
                text, reason = st.resolve(twin, dict(sizes[0]), dict(sizes[1]))
            if twin is not None:
                with S.dims_context(dims[1]):
                    t2, r2 = twin.resolve(st, dict(sizes[1]), dict(sizes[0]))
                twin.text, twin.reason = t2, r2
                if (t2, r2) != (text, reason):
                    out.leaks.append(f"{ln.name} step {i + 1}: {text!r} reads {t2!r} at the other size")
            elif second:
                out.leaks.append(f"{ln.name} step {i + 1}: {text!r} has no twin at the other size")
            st.text, st.reason = text, reason
            out.pairs.append((ln.name, i, st, twin))
    return out


def check(result: StepCheck, seed: int = 0, tame: Optional[Callable[[], list]] = None) -> StepCheck:
    """Evaluate each step's claim in both runs; record ``step.check`` and the failures.

    ``tame()`` gives the backward lines of a third run at small positive values, used only for steps with
    no finite value in either run (a forward that overflows: ``exp(exp(exp(x)))``)."""
    rng = np.random.default_rng([seed, 23])
    failures = list(result.leaks)
    worst = 0.0
    checked = 0
    third: Optional[dict] = None
    n_claims = sum(2 for *_, st, _t in result.pairs if st.claim is not None)
    work = min(WORK, max(1, TOTAL_WORK // max(1, n_claims)))
    left = TOTAL_WORK
    # the cheapest claims first, so a big operand's steps, not every step, are what the budget may leave out
    order = sorted(result.pairs, key=lambda p: p[2].claim.size() if p[2].claim is not None else 0)
    for name, i, st, twin in order:
        if st.claim is None:
            if _states_formula(st.text):
                failures.append(f"{name} step {i + 1}: {st.text!r} states a formula with nothing to check it")
            continue
        least = 8 * st.claim.size() * (2 if twin is not None else 1)  # one column and one direction, per run
        if least > left and checked > 0:
            result.unchecked.append(f"{name} step {i + 1}")
            st.check = {"max_error": None, "kind": st.claim.kind, "runs": 0, "unchecked": "over the work budget"}
            continue
        left -= min(left, max(least, work * (2 if twin is not None else 1)))
        errors = _errors(name, i, (st, twin), rng, failures, work)
        if all(math.isnan(e) for e in errors) and tame is not None:
            if third is None:
                third = {ln.name: ln for ln in tame()}
            other = third.get(name)
            if other is not None and len(other.steps) == len(result.by_name.get(name, ())):
                errors += _errors(name, i, (other.steps[i],), rng, failures, work)
        finite = [e for e in errors if not math.isnan(e)]
        err = max(finite) if finite else float("nan")
        st.check = {"max_error": None if math.isnan(err) else err, "kind": st.claim.kind, "runs": len(finite)}
        if twin is not None:
            twin.check = st.check
        if not finite:
            failures.append(
                f"{name} step {i + 1}: {st.text!r} could not be checked (no finite value at any of the values tried)"
            )
            continue
        checked += 1
        worst = max(worst, err)
        if err > TOLERANCE:
            failures.append(f"{name} step {i + 1}: {st.text!r} is false (relative error {err:.1e})")
    result.failures, result.max_error, result.checked = failures, worst, checked
    return result


def _errors(name: str, i: int, steps: tuple, rng: np.random.Generator, failures: list[str], work: int) -> list[float]:
    errors = []
    for s in steps:
        if s is None or s.claim is None:
            continue
        try:
            with np.errstate(all="ignore"):
                errors.append(float(s.claim.check(rng, work)))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            failures.append(f"{name} step {i + 1}: {steps[0].text!r} could not be evaluated ({exc})")
            errors.append(float("nan"))
    return errors


def _states_formula(text: str) -> bool:
    """Whether a step's text states an equation (``a = b``) rather than a structure in words."""
    return "=" in text and " is " not in text.split("=")[0]


def merge(result: Any, steps: StepCheck) -> None:
    """Put the steps' check into the derivation's check: a false step fails it, as a false equation does."""
    result.steps = steps
    if steps.ok:
        return
    shown = "; ".join(steps.failures[:3]) + (f"; and {len(steps.failures) - 3} more" if len(steps.failures) > 3 else "")
    what = f"{len(steps.failures)} false step line{'s' if len(steps.failures) > 1 else ''}: {shown}"
    if result.status == "passed":
        result.status, result.reason = "failed", what
    else:
        result.reason = (result.reason + "; " if result.reason else "") + what
