"""cr.nn.utils: clip_grad_norm_, clip_grad_value_ and parameter vectors against torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn


def _pairs(scale):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 2)) * scale, rng.standard_normal(4) * scale, np.array(scale)]
    ours, theirs = [], []
    for g in grads:
        p = cr.tensor(np.zeros(g.shape), requires_grad=True)
        p.grad = cr.tensor(g.copy())
        t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.tensor(g.copy())
        ours.append(p)
        theirs.append(t)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3])
@pytest.mark.parametrize("scale", [0.01, 10.0], ids=["below max_norm", "clipped"])
def test_clip_grad_norm_matches_torch(norm_type, scale):
    ours, theirs = _pairs(scale)
    total = nn.utils.clip_grad_norm_(ours, max_norm=1.5, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_nonfinite_and_value_clipping():
    ours, _ = _pairs(1.0)
    ours[0].grad = cr.tensor(np.full((3, 2), np.inf))
    with pytest.raises(RuntimeError, match="error_if_nonfinite=False"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    ours, theirs = _pairs(3.0)
    nn.utils.clip_grad_value_(ours, 0.5)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.data, t.grad.numpy())


def test_parameters_to_vector_round_trip():
    model = nn.MLP([3, 4, 2], rng=0)
    vec = nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    nn.utils.vector_to_parameters(vec.data * 0 + 1.0, model.parameters())
    assert all(np.all(p.data == 1.0) for p in model.parameters())
    with pytest.raises(ValueError, match="expected a 1-D vector of 26 values"):
        nn.utils.vector_to_parameters(np.ones(3), model.parameters())
