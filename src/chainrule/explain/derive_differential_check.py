"""The check of the differential route: every line evaluated numerically, independently of the engine's gradients.

For each derivation size, inputs are drawn at random and the values are computed
from the printed forward equations; the gradients from the printed backward
equations; each value that has a differential gets a random direction.  Then:

* a differential line ``dz = dW · a + W · da + db`` is compared with central
  differences of its assignment along those directions;
* a line that opens a gradient's derivation (``dE ∋ ⟨δz, dW · a⟩``) has each
  differential compared with central differences of its assignment along dW alone;
* every ``=`` line must have the value of the line before it (an identity is an
  equality of numbers for every direction: a false one shows at a random one);
* the read-off ``δW = δz · aᵀ`` must give ``⟨δW, dW⟩`` equal to the line before it,
  so the route ends in the printed (and separately checked) equation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S

TOLERANCE = 1e-5  # central differences against a formula
EXACT = 1e-8  # an identity: both sides are the same number up to rounding
STEP = 1e-6


@dataclass
class RouteCheck:
    """``status``: ``"passed"``, ``"failed"`` or ``"not made"``; ``false`` lists the lines that failed."""

    status: str
    lines: int = 0
    max_error: float = 0.0
    false: list[str] = field(default_factory=list)
    sizes: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def text(self) -> str:
        where = " and ".join(self.sizes) if self.sizes else "the given sizes"
        if self.status == "passed":
            return (
                f"each of the {self.lines} lines evaluated at random values and directions, at {where}: "
                f"largest error {self.max_error:.1e} (differentials against central differences, tolerance "
                f"{TOLERANCE:g}; each = against the line before it, tolerance {EXACT:g})"
            )
        if self.status == "failed":
            return f"check FAILED at {where}: false line(s): " + "; ".join(self.false[:4])
        return f"not checked: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "lines": self.lines,
            "max_error": self.max_error,
            "false": list(self.false),
            "sizes": list(self.sizes),
            "reason": self.reason,
        }


class _Evaluator:
    """``S.evaluate`` with each shared subterm computed once per set of values (the walk shares its forward
    subterms between lines, so ``σ(x)`` of a 5,000,000-entry x is not recomputed for every line)."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env
        self.memo: dict[Any, Any] = {}
        self.keys: dict[int, Any] = {}
        self.keep: list[Any] = []  # (the memo's keys are ids: keep the formulas alive)
        self.central: dict[tuple, float] = {}

    def key(self, x: Any) -> Any:
        """The same formula written twice (a copy made by simplifying) has the same key."""
        if not isinstance(x, S.Sym):
            return ("value", repr(x))
        k = self.keys.get(id(x))
        if k is None:
            k = (x.op, x.name, x.shape, repr(x.params), tuple(self.key(a) for a in x.args))
            self.keys[id(x)] = k
            self.keep.append(x)
        return k

    def __call__(self, x: Any) -> Any:
        if not isinstance(x, S.Sym):
            return x
        key = self.key(x)
        if key not in self.memo:
            if x.args:
                shallow = S.Sym(x.op, tuple(self(a) for a in x.args), x.shape, x.params, x.name)
                value = S.evaluate(shallow, self.env)
            else:
                value = S.evaluate(x, self.env)
            self.memo[key] = np.asarray(value, dtype=np.float64)
        return self.memo[key]


def _draws(route: Any, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for lo_hi in (None, (0.5, 1.5), (0.1, 0.9)):
        vals = {}
        for name, shape in route.inputs.items():
            v = rng.standard_normal(shape) if lo_hi is None else rng.uniform(*lo_hi, size=shape)
            vals[name] = v if shape else np.float64(v)
        out.append(vals)
    return out


def _environment(route: Any, inputs: dict[str, Any], rng: np.random.Generator) -> Optional[dict[str, Any]]:
    """Values, gradients (δ names) and directions (d names); None where something is not finite."""
    env: dict[str, Any] = dict(inputs)
    with np.errstate(all="ignore"):
        for name, formula in route.forward:
            env[name] = np.asarray(_Evaluator(env)(formula), dtype=np.float64)
        grads: dict[str, Any] = {}
        genv = dict(env)
        for name, formula in route.backward:
            v = np.asarray(S.evaluate(formula, genv), dtype=np.float64)
            genv[name] = v
            grads["δ" + name[1:]] = v
    if not all(np.all(np.isfinite(v)) for v in list(env.values()) + list(grads.values())):
        return None
    out = dict(env)
    out.update(grads)
    for name in route.live:  # each entry moves in proportion to its size: a tiny p stays positive, an exact 0
        # (a relu's output) stays 0, so central differences never cross a kink that the values sit on
        out["d" + name] = rng.standard_normal(np.shape(env[name])) * np.abs(env[name])
    return out


def _value(step: Any, env: Any, x: str) -> tuple[float, float]:
    """The line's value and its scale (Σ |products|), for the comparison; ``env`` a dict or an evaluator."""
    ev = env if isinstance(env, _Evaluator) else _Evaluator(env)
    if step.kind == "read-off":
        f = ev(step.formula)
        d = ev.env["d" + x]
        return float(np.sum(f * d)), float(np.sum(np.abs(f) * np.abs(d)))
    total, scale = 0.0, 0.0
    for t in step.terms:
        if t.trace:
            fs = [ev(f) for f in t.trace]
            prod, mag = fs[0], np.abs(fs[0])
            for f in fs[1:]:
                prod, mag = prod @ f, mag @ np.abs(f)
            total += float(np.trace(prod))
            scale += float(np.trace(mag))
        else:
            g = ev(t.grad)
            d = ev(t.diff)
            total += float(np.sum(g * d))
            scale += float(np.sum(np.abs(g) * np.abs(d)))
    return total, scale


def _central(fwd: Any, diff: Any, ev: _Evaluator, wrt: tuple[str, ...]) -> float:
    """Relative error of a differential formula against central differences of ``fwd`` along the directions
    (the same comparison made twice, as a differential and as the line that opens a gradient, is made once)."""
    key = (id(fwd), tuple(sorted(wrt)), S.render(diff))
    if key not in ev.central:
        ev.central[key] = _central_once(fwd, diff, ev, wrt)
    return ev.central[key]


def _central_once(fwd: Any, diff: Any, ev: _Evaluator, wrt: tuple[str, ...]) -> float:
    env = ev.env
    plus, minus = dict(env), dict(env)
    for n in wrt:
        plus[n] = env[n] + STEP * env["d" + n]
        minus[n] = env[n] - STEP * env["d" + n]
    with np.errstate(all="ignore"):
        cd = (_Evaluator(plus)(fwd) - _Evaluator(minus)(fwd)) / (2 * STEP)
        an = ev(diff)
    an = np.broadcast_to(an, np.shape(cd)) if np.shape(an) != np.shape(cd) else an
    num = float(np.linalg.norm(np.ravel(cd - an)))
    den = max(float(np.linalg.norm(np.ravel(cd))), float(np.linalg.norm(np.ravel(an))), 1e-3)
    return num / den


def _label(step: Any, owner: str, render: Any) -> str:
    return f"{owner}: {step.lead} {render(step)}"


def check_route(route: Any, seed: int, render: Any = None) -> tuple[str, int, float, list[str]]:
    """Evaluate every line of one route; ``(status, lines, max_error, false lines)``."""
    render = render or (lambda s: s.kind)
    rng = np.random.default_rng(seed + 1)
    for inputs in _draws(route, seed):
        env = _environment(route, inputs, rng)
        if env is None:
            continue
        ev = _Evaluator(env)
        worst, false, count = 0.0, [], 0
        finite = True
        with np.errstate(all="ignore"):
            for step in route.differentials:
                err = _central(step.fwd, step.formula, ev, step.wrt)
                count += 1
                finite &= math.isfinite(err)
                worst = max(worst, err) if math.isfinite(err) else worst
                if not err <= TOLERANCE:
                    false.append(f"{_label(step, 'differentials', render)} (error {err:.1e})")
            for name, _, steps in route.gradients:
                prev: Optional[float] = None
                prev_scale = 0.0
                for step in steps:
                    if step.kind == "seed":
                        continue
                    count += 1
                    if step.kind == "open":
                        for t in step.terms:
                            if t.fwd is None:
                                continue
                            err = _central(t.fwd, t.diff, ev, (t.wrt,))
                            finite &= math.isfinite(err)
                            worst = max(worst, err) if math.isfinite(err) else worst
                            if not err <= TOLERANCE:
                                false.append(f"{_label(step, 'δ' + name, render)} (error {err:.1e})")
                    value, scale = _value(step, ev, name)
                    finite &= math.isfinite(value)
                    if prev is not None:
                        err = abs(value - prev) / max(scale, prev_scale, abs(prev), 1e-300)
                        if value == prev:
                            err = 0.0
                        worst = max(worst, err) if math.isfinite(err) else worst
                        if not err <= EXACT:
                            false.append(
                                f"{_label(step, 'δ' + name, render)} ({value:.6g}, the line before {prev:.6g})"
                            )
                    prev, prev_scale = value, scale
        if not finite and not false:
            continue
        return ("failed" if false else "passed"), count, worst, false
    return "not made", 0, float("nan"), []


def check_routes(routes: list[tuple[Any, str]], seed: int, render: Any = None) -> RouteCheck:
    """Check the route made at each derivation size (``(route, "B = 7")``); failures anywhere fail it."""
    result = RouteCheck("passed", sizes=[where for _, where in routes])
    for route, where in routes:
        status, count, worst, false = check_route(route, seed, render)
        if status == "not made":
            result.status = "not made"
            result.reason = f"every draw of values gave a NaN or infinite value at {where}"
            return result
        result.lines = max(result.lines, count)
        result.max_error = max(result.max_error, worst)
        if status == "failed":
            result.status = "failed"
            result.false += [f"{f} at {where}" for f in false]
    return result


def fold_into(main: Any, route_check: RouteCheck) -> None:
    """A false differential line fails derive's check, as a false equation does; a route not checked is named."""
    if route_check.status == "failed" and main.status != "not made":
        main.status = "failed"
        main.reason = "a differential step is false: " + "; ".join(route_check.false[:3])
    elif route_check.status == "not made":
        main.note = "; ".join(x for x in (main.note, "differential steps " + route_check.text()) if x)
