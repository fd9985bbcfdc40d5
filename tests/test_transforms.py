"""Functional transforms, custom primitives and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr


def f_scalar(x):
    return cr.sin(x) * x**2


def test_grad_on_python_floats_returns_floats():
    g = cr.grad(f_scalar)(1.3)
    assert isinstance(g, float)
    np.testing.assert_allclose(g, np.cos(1.3) * 1.3**2 + 2 * 1.3 * np.sin(1.3), rtol=1e-15)


def test_grad_on_arrays_returns_arrays_and_argnums():
    def loss(w, x):
        return cr.tanh(x @ w).sum()

    w = np.array([0.5, -0.2])
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    gw, gx = cr.grad(loss, argnums=(0, 1))(w, x)
    tw, tx = torch.tensor(w, requires_grad=True), torch.tensor(x, requires_grad=True)
    torch.tanh(tx @ tw).sum().backward()
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-14)
    assert isinstance(cr.grad(loss)(w, x), np.ndarray)
    with pytest.raises(ValueError, match="argnums"):
        cr.grad(loss, argnums=2)(w, x)


def test_value_and_grad():
    v, g = cr.value_and_grad(lambda x: (x**2).sum())(np.array([1.0, 2.0]))
    assert v == 5.0
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_grad_requires_scalar_output():
    with pytest.raises(TypeError, match=r"scalar.*shape \(2,\)"):
        cr.grad(lambda x: x * 2)(np.ones(2))


def test_grad_of_constant_function_is_zero():
    assert cr.grad(lambda x: cr.tensor(3.0))(1.0) == 0.0


def test_nested_grad():
    d2 = cr.grad(cr.grad(f_scalar))(0.7)
    expected = -np.sin(0.7) * 0.49 + 4 * 0.7 * np.cos(0.7) + 2 * np.sin(0.7)
    np.testing.assert_allclose(d2, expected, rtol=1e-14)
    d3 = cr.grad(cr.grad(cr.grad(lambda x: x**4)))(2.0)
    assert d3 == 24 * 2.0


def test_nested_grad_with_closure_over_outer_variable():
    # d/dx [ x * d/dy (x*y) ] = d/dx [x * x] = 2x
    def outer(x):
        return x * cr.grad(lambda y: x * y)(cr.tensor(1.0))

    np.testing.assert_allclose(cr.grad(outer)(3.0), 6.0)


def test_vjp_matches_torch_and_can_be_reused():
    a = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])
    out, vjp_fn = cr.vjp(lambda x: cr.softmax(x, axis=1), a)
    t = torch.tensor(a, requires_grad=True)
    ref = torch.softmax(t, dim=1)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-15)
    for seed in (np.ones_like(a), np.arange(6.0).reshape(2, 3)):
        (g,) = vjp_fn(seed)
        (tg,) = torch.autograd.grad(ref, t, torch.tensor(seed), retain_graph=True)
        np.testing.assert_allclose(g, tg.numpy(), rtol=1e-12, atol=1e-16)
    with pytest.raises(ValueError, match="cotangent"):
        vjp_fn(np.ones(3))


def test_jacobian_matches_torch():
    def f(x):
        return cr.tanh(x[:2] * x[1:]) @ np.array([[1.0, 2.0], [3.0, 4.0]])

    x = np.array([0.2, -0.5, 1.1])
    J = cr.jacobian(f)(x)
    tJ = torch.autograd.functional.jacobian(
        lambda t: torch.tanh(t[:2] * t[1:]) @ torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64),
        torch.tensor(x),
    )
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, tJ.numpy(), rtol=1e-14)
    assert cr.jacrev is cr.jacobian


def test_jacobian_of_grad_is_the_hessian():
    def f(x):
        return (x[0] ** 2 * x[1] + cr.exp(x[1])).sum()

    x = np.array([1.5, 0.5])
    H = cr.jacobian(cr.grad(f))(x)
    expected = np.array([[2 * x[1], 2 * x[0]], [2 * x[0], np.exp(x[1])]])
    np.testing.assert_allclose(H, expected, rtol=1e-14)


def test_jacobian_argnums_tuple_shapes():
    Ja, Jb = cr.jacobian(lambda a, b: a[:, None] * b, argnums=(0, 1))(np.ones(2), np.ones(3))
    assert Ja.shape == (2, 3, 2) and Jb.shape == (2, 3, 3)


def test_custom_vjp_defines_a_primitive():
    calls = []

    @cr.custom_vjp
    def softplus(x):
        return np.logaddexp(0.0, x)

    @softplus.defvjp
    def softplus_vjp(g, out, x):
        calls.append(1)
        return (g / (1 + np.exp(-x)),)

    x = cr.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    softplus(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 1 / (1 + np.exp(-x.data)), rtol=1e-15)
    assert calls
    assert cr.gradcheck(lambda t: softplus(t), np.array([0.3, -1.0]))
    assert softplus(x).op == "softplus"


def test_custom_vjp_errors():
    @cr.custom_vjp
    def f(x, y):
        return x * y

    with pytest.raises(RuntimeError, match="no VJP"):
        f(cr.tensor(1.0), cr.tensor(2.0))

    @f.defvjp
    def bad(g, out, x, y):
        return g * y

    with pytest.raises(TypeError, match="tuple of 2"):
        f(cr.tensor(1.0, requires_grad=True), 2.0).backward()


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize(
    "returned,error,message",
    [
        (lambda g, x: np.ones(7), ValueError, r"a gradient of shape \(7,\) for an input of shape \(2, 3\)"),
        (lambda g, x: np.ones(3), ValueError, r"a gradient of shape \(3,\) for an input of shape \(2, 3\)"),
        (lambda g, x: 1.0, ValueError, r"a gradient of shape \(\) for an input of shape \(2, 3\)"),
        (lambda g, x: "oops", TypeError, "a str; a gradient is an array"),
        (lambda g, x: [1.0, 2.0, 3.0], TypeError, "a list; a gradient is an array"),
        (lambda g, x: np.full((2, 3), 1j), TypeError, "a gradient of dtype complex128 for an input of dtype float64"),
        (lambda g, x: np.full((2, 3), "a"), TypeError, "a gradient of dtype <U1 for an input of dtype float64"),
    ],
)
def test_a_custom_vjp_returning_a_wrong_gradient_names_the_rule_and_the_input(returned, error, message, create_graph):
    @cr.custom_vjp
    def scale(x, y):
        return x * y

    @scale.defvjp
    def scale_vjp(g, out, x, y):
        return returned(g, x), None

    x = cr.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(error, match=r"custom_vjp scale: its VJP scale_vjp returned, for input 0 \(x\), " + message):
        cr.autograd_grad(scale(x, 2.0).sum(), [x], create_graph=create_graph)


def test_a_custom_vjp_gradient_may_be_summed_down_or_cast():
    @cr.custom_vjp
    def shift(b, x):
        return x + b

    @shift.defvjp
    def shift_vjp(g, out, b, x):
        return np.asarray(g), np.ones(np.shape(x), dtype=np.int64)  # b's is (2, 3): summed to (3,); x's is cast

    b = cr.tensor(np.zeros(3), requires_grad=True)
    x = cr.tensor(np.zeros((2, 3)), requires_grad=True)
    shift(b, x).sum().backward()
    np.testing.assert_array_equal(b.grad.data, [2.0, 2.0, 2.0])
    assert x.grad.dtype == np.float64


def test_gradcheck_passes_and_reports_a_broken_rule():
    assert cr.gradcheck(lambda a, b: (a * b).sum(), np.ones((2, 3)), np.arange(3.0))

    @cr.custom_vjp
    def wrong_square(x):
        return x * x

    @wrong_square.defvjp
    def wrong_vjp(g, out, x):
        return (g * x,)  # should be 2 g x

    with pytest.raises(
        cr.GradcheckError, match=r"input 0, element \(1,\).*finite differences give 4.*backprop gives 2"
    ):
        cr.gradcheck(wrong_square, np.array([1.0, 2.0]))


def test_custom_vjp_runs_its_rule_once_per_node_and_none_means_zeros():
    calls = []

    @cr.custom_vjp
    def weighted_total(a, w):
        return (a * w).sum()

    @weighted_total.defvjp
    def weighted_total_vjp(g, out, a, w):
        calls.append(1)
        return (g * w, None)  # no gradient for the weights

    a = cr.tensor(np.ones((3, 4)), requires_grad=True)
    w = cr.tensor(np.full((3, 4), 2.0), requires_grad=True)
    weighted_total(a, w).backward()
    np.testing.assert_array_equal(a.grad.data, np.full((3, 4), 2.0))
    np.testing.assert_array_equal(w.grad.data, np.zeros((3, 4)))
    assert len(calls) == 1
