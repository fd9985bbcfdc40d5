"""Issue 25's silent differences: shapes torch broadcasts in a loss, and the dtype of clip_grad_norm_'s result."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import chainrule as cr
import chainrule.nn.functional as F

PRED = np.arange(6, dtype=np.float32).reshape(6, 1)
TARGET = np.arange(6, dtype=np.float32)[::-1].copy()


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_a_loss_of_n_by_1_against_n_is_refused_where_torch_broadcasts(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        broadcast = getattr(torch.nn.functional, name)(torch.tensor(PRED), torch.tensor(TARGET))
    assert any("different to the input size" in str(w.message) for w in caught)  # torch: N x N, with a warning
    elementwise = getattr(torch.nn.functional, name)(torch.tensor(PRED[:, 0]), torch.tensor(TARGET))
    assert not np.isclose(broadcast.item(), elementwise.item())  # so neither answer may be given silently
    with pytest.raises(ValueError, match=r"\(6, 1\).*\(6,\).*torch broadcasts.*squeeze\(-1\)"):
        getattr(F, name)(cr.tensor(PRED), cr.tensor(TARGET))
    ours = getattr(F, name)(cr.tensor(PRED).squeeze(-1), cr.tensor(TARGET))
    np.testing.assert_allclose(ours.item(), elementwise.item(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_returns_the_gradients_dtype_and_torchs_value(dtype, norm_type):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)]
    ours = [cr.tensor(g * 0, requires_grad=True) for g in grads]
    theirs = [torch.tensor(g * 0, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = cr.tensor(g.copy()), torch.tensor(g.copy())
    n_ours = cr.nn.utils.clip_grad_norm_(ours, 0.5, norm_type)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type)
    assert n_ours.dtype == np.dtype(dtype) and str(n_theirs.dtype) == f"torch.{np.dtype(dtype).name}"
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(n_ours.item(), n_theirs.item(), rtol=rtol)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=rtol)
