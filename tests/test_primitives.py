"""Every registered primitive: gradcheck against finite differences and agreement with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.primitive import REGISTRY

from .cases import CASES

ALL_CASES = [
    pytest.param(name, case, id=f"{name}-{case.label or i}")
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
]


def test_every_primitive_has_cases():
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"primitives without test cases in tests/cases.py: {missing}"
    unknown = sorted(set(CASES) - set(REGISTRY))
    assert not unknown, f"cases for primitives that are not registered: {unknown}"


def test_every_primitive_has_rules_and_no_second_copy_of_its_formulas():
    for name, prim in REGISTRY.items():
        assert prim.vjps, f"{name} has no VJP rules"
        assert any(r is not None for r in prim.vjps), name
        # the trace prints each rule run on symbols (tests/test_trace_formulas.py checks every primitive's
        # printed formula against central differences); no hand-written formula string may drift beside it
        assert not hasattr(prim, "local"), f"{name} carries a hand-written formula"


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_gradcheck(name, case):
    rng = np.random.default_rng(abs(hash((name, case.label))) % 2**32)
    inputs = case.inputs(rng)
    assert cr.gradcheck(case.fn, *inputs, eps=case.fd_eps, atol=1e-5 if case.fd_eps < 1e-3 else 1e-3)


def _used_prims(case, inputs):
    ts = [cr.tensor(x, requires_grad=True) for x in inputs]
    out = case.fn(*ts)
    return out


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_matches_torch(name, case):
    rng = np.random.default_rng(1234)
    inputs = case.inputs(rng)
    ours = [cr.tensor(x, requires_grad=True) for x in inputs]
    theirs = [torch.tensor(x, requires_grad=True) for x in inputs]
    out = case.fn(*ours)
    ref = case.torch_fn(*theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    seed = rng.standard_normal(ref.shape)
    out.backward(seed)
    ref.backward(torch.tensor(seed))
    for mine, t in zip(ours, theirs):
        expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        got = np.zeros(mine.shape) if mine.grad is None else mine.grad.data
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_float32_stays_float32(name, case):
    rng = np.random.default_rng(7)
    inputs = case.inputs(rng, dtype=np.float32)
    ts = [cr.tensor(x, requires_grad=True) for x in inputs]
    out = case.fn(*ts)
    if name != "astype":
        assert out.dtype == np.float32, f"{name} forward gave {out.dtype}"
    out.backward(np.ones(out.shape, dtype=out.dtype))
    for t in ts:
        assert t.grad is not None and t.grad.dtype == np.float32


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_second_order_matches_torch(name, case):
    """create_graph=True: differentiate <grad, v> again, compare with torch double backward."""
    rng = np.random.default_rng(99)
    inputs = case.inputs(rng)
    ours = [cr.tensor(x, requires_grad=True) for x in inputs]
    theirs = [torch.tensor(x, requires_grad=True) for x in inputs]
    out, ref = case.fn(*ours), case.torch_fn(*theirs)
    seed = rng.standard_normal(ref.shape)
    gs = cr.autograd_grad(out, ours, grad_outputs=seed, create_graph=True, allow_unused=True)
    tgs = torch.autograd.grad(ref, theirs, grad_outputs=torch.tensor(seed), create_graph=True, allow_unused=True)
    vs = [rng.standard_normal(x.shape) for x in inputs]
    total = sum(((g * v).sum() for g, v in zip(gs, vs) if g is not None and g.requires_grad), cr.tensor(0.0))
    ttotal = sum(
        ((g * torch.tensor(v)).sum() for g, v in zip(tgs, vs) if g is not None and g.requires_grad),
        torch.tensor(0.0, dtype=torch.float64),
    )
    if not total.requires_grad:
        # our rules produced a constant (e.g. relu's mask): torch's second derivative must be zero
        if ttotal.requires_grad:
            for e in torch.autograd.grad(ttotal, theirs, allow_unused=True):
                assert e is None or not e.any()
        return
    got = cr.autograd_grad(total, ours, allow_unused=True)
    expected = torch.autograd.grad(ttotal, theirs, allow_unused=True)
    for g, e, x in zip(got, expected, inputs):
        g = np.zeros(x.shape) if g is None else g.data
        e = np.zeros(x.shape) if e is None else e.numpy(force=True)  # force: torch may give a ZeroTensor
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


SCALAR_OPS = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: abs(a) ** b),
    ("maximum", cr.maximum),
    ("minimum", cr.minimum),
    ("exp", lambda a, b: cr.exp(a) * b),
    ("log", lambda a, b: cr.log(abs(a)) * b),
    ("log1p", lambda a, b: cr.log1p(abs(a)) * b),
    ("sqrt", lambda a, b: cr.sqrt(abs(a)) * b),
    ("sin", lambda a, b: cr.sin(a) * b),
    ("cos", lambda a, b: cr.cos(a) * b),
    ("tanh", lambda a, b: cr.tanh(a) * b),
    ("sigmoid", lambda a, b: cr.sigmoid(a) * b),
    ("relu", lambda a, b: cr.relu(a) * b),
    ("neg", lambda a, b: -a * b),
]


@pytest.mark.parametrize("name,fn", SCALAR_OPS, ids=[n for n, _ in SCALAR_OPS])
def test_scalar_fast_path_matches_array_path(name, fn):
    """Python floats (math module) and 0-d float64 arrays give the same values and gradients."""
    for a, b in [(0.7, -1.3), (-2.5, 0.4), (1.5, 1.5)]:
        sa, sb = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
        assert type(sa._data) is float
        out = fn(sa, sb)
        assert type(out._data) is float
        out.backward()
        arr_a = cr.tensor(np.array([a]), requires_grad=True)
        arr_b = cr.tensor(np.array([b]), requires_grad=True)
        ref = fn(arr_a, arr_b)
        ref.backward(np.ones(1))
        # math and NumPy may round the last bit differently (tanh); gradients amplify that a little
        np.testing.assert_allclose(out.item(), ref.data[0], rtol=1e-15)
        np.testing.assert_allclose(sa.grad.item(), arr_a.grad.data[0], rtol=1e-14)
        np.testing.assert_allclose(sb.grad.item(), arr_b.grad.data[0], rtol=1e-14)


def test_scalar_path_matches_numpy_at_domain_edges():
    """Where the math module raises, the scalar path falls back to IEEE results like NumPy."""
    with np.errstate(all="ignore"):
        assert cr.log(cr.tensor(0.0)).item() == -np.inf
        assert np.isnan(cr.sqrt(cr.tensor(-1.0)).item())
        assert cr.exp(cr.tensor(1000.0)).item() == np.inf
        assert (cr.tensor(1.0) / cr.tensor(0.0)).item() == np.inf
        assert np.isnan((cr.tensor(-8.0) ** (1 / 3)).item())
        x = cr.tensor(0.0, requires_grad=True)
        (1 / x).backward()
        assert x.grad.item() == -np.inf


@pytest.mark.parametrize(
    "fn,tfn,data",
    [
        (lambda x: x.max(), lambda x: x.amax(), [1.0, 3.0, 3.0, 2.0]),
        (lambda x: x.min(axis=0), lambda x: x.amin(dim=0), [[1.0, 2.0], [1.0, 5.0]]),
        (
            lambda x: cr.maximum(x, 0.0).sum(),
            lambda x: torch.maximum(x, torch.tensor(0.0, dtype=x.dtype)).sum(),
            [-1.0, 0.0, 2.0],
        ),
        (lambda x: cr.minimum(x, x * 1.0).sum(), lambda x: torch.minimum(x, x * 1.0).sum(), [1.0, -2.0]),
        (lambda x: cr.relu(x).sum(), lambda x: torch.relu(x).sum(), [-1.0, 0.0, 1.0]),
        (lambda x: abs(x).sum(), lambda x: x.abs().sum(), [-1.0, 0.0, 1.0]),
        (lambda x: cr.clip(x, 0.0, 1.0).sum(), lambda x: x.clamp(0.0, 1.0).sum(), [0.0, 0.5, 1.0, 2.0]),
    ],
    ids=["max-tie", "min-tie-axis", "maximum-at-0", "minimum-self", "relu-at-0", "abs-at-0", "clip-edges"],
)
def test_ties_and_kinks_match_torch(fn, tfn, data):
    x = cr.tensor(data, requires_grad=True)
    t = torch.tensor(data, dtype=torch.float64, requires_grad=True)
    out, ref = fn(x), tfn(t)
    out.backward(np.ones(out.shape))
    ref.backward(torch.ones_like(ref))
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())


def test_stable_at_extreme_magnitudes():
    big = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    for fn, tfn in [
        (cr.sigmoid, torch.sigmoid),
        (lambda x: cr.softmax(x, axis=0), lambda x: torch.softmax(x, dim=0)),
        (lambda x: cr.log_softmax(x, axis=0), lambda x: torch.log_softmax(x, dim=0)),
        (lambda x: cr.logsumexp(x), lambda x: torch.logsumexp(x, dim=0)),
    ]:
        x = cr.tensor(big, requires_grad=True)
        t = torch.tensor(big, requires_grad=True)
        out, ref = fn(x), tfn(t)
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-13)
        seed = np.linspace(-1, 1, out.size).reshape(out.shape)
        out.backward(seed)
        ref.backward(torch.tensor(seed))
        assert np.all(np.isfinite(x.grad.data))
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-12, atol=1e-300)
