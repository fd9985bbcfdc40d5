"""The eager engine's fast paths for training (issue 15): fused nn.Linear and in-place SGD.

They must give exactly what the plain formulation gives: bitwise, not just close.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import SGD


def _plain_linear(layer, x):
    return cr.matmul(x, layer.weight.T) + layer.bias


@pytest.mark.parametrize("shape", [(6, 5), (5,), (2, 3, 5)])
def test_fused_linear_equals_matmul_plus_bias_bitwise(shape):
    rng = np.random.default_rng(0)
    layer = cr.nn.Linear(5, 4, rng=1)
    layer.bias.data = rng.standard_normal(4).astype(np.float32)
    x = cr.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    y = layer(x)
    assert y.op == "linear"
    seed = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(seed)
    got = [x.grad.data.copy(), layer.weight.grad.data.copy(), layer.bias.grad.data.copy()]
    x.grad = layer.weight.grad = layer.bias.grad = None
    ref = _plain_linear(layer, x)
    np.testing.assert_array_equal(y.data, ref.data)
    ref.backward(seed)
    for g, r in zip(got, [x.grad.data, layer.weight.grad.data, layer.bias.grad.data]):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)  # same GEMMs, operand layout may differ
    assert layer.weight.grad.data.flags.c_contiguous


def test_fused_linear_weight_grad_is_not_a_copy_of_a_view():
    layer = cr.nn.Linear(3, 2, rng=0)
    layer(cr.tensor(np.ones((4, 3), np.float32))).sum().backward()
    g = layer.weight.grad._data  # the array itself (.data is a tracked view of it)
    assert g.shape == (2, 3) and g.flags.c_contiguous and g.base is None


def _sgd_reference(p, g, state, lr, momentum, dampening, wd, nesterov):
    """torch.optim.SGD's formulas written the allocating way."""
    if wd:
        g = g + wd * p
    if momentum:
        if state.get("buf") is None:
            state["buf"] = np.array(g)
        else:
            state["buf"] = momentum * state["buf"] + (1 - dampening) * g
        g = g + momentum * state["buf"] if nesterov else state["buf"]
    return p - lr * g


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
        {"momentum": 0.8, "nesterov": True, "weight_decay": 0.001},
    ],
    ids=["plain", "momentum", "damp-wd", "nesterov"],
)
def test_sgd_in_place_is_bitwise_the_allocating_update_and_reuses_memory(options):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((7, 3)).astype(np.float32)
    p = cr.tensor(p0, requires_grad=True)
    opt = SGD([p], lr=0.05, **options)
    ref, state = p0.copy(), {}
    arr = p._data
    full = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, **options}
    bufs = None
    for _ in range(4):
        g = rng.standard_normal((7, 3)).astype(np.float32)
        p.grad = cr.tensor(g)
        opt.step()
        hyper = (full["momentum"], full["dampening"], full["weight_decay"], full["nesterov"])
        ref = _sgd_reference(ref, g, state, 0.05, *hyper)
        np.testing.assert_array_equal(p.data, ref)
        assert p._data is arr  # updated in place
        if full["momentum"]:
            np.testing.assert_array_equal(opt.state[id(p)]["momentum_buffer"], state["buf"])
            buf = opt.state[id(p)]["momentum_buffer"]
            assert bufs is None or buf is bufs
            bufs = buf
        np.testing.assert_array_equal(p.grad.data, g)  # the gradient is never overwritten


def test_sgd_mixed_dtypes_keep_numpy_promotion():
    p = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    p.grad = cr.tensor(np.full(3, 0.3, np.float32))
    SGD([p], lr=np.float64(0.1)).step()  # a float64 scalar: NumPy computes lr * g in float64
    expected = (np.float32(1) - np.float64(0.1) * np.full(3, 0.3, np.float32)).astype(np.float32)
    np.testing.assert_array_equal(p.data, expected)


def test_trace_shows_the_fused_linear_with_its_operands():
    lin = cr.nn.Linear(3, 2, rng=0)
    x = cr.tensor(np.ones((1, 3)), requires_grad=True)
    t = cr.trace(cr.tanh(lin(x)).sum())
    assert "linear(x1, weight, bias)" in t.to_markdown()  # the layer's parameters keep their registered names
    (step,) = [s for s in t.steps if s.op == "linear"]
    # local gradients: the weight for the input, the input for the weight, 1 for the bias
    # (derived from the rule itself, run on symbols: g is the upstream gradient)
    assert [e.formula for e in step.inputs] == [
        "g · weight  (g = upstream)",
        "gᵀ · x1  (g = upstream)",
        "g  (g = upstream)",
    ]
