"""Hooks and retain_grad on tensors that fan out: they run once, with the whole gradient, as in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr

rng = np.random.default_rng(11)
W0, X0 = rng.standard_normal((4, 5)), rng.standard_normal((3, 4))


def _makemore_style(lib, tensor):
    """logits used by max (through a view) and by the subtraction: the makemore notebooks' pattern."""
    W = tensor(W0, requires_grad=True)
    x = tensor(X0)
    logits = x @ W
    maxes = logits.max(1, keepdim=True).values
    norm = logits - maxes
    for t in (logits, maxes, norm):
        t.retain_grad()
        assert t.retains_grad
    (norm.exp() * lib.tensor(np.linspace(0.5, 1.5, 15).reshape(3, 5))).sum().backward()
    return W, logits, maxes, norm


def test_retain_grad_on_tensors_used_twice_matches_torch():
    ours = _makemore_style(cr, cr.tensor)
    theirs = _makemore_style(torch, lambda d, requires_grad=False: torch.tensor(d, requires_grad=requires_grad))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("lib", ["cr", "torch"])
def test_a_hook_on_a_fanned_out_tensor_runs_once_with_the_whole_gradient(lib):
    make = cr.tensor if lib == "cr" else torch.tensor
    x = make(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    h = x * 2.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    h.register_hook(lambda g: g * 10.0)  # replaces the gradient for what follows
    h.retain_grad()  # torch: retain_grad's hook runs last, after the replacement
    y = (h * h).sum() + (h * 3.0).sum() + h.exp().sum()
    y.backward()
    assert len(seen) == 1
    whole = 2 * np.array([2.0, -4.0, 6.0]) + 3.0 + np.exp([2.0, -4.0, 6.0])
    np.testing.assert_allclose(seen[0], whole)
    np.testing.assert_allclose(h.grad.numpy(), 10.0 * whole)
    np.testing.assert_allclose(x.grad.numpy(), 20.0 * whole)


def test_retain_grad_twice_keeps_one_gradient():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.data)
