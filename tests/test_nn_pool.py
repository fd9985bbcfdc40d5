"""Max pooling over non-overlapping windows (primitives/pool.py) against torch: ties, signed zeros, NaN, edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.primitives import pool
from chainrule.tensor import apply

F = cr.nn.functional
TF = torch.nn.functional


def _pick(x, kernel):
    """The pick primitive as max_pool2d records it under cr.compile's tracer (stride = kernel, no padding)."""
    k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    if x.ndim == 3:
        return apply(pool.max_pool2d_pick, x.reshape((1,) + x.shape), x.reshape((1,) + x.shape), k).reshape(
            x.shape[:1] + tuple(s // kk for s, kk in zip(x.shape[1:], k))
        )
    return apply(pool.max_pool2d_pick, x, x, k)


def _both(x, kernel, seed=0):
    """Forward values and input gradients of the pick primitive and of torch's max_pool2d, for one upstream gradient."""
    g = np.random.default_rng(seed).standard_normal(TF.max_pool2d(torch.tensor(x), kernel).shape).astype(x.dtype)
    ours = cr.tensor(x, requires_grad=True)
    out = _pick(ours, kernel)
    out.backward(g)
    theirs = torch.tensor(x, requires_grad=True)
    ref = TF.max_pool2d(theirs, kernel)
    ref.backward(torch.tensor(g))
    return out.data, ref.detach().numpy(), ours.grad.data, theirs.grad.numpy()


def test_ties_after_relu_send_the_gradient_to_the_first_maximum_as_torch():
    x = np.maximum(np.random.default_rng(0).integers(-2, 2, (2, 3, 6, 8)).astype(np.float32), 0)
    out, ref, gx, tgx = _both(x, 2)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(gx, tgx)


@pytest.mark.parametrize("kernel", [(2, 2), (3, 2), (1, 3)])
def test_signed_zeros_are_the_first_maximum_s_bit_for_bit(kernel):
    rng = np.random.default_rng(1)
    x = np.where(rng.random((2, 2, 6, 6)) < 0.5, -0.0, 0.0).astype(np.float32)
    out, ref, gx, tgx = _both(x, kernel)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(ref))
    np.testing.assert_array_equal(gx, tgx)


def test_nan_wins_its_window_and_partial_windows_are_dropped():
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 7)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    out, ref, gx, tgx = _both(x, 2)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(out[~np.isnan(out)], ref[~np.isnan(ref)])
    assert np.isnan(out[0, 0, 0, 0])
    np.testing.assert_array_equal(gx[:, :, 4:, :], 0)  # the last row and column are in no whole window
    np.testing.assert_array_equal(gx[:, :, :, 6:], 0)
    np.testing.assert_array_equal(gx[~np.isnan(x)], tgx[~np.isnan(x)])


def test_unbatched_float64_and_second_order_match_torch():
    x = np.random.default_rng(3).standard_normal((3, 4, 6))
    ours = cr.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    (g,) = cr.autograd_grad(cr.sum(_pick(ours, (2, 3)) ** 3), [ours], create_graph=True)
    (tg,) = torch.autograd.grad((TF.max_pool2d(theirs, (2, 3)) ** 3).sum(), [theirs], create_graph=True)
    np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-12)
    (gg,) = cr.autograd_grad(cr.sum(g * g), [ours])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [theirs])
    np.testing.assert_allclose(gg.data, tgg.numpy(), rtol=1e-12)


def test_the_pick_is_recorded_under_compile_and_the_index_form_eagerly():
    x = cr.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    assert F.max_pool2d(x, 2).op != "max_pool2d_pick"  # eagerly: the index form cr.derive explains
    seen = []

    def step(t):
        out = F.max_pool2d(t, 2)
        seen.append(out.op)
        return cr.sum(out)

    compiled = cr.compile(step)
    compiled(cr.tensor(np.random.default_rng(0).standard_normal((1, 1, 4, 4))))
    assert "max_pool2d_pick" in seen  # traced: no index read from the values, so the replay can repeat it


def test_a_planted_last_maximum_is_caught(monkeypatch):
    """The tie test can fail: a first-maximum rule that picks the last maximum sends gradients elsewhere."""
    real = pool._first_hits

    def last(x, kernel):  # the first maximum of the mirrored image is the last one here
        return [h[:, :, ::-1, ::-1] for h in real(x[:, :, ::-1, ::-1], kernel)[::-1]]

    monkeypatch.setattr(pool, "_first_hits", last)
    x = np.maximum(np.random.default_rng(0).integers(-2, 2, (2, 3, 6, 8)).astype(np.float32), 0)
    _, _, gx, tgx = _both(x, 2)
    assert not np.array_equal(gx, tgx)
