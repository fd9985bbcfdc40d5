"""cr.vmap: every primitive's batching rule against a Python loop, composition with the other transforms, and
torch.func on per-sample gradients."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.primitive import REGISTRY
from chainrule.primitives.batching import BatchingError, elementwise, rule_of

from .cases import CASES

B = 3
SWEEP = [
    pytest.param(name, case, id=f"{name}-{case.label or i}")
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
]


def _out(fn, *xs):
    out = fn(*[cr.tensor(x) for x in xs])
    return np.asarray(out.data if isinstance(out, cr.Tensor) else out)


def _batched(inputs, dims, rng):
    """Each input with a batch of B examples at its dim (None: shared), and the examples one by one."""
    batched, per_example = [], []
    for x, d in zip(inputs, dims):
        if d is None:
            batched.append(x)
            per_example.append([x] * B)
            continue
        # examples differ in sign and size, so masks (relu, where, max) differ between them
        xs = [x * (-1.0) ** k + 0.5 * k * rng.standard_normal(x.shape) for k in range(B)]
        if np.all(x > 0):
            xs = [np.abs(e) + 0.1 for e in xs]  # keep positive domains positive
        batched.append(np.stack(xs, axis=d if d >= 0 else d + x.ndim + 1))
        per_example.append(xs)
    return batched, [list(t) for t in zip(*per_example)]


def _dims_cases(n):
    """in_dims to try for n inputs: all 0, all 1, all -1, and mixes with None."""
    cases = [(0,) * n, (1,) * n, (-1,) * n]
    if n > 1:
        cases.append((0,) + (None,) * (n - 1))
        cases.append((None,) + (-1,) * (n - 1))
    return cases


def _in_range(dims, inputs):
    return tuple(d if d is None or d == 0 or inputs[i].ndim > 0 else 0 for i, d in enumerate(dims))


def test_every_primitive_has_a_batching_rule_or_a_clear_refusal():
    swept = {p.values[0] for p in SWEEP}
    assert not set(REGISTRY) - swept, f"primitives the sweep does not batch: {sorted(set(REGISTRY) - swept)}"
    for name, prim in REGISTRY.items():
        try:
            rule = rule_of(prim)
        except BatchingError as exc:
            assert name in str(exc)
            continue
        assert callable(rule), name


@pytest.mark.parametrize("name,case", SWEEP)
def test_rule_matches_a_loop(name, case):
    rng = np.random.default_rng(7)
    inputs = case.inputs(rng)
    for dims in _dims_cases(len(inputs)):
        dims = _in_range(dims, inputs)
        batched, examples = _batched(inputs, dims, rng)
        got = cr.vmap(case.fn, in_dims=dims)(*batched)
        got = np.asarray(got.data if isinstance(got, cr.Tensor) else got)
        want = np.stack([_out(case.fn, *ex) for ex in examples])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{name} in_dims={dims}")


def _scalar(fn):
    def loss(*xs):
        out = fn(*xs)
        return (cr.sin(out) * out).sum() if out.ndim else cr.sin(out) * out

    return loss


@pytest.mark.parametrize("name,case", SWEEP)
def test_rule_under_grad_both_orders(name, case):
    """First order: vmap(grad(f)) and grad(sum of vmap(f)) equal a loop of grad(f), at several in_dims (the
    batching rules of the backward pass's primitives run too).  A shared input's gradient under grad(vmap) is
    the sum over the examples."""
    rng = np.random.default_rng(11)
    inputs = case.inputs(rng)
    loss = _scalar(case.fn)
    argnums = tuple(range(len(inputs)))
    for dims in _dims_cases(len(inputs)):
        dims = _in_range(dims, inputs)
        batched, examples = _batched(inputs, dims, rng)
        per_example = [cr.grad(loss, argnums)(*ex) for ex in examples]
        want = [np.stack(g) for g in zip(*per_example)]
        got = cr.vmap(cr.grad(loss, argnums), in_dims=dims)(*batched)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"vmap(grad) {name} {dims}")
        got2 = cr.grad(lambda *xs, dims=dims: cr.vmap(loss, in_dims=dims)(*xs).sum(), argnums)(*batched)
        for g, w, d in zip(got2, want, dims):
            w = w.sum(0) if d is None else np.moveaxis(w, 0, d)
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"grad(vmap) {name} {dims}")


SECOND_ORDER = [p for p in SWEEP if p.values[0] not in ("astype",)]


@pytest.mark.parametrize("name,case", SECOND_ORDER)
def test_rule_second_order(name, case):
    """Second order: vmap of a Hessian-vector product (grad of grad) equals the loop."""
    rng = np.random.default_rng(5)
    inputs = case.inputs(rng)
    loss = _scalar(case.fn)
    v = rng.standard_normal(inputs[0].shape)

    def hvp(x, *rest):
        return cr.grad(lambda y: (cr.grad(loss)(y, *rest) * v).sum())(x)

    for dims in _dims_cases(len(inputs)):
        dims = _in_range(dims, inputs)
        batched, examples = _batched(inputs, dims, rng)
        want = np.stack([hvp(*ex) for ex in examples])
        got = cr.vmap(hvp, in_dims=dims)(*batched)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11, err_msg=f"vmap(grad(grad)) {name} {dims}")


def test_a_planted_wrong_rule_fails_the_sweep(monkeypatch):
    """The sweep can fail: tanh batched as sin must not pass."""
    case = CASES["tanh"][0]
    wrong = elementwise(REGISTRY["sin"])
    monkeypatch.setattr(REGISTRY["tanh"], "batch", wrong)
    with pytest.raises(AssertionError):
        test_rule_matches_a_loop("tanh", case)


def test_a_planted_wrong_axis_shift_fails_the_sweep(monkeypatch):
    """A reduction rule that forgets to shift its axes past the batch axis must fail."""
    prim = REGISTRY["sum"]

    def no_shift(xp, vals, dims, axis, keepdims):
        from chainrule.primitives.batching import front

        return xp.apply(prim, front(xp, vals[0], dims[0]), axis, keepdims), 0

    monkeypatch.setattr(prim, "batch", no_shift)
    with pytest.raises(AssertionError):
        test_rule_matches_a_loop("sum", CASES["sum"][1])


def test_off_graph_values_must_be_batched(monkeypatch):
    """relu's mask in its VJP rule is a comparison (off the graph): a tracer that forgot such values would
    freeze the first example's mask; the sweep must catch that."""
    import chainrule.vectorize as V

    monkeypatch.setattr(V._Tracer, "derived", lambda self, t, how, operands: None)
    with pytest.raises(AssertionError):
        test_rule_under_grad_both_orders("relu", CASES["relu"][0])


# --- semantics: dims, pytrees, nesting, chunks ---------------------------------------------------------------


def _loop(f, xs, axis=0):
    return np.stack([f(x) for x in np.moveaxis(xs, axis, 0)])


def test_in_dims_none_and_negative_and_out_dims():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3))
    X = rng.standard_normal((3, 5))  # batch along axis 1

    def f(W, x):
        return cr.tanh(W @ x)

    got = cr.vmap(f, in_dims=(None, 1), out_dims=1)(W, X)
    assert got.shape == (4, 5)
    np.testing.assert_allclose(got, np.tanh(W @ X), rtol=1e-14)
    got = cr.vmap(f, in_dims=(None, -1))(W, X)
    np.testing.assert_allclose(got, np.tanh(W @ X).T, rtol=1e-14)


def test_pytrees_in_and_out():
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal(3), "b": rng.standard_normal(())}
    xs = [rng.standard_normal((6, 3)), rng.standard_normal((3, 6))]

    def f(p, pair):
        x, y = pair
        return {"dot": (p["w"] * x).sum() + p["b"], "both": (x * y, y.sum())}

    out = cr.vmap(f, in_dims=({"w": None, "b": None}, [0, 1]), out_dims={"dot": 0, "both": (1, 0)})(params, xs)
    x, y = xs[0], xs[1].T
    np.testing.assert_allclose(out["dot"], x @ params["w"] + params["b"], rtol=1e-14)
    np.testing.assert_allclose(out["both"][0], (x * y).T, rtol=1e-14)
    np.testing.assert_allclose(out["both"][1], y.sum(1), rtol=1e-14)


def test_unbatched_output_is_broadcast_or_kept_with_out_dims_none():
    X = np.arange(6.0).reshape(3, 2)
    c = np.ones(2)
    a, b = cr.vmap(lambda x, c: (x * 2.0, c + 1.0), in_dims=(0, None), out_dims=(0, None))(X, c)
    np.testing.assert_allclose(a, X * 2)
    np.testing.assert_allclose(b, c + 1)
    a, b = cr.vmap(lambda x, c: (x * 2.0, c + 1.0), in_dims=(0, None))(X, c)
    np.testing.assert_allclose(b, np.broadcast_to(c + 1, (3, 2)))
    with pytest.raises(ValueError, match="out_dims is None for output 0"):
        cr.vmap(lambda x: x * 2.0, out_dims=None)(X)


def test_nested_vmap_is_an_outer_product_of_loops():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))

    def k(x, y):
        return cr.exp(-((x - y) ** 2).sum())

    got = cr.vmap(cr.vmap(k, in_dims=(None, 0)), in_dims=(0, None))(X, Y)
    want = np.array([[np.exp(-((x - y) ** 2).sum()) for y in Y] for x in X])
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # a comparison on the outer batched value inside the inner function is batched by the outer vmap
    got = cr.vmap(cr.vmap(lambda x, y: cr.where(x > 0, x * y, y), in_dims=(None, 0)), in_dims=(0, None))(X, Y)
    want = np.array([[np.where(x > 0, x * y, y) for y in Y] for x in X])
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_chunk_size_gives_the_same_result():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 4))
    W = rng.standard_normal((4, 4))
    f = cr.grad(lambda x: (cr.tanh(x @ W) ** 2).sum())
    full = cr.vmap(f)(X)
    for chunk in (1, 3, 10, 64):
        np.testing.assert_allclose(cr.vmap(f, chunk_size=chunk)(X), full, rtol=1e-14)
    np.testing.assert_allclose(cr.vmap(f, in_dims=1, out_dims=1, chunk_size=4)(X.T), full.T, rtol=1e-14)


def test_bad_dims_are_refused_clearly():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="different sizes"):
        cr.vmap(lambda a, b: a + b)(X, np.ones((4, 2)))
    with pytest.raises(ValueError, match="out of range"):
        cr.vmap(lambda a: a, in_dims=2)(X)
    with pytest.raises(ValueError, match="in_dims has 1 entries"):
        cr.vmap(lambda a, b: a + b, in_dims=(0,))(X, X)
    with pytest.raises(ValueError, match="at least one input must be batched"):
        cr.vmap(lambda a: a, in_dims=None)(X)


# --- refusals -----------------------------------------------------------------------------------------------


def test_random_operations_are_refused():
    X = np.ones((3, 4))
    with pytest.raises(RuntimeError, match="random operations .* not supported under vmap"):
        cr.vmap(lambda x: cr.nn.functional.dropout(x, 0.5))(X)
    with pytest.raises(RuntimeError, match="random"):
        cr.vmap(lambda x: x + cr.randn(4))(X)
    cr.nn.functional.dropout(cr.tensor(X), 0.5)  # and allowed again afterwards


def test_only_randomness_error_exists():
    with pytest.raises(NotImplementedError, match="randomness='different' is not supported"):
        cr.vmap(lambda x: x, randomness="different")


def test_in_place_writes_are_refused():
    X = np.ones((3, 4))

    def f(x):
        y = x * 2.0
        y += 1.0
        return y

    with pytest.raises(RuntimeError, match="in-place"):
        cr.vmap(f)(X)

    def g(x):
        y = cr.zeros(4)
        y[0] = 1.0
        return x * y

    with pytest.raises(RuntimeError, match="in-place"):
        cr.vmap(g)(X)


def test_reading_a_batched_value_is_refused():
    X = np.ones((3, 4))
    with pytest.raises(cr.VmapError, match="reads the value of a batched tensor"):
        cr.vmap(lambda x: x * 2.0 if x.sum() > 0 else x)(X)
    with pytest.raises(cr.VmapError, match="Tensor.item"):
        cr.vmap(lambda x: x * x.sum().item())(X)
    with pytest.raises(cr.VmapError, match="index"):
        cr.vmap(lambda x, i: x[i], in_dims=(0, 0))(X, np.array([0, 1, 2]))
    # a value that does not depend on the batch may be read
    W = cr.tensor(np.ones(4))
    np.testing.assert_allclose(cr.vmap(lambda x: x * W.sum().item())(X), X * 4)


def test_custom_vjp_is_refused_with_its_name():
    @cr.custom_vjp
    def cube(x):
        return x**3

    @cube.defvjp
    def cube_vjp(g, out, x):
        return (g * 3 * x**2,)

    with pytest.raises(BatchingError, match="no batching rule"):
        cr.vmap(lambda x: cube(x).sum())(np.ones((2, 3)))


# --- composition with the other transforms, against loops and torch.func ---------------------------------------

torch = pytest.importorskip("torch")
tf = torch.func


def _mlp_params(rng, d=10, h=32, k=3):
    return [rng.standard_normal(s) * 0.3 for s in ((h, d), (h,), (k, h), (k,))]


def _cr_loss(W1, b1, W2, b2, x, y):
    hidden = cr.tanh(W1 @ x + b1)
    out = W2 @ hidden + b2
    return ((out - y) ** 2).sum() + 0.1 * cr.relu(out).sum()


def _torch_loss(W1, b1, W2, b2, x, y):
    hidden = torch.tanh(W1 @ x + b1)
    out = W2 @ hidden + b2
    return ((out - y) ** 2).sum() + 0.1 * torch.relu(out).sum()


def test_per_sample_gradients_of_an_mlp_match_torch_func():
    rng = np.random.default_rng(0)
    params = _mlp_params(rng)
    X, Y = rng.standard_normal((64, 10)), rng.standard_normal((64, 3))
    dims = (None, None, None, None, 0, 0)
    ours = cr.vmap(cr.grad(_cr_loss, argnums=(0, 1, 2, 3)), in_dims=dims)(*params, X, Y)
    tp = [torch.tensor(p) for p in params]
    theirs = tf.vmap(tf.grad(_torch_loss, argnums=(0, 1, 2, 3)), in_dims=dims)(*tp, torch.tensor(X), torch.tensor(Y))
    for a, b in zip(ours, theirs):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)
    # the same through cr.func's torch names, and with a chunk size
    ours2 = cr.func.vmap(cr.func.grad(_cr_loss, argnums=(0, 1, 2, 3)), in_dims=dims, chunk_size=16)(*params, X, Y)
    for a, b in zip(ours2, theirs):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


def test_max_pool_under_vmap_is_torchs_with_ties_nan_and_padding():
    """Under vmap max_pool2d picks each window's first maximum by masks (no index read): values and gradients
    equal torch's, with tied windows, a NaN and padding."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((4, 2, 6, 6))
    X[0, 0, :2, :2] = 1.5  # a window of ties: the gradient goes to the first, as torch's
    X[2, 1, 3, 3] = 3.0
    X[2, 1, 3, 4] = 3.0
    F, tF = cr.nn.functional, torch.nn.functional
    for kernel, pad in ((2, 0), (3, 1)):

        def pool(x, kernel=kernel, pad=pad):
            return F.max_pool2d(x, kernel, stride=2, padding=pad)

        want = tF.max_pool2d(torch.tensor(X), kernel, stride=2, padding=pad).numpy()
        np.testing.assert_array_equal(cr.vmap(pool)(X), want)
        g = cr.vmap(cr.grad(lambda x, pool=pool: (pool(x) ** 2).sum()))(X)
        t = torch.tensor(X, requires_grad=True)
        (tF.max_pool2d(t, kernel, stride=2, padding=pad) ** 2).sum().backward()
        np.testing.assert_array_equal(g, t.grad.numpy())
    Xn = X.copy()
    Xn[1, 1, 0, 1] = np.nan
    got = cr.vmap(lambda x: F.max_pool2d(x, 2))(Xn)
    np.testing.assert_array_equal(got, tF.max_pool2d(torch.tensor(Xn), 2).numpy())  # NaN wins, as in torch


def test_per_sample_gradients_of_a_small_cnn_match_torch_func():
    rng = np.random.default_rng(1)
    w1, b1 = rng.standard_normal((4, 1, 3, 3)) * 0.3, rng.standard_normal(4) * 0.1
    w2, b2 = rng.standard_normal((3, 4 * 3 * 3)) * 0.1, rng.standard_normal(3) * 0.1
    X, Y = rng.standard_normal((8, 1, 8, 8)), rng.standard_normal((8, 3))
    F = cr.nn.functional

    def loss(w1, b1, w2, b2, x, y):
        h = F.relu(F.conv2d(x[None], w1, b1))  # one example, as a batch of one image
        h = F.max_pool2d(h, 2)
        out = F.linear(h.reshape(1, -1), w2, b2)[0]
        return ((out - y) ** 2).sum()

    def tloss(w1, b1, w2, b2, x, y):
        tF = torch.nn.functional
        h = tF.max_pool2d(tF.relu(tF.conv2d(x[None], w1, b1)), 2)
        out = tF.linear(h.reshape(1, -1), w2, b2)[0]
        return ((out - y) ** 2).sum()

    dims = (None, None, None, None, 0, 0)
    ours = cr.vmap(cr.grad(loss, argnums=(0, 1, 2, 3)), in_dims=dims)(w1, b1, w2, b2, X, Y)
    # max pooling's indices are read from the values: refused under vmap, clearly
    with pytest.raises(cr.VmapError, match="return_indices"):
        cr.vmap(lambda x: F.max_pool2d(x[None], 2, return_indices=True))(X)
    tp = [torch.tensor(p) for p in (w1, b1, w2, b2, X, Y)]
    theirs = tf.vmap(tf.grad(tloss, argnums=(0, 1, 2, 3)), in_dims=dims)(*tp)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


def _tanh_map(A):
    return (lambda x: cr.tanh(A @ cr.sin(x))), (lambda x: torch.tanh(torch.tensor(A) @ torch.sin(x)))


def test_jacobians_and_hessians_match_torch_func():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((7, 5))
    x = rng.standard_normal(5)
    f, tf_f = _tanh_map(A)
    tx = torch.tensor(x)
    np.testing.assert_allclose(cr.jacrev(f)(x), tf.jacrev(tf_f)(tx).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cr.jacfwd(f)(x), tf.jacfwd(tf_f)(tx).numpy(), rtol=1e-10, atol=1e-12)

    def g(x):
        return (f(x) ** 2).sum() * cr.cos(x).sum()

    def tg(x):
        return (tf_f(x) ** 2).sum() * torch.cos(x).sum()

    H = tf.hessian(tg)(tx).numpy()
    np.testing.assert_allclose(cr.hessian(g)(x), H, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cr.jacrev(cr.jacfwd(g))(x), H, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cr.jacfwd(cr.jacrev(g))(x), H, rtol=1e-10, atol=1e-12)
    X = rng.standard_normal((4, 5))
    want = tf.vmap(tf.hessian(tg))(torch.tensor(X)).numpy()
    np.testing.assert_allclose(cr.vmap(cr.hessian(g))(X), want, rtol=1e-10, atol=1e-12)
    want = tf.vmap(tf.jacrev(tf_f))(torch.tensor(X)).numpy()
    np.testing.assert_allclose(cr.vmap(cr.jacrev(f))(X), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cr.vmap(cr.jacfwd(f))(X), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cr.jacrev(cr.vmap(f))(X), tf.jacrev(tf.vmap(tf_f))(torch.tensor(X)).numpy(), rtol=1e-10)


def test_vmap_of_vjp_and_jvp_are_jacobians():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 4))
    x = rng.standard_normal(4)
    f, _ = _tanh_map(A)
    J = cr.jacrev(f)(x)
    _, vjp_fn = cr.vjp(f, x)
    np.testing.assert_allclose(cr.vmap(vjp_fn)(np.eye(6))[0], J, rtol=1e-13, atol=1e-15)
    cols = cr.vmap(lambda t: cr.jvp(f, (x,), (t,))[1], out_dims=1)(np.eye(4))
    np.testing.assert_allclose(cols, J, rtol=1e-13, atol=1e-15)


def test_grad_of_vmap_reaches_closed_over_parameters():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((3, 4))
    X = rng.standard_normal((5, 4))

    def total(W):
        return cr.vmap(lambda x: (cr.tanh(W @ x) ** 2).sum())(X).sum()

    tW = torch.tensor(W, requires_grad=True)
    (torch.tanh(torch.tensor(X) @ tW.T) ** 2).sum().backward()
    np.testing.assert_allclose(cr.grad(total)(W), tW.grad.numpy(), rtol=1e-12)
    # and a tensor input keeps the graph: backward() through a vmap
    t = cr.tensor(X, requires_grad=True)
    out = cr.vmap(lambda x: cr.sin(x).sum())(t)
    out.sum().backward()
    np.testing.assert_allclose(t.grad.data, np.cos(X), rtol=1e-14)


def test_jacobians_are_built_by_one_batched_pass_not_a_loop(monkeypatch):
    """jacrev runs the backward walk once (traced, then batched over the basis cotangents); jacfwd sweeps once
    per variable; the results equal torch.func's."""
    from chainrule import autodiff, forward

    calls = {"grad": 0, "push": 0}
    real_grad, real_push = autodiff.grad, forward.Recording.push

    def counting_grad(*a, **k):
        calls["grad"] += 1
        return real_grad(*a, **k)

    def counting_push(self, seeds):
        calls["push"] += 1
        return real_push(self, seeds)

    monkeypatch.setattr(autodiff, "grad", counting_grad)
    monkeypatch.setattr(forward.Recording, "push", counting_push)
    rng = np.random.default_rng(6)
    A = rng.standard_normal((9, 4))
    x = rng.standard_normal(4)
    f, tf_f = _tanh_map(A)
    J = cr.jacrev(f)(x)
    assert calls["grad"] == 1
    Jf = cr.jacfwd(f)(x)
    assert calls["push"] == 1
    want = tf.jacrev(tf_f)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(J, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Jf, want, rtol=1e-10, atol=1e-12)


def test_nested_jacobians_of_a_vector_function_match_torch_func():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((3, 4))
    x = rng.standard_normal(4)
    f, tf_f = _tanh_map(A)
    tx = torch.tensor(x)
    want = tf.jacfwd(tf.jacrev(tf_f))(tx).numpy()
    for outer in (cr.jacrev, cr.jacfwd):
        for inner in (cr.jacrev, cr.jacfwd):
            np.testing.assert_allclose(outer(inner(f))(x), want, rtol=1e-10, atol=1e-12, err_msg=f"{outer} {inner}")


# --- cr.func: torch.func's names and argument orders ---------------------------------------------------------


def test_func_namespace_has_torch_funcs_names():
    for name in ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap", "functional_call"):
        assert callable(getattr(cr.func, name)), name
        assert hasattr(tf, name), name


def test_func_grad_and_value_and_has_aux_follow_torch():
    x = np.array([0.3, -1.2, 2.0])

    def f(x):
        return (cr.sin(x) * x).sum(), {"double": x * 2.0}

    def tf_f(x):
        return (torch.sin(x) * x).sum(), {"double": x * 2.0}

    (g, (v, aux)) = cr.func.grad_and_value(f, has_aux=True)(x)
    (tg, (tv, taux)) = tf.grad_and_value(tf_f, has_aux=True)(torch.tensor(x))
    np.testing.assert_allclose(g, tg.numpy(), rtol=1e-14)
    np.testing.assert_allclose(v, tv.item(), rtol=1e-14)
    np.testing.assert_allclose(aux["double"], taux["double"].numpy())
    g2, aux2 = cr.func.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g2, tg.numpy(), rtol=1e-14)
    g3, v3 = cr.func.grad_and_value(lambda x: (cr.sin(x) * x).sum())(x)
    np.testing.assert_allclose(g3, tg.numpy(), rtol=1e-14)
    J, aux4 = cr.func.jacrev(f, has_aux=True)(x)
    tJ, taux4 = tf.jacrev(tf_f, has_aux=True)(torch.tensor(x))
    np.testing.assert_allclose(J, tJ.numpy(), rtol=1e-14)
    np.testing.assert_allclose(aux4["double"], taux4["double"].numpy())
    out, fn, aux3 = cr.func.vjp(f, x, has_aux=True)
    np.testing.assert_allclose(fn(1.0)[0], tg.numpy(), rtol=1e-14)
    np.testing.assert_allclose(aux3["double"], 2 * x)


def test_functional_call_swaps_parameters_by_name_and_restores_them():
    rng = np.random.default_rng(9)
    cr.manual_seed(0)
    model = cr.nn.Sequential(cr.nn.Linear(4, 5), cr.nn.Tanh(), cr.nn.Linear(5, 2))
    names = [n for n, _ in model.named_parameters()]
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    params = {n: rng.standard_normal(p.shape) for n, p in model.named_parameters()}
    X = rng.standard_normal((6, 4))

    def loss(params, x):
        return (cr.func.functional_call(model, params, (x,)) ** 2).sum()

    # per-example gradients with respect to every parameter, as the torch.func tutorial writes them
    grads = cr.func.vmap(cr.func.grad(loss), in_dims=(None, 0))(params, X)
    assert sorted(grads) == sorted(names)
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    tparams = {n: torch.tensor(v) for n, v in params.items()}

    def tloss(p, x):
        return (tf.functional_call(tmodel, p, (x,)) ** 2).sum()

    want = tf.vmap(tf.grad(tloss), in_dims=(None, 0))(tparams, torch.tensor(X))
    for n in names:
        np.testing.assert_allclose(grads[n], want[n].numpy(), rtol=1e-10, atol=1e-12, err_msg=n)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])  # the module is left as it was
    with pytest.raises(KeyError, match="not a parameter or buffer"):
        cr.func.functional_call(model, {"0.nope": np.zeros(3)}, (X,))


def test_values_computed_from_raw_arrays_are_batched_or_refused():
    """isnan and friends are batched elementwise; argmax, any and indices are refused, never frozen at the
    first example."""
    X = np.random.default_rng(10).standard_normal((4, 3))
    X[1, 0] = np.nan
    np.testing.assert_array_equal(cr.vmap(lambda x: cr.where(cr.isnan(x), 0.0, x))(X), np.nan_to_num(X, nan=0.0))
    for f, name in ((lambda x: x * cr.argmax(x), "argmax"), (lambda x: x * cr.any(x > 0), "any")):
        with pytest.raises(cr.VmapError, match=name):
            cr.vmap(f)(X)
    with pytest.raises(cr.VmapError, match="indices"):
        cr.vmap(lambda x: cr.max(x, dim=0).values)(X)


def test_integer_inputs_batch_in_arithmetic_and_comparisons():
    X = np.arange(12.0).reshape(4, 3)
    k = np.array([1, -2, 3, 0])
    got = cr.vmap(lambda x, k: cr.where(k > 0, x * k, -x))(X, k)
    np.testing.assert_array_equal(got, np.where(k[:, None] > 0, X * k[:, None], -X))


def test_outputs_must_be_arrays():
    with pytest.raises(TypeError, match="output 1 is a str"):
        cr.vmap(lambda x: (x, "label"))(np.ones((2, 3)))
