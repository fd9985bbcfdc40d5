"""cr.nn: layers and losses against PyTorch (same weights, same inputs), and the Module API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn

RNG = np.random.default_rng(1234)


def t64(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def close(ours, theirs, atol=1e-10, rtol=1e-8):
    a = ours.data if isinstance(ours, cr.Tensor) else np.asarray(ours)
    b = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def copy_linear(ours: nn.Linear) -> torch.nn.Linear:
    ref = torch.nn.Linear(ours.in_features, ours.out_features, bias=ours.bias is not None, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ours.weight.data))
        if ours.bias is not None:
            ref.bias.copy_(torch.from_numpy(ours.bias.data))
    return ref


# --- layers vs torch ----------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_matches_torch(bias, shape):
    layer = nn.Linear(4, 3, bias=bias, rng=0, dtype=np.float64)
    if bias:
        nn.init.uniform_(layer.bias, -1, 1, rng=1)  # a non-zero bias, so its path is tested
    ref = copy_linear(layer)
    x_np = RNG.normal(size=shape)
    x, tx = cr.tensor(x_np, requires_grad=True), t64(x_np)
    y, ty = layer(x), ref(tx)
    close(y, ty)
    g = RNG.normal(size=y.shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    close(x.grad, tx.grad)
    close(layer.weight.grad, ref.weight.grad)
    if bias:
        close(layer.bias.grad, ref.bias.grad)


def test_linear_layout_and_dtype():
    layer = nn.Linear(6, 2)
    assert layer.weight.shape == (2, 6) and layer.bias.shape == (2,)
    assert layer.weight.dtype == np.float32
    assert layer(np.ones((3, 6), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"Linear\(6, 2\).*shape \(3, 5\).*6 features"):
        layer(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        nn.Linear(0, 3)


@pytest.mark.parametrize(
    "activation,ref_act", [("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh), ("sigmoid", torch.nn.Sigmoid)]
)
def test_mlp_matches_torch_sequential(activation, ref_act):
    model = nn.MLP([5, 7, 6, 3], activation=activation, rng=3, dtype=np.float64)
    layers = [m for m in model if isinstance(m, nn.Linear)]
    for lin in layers:
        nn.init.uniform_(lin.bias, -0.5, 0.5, rng=4)
    refs = [copy_linear(lin) for lin in layers]
    ref = torch.nn.Sequential(refs[0], ref_act(), refs[1], ref_act(), refs[2])
    x_np = RNG.normal(size=(8, 5))
    y, ty = model(cr.tensor(x_np)), ref(t64(x_np))
    close(y, ty)
    y.sum().backward()
    ty.sum().backward()
    for lin, r in zip(layers, refs):
        close(lin.weight.grad, r.weight.grad)
        close(lin.bias.grad, r.bias.grad)


@pytest.mark.parametrize("normalized_shape,x_shape", [(6, (4, 6)), ((3, 4), (2, 3, 4))])
def test_layernorm_matches_torch(normalized_shape, x_shape):
    ln = nn.LayerNorm(normalized_shape, dtype=np.float64)
    nn.init.uniform_(ln.weight, 0.5, 1.5, rng=5)
    nn.init.uniform_(ln.bias, -1, 1, rng=6)
    ref = torch.nn.LayerNorm(normalized_shape, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ln.weight.data))
        ref.bias.copy_(torch.from_numpy(ln.bias.data))
    x_np = RNG.normal(size=x_shape) * 3 + 1
    x, tx = cr.tensor(x_np, requires_grad=True), t64(x_np)
    y, ty = ln(x), ref(tx)
    close(y, ty)
    g = RNG.normal(size=x_shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    close(x.grad, tx.grad, atol=1e-9)
    close(ln.weight.grad, ref.weight.grad, atol=1e-9)
    close(ln.bias.grad, ref.bias.grad, atol=1e-9)


def test_layernorm_errors_and_no_affine():
    ln = nn.LayerNorm(4, elementwise_affine=False)
    assert list(ln.parameters()) == []
    y = ln(np.arange(8, dtype=np.float32).reshape(2, 4))
    np.testing.assert_allclose(y.data.mean(-1), 0, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(2, 5\) must end with \(4,\)"):
        ln(np.ones((2, 5), np.float32))


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25, rng=0)
    x = cr.tensor(np.ones((200, 100)), requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    assert 0.7 < kept.mean() < 0.8  # p = 0.25 drops about a quarter
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, kept / 0.75)  # the gradient flows through kept units only
    drop.eval()
    assert drop(x) is x
    again = nn.Dropout(0.25, rng=0)(x).data
    np.testing.assert_array_equal(again, y.data)  # same seed, same mask
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_activation_modules():
    x_np = RNG.normal(size=(3, 4))
    for ours, theirs in [(nn.ReLU(), torch.relu), (nn.Tanh(), torch.tanh), (nn.Sigmoid(), torch.sigmoid)]:
        close(ours(cr.tensor(x_np)), theirs(t64(x_np)))


# --- losses vs torch ------------------------------------------------------------------------------
F = torch.nn.functional


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    logits = RNG.normal(size=(6, 4)) * 3
    logits[0] = [1000.0, -1000.0, 0.0, 999.0]  # extreme logits: no overflow, no log(0)
    targets = np.array([1, 0, 3, 2, 2, 1])
    z, tz = cr.tensor(logits, requires_grad=True), t64(logits)
    loss = nn.cross_entropy(z, targets, reduction=reduction)
    ref = F.cross_entropy(tz, torch.from_numpy(targets), reduction=reduction)
    close(loss, ref)
    assert np.all(np.isfinite(loss.data))
    g = RNG.normal(size=loss.shape)
    loss.backward(g if loss.shape else None)
    ref.backward(torch.from_numpy(g) if ref.shape else None)
    close(z.grad, tz.grad)


def test_cross_entropy_errors():
    z = cr.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"target 4 is not a class index in \[0, 4\)"):
        nn.cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        nn.cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"targets must have shape \(3,\)"):
        nn.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        nn.cross_entropy(cr.tensor(np.zeros(4)), np.array([0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.cross_entropy(z, np.array([0, 1, 2]), reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_matches_torch(reduction):
    x_np = np.concatenate([RNG.normal(size=7) * 4, [0.0, 800.0, -800.0]])
    y_np = np.concatenate([RNG.uniform(size=7), [1.0, 0.0, 1.0]])
    x, tx = cr.tensor(x_np, requires_grad=True), t64(x_np)
    loss = nn.binary_cross_entropy_with_logits(x, y_np, reduction=reduction)
    ref = F.binary_cross_entropy_with_logits(tx, torch.from_numpy(y_np), reduction=reduction)
    close(loss, ref)
    loss.backward()
    ref.backward()
    close(x.grad, tx.grad)  # including x = 0, where sigmoid(0) - y is the derivative


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    a_np, b_np = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    a, ta = cr.tensor(a_np, requires_grad=True), t64(a_np)
    loss = nn.mse_loss(a, b_np, reduction=reduction)
    ref = F.mse_loss(ta, torch.from_numpy(b_np), reduction=reduction)
    close(loss, ref)
    loss.sum().backward()
    ref.sum().backward()
    close(a.grad, ta.grad)


def test_hinge_loss_matches_torch_formula():
    s_np = RNG.normal(size=(9, 1)) * 2
    y_np = np.where(RNG.uniform(size=9) > 0.5, 1.0, -1.0)
    s, ts = cr.tensor(s_np, requires_grad=True), t64(s_np)
    loss = nn.hinge_loss(s, y_np)  # (N, 1) scores against (N,) labels: no (N, N) broadcast
    ref = torch.clamp(1 - torch.from_numpy(y_np) * ts[:, 0], min=0).mean()
    close(loss, ref)
    loss.backward()
    ref.backward()
    close(s.grad, ts.grad)
    with pytest.raises(ValueError, match="targets must be -1 or \\+1"):
        nn.hinge_loss(s, np.zeros(9))


def test_loss_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"mse_loss: input of shape \(4, 2\) and target of shape \(4,\)"):
        nn.mse_loss(cr.tensor(np.zeros((4, 2))), np.zeros(4))


# --- the Module API -----------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh(), nn.Dropout(0.1))
        self.head = nn.Linear(4, 2, rng=1)
        self.scale = nn.Parameter(np.ones(2))
        self.note = "not a parameter"

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


def test_named_parameters_and_state_dict():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "head.weight", "head.bias"]
    assert len(list(m.parameters())) == 5
    sd = m.state_dict()
    assert list(sd) == names
    sd["scale"].data[...] = 5.0  # as in torch, the entries share the parameters' memory
    assert np.all(m.scale.data == 5.0)
    assert not sd["scale"].requires_grad  # (detached, as torch's)
    m.scale.data[...] = 1.0
    other = Block()
    nn.init.normal_(other.head.weight, rng=9)
    other.load_state_dict(m.state_dict())
    for (n1, p1), (n2, p2) in zip(m.named_parameters(), other.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)


def test_load_state_dict_strict_errors_change_nothing():
    m = Block()
    before = {k: v.data.copy() for k, v in m.state_dict().items()}
    sd = {k: np.full(v.shape, 7.0) for k, v in m.state_dict().items()}
    missing = dict(sd)
    del missing["head.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['head.bias'\]"):
        m.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        m.load_state_dict({**sd, "extra": np.zeros(1)})
    bad = {**sd, "head.weight": np.zeros((4, 2))}
    with pytest.raises(ValueError, match=r"'head.weight' has shape \(4, 2\).*parameter has shape \(2, 4\)"):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.data, before[k])  # nothing was written
    result = m.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["head.bias"] and result.unexpected_keys == []
    assert np.all(m.head.weight.data == 7.0)


def test_train_eval_zero_grad_and_repr():
    m = Block()
    assert m.training and m.body[2].training
    m.eval()
    assert not m.training and not m.body[2].training
    m.train()
    assert m.body[2].training
    m(np.ones((2, 3), np.float32)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    text = repr(m)
    assert "(body): Sequential(" in text
    assert "(0): Linear(in_features=3, out_features=4, bias=True)" in text
    assert "(2): Dropout(p=0.1)" in text


def test_shared_parameter_listed_once_and_nonleaf_rejected():
    a = nn.Linear(2, 2, rng=0)
    m = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(m.parameters())) == 2
    with pytest.raises(ValueError, match="must be a leaf tensor"):
        a.weight = a.weight * 2


def test_init_is_reproducible_and_scaled():
    w1 = nn.MLP([64, 256, 10], rng=7)[0].weight.data
    w2 = nn.MLP([64, 256, 10], rng=7)[0].weight.data
    w3 = nn.MLP([64, 256, 10], rng=8)[0].weight.data
    np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(w1, w3)
    bound = np.sqrt(6 / 64)  # Kaiming uniform for ReLU: gain sqrt(2) * sqrt(3 / fan_in)
    assert np.abs(w1).max() <= bound and np.abs(w1).max() > 0.95 * bound
    nn.manual_seed(3)
    a = nn.Linear(5, 5).weight.data
    nn.manual_seed(3)
    np.testing.assert_array_equal(a, nn.Linear(5, 5).weight.data)
    t = nn.init.xavier_uniform_(cr.tensor(np.zeros((300, 200)), requires_grad=True), rng=0)
    assert abs(t.data.std() - np.sqrt(2 / 500)) < 0.003  # Var U(-b, b) = b²/3 = 2 / (fan_in + fan_out)
    assert nn.MLP([4, 8, 2], activation="tanh")[0].weight.dtype == np.float32
    assert isinstance(nn.MLP([4, 8, 2], activation=nn.Sigmoid)[1], nn.Sigmoid)
    with pytest.raises(TypeError, match="activation must be a name"):
        nn.MLP([4, 8, 2], activation=cr.relu)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        nn.MLP([4, 8, 2], activation="gelu")


def test_module_to_double_keeps_identity():
    m = nn.Linear(3, 2, rng=0)
    w = m.weight
    m.double()
    assert m.weight is w and w.dtype == np.float64


def test_deepcopy_gives_an_independent_model():
    import copy

    m = nn.MLP([3, 4, 2], rng=0)
    snapshot = copy.deepcopy(m)
    with cr.no_grad():
        m[0].weight.zero_()
    assert np.abs(snapshot[0].weight.data).sum() > 0
    assert [n for n, _ in snapshot.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
