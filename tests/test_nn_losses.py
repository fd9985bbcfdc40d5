"""CrossEntropyLoss (every option), NLLLoss, BCEWithLogitsLoss, MSELoss, L1Loss against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F

TF = torch.nn.functional
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}
RNG = np.random.default_rng(11)
W4 = np.array([0.5, 2.0, 1.0, 3.0])


def check(ours_fn, torch_fn, x, target, dtype, **kwargs):
    """Loss values and input gradients agree; ``kwargs`` go to both (arrays become tensors for torch)."""
    xi = cr.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    tkw = {k: torch.tensor(v.astype(dtype)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tt = torch.tensor(target.astype(dtype) if target.dtype.kind == "f" else target)
    out = ours_fn(xi, target.astype(dtype) if target.dtype.kind == "f" else target, **kwargs)
    ref = torch_fn(xt, tt, **tkw)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL[dtype])
    assert out.dtype == dtype
    g = RNG.standard_normal(ref.shape).astype(dtype)
    out.backward(g if out.shape else None)
    ref.backward(torch.tensor(g) if ref.shape else None)
    np.testing.assert_allclose(xi.grad.data, xt.grad.numpy(), **TOL[dtype])


CE_CASES = {
    "plain": ((5, 4), np.array([1, 0, 3, 2, 2]), {}),
    "weight": ((5, 4), np.array([1, 0, 3, 2, 2]), {"weight": W4}),
    "ignore_index": ((5, 4), np.array([1, -100, 3, 2, -100]), {}),
    "ignore 2 and weight": ((5, 4), np.array([1, 2, 3, 2, 0]), {"ignore_index": 2, "weight": W4}),
    "label smoothing": ((5, 4), np.array([1, 0, 3, 2, 2]), {"label_smoothing": 0.2}),
    "smoothing, weight, ignore": (
        (5, 4),
        np.array([1, -100, 3, 2, 0]),
        {"label_smoothing": 0.1, "weight": W4},
    ),
    "unbatched (C,)": ((4,), np.array(2), {}),
    "K-dim (N, C, d1, d2)": ((2, 4, 3, 2), RNG.integers(0, 4, size=(2, 3, 2)), {"weight": W4}),
    "K-dim smoothing": ((2, 4, 3), RNG.integers(0, 4, size=(2, 3)), {"label_smoothing": 0.3}),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label", list(CE_CASES))
def test_cross_entropy_class_indices_match_torch(label, reduction, dtype):
    shape, target, kwargs = CE_CASES[label]
    x = RNG.standard_normal(shape) * 2
    check(F.cross_entropy, TF.cross_entropy, x, target, dtype, reduction=reduction, **kwargs)
    module = nn.CrossEntropyLoss(reduction=reduction, **kwargs)
    ref = torch.nn.CrossEntropyLoss(
        reduction=reduction, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    )
    assert list(module.state_dict()) == list(ref.state_dict())  # the class weights are a buffer in both
    np.testing.assert_allclose(
        module(cr.tensor(x), target).data, ref(torch.tensor(x), torch.tensor(target)).numpy(), rtol=1e-10
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kwargs", [{}, {"weight": W4}, {"label_smoothing": 0.25, "weight": W4}], ids=["plain", "weight", "smooth+weight"]
)
def test_cross_entropy_probability_targets_match_torch(kwargs, dtype):
    x = RNG.standard_normal((3, 4, 2))
    p = RNG.uniform(size=(3, 4, 2))
    p /= p.sum(axis=1, keepdims=True)
    for reduction in ("mean", "sum", "none"):
        check(F.cross_entropy, TF.cross_entropy, x, p, dtype, reduction=reduction, **kwargs)


def test_cross_entropy_all_ignored_is_nan_as_torch():
    x = RNG.standard_normal((2, 3))
    y = np.array([-100, -100])
    assert np.isnan(F.cross_entropy(x, y).item()) and torch.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(y)))


def test_cross_entropy_errors():
    z = cr.tensor(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="third argument is weight"):
        F.cross_entropy(z, np.array([0, 1, 2]), "sum")
    with pytest.raises(ValueError, match=r"weight must have one entry per class, shape \(4,\)"):
        F.cross_entropy(z, np.array([0, 1, 2]), np.ones(3))
    with pytest.raises(ValueError, match="size_average and reduce are deprecated"):
        F.cross_entropy(z, np.array([0, 1, 2]), reduce=False)
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 3\)"):
        F.cross_entropy(cr.tensor(np.zeros((2, 4, 3))), np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        F.cross_entropy(z, np.array([0, 1, 2]), label_smoothing=1.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nll_loss_matches_torch(dtype):
    logp = np.log(RNG.dirichlet(np.ones(4), size=5))
    y = np.array([0, 3, -100, 1, 1])
    for reduction in ("mean", "sum", "none"):
        check(F.nll_loss, TF.nll_loss, logp, y, dtype, reduction=reduction, weight=W4)
    np.testing.assert_allclose(
        nn.NLLLoss()(cr.tensor(logp), y).data, torch.nn.NLLLoss()(torch.tensor(logp), torch.tensor(y)).numpy()
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_weight_and_pos_weight_match_torch(reduction, dtype):
    x = np.concatenate([RNG.standard_normal((4, 3)) * 3, [[0.0, 60.0, -60.0]]])
    y = RNG.uniform(size=(5, 3))
    kwargs = dict(weight=RNG.uniform(0.5, 2, size=(5, 3)), pos_weight=np.array([1.0, 3.0, 0.5]))
    check(
        F.binary_cross_entropy_with_logits,
        TF.binary_cross_entropy_with_logits,
        x,
        y,
        dtype,
        reduction=reduction,
        **kwargs,
    )
    ours = nn.BCEWithLogitsLoss(pos_weight=kwargs["pos_weight"], reduction=reduction)
    ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(kwargs["pos_weight"]), reduction=reduction)
    np.testing.assert_allclose(ours(cr.tensor(x), y).data, ref(torch.tensor(x), torch.tensor(y)).numpy(), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_l1_modules_match_torch(reduction, dtype):
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    b[0, 0] = a[0, 0]  # a zero difference: l1's gradient there is 0, as torch's sign(0)
    check(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), a, b, dtype)
    check(nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction), a, b, dtype)
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")
