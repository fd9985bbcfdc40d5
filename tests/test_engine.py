"""Engine semantics: accumulation, graph freeing, higher order, grad mode, scale, dtypes, errors."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
import torch

import chainrule as cr


def test_fan_out_sums_the_branches():
    x = cr.tensor(3.0, requires_grad=True)
    y = x * x + x * 2 + cr.exp(x)
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 2 * 3 + 2 + np.exp(3.0), rtol=1e-15)


def test_gradients_accumulate_across_backward_calls_and_clear_with_none():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3, 3])


def test_accumulation_does_not_alias_between_leaves():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    (a + b).backward(seed)
    (a * 2).backward(seed)
    np.testing.assert_array_equal(a.grad.data, [3, 3])
    np.testing.assert_array_equal(b.grad.data, [1, 1])
    np.testing.assert_array_equal(seed, [1, 1])


def test_non_leaf_tensors_keep_no_grad():
    x = cr.tensor(2.0, requires_grad=True)
    h = x * 3
    (h * h).backward()
    assert h.grad is None and not h.is_leaf
    assert x.grad.item() == 2 * 3 * 3 * 2.0


def test_backward_twice_raises_unless_retained():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (cr.exp(x) * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * (np.exp([1.0, 2.0]) * ([1.0, 2.0] + np.ones(2))))
    with pytest.raises(cr.GraphFreedError, match="retain_graph=True"):
        y.backward()


def test_backward_through_a_freed_shared_subgraph_raises():
    x = cr.tensor(1.0, requires_grad=True)
    h = cr.sin(x)
    (h * 2).backward()
    with pytest.raises(RuntimeError, match="freed"):
        (h * 3).backward()


def test_non_scalar_backward_needs_a_seed():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar output.*shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        (x * 2).backward(np.array([1.0, np.nan]))
    (x * 2).backward(np.ones(2))  # the graph was not consumed by the failed calls
    np.testing.assert_array_equal(x.grad.data, [2, 2])


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (cr.tensor(1.0) * 2).backward()


def test_create_graph_gives_differentiable_gradients():
    x = cr.tensor(1.5, requires_grad=True)
    y = cr.sin(x) * x**3
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.backward()
    expected = -np.sin(1.5) * 1.5**3 + 2 * np.cos(1.5) * 3 * 1.5**2 + np.sin(1.5) * 6 * 1.5
    np.testing.assert_allclose(x.grad.item(), expected, rtol=1e-14)


def test_third_derivative_matches_torch():
    data = np.array([0.3, -1.2, 2.0])
    x = cr.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    (g1,) = cr.autograd_grad((cr.tanh(x) * x).sum(), x, create_graph=True)
    (g2,) = cr.autograd_grad(g1.sum(), x, create_graph=True)
    (g3,) = cr.autograd_grad(g2.sum(), x)
    (t1,) = torch.autograd.grad((torch.tanh(t) * t).sum(), t, create_graph=True)
    (t2,) = torch.autograd.grad(t1.sum(), t, create_graph=True)
    (t3,) = torch.autograd.grad(t2.sum(), t)
    np.testing.assert_allclose(g3.data, t3.numpy(), rtol=1e-12)


def test_no_grad_context_and_decorator():
    x = cr.tensor(2.0, requires_grad=True)
    with cr.no_grad():
        y = x * 3
        with cr.enable_grad():
            z = x * 3
    assert not y.requires_grad and z.requires_grad

    @cr.no_grad()
    def f(t):
        return t * t

    assert not f(x).requires_grad
    assert cr.is_grad_enabled()


def test_no_grad_is_thread_local():
    x = cr.tensor(2.0, requires_grad=True)
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        with cr.no_grad():
            entered.set()
            release.wait(5)
            seen["other"] = (x * 2).requires_grad

    th = threading.Thread(target=other)
    th.start()
    entered.wait(5)
    seen["main"] = (x * 2).requires_grad
    release.set()
    th.join()
    assert seen == {"main": True, "other": False}


def test_deep_chain_of_a_million_multiplications():
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(1_000_000):
        y = y * 1.000001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.000001**1_000_000, rtol=1e-9)


def test_elementwise_backward_never_builds_a_jacobian():
    x = cr.tensor(np.random.default_rng(0).standard_normal((100, 4096)).astype(np.float32), requires_grad=True)
    tracemalloc.start()
    cr.sigmoid(x).sum().backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nbytes = 100 * 4096 * 4
    assert peak < 8 * nbytes, f"peak {peak / 1e6:.1f} MB for a {nbytes / 1e6:.1f} MB input"
    assert x.grad.dtype == np.float32


def test_float32_stays_float32_with_python_constants():
    x = cr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (cr.tanh(x * 2.5 + 1) / 3.0) ** 2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float32_gradient_through_float64_constant_is_cast_back():
    x = cr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = x * np.array([1.0, 2.0, 3.0])  # NumPy promotes to float64, as torch would not
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_and_boolean_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        cr.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        cr.tensor(True, requires_grad=True)
    with pytest.raises(TypeError, match="floating point"):
        cr.grad(lambda x: x * x)(3)


def test_bad_data_gets_clear_errors():
    with pytest.raises(TypeError, match="object"):
        cr.tensor(np.array([object()]))
    with pytest.raises(TypeError, match="str"):
        cr.tensor("abc")
    with pytest.raises(TypeError, match="expected a number"):
        cr.tensor(1.0) + {"a": 1}


def test_shape_errors_name_the_operation_and_shapes():
    a = cr.tensor(np.ones((3, 4)), requires_grad=True)
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) @ \(5, 2\).*dimension 1.*\(4\).*dimension 0.*\(5\)"):
        a @ cr.tensor(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"add: inputs with shapes \(3, 4\), \(3,\)"):
        a + cr.tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"reshape: inputs with shapes \(3, 4\)"):
        a.reshape(5, 3)
    with pytest.raises(ValueError, match="sum: axis 2 is out of bounds"):
        a.sum(axis=2)
    (a * 2).sum().backward()  # the failures left the tensor usable
    assert a.grad.shape == (3, 4)


def test_mixed_numpy_operands_stay_in_the_graph():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    outs = [np.float64(2.0) * x, np.array([1.0, 1.0]) + x, x + np.array([1.0, 1.0]), np.ones(2) @ x, 3 - x]
    for out in outs:
        assert isinstance(out, cr.Tensor) and out.requires_grad


def test_numpy_interop_and_accessors():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    np.testing.assert_array_equal(np.asarray(x), [[1, 2], [3, 4]])
    assert x.shape == (2, 2) and x.ndim == 2 and x.dtype == np.float64
    np.testing.assert_array_equal(x.T.data, [[1, 3], [2, 4]])
    assert cr.tensor(2.5).item() == 2.5 and isinstance(cr.tensor(2.5).data, np.ndarray)
    assert not x.detach().requires_grad and np.shares_memory(x.detach().data, x.data)
    assert (x > 2).dtype == bool and not (x > 2).requires_grad


def test_in_place_modification_after_use_is_detected():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0])
    y = (x * w).sum()
    w[0] = 10.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_functional_grad_of_intermediate():
    x = cr.tensor(2.0, requires_grad=True)
    h = x * x
    y = h * 3
    (gh, gx) = cr.autograd_grad(y, [h, x])
    assert gh.item() == 3.0 and gx.item() == 12.0
    assert x.grad is None


def test_accumulated_grad_used_as_operand_is_not_falsely_stale():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()  # accumulates into x.grad in place
    w = cr.tensor([1.0, 1.0], requires_grad=True)
    y = (w * x.grad).sum()
    p = cr.tensor([0.0], requires_grad=True)
    with cr.no_grad():
        p[0] = 1.0  # an unrelated in-place change
    y.backward()
    np.testing.assert_array_equal(w.grad.data, [4.0, 8.0])


def test_threads_backpropagating_into_one_leaf_lose_nothing():
    x = cr.tensor(np.ones(200_000), requires_grad=True)

    def work():
        for _ in range(5):
            (x * 2.0).sum().backward()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    np.testing.assert_array_equal(x.grad.data, np.full(200_000, 40.0))


def test_one_no_grad_instance_entered_by_two_threads():
    guard = cr.no_grad()
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        with guard:
            inside.set()
            release.wait(5)
        seen["other after"] = cr.is_grad_enabled()

    th = threading.Thread(target=other)
    th.start()
    inside.wait(5)
    with guard:
        release.set()
        th.join()
    seen["main after"] = cr.is_grad_enabled()
    assert seen == {"other after": True, "main after": True}


def test_scalar_maximum_and_minimum_propagate_nan_like_numpy():
    nan = float("nan")
    for fn in (cr.maximum, cr.minimum):
        assert np.isnan(fn(cr.tensor(nan), 1.0).item())
        assert np.isnan(fn(cr.tensor(1.0), nan).item())


@pytest.mark.parametrize(
    "fn,tfn",
    [
        (lambda t: cr.sum(t, axis=0), lambda t: t.sum(dim=0)),
        (lambda t: cr.softmax(t), lambda t: torch.softmax(t, -1)),
        (lambda t: cr.logsumexp(t, axis=-1), lambda t: torch.logsumexp(t, -1)),
        (lambda t: cr.max(t, axis=0), lambda t: t.amax(0)),
    ],
)
def test_axis_0_and_minus_1_of_a_scalar_reduce_nothing_as_in_torch(fn, tfn):
    x = cr.tensor(3.0, requires_grad=True)
    t = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    y, ty = fn(x), tfn(t)
    y.backward()
    ty.backward()
    assert (y.item(), x.grad.item()) == (ty.item(), t.grad.item())
    with pytest.raises(ValueError, match="out of bounds for a 0-d array"):
        cr.sum(x, axis=1)


def test_more_errors_name_their_operation():
    with pytest.raises(ValueError, match=r"swapaxes: axis 5 is out of bounds.*\(2, 3\)"):
        cr.swapaxes(cr.tensor(np.ones((2, 3))), 0, 5)
    with pytest.raises(TypeError, match="^exp: "):
        cr.exp("a")
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="2 outputs but 1 grad_outputs"):
        cr.autograd_grad([x * 1.0, x * 10.0], [x], grad_outputs=[np.ones(2)])


def test_in_place_change_through_a_detached_alias_is_detected():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.exp(x)
    d = y.detach().detach()
    d[0] = 100.0
    with pytest.raises(RuntimeError, match="result of 'exp'.*modified in place"):
        y.sum().backward()


def test_a_detached_value_does_not_keep_its_graph_alive():
    import gc
    import weakref

    gc.disable()
    try:
        x = cr.tensor(np.ones(3), requires_grad=True)
        h = x * 2.0
        y = (h * h).sum()
        kept = y.detach()
        probe = weakref.ref(h)
        del h, y
        assert probe() is None
        assert kept.item() == 12.0
    finally:
        gc.enable()
