"""Conv2d, pooling, BatchNorm, Embedding and the activation modules against PyTorch 2.13 and finite differences.

Every layer is compared on the same inputs and the same weights (copied into the
torch module through ``load_state_dict``, which also checks that our state-dict
keys are torch's), for values and for the gradients of every input and
parameter, in float64 and float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F
from chainrule.primitives import nn as P

TF = torch.nn.functional
TOL = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}


def torch_copy(ours: nn.Module, theirs: torch.nn.Module, dtype) -> torch.nn.Module:
    """``theirs`` with our parameters and buffers (strict: the key names must be torch's)."""
    theirs = theirs.to(getattr(torch, np.dtype(dtype).name))
    state = {k: torch.tensor(np.asarray(v.data)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)
    return theirs


def compare_module(ours, theirs, x, dtype, seed=0, steps=1):
    """Run both ``steps`` times on ``x``; compare outputs, input gradients and parameter gradients."""
    ours = ours.to(dtype)
    theirs = torch_copy(ours, theirs, dtype)
    rng = np.random.default_rng(seed)
    tol = TOL[dtype]
    for _ in range(steps):
        xi = cr.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
        xt = torch.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
        ours.zero_grad()
        theirs.zero_grad()
        out, ref = ours(xi), theirs(xt)
        np.testing.assert_allclose(out.data, ref.detach().numpy(), **tol)
        assert out.dtype == dtype
        g = rng.standard_normal(ref.shape).astype(dtype)
        out.backward(g)
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(xi.grad.data, xt.grad.numpy(), **tol)
        mine = dict(ours.named_parameters())
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(mine[name].grad.data, p.grad.numpy(), err_msg=name, **tol)
    return ours, theirs


DTYPES = [np.float64, np.float32]


# --- Conv2d -----------------------------------------------------------------------------------
CONV_CASES = {
    "plain": (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 6, 7)),
    "stride 2, padding 1": (dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1), (2, 2, 7, 6)),
    "rectangular, dilation": (
        dict(in_channels=2, out_channels=2, kernel_size=(2, 3), dilation=(2, 1), padding=(1, 2)),
        (1, 2, 6, 5),
    ),
    "groups 2": (dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1), (2, 4, 5, 5)),
    "depthwise": (dict(in_channels=3, out_channels=3, kernel_size=2, groups=3), (2, 3, 4, 4)),
    "same, no bias": (dict(in_channels=2, out_channels=3, kernel_size=3, padding="same", bias=False), (2, 2, 5, 4)),
    "unbatched": (dict(in_channels=2, out_channels=3, kernel_size=2, stride=(1, 2)), (2, 5, 6)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label", list(CONV_CASES))
def test_conv2d_matches_torch(label, dtype):
    kwargs, shape = CONV_CASES[label]
    ours = nn.Conv2d(**kwargs, rng=3)
    if ours.bias is not None:  # a non-zero bias, so its gradient and broadcast are exercised
        with cr.no_grad():
            ours.bias[...] = np.linspace(-1, 1, ours.out_channels)
    x = np.random.default_rng(1).standard_normal(shape)
    compare_module(ours, torch.nn.Conv2d(**kwargs), x, dtype)


def test_conv2d_gradcheck_and_second_order():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 4, 5, 4)), rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    conv = lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)  # noqa: E731
    assert cr.gradcheck(conv, x, w, b)
    # gradient of a gradient: d/dw of <dL/dx, v> against torch's double backward
    v = rng.standard_normal(x.shape)
    X, W, B = (cr.tensor(a, requires_grad=True) for a in (x, w, b))
    (gx,) = cr.autograd_grad(cr.sum(conv(X, W, B) ** 2), [X], create_graph=True)
    (gw,) = cr.autograd_grad(cr.sum(gx * v), [W])
    tX, tW, tB = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tconv = TF.conv2d(tX, tW, tB, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    (tgx,) = torch.autograd.grad((tconv**2).sum(), [tX], create_graph=True)
    (tgw,) = torch.autograd.grad((tgx * torch.tensor(v)).sum(), [tW])
    np.testing.assert_allclose(gw.data, tgw.numpy(), rtol=1e-10, atol=1e-10)


def test_a_planted_wrong_unfold_rule_is_caught(monkeypatch):
    """The checks above can fail: double the im2col adjoint and gradcheck (and torch) disagree."""
    x, w = (
        np.random.default_rng(0).standard_normal((1, 2, 4, 4)),
        np.random.default_rng(1).standard_normal((3, 2, 2, 2)),
    )
    w = np.concatenate([w, w[:1]])[:, :1]  # (4, 1, 2, 2): groups=2 convolutions still go through unfold
    good = P.unfold.vjps[0]
    monkeypatch.setattr(P.unfold, "vjps", (lambda xp, g, out, *a: good(xp, g, out, *a) * 2.0,))
    with pytest.raises(cr.GradcheckError, match="input 0"):
        cr.gradcheck(lambda x, w: F.conv2d(x, w, padding=1, groups=2), x, w)


@pytest.mark.parametrize("which", ["conv2d_input", "conv2d_weight"])
def test_a_planted_wrong_fused_conv_primitive_is_caught(monkeypatch, which):
    """The fused conv2d's gradients are the primitives conv2d_input and conv2d_weight: a wrong forward of either
    (the transposed product off by a factor) fails gradcheck on the input it serves, and the torch comparison."""
    from chainrule.primitives import conv as PC

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))
    prim = getattr(PC, which)
    good = prim.fwd
    monkeypatch.setattr(prim, "fwd", lambda *a: good(*a) * 1.5)
    with pytest.raises(cr.GradcheckError, match="input 0" if which == "conv2d_input" else "input 1"):
        cr.gradcheck(lambda x, w: F.fused_conv2d(x, w, stride=(2, 1), padding=1), x, w)
    X, W = cr.tensor(x, requires_grad=True), cr.tensor(w, requires_grad=True)
    cr.sum(F.fused_conv2d(X, W, stride=(2, 1), padding=1) ** 2).backward()
    tX, tW = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (TF.conv2d(tX, tW, stride=(2, 1), padding=1) ** 2).sum().backward()
    bad, ref = (X.grad, tX.grad) if which == "conv2d_input" else (W.grad, tW.grad)
    assert not np.allclose(bad.data, ref.numpy())


def test_conv2d_errors_name_the_shapes():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4\): input of shape \(2, 2, 5, 5\) must have 3 channels"):
        conv(cr.tensor(np.zeros((2, 2, 5, 5))))
    with pytest.raises(ValueError, match="does not fit an input of"):
        conv(cr.tensor(np.zeros((1, 3, 2, 2))))
    with pytest.raises(ValueError, match=r"must have shape \(N, C, H, W\) or \(C, H, W\)"):
        conv(cr.tensor(np.zeros((3, 5))))
    with pytest.raises(ValueError, match="must both divide by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(NotImplementedError, match="uneven padding"):
        nn.Conv2d(1, 1, 2, padding="same")
    with pytest.raises(ValueError, match="needs stride 1"):
        nn.Conv2d(1, 1, 3, padding="same", stride=2)
    with pytest.raises(NotImplementedError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")


def test_conv2d_layout_init_and_repr():
    conv = nn.Conv2d(3, 8, (3, 5), stride=2, padding=1, rng=0)
    assert conv.weight.shape == (8, 3, 3, 5) and conv.weight.dtype == np.float32
    bound = np.sqrt(2.0) * np.sqrt(3.0 / (3 * 3 * 5))  # Kaiming uniform over fan_in = C·kh·kw
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.8 * bound
    assert np.all(conv.bias.data == 0)
    assert repr(conv) == "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1))"
    assert [k for k, _ in conv.named_parameters()] == ["weight", "bias"]


# --- pooling ---------------------------------------------------------------------------------
POOL_CASES = {
    "2x2": dict(kernel_size=2),
    "3, stride 2, padding 1": dict(kernel_size=3, stride=2, padding=1),
    "overlapping": dict(kernel_size=(2, 3), stride=1),
    "dilation": dict(kernel_size=2, stride=1, dilation=2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label", list(POOL_CASES))
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool2d_matches_torch(label, ties, dtype):
    """With ties (integer data, ReLU zeros) the gradient goes to the first maximum, as torch's."""
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, size=(2, 3, 6, 5)).astype(float) if ties else rng.standard_normal((2, 3, 6, 5))
    if ties:
        x = np.maximum(x, 0)
    compare_module(nn.MaxPool2d(**POOL_CASES[label]), torch.nn.MaxPool2d(**POOL_CASES[label]), x, dtype)


def test_max_pool2d_indices_padding_and_nan():
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)) - 10.0  # all negative: padding must act as -inf
    x[0, 1, 2, 2] = np.nan
    out, idx = F.max_pool2d(cr.tensor(x), 3, stride=2, padding=1, return_indices=True)
    ref, ridx = TF.max_pool2d(torch.tensor(x), 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(out.data, ref.numpy())  # NaN where torch has NaN
    np.testing.assert_array_equal(idx.data, ridx.numpy())
    assert idx.dtype == np.int64
    with pytest.raises(NotImplementedError, match="ceil_mode"):
        nn.MaxPool2d(2, ceil_mode=True)
    with pytest.raises(ValueError, match="at most half the kernel size"):
        F.max_pool2d(cr.tensor(x), 2, padding=2)


def test_pooling_gradcheck():
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 6))  # continuous data: no ties, so max is smooth
    assert cr.gradcheck(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), x)
    assert cr.gradcheck(lambda x: F.max_pool2d(x, (2, 3), stride=1), x)  # overlapping windows add up
    assert cr.gradcheck(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, padding=1, stride=1, count_include_pad=False),
        dict(kernel_size=2, divisor_override=3),
    ],
    ids=["2x2", "padded", "exclude pad", "divisor"],
)
def test_avg_pool2d_matches_torch(kwargs, dtype):
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5))
    compare_module(nn.AvgPool2d(**kwargs), torch.nn.AvgPool2d(**kwargs), x, dtype)


# --- BatchNorm ---------------------------------------------------------------------------------
BN_CASES = {
    "1d (N, C)": (lambda **k: nn.BatchNorm1d(3, **k), lambda **k: torch.nn.BatchNorm1d(3, **k), (6, 3)),
    "1d (N, C, L)": (lambda **k: nn.BatchNorm1d(3, **k), lambda **k: torch.nn.BatchNorm1d(3, **k), (4, 3, 5)),
    "2d": (lambda **k: nn.BatchNorm2d(2, **k), lambda **k: torch.nn.BatchNorm2d(2, **k), (3, 2, 4, 5)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum 0.1", "cumulative"])
@pytest.mark.parametrize("label", list(BN_CASES))
def test_batchnorm_train_then_eval_matches_torch(label, momentum, dtype):
    make, make_ref, shape = BN_CASES[label]
    ours = make(momentum=momentum)
    rng = np.random.default_rng(6)
    ours.weight._data[...] = rng.uniform(0.5, 2.0, ours.num_features)
    ours.bias._data[...] = rng.standard_normal(ours.num_features)
    x = rng.standard_normal(shape) * 3 + 1
    ours, theirs = compare_module(ours, make_ref(momentum=momentum), x, dtype, steps=3)
    tol = TOL[dtype]
    for name in ("running_mean", "running_var"):  # running variance: the unbiased batch variance
        np.testing.assert_allclose(getattr(ours, name).data, getattr(theirs, name).numpy(), **tol)
    assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    compare_module(ours, theirs, x * 0.5 - 2, dtype)  # eval: the running statistics normalize


def test_batchnorm_buffers_state_dict_and_gradcheck():
    bn = nn.BatchNorm2d(2)
    assert list(bn.state_dict()) == list(torch.nn.BatchNorm2d(2).state_dict())
    assert [k for k, _ in bn.named_parameters()] == ["weight", "bias"]  # buffers are never trained
    bn(cr.tensor(np.random.default_rng(0).standard_normal((2, 2, 3, 3)).astype(np.float32)))
    saved = bn.state_dict()
    fresh = nn.BatchNorm2d(2)
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(fresh.running_var.data, bn.running_var.data)
    assert fresh.num_batches_tracked.dtype == np.int64 and fresh.num_batches_tracked.item() == 1
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert list(model.state_dict())[2:5] == ["1.weight", "1.bias", "1.running_mean"]
    x = np.random.default_rng(1).standard_normal((3, 2, 2, 2))
    w, b = np.array([1.5, 0.5]), np.array([0.1, -0.3])
    assert cr.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(2)(cr.tensor(np.zeros((1, 2))))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(2\): input of shape \(1, 3, 2, 2\) has 3 channels"):
        nn.BatchNorm2d(2)(cr.tensor(np.zeros((1, 3, 2, 2))))


def test_batchnorm_without_running_stats_uses_the_batch_in_eval():
    x = np.random.default_rng(2).standard_normal((5, 3))
    ours = nn.BatchNorm1d(3, track_running_stats=False, affine=False).eval()
    ref = torch.nn.BatchNorm1d(3, track_running_stats=False, affine=False).double().eval()
    np.testing.assert_allclose(ours(cr.tensor(x)).data, ref(torch.tensor(x)).numpy(), rtol=1e-10)
    assert list(ours.state_dict()) == []


# --- Embedding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_matches_torch(padding_idx, dtype):
    idx = np.array([[0, 2, 1, 2], [3, 3, 1, 0]])  # repeats accumulate; row 1 (or 3) is padding
    ours = nn.Embedding(4, 3, padding_idx=padding_idx, rng=0).to(dtype)
    theirs = torch_copy(ours, torch.nn.Embedding(4, 3, padding_idx=padding_idx), dtype)
    out, ref = ours(idx), theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(1).standard_normal(ref.shape).astype(dtype)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), **TOL[dtype])
    if padding_idx is not None:
        assert np.all(ours.weight.data[padding_idx] == 0) and np.all(ours.weight.grad.data[padding_idx] == 0)


def test_embedding_gradcheck_errors_and_pretrained():
    idx = np.array([2, 0, 2])
    w = np.random.default_rng(0).standard_normal((3, 2))
    assert cr.gradcheck(lambda w: F.embedding(idx, w), w)  # (padding_idx cuts the gradient on purpose: not FD's)
    emb = nn.Embedding(3, 2)
    with pytest.raises(IndexError, match="index 3 is out of range for 3 embeddings"):
        emb(np.array([0, 3]))
    with pytest.raises(TypeError, match="indices must be integers"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(3, 2, max_norm=1.0)
    frozen = nn.Embedding.from_pretrained(w)
    assert list(frozen.parameters()) == [] and list(frozen.state_dict()) == ["weight"]
    np.testing.assert_array_equal(frozen(np.array([1])).data, w[[1]])


# --- activations and reshaping -----------------------------------------------------------------------
ACTIVATIONS = {
    "LeakyReLU": (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    "GELU": (nn.GELU(), torch.nn.GELU()),
    "GELU tanh": (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    "ELU": (nn.ELU(0.7), torch.nn.ELU(0.7)),
    "SiLU": (nn.SiLU(), torch.nn.SiLU()),
    "Softplus": (nn.Softplus(2.0, 5.0), torch.nn.Softplus(2.0, 5.0)),
    "Softmax": (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    "LogSoftmax": (nn.LogSoftmax(dim=0), torch.nn.LogSoftmax(dim=0)),
    "Flatten": (nn.Flatten(), torch.nn.Flatten()),
    "Flatten 0..1": (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
    "Unflatten": (nn.Unflatten(2, (2, 2)), torch.nn.Unflatten(2, (2, 2))),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label", list(ACTIVATIONS))
def test_activation_modules_match_torch(label, dtype):
    x = np.random.default_rng(7).standard_normal((3, 2, 4)) * 3
    x[0, 0, :3] = [0.0, 40.0, -40.0]  # the kink, and values past the softplus threshold / exp overflow
    compare_module(*ACTIVATIONS[label], x, dtype)


def test_softmax_without_dim_uses_torchs_legacy_choice_and_warns():
    x = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.warns(UserWarning, match="implicit dimension"):
        out = F.softmax(cr.tensor(x))
    np.testing.assert_allclose(out.data, torch.softmax(torch.tensor(x), dim=1).numpy(), rtol=1e-12)


def test_gelu_and_erf_gradcheck():
    x = np.linspace(-3, 3, 7)
    assert cr.gradcheck(F.gelu, x)
    assert cr.gradcheck(lambda x: F.gelu(x, "tanh"), x)
    assert cr.gradcheck(lambda x: F.leaky_relu(x, 0.1), x + 0.05)
    assert F.erf(cr.tensor(np.float32(0.5))).dtype == np.float32


def test_functional_linear_dropout_one_hot():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    np.testing.assert_allclose(
        F.linear(x, w, b).data, TF.linear(*(torch.tensor(a) for a in (x, w, b))).numpy(), rtol=1e-12
    )
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 3\) and weight of shape \(3, 2\)"):
        F.linear(x, w.T)
    big = cr.tensor(np.ones((200, 50)))
    assert F.dropout(big, 0.3, training=False) is big
    kept = F.dropout(big, 0.3, rng=0).data
    assert set(np.unique(kept)) <= {0.0, 1 / 0.7} and abs((kept == 0).mean() - 0.3) < 0.02
    hot = F.one_hot(np.array([2, 0]), 4)
    np.testing.assert_array_equal(hot.data, TF.one_hot(torch.tensor([2, 0]), 4).numpy())
    assert hot.dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES)
def test_unfold_and_fold_modules_match_torch(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    compare_module(nn.Unfold(2, padding=1, stride=2), torch.nn.Unfold(2, padding=1, stride=2), x, dtype)
    cols = np.random.default_rng(1).standard_normal((2, 12, 6))
    compare_module(nn.Fold((3, 4), 2), torch.nn.Fold((3, 4), 2), cols, dtype)


FUNCTIONAL = {
    "relu": (lambda x: F.relu(x), lambda x: TF.relu(x)),
    "relu6": (lambda x: F.relu6(x * 4), lambda x: TF.relu6(x * 4)),
    "hardtanh": (lambda x: F.hardtanh(x, -0.5, 0.8), lambda x: TF.hardtanh(x, -0.5, 0.8)),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "softmax dim 0": (lambda x: F.softmax(x, dim=0), lambda x: TF.softmax(x, dim=0)),
    "log_softmax dtype": (
        lambda x: F.log_softmax(x, dim=-1, dtype=np.float64),
        lambda x: TF.log_softmax(x, dim=-1, dtype=torch.float64),
    ),
    "layer_norm": (
        lambda x: F.layer_norm(x, (4,), np.linspace(0.5, 2, 4), np.linspace(-1, 1, 4)),
        lambda x: TF.layer_norm(
            x, (4,), torch.linspace(0.5, 2, 4, dtype=x.dtype), torch.linspace(-1, 1, 4, dtype=x.dtype)
        ),
    ),
    "flatten": (lambda x: F.flatten(x, 1), lambda x: torch.flatten(x, 1)),
    "avg_pool2d unbatched": (lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2)),
}


@pytest.mark.parametrize("label", list(FUNCTIONAL))
def test_functional_forms_match_torch(label):
    ours, theirs = FUNCTIONAL[label]
    x = np.random.default_rng(9).standard_normal((3, 2, 4))
    x[0, 0, :2] = [0.0, 1.5]
    xi, xt = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours(xi), theirs(xt)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(xi.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
