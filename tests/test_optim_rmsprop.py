"""RMSprop, ExponentialLR and ReduceLROnPlateau against torch.optim on the same problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr


def _quadratic_runs(make_ours, make_theirs, steps=6):
    """Minimize ``sum((A w - b)²)`` with both libraries; the parameter trajectories must agree."""
    rng = np.random.default_rng(0)
    a, b, w0 = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal(3)
    w = cr.tensor(w0.copy(), requires_grad=True)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    opt, topt = make_ours([w]), make_theirs([tw])
    for _ in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        cr.sum((cr.matmul(cr.tensor(a), w) - b) ** 2).backward()
        ((torch.tensor(a) @ tw - torch.tensor(b)) ** 2).sum().backward()
        opt.step()
        topt.step()
        np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    return opt, topt


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"alpha": 0.9, "eps": 1e-6},
        {"momentum": 0.8},
        {"centered": True},
        {"centered": True, "momentum": 0.5, "weight_decay": 0.1},
    ],
    ids=["defaults", "alpha eps", "momentum", "centered", "everything"],
)
def test_rmsprop_matches_torch(kwargs):
    opt, topt = _quadratic_runs(
        lambda p: cr.optim.RMSprop(p, lr=0.01, **kwargs), lambda p: torch.optim.RMSprop(p, lr=0.01, **kwargs)
    )
    state = opt.state_dict()["state"][0]
    assert set(state) == set(topt.state_dict()["state"][0])  # same state entries, same names
    np.testing.assert_allclose(state["square_avg"], topt.state_dict()["state"][0]["square_avg"].numpy(), rtol=1e-10)


def test_rmsprop_state_dict_resume_and_errors():
    w = cr.tensor(np.ones(2), requires_grad=True)
    opt = cr.optim.RMSprop([w], lr=0.1, momentum=0.9)
    for _ in range(2):
        w.grad = cr.tensor(np.array([1.0, -2.0]))
        opt.step()
    twin_w = cr.tensor(w.data.copy(), requires_grad=True)
    twin = cr.optim.RMSprop([twin_w], lr=0.1, momentum=0.9)
    twin.load_state_dict(opt.state_dict())
    for p, o in ((w, opt), (twin_w, twin)):
        p.grad = cr.tensor(np.array([0.5, 0.5]))
        o.step()
    np.testing.assert_array_equal(w.data, twin_w.data)
    with pytest.raises(ValueError, match="alpha must lie in"):
        cr.optim.RMSprop([w], alpha=2.0)


def test_exponential_lr_matches_torch():
    w, tw = cr.tensor(np.ones(1), requires_grad=True), torch.ones(1, requires_grad=True)
    opt, topt = cr.optim.SGD([w], lr=0.5), torch.optim.SGD([tw], lr=0.5)
    s, ts = cr.optim.lr_scheduler.ExponentialLR(opt, 0.7), torch.optim.lr_scheduler.ExponentialLR(topt, 0.7)
    for _ in range(4):
        opt.step()
        topt.step()
        s.step()
        ts.step()
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "max", "factor": 0.5, "patience": 1},
        {"patience": 0, "cooldown": 2, "min_lr": 0.02},
        {"threshold_mode": "abs", "threshold": 0.05, "patience": 1},
    ],
    ids=["defaults", "max", "cooldown min_lr", "abs threshold"],
)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.95, 0.96, 0.89, 0.9, 0.9, 0.91, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1] * 2
    w, tw = cr.tensor(np.ones(1), requires_grad=True), torch.ones(1, requires_grad=True)
    opt = cr.optim.SGD([w, cr.tensor(np.ones(1), requires_grad=True)], lr=0.1)
    topt = torch.optim.SGD([tw, torch.ones(1, requires_grad=True)], lr=0.1)
    s = cr.optim.ReduceLROnPlateau(opt, **kwargs)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    for m in metrics:
        s.step(m)
        ts.step(m)
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        assert s.num_bad_epochs == ts.num_bad_epochs
    restored = cr.optim.ReduceLROnPlateau(opt, **kwargs)
    restored.load_state_dict(s.state_dict())
    assert restored.best == s.best and restored.cooldown_counter == s.cooldown_counter


def test_reduce_lr_on_plateau_errors():
    opt = cr.optim.SGD([cr.tensor(np.ones(1), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="factor must lie in"):
        cr.optim.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        cr.optim.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="expected 1 min_lr values"):
        cr.optim.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])
