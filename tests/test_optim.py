"""cr.optim against torch.optim: same parameters, same gradients, same updates, step after step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import optim

SHAPES = [(3, 4), (4,), ()]

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.03, "betas": (0.85, 0.95), "weight_decay": 0.2}),
]


def make_pair(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=s) if s else float(rng.normal()) for s in shapes]  # () -> a Python float
    ours = [cr.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    return ours, theirs


def set_grads(ours, theirs, rng):
    for p, tp in zip(ours, theirs):
        g = rng.normal(size=p.shape)
        p.grad = cr.tensor(g)
        tp.grad = torch.tensor(g, dtype=torch.float64)


def assert_same(ours, theirs, atol=1e-12):
    for p, tp in zip(ours, theirs):
        # (numpy(): a copy; reading .data would move a Python-float value into an array it can share)
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), atol=atol, rtol=1e-10)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_steps_match_torch(name, kwargs):
    ours, theirs = make_pair()
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    rng = np.random.default_rng(1)
    for _ in range(6):
        set_grads(ours, theirs, rng)
        opt.step()
        ref.step()
        assert_same(ours, theirs)
    assert type(ours[2]._data) is float  # the scalar parameter keeps the scalar fast path


def test_parameter_groups_match_torch():
    ours, theirs = make_pair()
    opt = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.01, "momentum": 0.5}], lr=0.2)
    ref = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.01, "momentum": 0.5}], lr=0.2)
    rng = np.random.default_rng(2)
    for _ in range(4):
        set_grads(ours, theirs, rng)
        opt.step()
        ref.step()
    assert_same(ours, theirs)
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[0]["momentum"] == 0.0


def test_step_skips_missing_grads_records_nothing_and_bumps_version():
    p = cr.tensor(np.ones(3), requires_grad=True)
    q = cr.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p, q], lr=0.5)
    y = (p * p).sum()  # saves p for its backward
    y.backward(retain_graph=True)
    v = p._version
    opt.step()
    assert p._version > v
    np.testing.assert_allclose(p.data, 0.0)  # 1 - 0.5 * 2
    np.testing.assert_allclose(q.data, 1.0)  # no grad: untouched
    assert p.is_leaf and p._node is None
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()  # the engine sees that p changed after it was saved
    opt.zero_grad()
    assert p.grad is None


def test_float32_parameters_stay_float32():
    p = cr.tensor(np.ones(4, np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    p.grad = cr.tensor(np.full(4, 0.5, np.float32))
    opt.step()
    assert p.dtype == np.float32
    assert opt.state[id(p)]["exp_avg"].dtype == np.float32


@pytest.mark.parametrize("name,kwargs", [CONFIGS[3], CONFIGS[5], CONFIGS[7]])
def test_state_dict_resume_continues_exactly(name, kwargs):
    ours, theirs = make_pair(3)
    straight, _ = make_pair(3)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(optim, name)(straight, **kwargs)
    for _ in range(3):
        set_grads(ours, theirs, rng_a)
        opt.step()
        set_grads(straight, theirs, rng_b)
        ref.step()
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2] and sd["param_groups"][0]["params"] == [0, 1, 2]
    fresh = getattr(optim, name)(ours, **{**kwargs, "lr": 123.0})
    fresh.load_state_dict(cr.load(_roundtrip(sd)))  # through a checkpoint file, too
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(3):
        set_grads(ours, theirs, rng_a)
        fresh.step()
        set_grads(straight, theirs, rng_b)
        ref.step()
    for p, s in zip(ours, straight):
        np.testing.assert_array_equal(p.data, s.data)


def _roundtrip(obj):
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".npz")
    os.close(fd)
    cr.save(obj, path)
    return path


def test_state_dict_is_a_copy_and_mismatch_is_rejected():
    ours, _ = make_pair()
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    for p in ours:
        p.grad = cr.tensor(np.ones(p.shape))
    opt.step()
    sd = opt.state_dict()
    buf = sd["state"][0]["momentum_buffer"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], buf)
    other, _ = make_pair(shapes=[(4, 3), (4,), ()])
    opt2 = optim.SGD(other, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"momentum_buffer' of parameter 0 has shape \(3, 4\).*\(4, 3\)"):
        opt2.load_state_dict(sd)
    assert opt2.state == {}  # unchanged
    with pytest.raises(ValueError, match="2 parameters in the state dict but 3 here"):
        optim.SGD(ours, lr=1).load_state_dict({"state": {}, "param_groups": [{"lr": 1, "params": [0, 1]}]})


def test_load_state_dict_checks_settings_as_the_constructor_does():
    p = cr.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    sd = opt.state_dict()
    for key, value, message in [
        ("betas", (2.0, -1.0), r"betas must lie in \[0, 1\)"),
        ("lr", -1.0, "lr must be >= 0"),
        ("eps", "tiny", "wrong type"),
        ("amsgrad", True, "unknown options"),
    ]:
        bad = {**sd, "param_groups": [{**sd["param_groups"][0], key: value}]}
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(bad)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["lr"] == 0.1  # unchanged


def test_constructor_errors():
    p = cr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="appears in more than one place"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="must be a leaf tensor with requires_grad=True"):
        optim.Adam([p * 2])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"unknown options \['momentum'\]"):
        optim.Adam([{"params": [p], "momentum": 0.9}])
    with pytest.raises(ValueError, match="betas must lie in"):
        optim.Adam([p], betas=(0.9, 1.5))


@pytest.mark.parametrize(
    "ours_cls,theirs_cls,kwargs",
    [
        (optim.StepLR, torch.optim.lr_scheduler.StepLR, {"step_size": 3, "gamma": 0.5}),
        (optim.CosineAnnealingLR, torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": 7, "eta_min": 0.001}),
    ],
)
def test_schedules_match_torch(ours_cls, theirs_cls, kwargs):
    ours, theirs = make_pair()
    opt = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.3}], lr=0.1)
    ref = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.3}], lr=0.1)
    sched, ref_sched = ours_cls(opt, **kwargs), theirs_cls(ref, **kwargs)
    for _ in range(10):
        np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(), rtol=1e-12, atol=1e-15)
        ref.step()
        sched.step()
        ref_sched.step()
    resumed = ours_cls(optim.SGD(ours, lr=9.0), **kwargs)
    resumed.optimizer.param_groups[0]["initial_lr"] = 0.1
    resumed.load_state_dict({**sched.state_dict(), "base_lrs": [0.1]})
    assert resumed.get_last_lr()[0] == pytest.approx(sched.get_last_lr()[0])
    assert optim.lr_scheduler.StepLR is optim.StepLR


@pytest.mark.parametrize(
    "name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}), ("AdamW", {"lr": 0.01})]
)
def test_whole_training_steps_match_torch(name, kwargs):
    """MLP forward, cross-entropy, backward and the optimizer step, five times, against PyTorch."""
    model = cr.nn.MLP([6, 8, 4], activation="tanh", rng=0, dtype=np.float64)
    linears = [m for m in model if isinstance(m, cr.nn.Linear)]
    ref_layers = []
    for lin in linears:
        r = torch.nn.Linear(lin.in_features, lin.out_features, dtype=torch.float64)
        with torch.no_grad():
            r.weight.copy_(torch.from_numpy(lin.weight.data))
            r.bias.copy_(torch.from_numpy(lin.bias.data))
        ref_layers.append(r)
    ref = torch.nn.Sequential(ref_layers[0], torch.nn.Tanh(), ref_layers[1])
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    ref_opt = getattr(torch.optim, name)(ref.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=(10, 6)), rng.integers(0, 4, size=10)
        loss = cr.nn.cross_entropy(model(x), y)
        ref_loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-12)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
    for (_, p), tp in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
