"""Forward mode and higher order: jvp, linearize, jacfwd, hessian, hvp, and their compositions.

References: float64 central differences and torch.func on the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import grad as tgrad
from torch.func import hessian as thessian
from torch.func import jacfwd as tjacfwd
from torch.func import jacrev as tjacrev
from torch.func import jvp as tjvp

import chainrule as cr
from chainrule.forward import jvp_source
from chainrule.primitive import REGISTRY

from .cases import CASES

ALL_CASES = [
    pytest.param(name, case, id=f"{name}-{case.label or i}")
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
]


def _rng(name, case, salt):
    return np.random.default_rng(abs(hash((name, case.label, salt))) % 2**32)


def _torch_inputs(inputs):
    return tuple(torch.tensor(x) for x in inputs)


def _fd_jvp(fn, inputs, tangents, eps):
    """Central difference of fn along the tangent direction, in float64."""
    plus = fn(*[cr.tensor(x + eps * t) for x, t in zip(inputs, tangents)]).data
    minus = fn(*[cr.tensor(x - eps * t) for x, t in zip(inputs, tangents)]).data
    return (plus - minus) / (2 * eps)


# --- every primitive ---------------------------------------------------------------------------


def test_every_primitive_has_a_forward_rule():
    """Each registered primitive gets its JVP from its tag or an explicit rule (never the slow fallback)."""
    sources = {name: jvp_source(prim) for name, prim in REGISTRY.items()}
    fallback = sorted(n for n, s in sources.items() if s == "transposed VJP")
    assert not fallback, f"primitives without a tag or a defjvp rule: {fallback}"
    assert sources["softmax"] == "explicit" and sources["mul"] == "bilinear" and sources["exp"] == "elementwise"
    assert sources["sum"] == "linear"
    for name in REGISTRY:  # and each one's JVP runs and agrees with finite differences
        assert name in CASES, f"{name} has no test cases in tests/cases.py"
        case = CASES[name][0]
        rng = _rng(name, case, "registry")
        inputs = case.inputs(rng)
        tangents = [rng.standard_normal(x.shape) for x in inputs]
        _, tout = cr.jvp(case.fn, tuple(inputs), tuple(tangents))
        np.testing.assert_allclose(tout, _fd_jvp(case.fn, inputs, tangents, case.fd_eps), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_jvp_matches_torch_and_finite_differences(name, case):
    rng = _rng(name, case, "jvp")
    inputs = case.inputs(rng)
    tangents = [rng.standard_normal(x.shape) for x in inputs]
    out, tout = cr.jvp(case.fn, tuple(inputs), tuple(tangents))
    ref_out, ref_t = tjvp(case.torch_fn, _torch_inputs(inputs), _torch_inputs(tangents))
    np.testing.assert_allclose(out, ref_out.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tout, ref_t.numpy(), rtol=1e-11, atol=1e-13)
    if name != "astype":  # a float32 round trip has no useful finite difference
        fd = _fd_jvp(case.fn, inputs, tangents, 1e-6)
        np.testing.assert_allclose(tout, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_forward_rule_agrees_with_transposed_vjp(name, case, monkeypatch):
    """Every primitive's forward rule equals the transpose of its own VJP rule (the generic fallback)."""
    rng = _rng(name, case, "transpose")
    inputs = case.inputs(rng)
    tangents = tuple(rng.standard_normal(x.shape) for x in inputs)
    _, expected = cr.jvp(case.fn, tuple(inputs), tangents)
    prim = REGISTRY[name]
    monkeypatch.setattr(prim, "kind", None)
    monkeypatch.setattr(prim, "jvp", None)
    assert jvp_source(prim) == "transposed VJP"
    _, got = cr.jvp(case.fn, tuple(inputs), tangents)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_jacfwd_matches_jacrev_and_torch(name, case):
    inputs = case.inputs(_rng(name, case, "jac"))
    nums = tuple(range(len(inputs)))
    fwd = cr.jacfwd(case.fn, argnums=nums)(*inputs)
    rev = cr.jacrev(case.fn, argnums=nums)(*inputs)
    ref = [r.numpy() for r in tjacfwd(case.torch_fn, argnums=nums)(*_torch_inputs(inputs))]
    for f_block, r_block, t_block in zip(fwd, rev, ref):
        np.testing.assert_allclose(f_block, t_block, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(f_block, r_block, rtol=1e-12, atol=1e-14)


def _scalarized(case, weights):
    """A scalar function of the case's inputs: <fn(inputs), weights>, and its torch twin."""

    def f(*xs):
        return (case.fn(*xs) * weights).sum()

    def tf(*xs):
        return (case.torch_fn(*xs) * torch.tensor(weights)).sum()

    return f, tf


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_hessian_and_hvp_match_torch(name, case):
    rng = _rng(name, case, "hess")
    inputs = case.inputs(rng)
    out_shape = np.shape(case.fn(*[cr.tensor(x) for x in inputs]).data)
    f, tf = _scalarized(case, rng.standard_normal(out_shape))
    nums = tuple(range(len(inputs)))
    H = cr.hessian(f, argnums=nums)(*inputs)
    tH = thessian(tf, argnums=nums)(*_torch_inputs(inputs))
    for i in nums:
        # reverse over forward: backprop through the recorded tangent sweeps of every rule
        rev_fwd = cr.jacrev(cr.jacfwd(f, argnums=i), argnums=nums)(*inputs)
        for j in nums:
            np.testing.assert_allclose(H[i][j], tH[i][j].numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(rev_fwd[j], tH[i][j].numpy(), rtol=1e-10, atol=1e-12)
    vs = tuple(rng.standard_normal(x.shape) for x in inputs)
    got = cr.hvp(f, tuple(inputs), vs)
    _, expected = tjvp(tgrad(tf, argnums=nums), _torch_inputs(inputs), _torch_inputs(vs))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-10, atol=1e-12)


# --- compositions ------------------------------------------------------------------------------


def _mlp_params(rng):
    return (
        rng.standard_normal((5, 4)) * 0.5,
        rng.standard_normal(5) * 0.1,
        rng.standard_normal((3, 5)) * 0.5,
        rng.standard_normal(3) * 0.1,
    )


def test_mlp_hessian_wrt_inputs_matches_torch():
    rng = np.random.default_rng(0)
    W1, b1, W2, b2 = _mlp_params(rng)
    x = rng.standard_normal(4)
    y = np.array([0.2, -1.0, 0.5])

    def loss(x):
        h = cr.tanh(W1 @ x + b1)
        return ((W2 @ h + b2 - y) ** 2).sum() + cr.sigmoid(h).sum()

    tW1, tb1, tW2, tb2, ty = map(torch.tensor, (W1, b1, W2, b2, y))

    def tloss(x):
        h = torch.tanh(tW1 @ x + tb1)
        return ((tW2 @ h + tb2 - ty) ** 2).sum() + torch.sigmoid(h).sum()

    H = cr.hessian(loss)(x)
    tH = thessian(tloss)(torch.tensor(x)).numpy()
    assert H.shape == (4, 4)
    np.testing.assert_allclose(H, tH, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)
    for other in (
        cr.jacrev(cr.jacfwd(loss)),
        cr.jacfwd(cr.jacrev(loss)),
        cr.jacrev(cr.jacrev(loss)),
        cr.jacfwd(cr.jacfwd(loss)),
    ):
        got = other(x)
        np.testing.assert_allclose(got, tH, rtol=1e-12, atol=1e-14)
    v = rng.standard_normal(4)
    np.testing.assert_allclose(cr.hvp(loss, x, v), tH @ v, rtol=1e-12, atol=1e-14)


def test_softmax_cross_entropy_hessian_is_diag_p_minus_ppT():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 5))
    labels = np.array([4, 0, 2])

    def loss(z):
        return -(cr.log_softmax(z, axis=1)[np.arange(3), labels]).sum()

    H = cr.hessian(loss)(logits)
    assert H.shape == (3, 5, 3, 5)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for i in range(3):
        np.testing.assert_allclose(H[i, :, i, :], np.diag(p[i]) - np.outer(p[i], p[i]), rtol=1e-12, atol=1e-15)
        for j in range(3):
            if j != i:
                assert not H[i, :, j, :].any()  # samples do not interact
    tlabels = torch.tensor(labels)

    def tloss(z):
        return torch.nn.functional.cross_entropy(z, tlabels, reduction="sum")

    np.testing.assert_allclose(H, thessian(tloss)(torch.tensor(logits)).numpy(), rtol=1e-12, atol=1e-15)


def test_chain_rule_identity():
    """y = f(u(v)): jacobian(y∘u)(v) == jacobian(y)(u(v)) @ jacobian(u)(v), by either mode."""
    A = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]])

    def u(v):
        return cr.tanh(A @ v)

    def y(u_val):
        return cr.stack([u_val[0] * u_val[1], cr.exp(u_val[1]), cr.sin(u_val[0])])

    v = np.array([0.4, -0.3, 0.9])
    for jac in (cr.jacfwd, cr.jacrev):
        whole = jac(lambda v: y(u(v)))(v)
        product = jac(y)(u(v).data) @ jac(u)(v)
        assert whole.shape == (3, 3)
        np.testing.assert_allclose(whole, product, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(cr.jacfwd(lambda v: y(u(v)))(v), cr.jacrev(lambda v: y(u(v)))(v), rtol=1e-14)


def test_all_nestings_agree_on_third_derivatives():
    def f(x):
        return cr.sin(x) * x**3

    x = 0.8
    exact = -np.cos(x) * x**3 - 9 * np.sin(x) * x**2 + 18 * np.cos(x) * x + 6 * np.sin(x)
    for third in (
        cr.grad(cr.grad(cr.grad(f))),
        cr.jacfwd(cr.jacfwd(cr.jacfwd(f))),
        cr.jacrev(cr.jacfwd(cr.grad(f))),
        cr.jacfwd(cr.jacrev(cr.grad(f))),
        cr.grad(lambda x: cr.hvp(f, x, 1.0)),
    ):
        np.testing.assert_allclose(third(x), exact, rtol=1e-13)


def test_grad_of_a_function_that_calls_jvp():
    """d/dx <J(x) v, w> for f = tanh(W x): forward-mode results are differentiable in reverse mode."""
    rng = np.random.default_rng(2)
    W, v, w, x = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal(4)

    def g(x):
        _, t = cr.jvp(lambda x: cr.tanh(W @ x), (x,), (v,))
        return (t * w).sum()

    tW, tv, tw = map(torch.tensor, (W, v, w))

    def tg(x):
        _, t = tjvp(lambda x: torch.tanh(tW @ x), (x,), (tv,))
        return (t * tw).sum()

    np.testing.assert_allclose(cr.grad(g)(x), tgrad(tg)(torch.tensor(x)).numpy(), rtol=1e-13)
    # and the tangent itself can be differentiated: d/dv <J v, w> = Jᵀ w (forward mode transposed)
    gv = cr.grad(lambda v: (cr.jvp(lambda x: cr.tanh(W @ x), (x,), (v,))[1] * w).sum())(v)
    (vjp_w,) = cr.vjp(lambda x: cr.tanh(W @ x), x)[1](w)
    np.testing.assert_allclose(gv, vjp_w, rtol=1e-13)


def test_jvp_inside_a_closure_of_an_outer_transform():
    # d/dx [ d/dy (x y²) at y=1, along 1 ] = d/dx [2 x] = 2
    def outer(x):
        return cr.jvp(lambda y: x * y**2, (cr.tensor(1.0),), (1.0,))[1]

    np.testing.assert_allclose(cr.grad(outer)(3.0), 2.0)


# --- the API -----------------------------------------------------------------------------------


def test_linearize_is_reusable_and_linear():
    x = np.array([0.3, -1.2, 2.0])
    out, f_jvp = cr.linearize(lambda x: cr.softmax(x * x), x)
    J = cr.jacrev(lambda x: cr.softmax(x * x))(x)
    a, b = np.array([1.0, 0.0, 2.0]), np.array([-0.5, 3.0, 1.0])
    np.testing.assert_allclose(f_jvp(a), J @ a, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(f_jvp(b), J @ b, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(f_jvp(2 * a - b), 2 * f_jvp(a) - f_jvp(b), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(out, cr.softmax(cr.tensor(x * x)).data)
    with pytest.raises(TypeError, match="takes 1 tangents"):
        f_jvp(a, b)


def test_python_floats_in_floats_out():
    out, t = cr.jvp(lambda x, y: x * cr.sin(y), (2.0, 0.5), (1.0, 0.0))
    assert type(out) is float and type(t) is float
    assert t == np.sin(0.5)
    assert type(cr.jacfwd(cr.tanh)(0.3)) is float
    assert cr.hessian(lambda x: x**3)(2.0) == 12.0
    assert cr.hvp(lambda x: x**3, 2.0, 0.5) == 6.0


def test_float32_stays_float32():
    x = np.array([0.5, 1.5], dtype=np.float32)
    out, t = cr.jvp(lambda x: cr.exp(x) * 2.0, (x,), (np.ones(2),))
    assert out.dtype == np.float32 and t.dtype == np.float32
    assert cr.jacfwd(cr.tanh)(x).dtype == np.float32


def test_tuple_outputs_and_argnums():
    def f(a, b):
        return a * b, (a @ b) ** 2

    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    (o1, o2), (t1, t2) = cr.jvp(f, (a, b), (np.ones(2), np.zeros(2)))
    np.testing.assert_allclose(t1, b)
    np.testing.assert_allclose(t2, 2 * (a @ b) * b.sum())
    (J1a, J1b), (J2a, J2b) = cr.jacfwd(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(J1a, np.diag(b))
    np.testing.assert_allclose(J1b, np.diag(a))
    np.testing.assert_allclose(J2b, 2 * (a @ b) * a)
    (Haa, Hab), (Hba, Hbb) = cr.hessian(lambda a, b: (a * b).sum() ** 2, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(Hab, 2 * np.outer(b, a) + 2 * (a @ b) * np.eye(2))
    np.testing.assert_allclose(Hab, Hba.T)


def test_zero_tangents_and_constant_functions():
    x = np.array([1.0, 2.0])
    out, t = cr.jvp(lambda x, y: x * 2.0, (x, x), (np.zeros(2), np.ones(2)))
    assert not t.any() and t.shape == (2,)
    _, t = cr.jvp(lambda x: cr.tensor([5.0, 6.0, 7.0]), (x,), (np.ones(2),))
    np.testing.assert_array_equal(t, np.zeros(3))
    np.testing.assert_array_equal(cr.jacfwd(lambda x: np.ones(3))(x), np.zeros((3, 2)))
    v = np.array([3.0, 4.0])
    _, t = cr.jvp(lambda x: x, (x,), (v,))
    np.testing.assert_array_equal(t, [3.0, 4.0])
    t[0] = 0.0  # the result is the caller's own array, not the tangent passed in
    assert v[0] == 3.0
    _, t = cr.jvp(lambda x: cr.broadcast_to(x, (3, 2)), (x,), (v,))
    t[0, 0] = 1.0  # writeable, and not a view of v
    assert v[0] == 3.0


def test_bad_input_errors_name_the_problem():
    f = cr.sin
    with pytest.raises(ValueError, match=r"tangent 0 has shape \(3,\) but primal 0 has shape \(2,\)"):
        cr.jvp(f, (np.ones(2),), (np.ones(3),))
    with pytest.raises(TypeError, match=r"tuple or list.*jvp\(f, \(x,\), \(v,\)\)"):
        cr.jvp(f, np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        cr.jvp(lambda a, b: a * b, (1.0, 2.0), (1.0,))
    with pytest.raises(TypeError, match="floating point"):
        cr.jacfwd(f)(np.array([1, 2]))
    with pytest.raises(ValueError, match="argnums"):
        cr.jacfwd(f, argnums=1)(np.ones(2))


def test_custom_vjp_primitive_gets_a_jvp_by_transposing_its_vjp():
    @cr.custom_vjp
    def cube(x):
        return x**3

    @cube.defvjp
    def cube_vjp(g, out, x):
        return (g * 3 * x**2,)  # chainrule operations: differentiable in g, so transposable

    x = np.array([0.5, -2.0])
    _, t = cr.jvp(cube, (x,), (np.array([1.0, 2.0]),))
    np.testing.assert_allclose(t, 3 * x**2 * np.array([1.0, 2.0]))
    np.testing.assert_allclose(cr.hessian(lambda x: cube(x).sum())(x), np.diag(6 * x))

    @cr.custom_vjp
    def softplus(x):
        return np.logaddexp(0.0, x)

    @softplus.defvjp
    def softplus_vjp(g, out, x):
        return (g / (1 + np.exp(-x)),)  # NumPy calls: fine for backprop, not transposable

    assert cr.grad(lambda x: softplus(x).sum())(x).shape == (2,)
    # the NumPy calls read only x (a constant in the transposition, as NumPy on a tensor without grad gives a
    # tensor, as torch): the JVP is right; differentiating them again is refused by name
    v = np.array([1.0, 3.0])
    _, t = cr.jvp(softplus, (x,), (v,))
    np.testing.assert_allclose(t, v / (1 + np.exp(-x)), rtol=1e-12)
    with pytest.raises(TypeError, match="np.exp was applied to a chainrule Tensor"):
        cr.hessian(lambda x: softplus(x).sum())(x)


def test_jacfwd_and_jacrev_agree_on_wide_and_tall_maps():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((4, 30)), rng.standard_normal((30, 4))
    wide = rng.standard_normal(30)
    tall = rng.standard_normal(4)
    for fn, x in ((lambda x: cr.tanh(A @ x), wide), (lambda x: cr.tanh(B @ x), tall)):
        np.testing.assert_allclose(cr.jacfwd(fn)(x), cr.jacrev(fn)(x), rtol=1e-13, atol=1e-15)
        tfn = (lambda x: torch.tanh(torch.tensor(A) @ x)) if x is wide else (lambda x: torch.tanh(torch.tensor(B) @ x))
        np.testing.assert_allclose(cr.jacfwd(fn)(x), tjacrev(tfn)(torch.tensor(x)).numpy(), rtol=1e-13, atol=1e-15)


def test_has_aux_passes_auxiliary_data_through():
    x = np.array([1.0, 2.0])

    def f(x):
        y = x**3
        return y.sum(), {"cubes": y, "label": "cube"}

    H, aux = cr.hessian(f, has_aux=True)(x)
    np.testing.assert_allclose(H, np.diag(6 * x))
    assert isinstance(aux["cubes"], np.ndarray) and aux["label"] == "cube"
    np.testing.assert_allclose(aux["cubes"], x**3)
    J, aux = cr.jacfwd(lambda x: (cr.sin(x), x.sum()), has_aux=True)(x)
    np.testing.assert_allclose(J, np.diag(np.cos(x)))
    assert aux == 3.0
    out, t, aux = cr.jvp(lambda x: (x * x, [x]), (x,), (np.ones(2),), has_aux=True)
    np.testing.assert_allclose(t, 2 * x)
    assert isinstance(aux, list) and isinstance(aux[0], np.ndarray)
    out, f_jvp, aux = cr.linearize(lambda x: (cr.exp(x), "tag"), x, has_aux=True)
    np.testing.assert_allclose(f_jvp(np.ones(2)), np.exp(x))
    assert aux == "tag"
    with pytest.raises(TypeError, match=r"has_aux=True, f must return a pair \(output, aux\), got Tensor"):
        cr.jvp(lambda x: x, (x,), (x,), has_aux=True)
