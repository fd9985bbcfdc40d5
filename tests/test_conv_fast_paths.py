"""The speed paths of the fused convolution and max pooling, and of their batching rules (issue 27).

- the NumPy forwards of ``conv2d``, ``conv2d_input`` and ``conv2d_weight`` run image by image through one
  reused im2col buffer above ``PER_IMAGE`` entries per image: the same bits as the stacked form, and torch's
  values (float64, 1e-10), over strides, paddings, dilations and both float dtypes;
- under ``cr.vmap`` non-overlapping max pooling is the fused pick/unpool pair, and a batched conv weight is a
  stacked matmul: per-sample gradients equal ``torch.func``'s (float64, 1e-10);
- planted wrong versions of each (a shifted im2col buffer, a conv rule that drops its transpose, a mask that
  picks the last maximum) make these tests fail.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.primitives import batching, conv, pool

torch = pytest.importorskip("torch")
tF = torch.nn.functional
tf = torch.func
F = cr.nn.functional

GEOMETRIES = [  # (N, C, O, H, W, kernel, stride, padding, dilation)
    (3, 4, 5, 11, 9, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 3, 4, 12, 10, (3, 2), (2, 1), (1, 0), (1, 2)),
    (2, 2, 3, 9, 9, (2, 2), (1, 1), (0, 0), (2, 1)),
    (1, 3, 2, 8, 7, (3, 3), (1, 1), (2, 1), (1, 1)),
]


def _arrays(geo, dtype, seed=0):
    n, c, o, h, w, k, s, p, d = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c) + k).astype(dtype)
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    g = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, wt, g


def _three(x, wt, g, geo):
    _, _, _, h, w, k, s, p, d = geo
    return (
        conv.conv2d.fwd(x, wt, s, p, d),
        conv.conv2d_input.fwd(g, wt, (h, w), s, p, d),
        conv.conv2d_weight.fwd(x, g, k, s, p, d),
    )


@pytest.mark.parametrize("geo", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_image_by_image_forms_are_the_stacked_forms_bit_for_bit(monkeypatch, geo, dtype):
    x, wt, g = _arrays(geo, dtype)
    stacked = _three(x, wt, g, geo)
    monkeypatch.setattr(conv, "PER_IMAGE", 0)  # every size takes the image-by-image form
    looped = _three(x, wt, g, geo)
    for a, b in zip(looped, stacked):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_image_by_image_forms_match_torch(monkeypatch, geo):
    monkeypatch.setattr(conv, "PER_IMAGE", 0)
    x, wt, g = _arrays(geo, np.float64, seed=1)
    _, _, _, h, w, k, s, p, d = geo
    tx, tw, tg = (torch.tensor(a) for a in (x, wt, g))
    want = (
        tF.conv2d(tx, tw, stride=s, padding=p, dilation=d),
        torch.nn.grad.conv2d_input(x.shape, tw, tg, stride=s, padding=p, dilation=d),
        torch.nn.grad.conv2d_weight(tx, wt.shape, tg, stride=s, padding=p, dilation=d),
    )
    for got, ref in zip(_three(x, wt, g, geo), want):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-10, atol=1e-10)


def test_the_default_threshold_takes_the_image_by_image_form_on_issue_27s_second_conv(monkeypatch):
    """A 16-channel 28 x 28 image has 16·9·784 im2col entries, above PER_IMAGE: the loop runs (and agrees)."""
    geo = (2, 16, 8, 28, 28, (3, 3), (1, 1), (1, 1), (1, 1))
    x, wt, g = _arrays(geo, np.float32)
    calls = []
    real = conv._image_columns
    monkeypatch.setattr(conv, "_image_columns", lambda *a: calls.append(1) or real(*a))
    looped = _three(x, wt, g, geo)
    assert len(calls) == 2  # the forward and the weight gradient (the input gradient loops on its own)
    monkeypatch.setattr(conv, "PER_IMAGE", 10**9)
    for a, b in zip(looped, _three(x, wt, g, geo)):
        np.testing.assert_array_equal(a, b)


def test_a_planted_shifted_buffer_is_caught(monkeypatch):
    """The comparison can fail: image columns read one image late give other values."""
    monkeypatch.setattr(conv, "PER_IMAGE", 0)
    geo = GEOMETRIES[0]
    x, wt, g = _arrays(geo, np.float64)
    real = conv._image_columns

    def late(x, *rest):
        return real(np.roll(x, 1, axis=0), *rest)

    monkeypatch.setattr(conv, "_image_columns", late)
    with pytest.raises(AssertionError):
        test_image_by_image_forms_match_torch(monkeypatch, geo)


# --- under vmap ---------------------------------------------------------------------------------------------


def _cnn_params(rng):
    return [rng.standard_normal(s) * 0.2 for s in ((6, 2, 3, 3), (6,), (4, 6 * 5 * 5), (4,))]


def _loss(w, b, W, c, x, y):
    h = F.max_pool2d(F.relu(F.conv2d(x[None], w, b, padding=1)), 2)
    return -(y * cr.log_softmax(W @ h.reshape(-1) + c, axis=-1)).sum()


def _tloss(w, b, W, c, x, y):
    h = tF.max_pool2d(tF.relu(tF.conv2d(x[None], w, b, padding=1)), 2)
    return -(y * torch.log_softmax(W @ h.reshape(-1) + c, dim=-1)).sum()


def test_per_sample_gradients_with_fused_pooling_match_torch_func():
    """11 x 11 images: the 2 x 2 windows leave a row and a column out (unpool puts zeros there)."""
    rng = np.random.default_rng(3)
    params = _cnn_params(rng)
    X = rng.standard_normal((7, 2, 11, 11))
    X[0, 0, :2, :2] = 0.9  # a tied window
    Y = np.eye(4)[rng.integers(0, 4, 7)]
    dims = (None, None, None, None, 0, 0)
    ours = cr.vmap(cr.grad(_loss, argnums=(0, 1, 2, 3)), in_dims=dims)(*params, X, Y)
    theirs = tf.vmap(tf.grad(_tloss, argnums=(0, 1, 2, 3)), in_dims=dims)(*[torch.tensor(a) for a in (*params, X, Y)])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


def test_max_pool_under_vmap_is_the_fused_pair(monkeypatch):
    seen = []
    real = pool._first_hits
    monkeypatch.setattr(pool, "_first_hits", lambda *a: seen.append(1) or real(*a))
    X = np.random.default_rng(0).standard_normal((3, 2, 6, 6))
    g = cr.vmap(cr.grad(lambda x: (F.max_pool2d(x, 2) ** 2).sum()))(X)
    assert seen  # pick and unpool ran (no mask form)
    t = torch.tensor(X, requires_grad=True)
    (tF.max_pool2d(t, 2) ** 2).sum().backward()
    np.testing.assert_array_equal(g, t.grad.numpy())


def _per_weight(w, x):  # one weight per batch entry, shared images: conv2d's rule with a batched weight
    return (cr.sin(F.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2))) ** 2).sum()


def _tper_weight(w, x):
    return (torch.sin(tF.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2))) ** 2).sum()


def test_batched_weights_match_torch_func_to_second_order():
    """vmap over weights: the forward, input and weight rules with a batched weight (grad and grad of grad)."""
    rng = np.random.default_rng(4)
    Ws = rng.standard_normal((5, 3, 2, 3, 3)) * 0.5
    x = rng.standard_normal((2, 2, 7, 8))
    tW, tx = torch.tensor(Ws), torch.tensor(x)
    out = cr.vmap(_per_weight, in_dims=(0, None))(Ws, x)
    np.testing.assert_allclose(out, tf.vmap(_tper_weight, in_dims=(0, None))(tW, tx).numpy(), rtol=1e-10)
    for argnums in (0, 1):
        ours = cr.vmap(cr.grad(_per_weight, argnums=argnums), in_dims=(0, None))(Ws, x)
        theirs = tf.vmap(tf.grad(_tper_weight, argnums=argnums), in_dims=(0, None))(tW, tx)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)
    v = rng.standard_normal(x.shape)
    tv = torch.tensor(v)

    def hvp(w, x):
        return cr.grad(lambda y: (cr.grad(_per_weight, argnums=1)(w, y) * v).sum())(x)

    def thvp(w, x):
        return tf.grad(lambda y: (tf.grad(_tper_weight, argnums=1)(w, y) * tv).sum())(x)

    ours = cr.vmap(hvp, in_dims=(0, None))(Ws, x)
    np.testing.assert_allclose(ours, tf.vmap(thvp, in_dims=(0, None))(tW, tx).numpy(), rtol=1e-9, atol=1e-11)


def test_a_planted_wrong_conv_rule_is_caught(monkeypatch):
    """A forward rule that forgets to batch the weight (uses entry 0's for every entry) must fail."""
    rule = conv.conv2d.batch

    def first_weight_only(xp, vals, dims, *params):
        if dims[1] is None:
            return rule(xp, vals, dims, *params)
        w = batching.front(xp, vals[1], dims[1])
        shared = xp.getitem(w, 0)
        return (
            rule(xp, (vals[0], shared), (dims[0], None), *params)
            if dims[0] is not None
            else rule(xp, (batching.expand(xp, vals[0], xp.shape(w)[0]), shared), (0, None), *params)
        )

    monkeypatch.setattr(conv.conv2d, "batch", first_weight_only)
    with pytest.raises(AssertionError):
        test_batched_weights_match_torch_func_to_second_order()


# --- eager max pooling's indices ------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel,padding", [(2, 0), ((2, 3), 0), (3, 1), (2, 1)])
def test_eager_max_pool_indices_are_torchs_with_ties_nan_and_padding(kernel, padding):
    """Non-overlapping windows find each first maximum on strided views (no window copy, no argmax): the
    indices, values and gradients are torch's, on ties (integers in floats), a NaN, -0.0 against 0.0."""
    rng = np.random.default_rng(6)
    X = rng.integers(-2, 3, (2, 3, 9, 10)).astype(np.float64)
    X[0, 0, 0, :2] = [-0.0, 0.0]
    X[1, 2, 4, 4] = np.nan
    x = cr.tensor(X, requires_grad=True)
    out, idx = F.max_pool2d(x, kernel, padding=padding, return_indices=True)
    t = torch.tensor(X, requires_grad=True)
    tout, tidx = tF.max_pool2d(t, kernel, padding=padding, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(tout.detach().numpy()))
    G = rng.standard_normal(out.shape)
    cr.sum(out * G).backward()
    (tout * torch.tensor(G)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_a_planted_last_maximum_in_eager_indices_is_caught(monkeypatch):
    real = pool.first_max_offsets

    def last(x, kernel):
        return (kernel[0] * kernel[1] - 1) - real(x[:, :, ::-1, ::-1], kernel)[:, :, ::-1, ::-1]

    monkeypatch.setattr(pool, "first_max_offsets", last)
    with pytest.raises(AssertionError):
        test_eager_max_pool_indices_are_torchs_with_ties_nan_and_padding(2, 0)


# --- unpool's masked writes ---------------------------------------------------------------------------------


def _unpool_reference(g, x, kernel):
    """g at each window's first maximum (argmax over a copy of the window, NaN first), +0.0 elsewhere."""
    kh, kw = kernel
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    win = x[:, :, : oh * kh, : ow * kw].reshape(n, c, oh, kh, ow, kw).transpose(0, 1, 2, 4, 3, 5)
    best = np.argmax(win.reshape(n, c, oh, ow, kh * kw), axis=-1)
    out = np.zeros(x.shape, g.dtype)
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        view = out[:, :, i : i + kh * oh : kh, j : j + kw * ow : kw]
        view[...] = np.where(best == k, g, np.zeros((), g.dtype))
    return out


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel", [((2, 3, 8, 6), (2, 2)), ((2, 2, 7, 9), (2, 3)), ((1, 2, 9, 9), (3, 3))])
def test_unpool_writes_g_at_first_maxima_and_plus_zero_elsewhere(dtype, shape, kernel):
    rng = np.random.default_rng(8)
    x = rng.integers(-2, 2, shape).astype(dtype)  # many ties
    x[0, 0, 0, 0] = np.nan
    oh, ow = shape[2] // kernel[0], shape[3] // kernel[1]
    g = rng.standard_normal((shape[0], shape[1], oh, ow)).astype(dtype)
    g[0, 1, 0, :2] = [-0.0, np.nan]
    g[-1, -1, -1, -1] = -np.inf
    got = pool._unpool_numpy(g, x, kernel)
    want = _unpool_reference(g, x, kernel)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))  # bit for bit


def test_a_planted_unpool_that_leaves_minus_zero_is_caught(monkeypatch):
    def by_product(g, x, kernel):  # g * mask: -0.0 and NaN where it should write +0.0
        out = np.zeros(x.shape, g.dtype)
        for hit, view in zip(pool._first_hits(x, kernel), pool._offsets(np, out, kernel)):
            np.multiply(g, hit, out=view)
        return out

    monkeypatch.setattr(pool, "_unpool_numpy", by_product)
    with pytest.raises(AssertionError):
        test_unpool_writes_g_at_first_maxima_and_plus_zero_elsewhere(np.float32, (2, 3, 8, 6), (2, 2))
