"""The cyclic collector waits while a graph is recorded (chainrule.collector), and only then."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import chainrule as cr

collector = sys.modules["chainrule.collector"]


@pytest.fixture(autouse=True)
def _fresh():
    """Start as after a backward: no pause in force (earlier tests may have left a graph without one)."""
    sys.modules["chainrule.grad_mode"].graph_done()
    yield
    sys.modules["chainrule.grad_mode"].graph_done()


@pytest.fixture
def passes():
    """Counts the collector's passes while the test runs."""
    seen: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    yield seen
    gc.callbacks.remove(count)


def _scalar_graph(n: int) -> tuple[cr.Tensor, cr.Tensor]:
    x = cr.tensor(0.5, requires_grad=True)
    h = x
    for _ in range(n):
        h = cr.tanh(h * 1.0001 + 0.0001)
    return x, h


def test_recording_and_backward_of_a_large_scalar_graph_run_no_collection(passes):
    before = gc.get_threshold()
    x, h = _scalar_graph(10_000)  # 30,000 nodes: about 40 passes at the default threshold
    assert gc.get_threshold()[0] == collector.THRESHOLD and collector.paused()
    h.backward()
    assert passes == []
    assert gc.get_threshold() == before and not collector.paused()
    assert x.grad is not None


def test_switched_off_the_collector_runs_as_before(passes, monkeypatch):
    monkeypatch.setattr(collector, "PAUSE", False)
    _, h = _scalar_graph(10_000)
    assert not collector.paused()
    h.backward()
    assert len(passes) > 10  # what the pause saves: the same graph sets off dozens of passes


def test_cycles_made_by_other_code_are_still_collected_while_a_graph_lives(passes):
    _, h = _scalar_graph(10)
    assert collector.paused()

    class Node:
        pass

    for _ in range(collector.THRESHOLD // 2 + 10):  # two objects per cycle
        a, b = Node(), Node()
        a.other, b.other = b, a
    assert passes, "no pass after THRESHOLD new objects"
    h.backward()


def test_a_collector_the_user_switched_off_or_tuned_is_left_alone():
    before = gc.get_threshold()
    try:
        gc.disable()
        _, h = _scalar_graph(3)
        assert gc.get_threshold() == before and not collector.paused()
        h.backward()
        gc.enable()
        gc.set_threshold(200_000, 5, 5)
        _, h = _scalar_graph(3)
        assert gc.get_threshold() == (200_000, 5, 5) and not collector.paused()
        h.backward()
        gc.set_threshold(*before)
        _, h = _scalar_graph(3)
        assert collector.paused()
        gc.set_threshold(5_000, 10, 10)  # re-tuned while the graph lives: backward keeps the user's choice
        h.backward()
        assert gc.get_threshold() == (5_000, 10, 10)
    finally:
        gc.enable()
        gc.set_threshold(*before)


def test_no_grad_records_nothing_and_pauses_nothing():
    with cr.no_grad():
        x = cr.tensor(0.5, requires_grad=True)
        for _ in range(10):
            x = x * 2.0
    assert not collector.paused()


def test_a_failing_backward_still_puts_the_thresholds_back():
    before = gc.get_threshold()
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    assert collector.paused()
    with pytest.raises(RuntimeError, match="scalar output"):
        y.backward()
    assert gc.get_threshold() == before


def test_a_graph_dropped_without_backward_puts_the_thresholds_back():
    """An evaluation loop that forgot no_grad(): the pause ends with the graph, never stays behind."""
    before = gc.get_threshold()
    w = cr.tensor(np.ones((4, 4)), requires_grad=True)
    for _ in range(50):
        out = (w @ w).sum()
    assert gc.get_threshold() in (before, (collector.THRESHOLD, *before[1:]))
    del out
    assert gc.get_threshold() == before and not collector.paused()
    out = (w @ w).sum()  # the next graph pauses again
    assert collector.paused()
    out.backward()
    assert gc.get_threshold() == before
