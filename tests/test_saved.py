"""Releasing arrays no backward rule reads (chainrule.saved): the analysis, the engine's results, and safety."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import saved
from chainrule.graph import node_of, topological
from chainrule.numeric import NUMPY
from chainrule.primitive import REGISTRY
from chainrule.saved import Released, ValueReleasedError, rule_reads

from .cases import CASES

TENSOR_MODULE = sys.modules["chainrule.tensor"]

ALL_CASES = [
    pytest.param(name, case, id=f"{name}-{case.label or i}")
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
]


class Poison:
    """Stands for an argument the analysis says a rule does not read: any use of it raises."""

    def __getattr__(self, name):
        raise AssertionError(f"the rule read .{name} of an argument said to be unread")

    def _used(self, *args, **kwargs):
        raise AssertionError("the rule used an argument said to be unread")

    __array__ = __bool__ = __len__ = __iter__ = __getitem__ = __float__ = __index__ = _used
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _used
    __pow__ = __rpow__ = __neg__ = __matmul__ = __rmatmul__ = __eq__ = __lt__ = __gt__ = __le__ = __ge__ = _used
    __ne__ = _used
    __hash__ = None


POISON = Poison()


def _big(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --- the analysis --------------------------------------------------------------------------------


def test_rule_reads_names_the_arguments_a_rule_uses():
    mul = REGISTRY["mul"]
    assert rule_reads(mul.vjps[0]) == {"g", "y"}
    assert rule_reads(mul.vjps[1]) == {"g", "x"}
    assert rule_reads(REGISTRY["add"].vjps[0]) == {"g"}
    assert rule_reads(REGISTRY["tanh"].vjps[0]) == {"g", "out"}
    assert rule_reads(None) == frozenset()


def test_rule_reads_is_conservative_where_it_cannot_tell():
    def varargs(xp, g, out, *args):
        return g

    def captured(xp, g, out, x):
        return (lambda: x)()

    def via_locals(xp, g, out, x):
        return locals()["g"]

    assert rule_reads(varargs) is None
    assert "x" in rule_reads(captured)
    assert rule_reads(via_locals) is None
    assert rule_reads(np.multiply) is None  # not a Python function: keep everything


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_every_rule_runs_with_the_arguments_it_is_said_not_to_read_poisoned(name, case):
    """The bytecode analysis against execution: each rule, on each case, with every unread argument a poison."""
    rng = np.random.default_rng(7)
    inputs = case.inputs(rng)
    with cr.keep_values():
        ts = [cr.tensor(x, requires_grad=True) for x in inputs]
        out = case.fn(*ts)
    checked = 0
    for t in topological(out):
        view = node_of(t)
        prim = view.prim
        if prim.variadic:
            continue
        nin = len(view.inputs)
        value = t._data
        if type(value) is not np.ndarray and type(value) is not float:
            continue  # (another library's array: its rules run on its namespace, tested in test_backends)
        g = rng.standard_normal(np.shape(value))
        g = float(g) if type(value) is float else g.astype(np.result_type(value))
        for i, rule in enumerate(prim.vjps):
            if rule is None or view.inputs[i] is None:
                continue
            reads_out, reads_in = saved._reads(rule, nin)
            expected = rule(NUMPY, g, value, *view.args)
            args = tuple(a if j >= nin or reads_in[j] else POISON for j, a in enumerate(view.args))
            got = rule(NUMPY, g, value if reads_out else POISON, *args)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
            checked += 1
    variadic = all(node_of(t).prim.variadic for t in topological(out))
    assert checked or variadic


# --- the engine's results --------------------------------------------------------------------------


@pytest.fixture
def release_everything(monkeypatch):
    """Release arrays of any size, so the small test cases take the release paths too."""
    monkeypatch.setattr(TENSOR_MODULE, "_MIN_BYTES", 0)


def _grads(case, inputs, keep, create_graph=False):
    ts = [cr.tensor(x, requires_grad=True) for x in inputs]
    if keep:
        with cr.keep_values():
            out = case.fn(*ts)
    else:
        out = case.fn(*ts)
    seed = np.linspace(-1.0, 1.0, int(np.prod(out.shape))).reshape(out.shape).astype(out.dtype)
    if not create_graph:
        out.backward(seed)
        return [t.grad.data if t.grad is not None else None for t in ts]
    firsts = cr.autograd.grad(out, ts, cr.tensor(seed), create_graph=True, allow_unused=True)
    total = sum((g * g).sum() for g in firsts if g is not None and g.requires_grad)
    if not isinstance(total, cr.Tensor):
        return []
    return [None if g is None else g.data for g in cr.autograd.grad(total, ts, allow_unused=True)]


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_released_gradients_equal_kept_ones_bit_for_bit(name, case, release_everything):
    inputs = case.inputs(np.random.default_rng(3))
    for create_graph in (False, True):
        kept = _grads(case, inputs, True, create_graph)
        released = _grads(case, inputs, False, create_graph)
        for a, b in zip(kept, released):
            if a is None:
                assert b is None
            else:
                np.testing.assert_array_equal(a, b)


def test_a_wrong_analysis_raises_instead_of_giving_a_wrong_gradient(monkeypatch, release_everything):
    """Plant an analysis that says no rule reads anything: backward must fail loudly, never answer."""
    monkeypatch.setattr(saved, "_reads", lambda rule, nargs: (False, (False,) * nargs))
    for prim in REGISTRY.values():
        monkeypatch.setattr(prim, "saves", None)
    x = cr.tensor(_big(64, 64), requires_grad=True)
    w = cr.tensor(_big(64, 64, seed=1), requires_grad=True)
    z = cr.tanh((x * w) * 1.0) * 2.0  # nothing holds tanh's result: released under the planted analysis
    _more_ops(x)
    with pytest.raises((ValueReleasedError, TypeError)):
        z.sum().backward()
    for prim in REGISTRY.values():  # (monkeypatch puts the attribute back; the cache must not outlive the plant)
        prim.saves = None


def _chain(x, n=333):
    h = x
    for _ in range(n):
        h = cr.tanh(h * 1.0001 + 0.0001)
    return h


def test_a_chain_keeps_only_what_its_rules_read():
    x = cr.tensor(_big(4096), requires_grad=True)
    h = _chain(x)
    nodes = topological(h)
    held = [t for t in nodes if type(t._data) is np.ndarray]
    assert len(nodes) == 999
    # tanh's rule reads its result; mul by a constant and add read nothing of their own
    assert {t.op for t in held} == {"tanh", "add"} and sum(t.op == "tanh" for t in held) == 333
    assert len(held) <= 335  # the newest add is still an argument when the last check runs
    with cr.keep_values():
        h2 = _chain(x)
    assert all(type(t._data) is np.ndarray for t in topological(h2))


def test_the_chain_holds_about_a_third_of_the_memory():
    x = cr.tensor(_big(4096), requires_grad=True)
    tracemalloc.start()
    try:
        h = _chain(x)
        released = tracemalloc.get_traced_memory()[0]
        del h
        with cr.keep_values():
            h = _chain(x)
        kept = tracemalloc.get_traced_memory()[0]
        del h
    finally:
        tracemalloc.stop()
    assert released < 0.45 * kept, (released, kept)


def test_chain_gradient_matches_torch_and_the_kept_run():
    x0 = _big(4096)
    x = cr.tensor(x0, requires_grad=True)
    _chain(x).sum().backward()
    ours = x.grad.data.copy()
    x.grad = None
    with cr.keep_values():
        _chain(x).sum().backward()
    np.testing.assert_array_equal(ours, x.grad.data)
    xt = torch.tensor(x0, requires_grad=True)
    h = xt
    for _ in range(333):
        h = torch.tanh(h * 1.0001 + 0.0001)
    h.sum().backward()
    np.testing.assert_allclose(ours, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_mlp_step_equals_the_kept_run():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((64, 100)).astype(np.float32)
    yb = rng.integers(0, 10, 64)

    def run(keep):
        cr.manual_seed(0)
        model = cr.nn.Sequential(cr.nn.Linear(100, 64), cr.nn.ReLU(), cr.nn.Linear(64, 10))
        opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            if keep:
                with cr.keep_values():
                    loss = cr.nn.functional.cross_entropy(model(cr.tensor(xb)), cr.tensor(yb))
            else:
                loss = cr.nn.functional.cross_entropy(model(cr.tensor(xb)), cr.tensor(yb))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [p.data.copy() for p in model.parameters()]

    (l1, p1), (l2, p2) = run(False), run(True)
    assert l1 == l2
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


# --- never a value the program still holds ----------------------------------------------------------


def _more_ops(x, n=8):
    for _ in range(n):
        x * 3.0


def test_a_tensor_the_program_holds_keeps_its_value_when_its_reader_is_dropped():
    x = cr.tensor(_big(4096), requires_grad=True)
    m = x * 2.0  # no rule reads it: a candidate
    s = m + 1.0  # its reader
    del s  # the reader's edge is gone, but the program still holds m
    _more_ops(x)
    assert type(m._data) is np.ndarray
    np.testing.assert_array_equal(m.data, x.data * np.float32(2.0))


@pytest.mark.parametrize("holder", ["list", "data view", "numpy view", "hook", "retain_grad", "dict"])
def test_intermediates_held_in_any_way_are_kept(holder):
    x = cr.tensor(_big(4096), requires_grad=True)
    keep: list = []
    m = x * 2.0
    expected = x.data * np.float32(2.0)
    if holder == "list":
        keep.append(m)
    elif holder == "data view":
        keep.append(m.data)
    elif holder == "numpy view":
        keep.append(m._data[1:])
    elif holder == "hook":
        m.register_hook(lambda g, m=m: keep.append(m.data.copy()))
    elif holder == "retain_grad":
        m.retain_grad()
        keep.append(m)
    else:
        keep.append({"m": m})
    y = (m + 1.0).sum()
    del m
    _more_ops(x)
    y.backward()
    if holder in ("list", "retain_grad", "hook"):
        np.testing.assert_array_equal(keep[0].data, expected)
    elif holder == "dict":
        np.testing.assert_array_equal(keep[0]["m"].data, expected)
    else:
        np.testing.assert_array_equal(np.asarray(keep[0]).ravel()[-10:], expected[-10:])
    np.testing.assert_array_equal(x.grad.data, np.full(4096, 2.0, np.float32))


def test_in_place_change_of_a_held_input_is_still_detected():
    x = cr.tensor(_big(4096), requires_grad=True)
    a = x * 1.5
    b = a * a  # mul reads both inputs: a is kept
    _more_ops(x)
    with cr.no_grad():
        a += 1.0
    with pytest.raises(RuntimeError, match="modified in place"):
        b.sum().backward()


# --- tools ---------------------------------------------------------------------------------------


def test_trace_of_a_graph_with_a_released_value_says_how_to_keep_it():
    x = cr.tensor(np.ones((64, 64)), requires_grad=True)
    y = (((x * 2.0) + 1.0) * 3.0).sum()  # x * 2.0 is released when the third operation is recorded
    with pytest.raises(ValueReleasedError, match=r"cr\.keep_values\(\)") as err:
        cr.trace(y)
    assert "input 0 of 'add'" in str(err.value) and "(64, 64)" in str(err.value)
    with cr.keep_values():
        y = (((x * 2.0) + 1.0) * 3.0).sum()
    tr = cr.trace(y)
    assert tr.steps[-1].value.shape == (64, 64)
    np.testing.assert_array_equal(tr.steps[-1].value, np.full((64, 64), 2.0))


def test_trace_reads_an_input_the_program_holds_even_when_the_node_dropped_it():
    W = cr.tensor(np.ones((50, 40)), requires_grad=True)
    h = W * 2.0  # the program holds h
    y = cr.sum(cr.tanh(h))  # tanh's rule reads its result, not h: the node does not keep h's array
    tanh_node = [t for t in topological(y) if t.op == "tanh"][0]
    assert type(tanh_node._av) is Released
    tr = cr.trace(y, names={"W": W, "h": h})
    step = [s for s in tr.steps if s.op == "tanh"][0]
    np.testing.assert_array_equal(step.inputs[0].value, np.full((50, 40), 2.0))
    assert "array 50×40" in cr.draw(tr).source


def test_a_leaf_input_is_kept_by_the_node():
    """A leaf's array is the program's own (nothing to free), and requires_grad may be turned on later."""
    W = cr.tensor(np.ones((50, 40)), requires_grad=True)
    y = cr.sum(cr.tanh(W))
    tanh_node = [t for t in topological(y) if t.op == "tanh"][0]
    assert type(tanh_node._av) is np.ndarray


def test_keep_values_is_a_decorator_and_nests():
    @cr.keep_values()
    def f(x):
        with cr.keep_values():
            m = x * 2.0
        return (m * 1.0 + 1.0).sum()

    x = cr.tensor(_big(4096), requires_grad=True)
    y = f(x)
    assert all(type(t._data) is np.ndarray for t in topological(y))
    assert saved.STATE.keep == 0


def test_released_tensor_repr_and_use_are_clear():
    x = cr.tensor(_big(4096), requires_grad=True)
    y = (((x * 2.0) + 1.0) * 3.0).sum()
    released = [t for t in topological(y) if type(t._data) is Released]
    assert released and "released after use" in repr(released[0])
    with pytest.raises(ValueReleasedError, match="keep_values"):
        np.asarray(released[0]._data)


def test_this_python_supports_release():
    assert saved.ENABLED  # the import-time calibration of reference counts passed


def test_anomaly_report_on_a_graph_with_released_values():
    x = cr.tensor(np.ones(4096), requires_grad=True)
    with np.errstate(all="ignore"):
        y = cr.log((x * 0.0) * 1.0 + 0.0)  # the inner products are released; log(0) = -inf
        z = (y * 1.0).sum()
        with pytest.raises(cr.AnomalyError, match="backward of 'log' produced Inf"), cr.detect_anomaly():
            z.backward()


def test_threads_recording_at_once_get_the_single_thread_gradient():
    import threading

    x0 = _big(4096)

    def run():
        x = cr.tensor(x0, requires_grad=True)
        _chain(x, 100).sum().backward()
        return x.grad.data.copy()

    expected = run()
    results: list = []
    errors: list = []

    def worker():
        try:
            for _ in range(5):
                results.append(run())
        except Exception as exc:  # pragma: no cover  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, expected)


@pytest.mark.parametrize("walk", ["slots", "heap", "inputs="])
def test_every_backward_walk_handles_released_values(walk, monkeypatch):
    autodiff = sys.modules["chainrule.autodiff"]
    x0 = _big(4096)
    with cr.keep_values():
        x = cr.tensor(x0, requires_grad=True)
        _chain(x, 50).sum().backward()
    expected = x.grad.data.copy()
    if walk == "heap":
        monkeypatch.setattr(autodiff, "FAST_PATH", False)
    x = cr.tensor(x0, requires_grad=True)
    h = _chain(x, 50)
    assert any(type(t._data) is Released for t in topological(h))
    if walk == "inputs=":
        (got,) = cr.autograd.grad(h.sum(), [x])
        got = got.data
    else:
        h.sum().backward()
        got = x.grad.data
    np.testing.assert_array_equal(got, expected)
