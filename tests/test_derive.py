"""cr.derive: matrix-form backward equations from the primitives' own VJP rules, checked numerically."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.explain import symbolic as S
from chainrule.explain.derive import Line, _check, _forward
from chainrule.explain.parse import parse_program

LAYER = "z = W @ a + b; h = sigmoid(z); E = sum(h)"


def equations(d):
    return {line.name: (S.render(line.formula), line.shape) for line in d.backward}


def test_dense_layer_equations_shapes_and_check():
    d = cr.derive(LAYER, {"W": (64, 32), "a": (32, 1), "b": (64, 1)})
    assert equations(d) == {
        "dE": ("1", ()),
        "dh": ("1", (64, 1)),
        "dz": ("dh ⊙ h ⊙ (1 − h)", (64, 1)),
        "dW": ("dz · aᵀ", (64, 32)),
        "da": ("Wᵀ · dz", (32, 1)),
        "db": ("dz", (64, 1)),
    }
    assert [line.name for line in d.backward][:3] == ["dE", "dh", "dz"]
    assert d.max_relative_error < 1e-12
    text = str(d)
    assert "dW = dz · aᵀ" in text and "64×32" in text
    assert "checked on random inputs: max relative error" in text
    assert [S.render(line.formula) for line in d.forward] == ["W · a + b", "σ(z)", "Σ h"]


def test_two_layer_mlp_with_softmax_cross_entropy():
    program = "z1 = W1 @ x + b1; h = relu(z1); s = W2 @ h + b2; p = softmax(s, axis=0); L = -sum(y * log(p))"
    shapes = {"W1": (16, 8), "x": (8, 1), "b1": (16, 1), "W2": (10, 16), "b2": (10, 1), "y": (10, 1)}
    d = cr.derive(program, shapes, constants=["y"])
    eq = {k: v[0] for k, v in equations(d).items()}
    assert eq == {
        "dL": "1",
        "dp": "−y / p",
        "ds": "p ⊙ (dp − Σ_rows (dp ⊙ p))",
        "dW2": "ds · hᵀ",
        "db2": "ds",
        "dh": "W2ᵀ · ds",
        "dz1": "dh ⊙ [z1 > 0]",
        "dW1": "dz1 · xᵀ",
        "dx": "W1ᵀ · dz1",
        "db1": "dz1",
    }
    assert d.max_relative_error < 1e-12


def test_mlp_equations_agree_with_torch():
    """Evaluate the printed equations ourselves and compare with PyTorch on the same values."""
    program = "z1 = W1 @ x + b1; h = tanh(z1); s = W2 @ h + b2; L = sum(logsumexp(s, axis=0)) - sum(y * s)"
    shapes = {"W1": (6, 4), "x": (4, 3), "b1": (6, 1), "W2": (5, 6), "b2": (5, 1), "y": (5, 3)}
    d = cr.derive(program, shapes, constants=["y"])
    rng = np.random.default_rng(7)
    vals = {k: rng.standard_normal(v) for k, v in shapes.items()}
    t = {k: torch.tensor(v, requires_grad=k != "y") for k, v in vals.items()}
    z1 = t["W1"] @ t["x"] + t["b1"]
    h = torch.tanh(z1)
    s = t["W2"] @ h + t["b2"]
    L = torch.logsumexp(s, 0).sum() - (t["y"] * s).sum()  # the same loss, computed by torch
    L.backward()
    env = dict(vals, z1=z1.detach().numpy(), h=h.detach().numpy(), s=s.detach().numpy(), L=L.item())
    for line in d.backward:
        env[line.name] = np.broadcast_to(S.evaluate(line.formula, env), line.shape)
    for name in ("W1", "x", "b1", "W2", "b2"):
        np.testing.assert_allclose(env["d" + name], t[name].grad.numpy(), rtol=1e-10, atol=1e-12)
    assert d.equation("db1") == "Σ_cols dz1"
    assert d.equation("dz1") == "dh ⊙ (1 − h²)"


def test_batched_layer_sums_the_bias_gradient_over_rows():
    d = cr.derive("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": (8, 32), "W": (64, 32), "b": (64,)})
    eq = equations(d)
    assert eq["dz"] == ("dh ⊙ h ⊙ (1 − h)", (8, 64))
    assert eq["dW"] == ("dzᵀ · a", (64, 32))
    assert eq["da"] == ("dz · W", (8, 32))
    assert eq["db"] == ("Σ_rows dz", (64,))
    assert d.max_relative_error < 1e-12


def test_vector_forms_and_mean():
    d = cr.derive("s = W @ x; L = mean(s * s)", {"W": (3, 5), "x": (5,)})
    assert d.equation("dW") == "ds xᵀ"
    assert d.equation("dx") == "Wᵀ · ds"
    assert d.max_relative_error < 1e-12


def test_a_wrong_equation_is_caught_by_the_check():
    d = cr.derive(LAYER, {"W": (4, 3), "a": (3, 1), "b": (4, 1)})
    rng = np.random.default_rng(0)
    prog = parse_program(LAYER)
    env = _forward(prog, {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, (), rng, cr)
    assert max(_check(prog, env, d.backward, env["E"]).values()) < 1e-12
    lines = list(d.backward)
    dz = next(i for i, ln in enumerate(lines) if ln.name == "dz")
    h = S.var("h", (4, 1))
    lines[dz] = Line("dz", S.var("dh", (4, 1)) * h, (4, 1))  # forgot the (1 − h) factor
    errors = _check(prog, env, lines, env["E"])
    assert errors["dz"] > 1e-3 and errors["dW"] > 1e-3


def test_jacobian_sizes_say_why_they_are_not_built():
    d = cr.derive("h = sigmoid(z); E = sum(h)", {"z": (100, 4096)})
    text = str(d)
    assert "409600×409600" in text and "diagonal" in text
    sig = next(j for j in d.jacobians if j.output == "h")
    assert (sig.rows, sig.cols) == (409600, 409600)
    dense = cr.derive(LAYER, {"W": (64, 32), "a": (32, 1), "b": (64, 1)})
    mm = next(j for j in dense.jacobians if j.input == "W")
    assert (mm.rows, mm.cols) == (64, 64 * 32) and "matrix product" in mm.why


def test_latex_output():
    d = cr.derive(LAYER, {"W": (64, 32), "a": (32, 1), "b": (64, 1)})
    tex = d.latex()
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert r"dz &= dh \odot h \odot \left(1 - h\right) && 64 \times 1" in tex
    assert r"dW &= dz \, a^\top" in tex
    d2 = cr.derive("z1 = W1 @ x; E = sum(z1)", {"W1": (2, 3), "x": (3, 1)})
    assert r"dW_{1} &=" in d2.latex()


@pytest.mark.parametrize(
    "program, shapes, kind, fragment",
    [
        (LAYER, {"W": (64, 32), "a": (32, 1)}, "missing value", "missing shape for b"),
        (LAYER, {"W": (64, 32), "a": (32, 1), "b": (64, 1), "q": (1,)}, "unknown name", "unknown name 'q'"),
        (LAYER, {"W": (64, 32), "a": (31, 1), "b": (64, 1)}, "shape", "matmul"),
        ("z = W.x; E = sum(z)", {"W": (2, 2)}, "not allowed", "attribute access"),
        ("sum(x)", {"x": (2,)}, "syntax", "must end with an assignment"),
    ],
)
def test_bad_programs(program, shapes, kind, fragment):
    with pytest.raises(cr.ParseError) as info:
        cr.derive(program, shapes)
    assert info.value.kind == kind and fragment in str(info.value)


def test_symbolic_batch_dimension():
    d = cr.derive("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": ("B", 32), "W": (64, 32), "b": (64,)})
    text = str(d)
    lines = {line.name: (S.render(line.formula), d.shape_text(line.shape)) for line in d.backward}
    assert lines["dz"] == ("dh ⊙ h ⊙ (1 − h)", "B×64") and lines["da"] == ("dz · W", "B×32")
    assert lines["db"] == ("Σ_rows dz", "64") and lines["dW"] == ("dzᵀ · a", "64×32")
    assert "(with B = 7)" in text and "   B×64" in text
    assert d.max_relative_error < 1e-12
    assert r"B \times 64" in d.latex()
    with pytest.raises(cr.ParseError, match="neither a number nor a name"):
        cr.derive("E = sum(a)", {"a": ("3x",)})
