"""derive's check on large programs (issue 26, round 3): bounded work, sampled entries and a random direction.

The probes: ``derive "E = sum(sigmoid(x))" --shape x=2000x2500`` took 44 s and 890 MB; a chain of 99 statements
on x=4 took 22 s (each probe re-ran the whole program).  The check must stay honest: a wrong rule still fails.
"""

import sys
import time

import numpy as np
import pytest

import chainrule as cr
import chainrule.explain.derive_check as C
from chainrule.cli import main
from chainrule.explain.parse import parse_program
from chainrule.primitive import REGISTRY

CHAIN = "; ".join(["h1 = tanh(x)"] + [f"h{i} = tanh(h{i - 1})" for i in range(2, 99)] + ["E = sum(h98)"])


@pytest.fixture
def recomputed(monkeypatch):
    """The elements every probe of the check recomputes, added up."""
    spent = []
    real = C._Rerun.__call__

    def counting(self, name, value):
        spent.append(self.cost(name))
        return real(self, name, value)

    monkeypatch.setattr(C._Rerun, "__call__", counting)
    return spent


def test_a_planted_wrong_rule_fails_the_sampled_check(monkeypatch):
    sigmoid = REGISTRY["sigmoid"]
    monkeypatch.setattr(sigmoid, "vjps", (lambda xp, g, out, x: g * out,))  # forgot the (1 − σ) factor
    d = cr.derive("E = sum(sigmoid(x))", {"x": (400, 500)})
    assert d.check.status == "failed" and d.check.errors["dx"] > 1e-3
    assert "dx" in d.check.sampled  # sampled entries and a random direction, not all 200,000


def test_the_right_rule_passes_the_sampled_check_and_says_how(recomputed):
    d = cr.derive("E = sum(sigmoid(x))", {"x": (400, 500)})
    # a probe recomputes 400,001 elements (x, sigmoid(x), the sum) twice: 74 of them fit the budget, one of them
    # the direction
    assert d.ok and d.check.sampled == {"dx": 73}
    assert "(dx: 73 sampled entries and a random direction)" in d.check.text()
    assert d.check.as_dict()["sampled"] == {"dx": 73} and d.check.as_dict()["unchecked"] == []
    assert sum(recomputed) <= C.WORK_BUDGET
    small = cr.derive("E = sum(sigmoid(x))", {"x": (40, 50)})
    assert small.check.sampled == {"dx": 200} and "200 sampled entries and a random direction" in str(small)


def test_the_direction_catches_an_error_the_sampled_entries_miss(monkeypatch):
    prog = parse_program("E = sum(sigmoid(x))")
    bad = 1234  # one entry of the gradient is wrong; the 200 sampled entries of seed 0 do not include it

    def backward(x):
        s = 1 / (1 + np.exp(-x))
        g = s * (1 - s)
        g.reshape(-1)[bad] += 0.05
        return {"x": g}

    def run():
        return C.check(prog, backward, lambda s: {"x": (100, 100)}, [{}], [("x", "dx")], (), seed=0)

    result = run()
    assert result.status == "failed" and result.errors["dx"] > 1e-4
    monkeypatch.setattr(C, "_direction", lambda *args: 0.0)
    assert run().status == "passed"  # the entries alone would have let it through


def test_the_big_probe_finishes_in_seconds_within_the_work_budget(recomputed, capsys):
    start = time.perf_counter()
    assert main(["derive", "E = sum(sigmoid(x))", "--shape", "x=2000x2500"]) == 0
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "checked against central differences" in out and "a random direction" in out
    # each probe recomputes x and sigmoid(x) (5,000,000 each) and the sum, twice: two probes fit 60,000,000
    assert sum(recomputed) <= C.WORK_BUDGET and len(recomputed) == 2 * 2
    assert "(dx: 1 sampled entry and a random direction)" in out
    assert elapsed < 60  # about 2-4 s on a shared 2-core machine (it took 44 s)


def test_a_chain_of_99_statements_recomputes_only_what_follows(monkeypatch):
    D = sys.modules["chainrule.explain.derive_check"]
    calls = []
    real = D.evaluate
    monkeypatch.setattr(D, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    d = cr.derive(CHAIN, {"x": (4,)})
    assert d.ok and not d.check.sampled and not d.check.unchecked  # every entry of every gradient
    assert len(d.check.errors) == 99
    # a probe of h_k re-runs only the statements after it; the whole program each time was 87,525 evaluations
    assert len(calls) < 45_000


def test_gradients_over_the_work_budget_are_named_not_passed_over(recomputed):
    d = cr.derive(CHAIN, {"x": (20_000,)})
    assert d.ok and "dx" in d.check.errors  # the input's gradient is always checked
    assert d.check.unchecked and len(d.check.errors) + len(d.check.unchecked) == 99
    text = d.check.text()
    assert "not checked on their own, over the check's work budget" in text and "more" in text
    assert sum(recomputed) <= C.WORK_BUDGET + 2 * 99 * 20_000  # (the first probe may exceed a share)
