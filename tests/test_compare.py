"""cr.compare ("check my backprop"): hand-written gradients checked against the engine's backward pass.

The references are independent: float64 central differences of the forward pass, gradients written out by
hand, and PyTorch's autograd (in test_compare_char_mlp.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
from chainrule.primitive import REGISTRY


def neuron():
    """The CS231n sigmoid neuron with a squared error: loss = (σ(w·x + b) − 1)²."""
    w = cr.tensor([2.0, -3.0], requires_grad=True)
    b = cr.tensor(-3.0, requires_grad=True)
    x = cr.tensor([-1.0, -2.0])
    z = (w * x).sum() + b
    a = cr.sigmoid(z)
    loss = (a - 1.0) ** 2
    return w, b, x, z, a, loss


def by_hand(a, x, bug=False):
    av = a.item()
    grad_a = 2 * (av - 1.0)
    grad_z = grad_a * av if bug else grad_a * av * (1 - av)
    return grad_a, grad_z, grad_z * x.numpy(), grad_z


def central(f, x0, h=1e-6):
    x0 = np.asarray(x0, dtype=np.float64)
    g = np.zeros_like(x0)
    for k in range(x0.size):
        e = np.zeros_like(x0)
        e.flat[k] = h
        g.flat[k] = (f(x0 + e) - f(x0 - e)) / (2 * h)
    return g


def test_true_gradients_pass_and_match_central_differences():
    w, b, x, z, a, loss = neuron()
    grad_a, grad_z, grad_w, grad_b = by_hand(a, x)
    res = cr.compare({"a": grad_a, "z": grad_z, "w": grad_w, "b": grad_b}, loss)
    assert res.ok
    assert [r.status for r in res.rows] == ["exact"] * 4
    assert [r.name for r in res.rows] == ["a", "z", "b", "w"]  # backward order: a, z, then the leaves
    assert res.missing == []

    def f(wv):
        return (1 / (1 + np.exp(-(wv @ [-1.0, -2.0] - 3.0))) - 1.0) ** 2

    np.testing.assert_allclose(res.row("w").true, central(f, [2.0, -3.0]), rtol=1e-7)
    assert w.grad is None and b.grad is None  # .grad untouched
    loss.backward()  # the graph was kept
    np.testing.assert_allclose(w.grad.numpy(), grad_w, rtol=1e-12)


def test_planted_sigmoid_mistake_points_at_the_sigmoid_step():
    w, b, x, z, a, loss = neuron()
    _, _, grad_w, _ = by_hand(a, x, bug=True)
    _, _, _, grad_b = by_hand(a, x)
    res = cr.compare({"w": grad_w, "b": grad_b}, loss)
    assert not res.ok
    assert res.row("b").status == "exact"
    row = res.row("w")
    assert row.status == "wrong"
    culprit = row.culprit
    assert culprit is not None and culprit.node == "a" and culprit.expression == "sigmoid(z)"
    assert culprit.formula == "σ(z)·(1 - σ(z))"
    s = 1 / (1 + np.exp(-1.0))
    assert culprit.local == pytest.approx(s * (1 - s))
    assert culprit.upstream == pytest.approx(2 * (s - 1))  # which upstream value the chain rule uses: da
    assert culprit.upstream_from[0][0] == "n3 = a - 1"
    text = str(res)
    assert "that factor is step a = sigmoid(z)" in text
    assert f"yours used {s:.4g}, the value of a itself" in text
    assert "local       ∂a/∂z = σ(z)·(1 - σ(z)) = 0.1966" in text
    assert "upstream    da = -0.5379   (from n3 = a - 1)" in text
    assert res.missing == ["a", "z"]


def test_with_intermediates_the_first_wrong_step_is_named_and_the_rest_follow():
    w, b, x, z, a, loss = neuron()
    grad_a, grad_z, grad_w, _ = by_hand(a, x, bug=True)
    res = cr.compare({"a": grad_a, "z": grad_z, "w": grad_w}, loss)
    assert [(r.name, r.status) for r in res.rows] == [("a", "exact"), ("z", "wrong"), ("w", "wrong")]
    rz, rw = res.row("z"), res.row("w")
    assert rz.follows is None and rw.follows == "z"
    assert any("your da is right, so the mistake is in this step" in h for h in rz.hints)
    assert any("the value of a itself" in h for h in rz.hints)
    (term,) = rz.terms
    assert term.your_upstream_status == "exact" and term.formula == "σ(z)·(1 - σ(z))"
    assert "start with dz" in str(res)


def test_tensor_keys_and_names_and_prefixes():
    w, b, x, z, a, loss = neuron()
    grad_a, grad_z, grad_w, grad_b = by_hand(a, x)
    by_tensor = cr.compare({a: grad_a, z: cr.tensor(grad_z), w: grad_w, b: grad_b}, loss)
    assert by_tensor.ok and [r.name for r in by_tensor.rows] == ["a", "z", "b", "w"]
    renamed = cr.compare({"act": grad_a, "weights": grad_w}, loss, names={"act": a, w: "weights"})
    assert renamed.ok and {r.name for r in renamed.rows} == {"act", "weights"}
    prefixed = cr.compare({"da": grad_a, "grad_w": grad_w}, loss)
    assert prefixed.ok and [r.name for r in prefixed.rows] == ["a", "w"]


def test_module_paths_name_parameters():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(), nn.Linear(4, 1, dtype=np.float64))
    X = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]])
    loss = (model(X) ** 2).mean()
    true = {name: g.numpy() for name, g in zip(["0.weight", "0.bias", "2.weight", "2.bias"], _grads(loss, model))}
    res = cr.compare(true, loss, module=model)
    assert res.ok and {r.name for r in res.rows} == set(true)
    # a parameter is found by its path without module= too
    assert cr.compare({"2.bias": true["2.bias"]}, loss).ok


def _grads(loss, model):
    return cr.autograd.grad(loss, list(model.parameters()), retain_graph=True)


def test_broadcast_bias_shape_mismatch_says_to_sum():
    w = cr.tensor(np.array([[1.0, -2.0], [0.5, 3.0]]), requires_grad=True)
    bias = cr.tensor(np.array([0.1, -0.2]), requires_grad=True)
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    out = X @ w + bias
    loss = (out**2).sum()
    dout = 2 * out.detach().numpy()
    res = cr.compare({"bias": dout, "out": dout}, loss)
    row = res.row("bias")
    assert row.status == "shape mismatch" and row.your_shape == (3, 2)
    assert any("sum yours over axis 0 to undo it (then it is exact)" in h for h in row.hints)
    assert "was broadcast to (3, 2) in the forward pass" in str(res)


def test_fan_out_term_left_out():
    x = cr.tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    u = x * x
    y = cr.exp(x)
    loss = (u * y).sum()
    xv = x.numpy()
    du, dy = np.exp(xv), xv * xv
    mine = {"u": du, "y": dy, "x": 2 * xv * du}  # forgot x's use in y = exp(x)
    res = cr.compare(mine, loss)
    row = res.row("x")
    assert row.status == "wrong" and [t.node for t in row.terms] == ["y", "u", "u"]  # x * x: two uses
    assert any("leaves out the term from y = exp(x)" in h for h in row.hints)
    mine["x"] = 2 * xv * du + np.exp(xv) * dy
    assert cr.compare(mine, loss).ok


def test_sign_and_close_and_tolerances():
    x = cr.tensor(np.array([0.3, -1.2]), requires_grad=True)
    loss = (x**3).sum()
    g = 3 * x.numpy() ** 2
    flipped = cr.compare({"x": -g}, loss)
    assert flipped.row("x").status == "wrong"
    assert any("sign flipped" in h for h in flipped.row("x").hints)
    nearly = cr.compare({"x": g * (1 + 1e-9)}, loss)
    assert nearly.row("x").status == "close" and nearly.ok
    assert nearly.row("x").max_abs == pytest.approx(np.abs(g * 1e-9).max(), rel=1e-3)
    strict = cr.compare({"x": g * (1 + 1e-9)}, loss, rtol=0, atol=0)
    assert strict.row("x").status == "wrong"


def test_non_scalar_output_needs_grad_output():
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x
    with pytest.raises(ValueError, match=r"not a scalar: pass grad_output="):
        cr.compare({"x": 2 * x.numpy()}, y)
    v = np.array([0.5, -1.0])
    assert cr.compare({"x": 2 * x.numpy() * v}, y, grad_output=v).ok
    with pytest.raises(ValueError, match=r"grad_output has shape \(3,\)"):
        cr.compare({"x": 0.0}, y, grad_output=np.ones(3))


def test_errors_name_the_problem():
    w, b, x, z, a, loss = neuron()
    with pytest.raises(KeyError, match=r"no tensor named 'q'.*Names it knows: .*\ba\b.*\bw\b"):
        cr.compare({"q": 1.0}, loss)
    other = cr.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match=r"your variable 'other'.*not in the graph"):
        cr.compare({"other": 1.0}, loss)
    with pytest.raises(ValueError, match=r"given as a key is not in the graph"):
        cr.compare({other: 1.0}, loss)
    with pytest.raises(ValueError, match=r"'x' \(shape \(2,\)\) is in the graph but gets no gradient"):
        cr.compare({"x": [0.0, 0.0]}, loss)
    with pytest.raises(TypeError, match=r"keys of mine are names \(str\) or tensors"):
        cr.compare({3: 1.0}, loss)
    with pytest.raises(TypeError, match=r"names= maps names to tensors"):
        cr.compare({}, loss, names={"a": 1.0})
    with pytest.raises(TypeError, match=r"not numbers"):
        cr.compare({"a": "abc"}, loss)
    with pytest.raises(TypeError, match=r"output must be the Tensor"):
        cr.compare({}, 1.0)
    loss.backward()
    with pytest.raises(cr.GraphFreedError, match=r"freed by backward\(\)"):
        cr.compare({"w": 0.0}, loss)


def test_html_and_json_views():
    w, b, x, z, a, loss = neuron()
    grad_a, grad_z, grad_w, _ = by_hand(a, x, bug=True)
    res = cr.compare({"a": grad_a, "z": grad_z, "w": grad_w}, loss)
    page = res._repr_html_()
    assert page.count("<tr") == 4  # the header and three rows
    assert page.count("data-status='wrong'") == 2 and page.count("data-status='exact'") == 1
    assert "<details open>" in page and "σ(z)·(1 - σ(z))" in page and "<script" not in page
    data = json.loads(res.to_json())
    assert data["ok"] is False and data["output"] == "loss"
    assert [r["status"] for r in data["rows"]] == ["exact", "wrong", "wrong"]
    assert data["rows"][1]["steps"][0]["local_formula"] == "σ(z)·(1 - σ(z))"
    assert data["rows"][1]["steps"][0]["your_upstream_status"] == "exact"
    assert data["missing"] == ["b"]
    assert "ok=False" in repr(res)


def test_a_wrong_engine_rule_makes_right_hand_gradients_fail(monkeypatch):
    """The check reads the engine's own rules: plant a wrong sigmoid rule and the (right) hand-written
    gradients are reported wrong, at the sigmoid step."""
    sigmoid = REGISTRY["sigmoid"]
    monkeypatch.setattr(sigmoid, "vjps", (lambda xp, g, out, x: g * out,))  # forgot the (1 − σ) factor
    w, b, x, z, a, loss = neuron()
    grad_a, grad_z, grad_w, grad_b = by_hand(a, x)
    res = cr.compare({"a": grad_a, "z": grad_z, "w": grad_w}, loss)
    assert not res.ok
    assert res.row("a").status == "exact" and res.row("z").status == "wrong"


def test_values_released_by_the_engine_still_compare():
    """Unnamed intermediates are released after use (as torch frees them); the check still runs."""
    rng = np.random.default_rng(0)
    W = cr.tensor(rng.standard_normal((40, 50)), requires_grad=True)
    X = rng.standard_normal((30, 40))
    h = cr.tanh(X @ W)
    loss = (h * h).mean()
    hv = h.detach().numpy()
    dh = 2 * hv / hv.size
    dW_wrong = X.T @ dh  # forgot tanh's local derivative
    res = cr.compare({"h": dh, "W": dW_wrong}, loss)
    assert res.row("h").ok and res.row("W").status == "wrong"
    assert "the gradients you supplied above dW are right" in str(res)
    assert cr.compare({"h": dh, "W": X.T @ ((1 - hv**2) * dh)}, loss).ok


def test_shape_mismatch_without_a_broadcast_claims_none():
    x = cr.tensor(2.0, requires_grad=True)
    y = x * 3
    res = cr.compare({x: np.ones(2)}, y)
    row = res.row("x")
    assert row.status == "shape mismatch" and row.max_abs is None
    assert row.hints == ["a gradient has the shape of its tensor: x is (), yours is (2,)"]
    assert "the seed: the output's gradient with respect to itself" in str(res)


def test_torch_values_and_hooked_nodes():
    w, b, x, z, a, loss = neuron()
    a.retain_grad()  # a hooked node: the walk passes its gradient through the hook
    grad_a, grad_z, grad_w, grad_b = by_hand(a, x)
    f64 = torch.float64
    res = cr.compare({"a": torch.tensor(grad_a, dtype=f64), "z": grad_z, "w": torch.tensor(grad_w)}, loss)
    assert res.ok and [r.status for r in res.rows] == ["exact"] * 3
    assert a.grad is None


torch = pytest.importorskip("torch")
