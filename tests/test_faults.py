"""Faults and resources: freed graphs, flat memory, no reference cycles, threads, in-place edits, bad input."""

from __future__ import annotations

import gc
import sys
import threading
import tracemalloc
import weakref
from collections.abc import Callable

import numpy as np
import pytest

import chainrule as cr
from chainrule.grad_mode import MODE
from chainrule.primitive import REGISTRY
from chainrule.primitives.linear import linear as LINEAR
from chainrule.tensor import apply


class gc_disabled:
    """Run a block with the cyclic garbage collector off: whatever dies in it died by reference counting."""

    def __enter__(self) -> None:
        gc.collect()
        self._was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was:
            gc.enable()


def assert_library_usable() -> None:
    """A small computation still gives the right gradient and the thread's modes are back to normal."""
    assert MODE.enabled and not MODE.anomaly
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (cr.tanh(x) * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.tanh([1, 2, 3]) + np.array([1, 2, 3]) / np.cosh([1, 2, 3]) ** 2)


# --- saved values are released -----------------------------------------------------------------
def _graph(x: cr.Tensor) -> tuple[cr.Tensor, list[weakref.ref]]:
    """A loss over x and weak references to its intermediate tensors and their arrays."""
    h1 = cr.exp(x)
    h2 = h1 * x
    h3 = cr.softmax(h2, axis=-1)
    loss = (h3 * h3).sum() + cr.logsumexp(h1)
    refs = [weakref.ref(t) for t in (h1, h2, h3)] + [weakref.ref(t._data) for t in (h1, h2, h3)]
    return loss, refs


def test_backward_releases_saved_values():
    x = cr.tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    with gc_disabled():
        loss, refs = _graph(x)
        assert all(r() is not None for r in refs)  # the graph holds them until backward
        loss.backward()
        dead = [r() is None for r in refs]
    assert all(dead), f"alive after backward: {[i for i, d in enumerate(dead) if not d]}"
    assert x.grad is not None and loss.item() > 0  # the loss itself (and x) are still usable


def test_retain_graph_keeps_saved_values_until_the_last_backward():
    x = cr.tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    with gc_disabled():
        loss, refs = _graph(x)
        loss.backward(retain_graph=True)
        assert all(r() is not None for r in refs)
        loss.backward()
        assert all(r() is None for r in refs)
    first_half = x.grad.data / 2
    x.grad = None
    loss2, _ = _graph(x)
    loss2.backward()
    np.testing.assert_allclose(x.grad.data, first_half, rtol=1e-14)


# --- no reference cycles -------------------------------------------------------------------------
def _dies_without_gc(build: Callable[[], list[object]]) -> None:
    with gc_disabled():
        refs = [weakref.ref(o) for o in build()]
        alive = [i for i, r in enumerate(refs) if r() is not None]
    assert not alive, f"objects {alive} are kept alive by a reference cycle"


def test_dropped_graph_dies_without_gc():
    x = cr.tensor(np.ones((2, 3)), requires_grad=True)

    def build():
        loss, refs = _graph(x)
        return [loss, *[r() for r in refs]]

    _dies_without_gc(build)


def test_functional_transforms_leave_no_cycles():
    seen: list[object] = []

    def f(v):
        h = cr.sin(v) * v
        seen.extend([h, h._data])
        return (h * h).sum()

    def build():
        g = cr.grad(f)(np.array([0.5, 1.5]))
        hv = cr.grad(lambda v: cr.grad(f)(v).sum())(np.array([0.5, 1.5]))  # nested: create_graph inside
        assert g.shape == hv.shape == (2,)
        out = list(seen)
        seen.clear()
        return out

    _dies_without_gc(build)


def test_autograd_grad_with_create_graph_leaves_no_cycles():
    x = cr.tensor([0.3, -0.7], requires_grad=True)

    def build():
        y = (cr.tanh(x) ** 3).sum()
        (g,) = cr.autograd_grad(y, x, create_graph=True)
        (h,) = cr.autograd_grad(g.sum(), x)
        np.testing.assert_allclose(h.data, 6 * np.tanh(x.data) * (1 - np.tanh(x.data) ** 2) ** 2
                                   - 6 * np.tanh(x.data) ** 3 * (1 - np.tanh(x.data) ** 2), rtol=1e-12)  # fmt: skip
        return [y, g, h]

    _dies_without_gc(build)


def test_backward_create_graph_cycle_is_broken_by_clearing_grad():
    # As in PyTorch, x.grad then references a graph that references x; clearing .grad frees it.
    x = cr.tensor([0.3, -0.7], requires_grad=True)
    with gc_disabled():
        y = (x**3).sum()
        y.backward(create_graph=True)
        ref = weakref.ref(x.grad)
        del y
        x.grad = None
        assert ref() is None


def test_anomaly_mode_keeps_nothing_alive():
    x = cr.tensor([0.5, 1.5], requires_grad=True)

    def build():
        with cr.detect_anomaly():
            loss, refs = _graph(x)
            loss.backward()
        return [loss, *[r() for r in refs if r() is not None]]

    _dies_without_gc(build)
    from chainrule import anomaly

    assert not anomaly._SOURCES


# --- flat memory over a training loop ---------------------------------------------------------------
def test_thousand_step_training_loop_keeps_flat_memory():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4))
    labels = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    W1 = cr.tensor(rng.standard_normal((4, 16)) * 0.5, requires_grad=True)
    b1 = cr.tensor(np.zeros(16), requires_grad=True)
    W2 = cr.tensor(rng.standard_normal((16, 3)) * 0.5, requires_grad=True)
    b2 = cr.tensor(np.zeros(3), requires_grad=True)
    params = [W1, b1, W2, b2]
    rows = np.arange(32)

    def step() -> float:
        hidden = cr.relu(X @ W1 + b1)
        logp = cr.log_softmax(hidden @ W2 + b2, axis=1)
        loss = -logp[rows, labels].mean()
        loss.backward()
        with cr.no_grad():
            for p in params:
                p.data = p.data - 0.1 * p.grad.data
                p.grad = None
        return loss.item()

    first = step()
    tracemalloc.start()
    try:
        for i in range(1, 1000):
            last = step()
            if i == 100:
                at_100 = tracemalloc.get_traced_memory()[0]
        at_1000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    growth = at_1000 - at_100
    # One leaked graph costs about 20 KB per step here (measured by keeping each loss), 18 MB over 900
    # steps.  The bound leaves room for CPython's free lists, which tracemalloc counts as in use
    # (up to 2000 spare tuples of each size: about 100 KB that stop growing after 2000 steps).
    assert growth < 256 * 1024, f"memory grew by {growth} bytes between step 100 and step 1000"
    assert last < 0.5 * first, f"the loop did not train: {first:.3f} -> {last:.3f}"


# --- threads --------------------------------------------------------------------------------------------
@pytest.fixture
def busy_switching():
    """Make the interpreter switch threads very often, so interleavings actually happen."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _worker_results(seed: int, W: cr.Tensor, steps: int = 20) -> list[tuple]:
    rng = np.random.default_rng(seed)
    x = cr.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    out = []
    for k in range(steps):
        loss = (cr.tanh(x @ W) ** 2).sum() + cr.logsumexp(x * (k + 1))
        gx, gw = cr.autograd_grad(loss, [x, W])
        v = cr.tensor(rng.standard_normal(3), requires_grad=True)
        (cr.sigmoid(v) * v).sum().backward()  # .backward() on a thread's own leaves
        out.append((loss.item(), gx.data.copy(), gw.data.copy(), v.grad.data.copy()))
    return out


def test_threads_give_the_same_results_as_sequential_runs(busy_switching):
    W = cr.tensor(np.random.default_rng(42).standard_normal((4, 3)), requires_grad=True)  # shared by all threads
    seeds = list(range(6))
    expected = {s: _worker_results(s, W) for s in seeds}
    got: dict[int, list] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(seeds))

    def run(s: int) -> None:
        try:
            barrier.wait(10)
            got[s] = _worker_results(s, W)
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for s in seeds:
        for (l1, *a1), (l2, *a2) in zip(expected[s], got[s]):
            assert l1 == l2
            for p, q in zip(a1, a2):
                np.testing.assert_array_equal(p, q)
    assert W.grad is None


def test_grad_mode_and_anomaly_mode_are_per_thread(busy_switching):
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    barrier = threading.Barrier(2)
    seen: dict[str, set] = {"quiet": set(), "recording": set()}

    def quiet() -> None:
        with cr.no_grad(), cr.detect_anomaly():
            barrier.wait(10)
            for _ in range(300):
                seen["quiet"].add(((x * 2).requires_grad, cr.is_grad_enabled(), cr.is_anomaly_enabled()))

    def recording() -> None:
        barrier.wait(10)
        for _ in range(300):
            seen["recording"].add(((x * 2).requires_grad, cr.is_grad_enabled(), cr.is_anomaly_enabled()))

    threads = [threading.Thread(target=quiet), threading.Thread(target=recording)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {"quiet": {(False, False, True)}, "recording": {(True, True, False)}}
    assert cr.is_grad_enabled() and not cr.is_anomaly_enabled()


# --- in-place modification after a value was saved --------------------------------------------------
def _mutate_input_data():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    with cr.no_grad():
        x.data = np.array([5.0, 5.0])
    return y


def _mutate_constant_setitem():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0])
    y = (x * w).sum()
    w[0] = 10.0
    return y


def _mutate_zero_():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0])
    y = cr.exp(x * w).sum()
    w.zero_()
    return y


def _mutate_result():
    # exp's rule reads its own result: overwriting it used to give a silently wrong gradient
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = cr.exp(x)
    h.data[0] = 5.0  # a write through .data is seen too (h[0] = 5.0 is recorded, as torch's CopySlices)
    return h.sum()


def _mutate_intermediate_data():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    with cr.no_grad():
        h.data = np.zeros(2)
    return y


def _mutate_grad_by_accumulation():
    # a .grad used as an operand, then accumulated into in place by a second backward
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0], requires_grad=True)
    (x * 1.0).sum().backward()
    y = (w * x.grad).sum()
    (x * 1.0).sum().backward()
    return y


@pytest.mark.parametrize(
    "make,fragment",
    [
        (_mutate_input_data, "an input of 'mul'"),
        (_mutate_constant_setitem, "an input of 'mul'"),
        (_mutate_zero_, "an input of 'mul'"),
        (_mutate_result, "the result of 'exp'"),
        (_mutate_intermediate_data, "'mul'"),
        (_mutate_grad_by_accumulation, "an input of 'mul'"),
    ],
    ids=["leaf-data", "constant-setitem", "zero_", "result-setitem", "intermediate-data", "grad-accumulation"],
)
def test_in_place_modification_after_save_is_detected(make, fragment):
    y = make()
    with pytest.raises(RuntimeError, match="modified in place") as info:
        y.backward()
    assert fragment in str(info.value)
    assert_library_usable()


def test_in_place_modification_before_use_or_after_backward_is_fine():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0])
    w[0] = 10.0  # before use
    y = (x * w).sum()
    y.backward()
    w[1] = 0.0  # after backward: the graph is gone
    np.testing.assert_array_equal(x.grad.data, [10.0, 4.0])
    h = cr.exp(x)  # a new graph on the same tensors
    (h * w).sum().backward()
    np.testing.assert_allclose(x.grad.data, [10.0 + 10 * np.e, 4.0])


# --- bad input: a table of every class, each followed by a usability check ---------------------------------
A = np.ones((3, 4))
B = np.ones((2, 4))


def _a():
    return cr.tensor(A, requires_grad=True)


def _b():
    return cr.tensor(B, requires_grad=True)


def _backward_twice():
    y = (_a() ** 2).sum()
    y.backward()
    y.backward()


BROADCAST = "shapes cannot be broadcast"


def _apply_pool(name, a, x):
    from chainrule.primitives import pool
    from chainrule.tensor import apply

    return apply(getattr(pool, name), cr.tensor(a), cr.tensor(x), (2, 2))


BAD_INPUTS = [
    # (label, the call, error type, message fragment); labels naming a primitive cover its wrong-shape case
    ("add", lambda: _a() + _b(), ValueError, r"add: inputs with shapes \(3, 4\), \(2, 4\): " + BROADCAST),
    ("sub", lambda: _a() - _b(), ValueError, r"sub: inputs with shapes \(3, 4\), \(2, 4\)"),
    ("mul", lambda: _a() * _b(), ValueError, r"mul: inputs with shapes \(3, 4\), \(2, 4\)"),
    ("div", lambda: B / _a(), ValueError, r"div: inputs with shapes \(2, 4\), \(3, 4\)"),
    ("pow", lambda: _a() ** _b(), ValueError, r"pow: inputs with shapes \(3, 4\), \(2, 4\)"),
    (
        "einsum",
        lambda: cr.einsum("ij,kj->ik", _a(), cr.tensor(np.ones((2, 3)))),
        ValueError,
        r"einsum: 'ij,kj->ik': index 'j' has size 4 in operand 0 but 3 in operand 1 \(shapes \(3, 4\), \(2, 3\)\)",
    ),
    ("maximum", lambda: cr.maximum(_a(), _b()), ValueError, r"maximum: inputs with shapes \(3, 4\), \(2, 4\)"),
    ("atan2", lambda: cr.torch_more.atan2(_a(), _b()), ValueError, r"atan2: inputs with shapes \(3, 4\), \(2, 4\)"),
    ("minimum", lambda: cr.minimum(_a(), B), ValueError, r"minimum: inputs with shapes \(3, 4\), \(2, 4\)"),
    ("where", lambda: cr.where(_a() > 0, _a(), _b()), ValueError, r"where: inputs with shapes \(3, 4\), \(3, 4\), \(2"),
    ("matmul", lambda: _a() @ _b(), ValueError, r"matmul: shapes \(3, 4\) @ \(2, 4\) do not align"),
    ("concatenate", lambda: cr.concatenate([_a(), np.ones((2, 3))]), ValueError, r"concatenate: .*\(3, 4\), \(2, 3\)"),
    ("stack", lambda: cr.stack([_a(), _b()]), ValueError, r"stack: inputs with shapes \(3, 4\), \(2, 4\)"),
    ("broadcast_to", lambda: cr.broadcast_to(_a(), (2, 4)), ValueError, "broadcast_to: .*" + BROADCAST),
    ("reshape", lambda: _a().reshape(5, 2), ValueError, r"reshape: .*size 12 into shape \(5,2\)"),
    ("scatter_add", lambda: cr.scatter_add(_a(), np.array([0, 5, 1]), (2, 4)), IndexError, "scatter_add: .*index 5"),
    ("getitem", lambda: _a()[7], IndexError, r"getitem: inputs with shapes \(3, 4\): index 7"),
    ("clip", lambda: cr.clip(_a(), np.zeros(3), 1.0), ValueError, "clip: .*" + BROADCAST),
    ("axis out of range", lambda: _a().sum(axis=3), ValueError, r"sum: axis 3 is out of bounds.*\(3, 4\)"),
    ("repeated axis", lambda: _a().max(axis=(0, 0)), ValueError, "max: repeated axis"),
    ("empty max", lambda: cr.tensor(np.ones((0, 2))).max(), ValueError, "max: the reduction has no identity"),
    (
        "linear",
        lambda: apply(LINEAR, _a(), np.ones((2, 5)), np.ones(2)),
        ValueError,
        r"linear: inputs with shapes \(3, 4\), \(2, 5\), \(2,\): W must have shape \(out_features, in_features\)",
    ),
    ("0-d matmul", lambda: cr.tensor(2.0) @ _a(), ValueError, "matmul: operands must be at least 1-D"),
    ("string", lambda: cr.tensor("abc"), TypeError, "tensor: cannot make a tensor from str"),
    ("list of strings", lambda: cr.tensor(["a", "b"]), TypeError, "tensor: cannot make a tensor from list"),
    ("None", lambda: cr.tensor(None), TypeError, "tensor: cannot make a tensor from NoneType"),
    ("dict", lambda: cr.tensor({"a": 1}), TypeError, "tensor: cannot make a tensor from dict"),
    ("ragged list", lambda: cr.tensor([[1.0, 2.0], [3.0]]), TypeError, "tensor: cannot convert list"),
    (
        "conv2d",
        lambda: cr.nn.functional.conv2d(np.ones((1, 3, 4, 4)), np.ones((2, 2, 3, 3))),
        ValueError,
        r"conv2d: input with 3 channels and weight of shape \(2, 2, 3, 3\) do not fit groups=1",
    ),
    (
        "conv2d_input",
        lambda: cr.nn.functional.conv2d_input((1, 3, 4, 4), np.ones((2, 3, 3, 3)), np.ones((1, 5, 2, 2))),
        ValueError,
        r"conv2d_input: grad_output \(1, 5, 2, 2\), weight \(2, 3, 3, 3\) and input_size \(1, 3, 4, 4\) do not fit",
    ),
    (
        "conv2d_weight",
        lambda: cr.nn.functional.conv2d_weight(np.ones((1, 3, 4, 4)), (2, 3, 3, 3), np.ones((1, 2, 3, 3))),
        ValueError,
        r"conv2d_weight: grad_output \(1, 2, 3, 3\) is not conv2d's output size for input \(1, 3, 4, 4\)",
    ),
    (
        "max_pool2d_pick",
        lambda: _apply_pool("max_pool2d_pick", np.ones((1, 1, 4, 3)), np.ones((1, 1, 4, 4))),
        ValueError,
        r"max_pool2d_pick: v of shape \(1, 1, 4, 3\) does not fit x of shape \(1, 1, 4, 4\)",
    ),
    (
        "max_pool2d_unpool",
        lambda: _apply_pool("max_pool2d_unpool", np.ones((1, 1, 3, 2)), np.ones((1, 1, 4, 4))),
        ValueError,
        r"max_pool2d_unpool: g of shape \(1, 1, 3, 2\) does not fit x of shape \(1, 1, 4, 4\): it must be "
        r"\(1, 1, 2, 2\)",
    ),
    ("complex", lambda: cr.tensor(np.array([1j])), TypeError, "complex128"),
    ("string operand", lambda: _a() * "x", TypeError, "mul: expected a number, array or Tensor, got str"),
    ("object array", lambda: cr.tensor(np.array([1.0, None], dtype=object)), TypeError, "dtype object"),
    ("object operand", lambda: _a() + np.array([object()] * 4), TypeError, "add: arrays of dtype object"),
    ("object .data", lambda: setattr(_a(), "data", np.array([None], dtype=object)), TypeError, "Tensor.data: .*object"),
    ("int requires_grad", lambda: cr.tensor([1, 2], requires_grad=True), TypeError, "only floating-point.*int64"),
    ("bool requires_grad", lambda: cr.tensor([True], requires_grad=True), TypeError, "only floating-point.*bool"),
    ("int requires_grad_", lambda: cr.tensor([1, 2]).requires_grad_(), TypeError, "requires_grad_: only floating"),
    ("int grad()", lambda: cr.grad(lambda x: x * x)(3), TypeError, "grad: argument 0 must be floating point"),
    ("int .data", lambda: setattr(_a(), "data", np.ones((3, 4), int)), TypeError, "needs float data, got int64"),
    ("backward twice", _backward_twice, cr.GraphFreedError, "already backpropagated.*retain_graph=True"),
    ("grad of non-scalar", lambda: cr.grad(lambda x: x * 2)(np.ones(3)), TypeError, r"must return a scalar.*\(3,\)"),
    ("implicit seed", lambda: (_a() * 2).backward(), RuntimeError, r"only for a scalar output.*\(3, 4\)"),
    ("NaN seed", lambda: (_a() * 2).backward(np.full((3, 4), np.nan)), ValueError, "seed contains NaN or Inf"),
    ("Inf seed", lambda: (_a() * 2).backward(np.full((3, 4), np.inf)), ValueError, "seed contains NaN or Inf"),
    ("NaN cotangent", lambda: cr.vjp(cr.exp, np.ones(2))[1](np.array([np.nan, 1.0])), ValueError, "NaN or Inf"),
    ("seed shape", lambda: (_a() * 2).backward(np.ones(3)), ValueError, r"grad has shape \(3,\).*\(3, 4\)"),
    ("no grad", lambda: (cr.tensor(1.0) * 2).backward(), RuntimeError, "does not require grad"),
    ("item", lambda: _a().item(), ValueError, r"only a tensor with one element.*\(3, 4\)"),
    ("truth value", lambda: bool(_a()), ValueError, "ambiguous"),
]


def test_every_multi_input_primitive_has_a_wrong_shape_row():
    multi = {name for name, p in REGISTRY.items() if p.variadic or p.nin >= 2}
    labels = {row[0] for row in BAD_INPUTS}
    assert multi <= labels, f"no wrong-shape row for {sorted(multi - labels)}"


@pytest.mark.parametrize("label,call,exc,fragment", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_gets_a_clear_error_and_leaves_the_library_usable(label, call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()
    assert_library_usable()


def test_failed_operations_leave_their_operands_usable():
    a = _a()
    for bad in (lambda: a + np.ones(5), lambda: a @ np.ones(5), lambda: a.reshape(7), lambda: a * "x"):
        with pytest.raises((ValueError, TypeError)):
            bad()
    y = (a * a).sum()
    y.backward()
    np.testing.assert_array_equal(a.grad.data, 2 * A)
    assert a._version == 0 and a.is_leaf
