"""One budget for everything that evaluates user text (issue 26, round 3): counted from the shapes, refused early.

The probe: ``explain "exp(exp(exp(a*b*c)))"`` with a 450×1, a 1×500 and an 88×1×1 array of ones (3.4 KB of
text) took 2.7 GB and ended in a traceback; the explorer took 49 s and 2.5 GB for the same.
"""

import gc
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main
from chainrule.explain.budget import (
    DEFAULT_MAX_NUMBERS,
    MULTIPLY_ADDS_PER_NUMBER,
    Cost,
    max_numbers_type,
    measure,
    program_cost,
)
from chainrule.explain.command import explain_expression
from chainrule.explain.explore import explain_request
from chainrule.explain.page import page_data
from chainrule.explain.parse import ParseError, evaluate, parse_expression, parse_program

SRC = str(Path(__file__).resolve().parents[1] / "src")
ONES_450x1 = "[" + ",".join(["[1]"] * 450) + "]"
ONES_1x500 = "[[" + ",".join(["1"] * 500) + "]]"
ONES_88x1x1 = "[" + ",".join(["[[1]]"] * 88) + "]"
BOMB = "exp(exp(exp(a*b*c)))"
BOMB_AT = [f"a={ONES_450x1}", f"b={ONES_1x500}", f"c={ONES_88x1x1}"]


def test_the_bomb_is_text_of_the_probes_size():
    assert 3300 < sum(len(v) for v in BOMB_AT) < 3500  # "3.4 KB of text"


def test_the_exp_bomb_is_refused_on_the_command_line_within_100_mb():
    # the whole command in a fresh interpreter: its peak resident memory (imports included) is what a user sees.
    # VmHWM is the peak of this process image; ru_maxrss would not do: Linux carries the parent's peak over exec
    script = textwrap.dedent(
        """
        import resource, sys
        from chainrule.cli import main
        code = main(["explain", sys.argv[1], "--at", *sys.argv[2:]])
        try:
            with open("/proc/self/status") as f:
                peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except OSError:  # (not Linux)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
        print("code", code, "maxrss_kb", peak)
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", script, BOMB, *BOMB_AT], capture_output=True, text=True, env=env, timeout=120
    )
    words = done.stdout.split()
    assert "code" in words, (done.stdout, done.stderr)
    code, maxrss_kb = int(words[words.index("code") + 1]), int(words[words.index("maxrss_kb") + 1])
    assert code == 2
    assert maxrss_kb < 100_000, f"peak RSS {maxrss_kb} kB"
    err = done.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("chainrule explain: error: this expression would hold 158,852,076 numbers in all")
    assert f"the budget is {DEFAULT_MAX_NUMBERS:,}" in err and "--max-numbers" in err


@pytest.mark.parametrize("expression", [BOMB, "exp(exp(exp(exp(a*b*c))))", "a*b*c + a*b*c + a*b*c + a*b*c"])
def test_bombs_are_refused_before_anything_runs(expression):
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as info:
            explain_expression(expression, BOMB_AT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.kind == "limit" and "numbers in all" in str(info.value)
    assert peak < 20_000_000  # the inputs (1,038 numbers) and the parse: nothing of the 19.8-million arrays


def test_the_explorer_answers_the_bomb_inline():
    values = " ".join(BOMB_AT)
    reply = explain_request({"expression": BOMB, "values": values})
    assert reply["ok"] is False and "numbers in all" in reply["error"] and "--max-numbers" in reply["error"]


def test_the_flag_moves_the_budget(capsys):
    at = ["a=[[1],[2]]", "b=[[1,2,3]]"]  # a * b: 2 + 3 inputs and 6 results, each with its gradient: 22
    assert main(["explain", "a * b", "--at", *at, "--max-numbers", "21"]) == 2
    err = capsys.readouterr().err
    assert "would hold 22 numbers in all" in err and "the budget is 21" in err and err.count("\n") == 1
    assert main(["explain", "a * b", "--at", *at, "--max-numbers", "22"]) == 0
    assert main(["derive", "E = sum(a * b)", "--shape", "a=2x1", "b=1x3", "--max-numbers", "23"]) == 2
    assert "would hold 24 numbers in all" in capsys.readouterr().err  # (E is one more value)
    assert main(["derive", "E = sum(a * b)", "--shape", "a=2x1", "b=1x3", "--max-numbers", "2.4e1"]) == 0


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1.5", "nan", "inf", "1e99"])
def test_bad_budgets_are_refused_by_argparse(text, capsys):
    assert main(["explain", "x", "--at", "x=1", "--max-numbers", text]) == 2
    assert "--max-numbers" in capsys.readouterr().err


def test_budget_values_read_as_counts():
    assert max_numbers_type("25_000_000") == max_numbers_type("2.5e7") == 25_000_000


def test_the_count_is_values_and_gradients_of_inputs_and_intermediates():
    cost = Cost()
    shapes = measure([(None, parse_expression("exp(a * b) @ w"))], {"a": (2, 1), "b": (1, 3), "w": (3, 4)}, cost)
    assert shapes == {}
    # inputs 2 + 3 + 12, a * b 6, exp 6, the product 8: 37 values, each with its gradient
    assert cost.values == 37 and cost.numbers == 74
    assert cost.multiply_adds == 2 * 4 * 3 and cost.operations == 3
    prog = parse_program("z = W @ a + b; h = sigmoid(z); E = sum(h)")
    assert program_cost(prog, {"W": (4, 3), "a": (3, 1), "b": (4, 1)}).values == 12 + 3 + 4 + 4 + 4 + 4 + 1


def test_matrix_products_are_bounded_by_their_multiply_adds(monkeypatch):
    D = sys.modules["chainrule.explain.derive"]

    def boom(*args, **kwargs):
        raise AssertionError("the program ran")

    monkeypatch.setattr(D, "evaluate", boom)
    # 2000×2000 @ 2000×2000: 12 million values and gradients each, 8e9 multiply-adds (over 40 per number)
    with pytest.raises(ParseError) as info:
        cr.derive("E = sum(W @ V)", {"W": (2000, 2000), "V": (2000, 2000)})
    assert "multiply-adds" in str(info.value) and f"{MULTIPLY_ADDS_PER_NUMBER} per number" in str(info.value)


def test_derive_counts_the_larger_of_its_two_symbolic_runs(monkeypatch):
    # B runs at 7 (the derivation) and at 11 (to tell sizes from constants): 5.5 million values at B = 11
    shapes = {"x": ("B", 500_000)}
    with pytest.raises(ParseError) as info:
        cr.derive("E = sum(x)", shapes, max_numbers=10_000_000, check=False)
    assert "11,000,002 numbers in all" in str(info.value)


def test_shape_errors_keep_their_own_words():
    with pytest.raises(ParseError) as info:
        explain_expression("x + y", ["x=[1, 2]", "y=[1, 2, 3]"])
    assert info.value.kind == "shape" and "(2,)" in str(info.value) and "(3,)" in str(info.value)


def test_the_evaluators_tally_is_a_backstop():
    env = {"a": cr.tensor(np.ones((30, 1))), "b": cr.tensor(np.ones((1, 30)))}
    with pytest.raises(ParseError) as info:
        evaluate(parse_expression("exp(a * b)"), env, max_values=1000)  # 60 + 900 + 900
    assert info.value.kind == "limit" and "over the budget" in str(info.value)
    assert evaluate(parse_expression("sum(a * b)"), env, max_values=961).shape == ()  # 60 + 900 + 1


def test_evaluate_frees_its_values_without_a_garbage_collection():
    # evaluate's recursive closure used to hold env until the cycle collector ran: derive's check, which
    # evaluates thousands of times, held gigabytes (a 99-statement chain on 120,000 entries: 6 GB resident)
    x = cr.tensor(np.ones(100_000))
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        for _ in range(30):
            evaluate(parse_expression("tanh(tanh(x))"), {"x": x})
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 5_000_000  # 30 evaluations × 1.6 MB would be 48 MB


@pytest.mark.parametrize(
    "expression, repeat",
    [("a*b*c", 18), ("sigmoid(a*b*c)", 9), ("logsumexp(a*b*c, axis=1)", 18), ("tanh(tanh(tanh(a*b*c)))", 3)],
)
def test_peak_memory_at_the_edge_of_the_budget_is_bounded(expression, repeat):
    # just under a budget of 2,000,000 numbers (16 MB of float64): the peak stays under 6 × that (docs/explain.md)
    budget = 2_000_000
    at = ["a=[" + ",".join(["[1]"] * 200) + "]", "b=[[" + ",".join(["2"] * 250) + "]]"]
    at.append("c=[" + ",".join(["[[1]]"] * repeat) + "]")
    tracemalloc.start()
    try:
        ex = explain_expression(expression, at, max_numbers=budget)
        page_data(ex, draw_graph=False)
        ex.text()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 8 * budget, f"{peak / 1e6:.0f} MB"
    with pytest.raises(ParseError):
        explain_expression(expression, at, max_numbers=budget // 2)


def test_the_page_derive_runs_under_the_same_budget(monkeypatch):
    seen = {}
    D = sys.modules["chainrule.explain.derive"]
    real = D.derive

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(D, "derive", spy)
    ex = explain_expression("sum(W @ a)", ["W=[[1, 2], [3, 4]]", "a=[1, 1]"], max_numbers=1000)
    data = page_data(ex, draw_graph=False)
    assert seen["max_numbers"] == 1000 and data["derive"]
    json.dumps(data)
