"""Issue 24: derive's string language accepts the operations the recorded-graph derive explains.

Each operation goes through ``cr.derive(text, shapes, ints=...)``: its derivation's numerical check must pass,
its printed text must hold the expected equation, and its exported NumPy backward (the printed equations, run by
Python from the module text) must agree with torch autograd in float64 on the same values.  The command runs
too (exit 0; exit 2 with a one-line message on bad input, no traceback), and a planted wrong rule fails the check.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import chainrule as cr
from chainrule.cli import main
from chainrule.explain.derive_run import load
from chainrule.primitives import elementwise as EW
from chainrule.primitives import reduction as RED
from chainrule.primitives import shape as SH

RTOL = 1e-6


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=True)


def _data(a):
    """An integer input (int64) or a recorded constant such as dropout's mask (float64), without a gradient."""
    return torch.from_numpy(np.array(a))


# program, shapes, ints, fragment of the printed text (equations, or steps with steps=True), torch program
CASES = {
    "square": ("L = sum(square(x))", {"x": (3, 2)}, None, "dx = 2 x", lambda v: (v["x"] ** 2).sum()),
    "var": (
        "v = var(x, axis=0); L = sum(v * w)",
        {"x": (5, 3), "w": (3,)},
        None,
        "mean(x, axis=0, keepdims)",
        lambda v: (torch.var(v["x"], dim=0) * v["w"]).sum(),
    ),
    "var_biased": (
        "v = var(x, dim=1, keepdim=True, correction=0); L = sum(v * v)",
        {"x": (4, 3)},
        None,
        "/ 3",
        lambda v: (torch.var(v["x"], dim=1, keepdim=True, correction=0) ** 2).sum(),
    ),
    "std": (
        "s = std(x, axis=0); L = sum(s * w)",
        {"x": (5, 3), "w": (3,)},
        None,
        "s = √(",
        lambda v: (torch.std(v["x"], dim=0) * v["w"]).sum(),
    ),
    "norm": ("L = norm(x)", {"x": (4, 3)}, None, "⊙ x", lambda v: torch.linalg.norm(v["x"])),
    "where": (
        "y = where(x > 0, x, 0.1 * x); L = sum(y * y)",
        {"x": (6,)},
        None,
        "dx = dy ⊙ [x > 0] + 0.1 where([x > 0], 0, dy)",
        lambda v: (torch.where(v["x"] > 0, v["x"], 0.1 * v["x"]) ** 2).sum(),
    ),
    "where_mask": (
        "m = a <= b; y = where(m, a, b); L = sum(y * c)",
        {"a": (5,), "b": (5,), "c": (5,)},
        None,
        "da = dy ⊙ m",
        lambda v: (torch.where(v["a"] <= v["b"], v["a"], v["b"]) * v["c"]).sum(),
    ),
    "reshape": (
        "r = reshape(x, (2, -1)); L = sum(exp(r) @ w)",
        {"x": (3, 4), "w": (6,)},
        None,
        "dx = reshape(dr, 3×4)",
        lambda v: (torch.exp(v["x"].reshape(2, -1)) @ v["w"]).sum(),
    ),
    "permute": (
        "p = permute(x, (1, 0)); L = sum(p @ w)",
        {"x": (3, 4), "w": (3,)},
        None,
        "dx = dpᵀ",
        lambda v: (v["x"].permute(1, 0) @ v["w"]).sum(),
    ),
    "cat": (
        "c = cat(a, b, axis=1); L = sum(tanh(c))",
        {"a": (3, 2), "b": (3, 4)},
        None,
        "da = dc[:, 0:2]",
        lambda v: torch.tanh(torch.cat([v["a"], v["b"]], dim=1)).sum(),
    ),
    "cat_tuple_stack": (
        "c = cat((a, b)); s = stack(c, c2, axis=1); L = sum(tanh(s))",
        {"a": (2, 3), "b": (1, 3), "c2": (3, 3)},
        None,
        "dc2 =",
        lambda v: torch.tanh(torch.stack([torch.cat([v["a"], v["b"]]), v["c2"]], dim=1)).sum(),
    ),
    "indexing": (
        "picked = logits[range(6), Y]; L = -mean(picked)",
        {"logits": (6, 4), "Y": (6,)},
        {"Y": 4},
        "dlogits = scatter(dpicked, (range(6), Y), 6×4)",
        lambda v, i: -v["logits"][torch.arange(6), i["Y"]].mean(),
    ),
    "slices": (
        "s = x[1:3, :]; t = x[0]; L = sum(tanh(s) @ w) + sum(t * t)",
        {"x": (4, 3), "w": (3,)},
        None,
        "dx =",
        lambda v: (torch.tanh(v["x"][1:3, :]) @ v["w"]).sum() + (v["x"][0] ** 2).sum(),
    ),
    "embedding": (
        "e = embedding(X, C); L = sum(tanh(e))",
        {"X": (5, 3), "C": (7, 2)},
        {"X": 7},
        "dC = scatter(de, X, 7×2)",
        lambda v, i: torch.tanh(TF.embedding(i["X"], v["C"])).sum(),
    ),
    "cross_entropy": (
        "L = cross_entropy(logits, Y)",
        {"logits": (8, 5), "Y": (8,)},
        {"Y": 5},
        "= (softmax(logits) − onehot(Y)) / 8",
        lambda v, i: TF.cross_entropy(v["logits"], i["Y"]),
    ),
    "batch_norm": (
        "h = batch_norm(x, gamma, beta); L = sum(tanh(h) * w)",
        {"x": (6, 3), "gamma": (3,), "beta": (3,), "w": (6, 3)},
        None,
        "(gamma / σ) ⊙ (dh − mean_rows(dh) − x̂ ⊙ mean_rows(dh ⊙ x̂))",
        lambda v: (torch.tanh(TF.batch_norm(v["x"], None, None, v["gamma"], v["beta"], training=True)) * v["w"]).sum(),
    ),
    "layer_norm": (
        "h = layer_norm(x, gamma, beta, eps=1e-3); L = sum(tanh(h) * w)",
        {"x": (4, 5), "gamma": (5,), "beta": (5,), "w": (4, 5)},
        None,
        "norm_std = √(mean(norm_diff², axis=1, keepdims) + 0.001)",
        lambda v: (torch.tanh(TF.layer_norm(v["x"], (5,), v["gamma"], v["beta"], eps=1e-3)) * v["w"]).sum(),
    ),
    "conv2d": (
        "z = conv2d(x, W, b, stride=1, padding=1); L = sum(tanh(z))",
        {"x": (2, 2, 5, 5), "W": (3, 2, 3, 3), "b": (3,)},
        None,
        "dx = col2im(reshape(W, 3×18)ᵀ · reshape(dz, 2×3×25))",
        lambda v: torch.tanh(TF.conv2d(v["x"], v["W"], v["b"], stride=1, padding=1)).sum(),
    ),
    "conv2d_stride": (
        "z = conv2d(x, W, stride=2); L = sum(z * z)",
        {"x": (1, 2, 5, 5), "W": (2, 2, 3, 3)},
        None,
        "im2col(x)",
        lambda v: (TF.conv2d(v["x"], v["W"], stride=2) ** 2).sum(),
    ),
    "max_pool2d": (
        "p = max_pool2d(x, 2); L = sum(tanh(p))",
        {"x": (2, 2, 4, 4)},
        None,
        "dx = reshape(scatter(dp,",
        lambda v: torch.tanh(TF.max_pool2d(v["x"], 2)).sum(),
    ),
    "avg_pool2d": (
        "p = avg_pool2d(x, 2, stride=1); L = sum(tanh(p))",
        {"x": (1, 2, 4, 4)},
        None,
        "col2im(",
        lambda v: torch.tanh(TF.avg_pool2d(v["x"], 2, stride=1)).sum(),
    ),
    "linear": (
        "h = linear(x, W, b); L = sum(tanh(h))",
        {"x": (5, 3), "W": (4, 3), "b": (4,)},
        None,
        "dW = dhᵀ · x",
        lambda v: torch.tanh(TF.linear(v["x"], v["W"], v["b"])).sum(),
    ),
    "attention": (
        "o = attention(q, k, v); L = sum(tanh(o))",
        {"q": (4, 3), "k": (5, 3), "v": (5, 2)},
        None,
        "dv = u1ᵀ · do",
        lambda v: torch.tanh(TF.scaled_dot_product_attention(v["q"], v["k"], v["v"])).sum(),
    ),
    "sdpa_scale": (
        "o = scaled_dot_product_attention(q, k, v, scale=0.5); L = sum(o * o)",
        {"q": (2, 4, 3), "k": (2, 5, 3), "v": (2, 5, 2)},
        None,
        "softmax(0.5 (q · kᵀ)",
        lambda v: (TF.scaled_dot_product_attention(v["q"], v["k"], v["v"], scale=0.5) ** 2).sum(),
    ),
    "dropout": (
        "h = dropout(x, p=0.25); g = dropout(tanh(h)); L = sum(g * g)",
        {"x": (4, 3)},
        None,
        "dh = ",
        lambda v, c: ((torch.tanh(v["x"] * c["dropout_mask"]) * c["dropout_mask_2"]) ** 2).sum(),
    ),
    "mse_loss": (
        "L = mse_loss(x, y)",
        {"x": (4, 3), "y": (4, 3)},
        None,
        "(x − y)",
        lambda v: TF.mse_loss(v["x"], v["y"]),
    ),
    "flatten": (
        "f2 = flatten(x, start_dim=1); L = sum(tanh(f2) @ w)",
        {"x": (2, 3, 2), "w": (6,)},
        None,
        "f2 = reshape(x, 2×6)",
        lambda v: (torch.tanh(torch.flatten(v["x"], start_dim=1)) @ v["w"]).sum(),
    ),
    "activations": (
        "L = sum(square(leaky_relu(x, 0.1)) + square(elu(x)) + square(silu(x)) + square(clamp(x, -0.5, max=0.5)))",
        {"x": (8,)},
        None,
        "clip(x)",
        lambda v: (
            TF.leaky_relu(v["x"], 0.1) ** 2
            + TF.elu(v["x"]) ** 2
            + TF.silu(v["x"]) ** 2
            + torch.clamp(v["x"], -0.5, 0.5) ** 2
        ).sum(),
    ),
}


def _torch_grads(d: cr.Derivation, fn) -> dict[str, np.ndarray]:
    floats = {n: _t(v.data) for n, v in d.inputs.items() if isinstance(v, cr.Tensor)}
    ints = {n: _data(v) for n, v in d.inputs.items() if not isinstance(v, cr.Tensor)}
    loss = fn(floats, ints) if fn.__code__.co_argcount == 2 else fn(floats)
    loss.backward()
    return {n: t.grad.numpy() for n, t in floats.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_operation_derives_checks_and_agrees_with_torch(case):
    program, shapes, ints, fragment, fn = CASES[case]
    d = cr.derive(program, shapes, ints=ints)
    assert d.check is not None and d.check.status == "passed", d.check_text()
    assert d.ok and d.max_relative_error < 1e-5
    text = d.text(steps=True)
    assert fragment in text, text
    assert "\x02" not in text and "\x01" not in text  # every formula of the steps written out
    for name in shapes:  # the program's own names
        assert name in d.inputs
    grads = load(d.numpy())(**d.arrays())
    wanted = _torch_grads(d, fn)
    assert wanted
    for name, g in wanted.items():
        got = np.asarray(grads[d.keywords[name]] if d.keywords[name] in grads else grads[name], dtype=np.float64)
        np.testing.assert_allclose(got, g, rtol=RTOL, atol=1e-10 * max(1.0, np.abs(g).max()), err_msg=name)


def test_integer_inputs_are_deterministic_given_or_drawn_below_the_axis():
    shapes = {"logits": (10, 6), "Y": (10,)}
    a = cr.derive("L = cross_entropy(logits, Y)", shapes, ints={"Y": 6})
    b = cr.derive("L = cross_entropy(logits, Y)", shapes, ints={"Y": 6})
    assert np.array_equal(a.inputs["Y"], b.inputs["Y"]) and a.inputs["Y"].max() < 6
    drawn = cr.derive("picked = logits[range(10), Y]; L = sum(picked)", shapes, ints={"Y": None})
    assert drawn.inputs["Y"].max() < 6 and drawn.inputs["Y"].dtype.kind == "i"
    given = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    c = cr.derive("L = cross_entropy(logits, Y)", {"logits": (10, 6)}, ints={"Y": given})
    assert np.array_equal(c.inputs["Y"], given) and c.ok
    d = cr.derive("y = tanh(x); L = sum(y * y)", {"x": (2,)}, values={"x": [0.5, -1.0]})
    assert np.array_equal(d.inputs["x"].data, [0.5, -1.0]) and d.ok


def test_the_basic_language_keeps_its_route():
    d = cr.derive("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)})
    assert not d.inputs and d.equation("dW") == "dz · aᵀ"  # (the program form: no recorded inputs)
    assert "checked against central differences at the given sizes" in d.check_text()


@pytest.mark.parametrize(
    "program, shapes, ints, kind, fragment",
    [
        ("L = sum(frobnicate(x))", {"x": (3,)}, None, "unknown name", "the functions are abs, attention"),
        ("L = sum(square(x, x))", {"x": (3,)}, None, "syntax", "square() takes 1 argument(s), got 2"),
        ("L = sum(var(x, axes=0))", {"x": (3, 2)}, None, "not allowed", "does not take the keyword axes"),
        ("L = sum(reshape(x))", {"x": (3,)}, None, "syntax", "reshape() needs its shape"),
        ("L = sum(reshape(x, (2, 2)))", {"x": (3,)}, None, "shape", "reshape"),
        ("L = sum(x[5])", {"x": (3, 2)}, None, "value", "index 5 is out of range for axis 0 of length 3"),
        ("L = sum(x[::-1])", {"x": (3,)}, None, "not allowed", "torch refuses steps below 1"),
        ("L = sum(x[0:2, None])", {"x": (3,)}, None, "not allowed", "cannot be an index"),
        ("L = sum(x[Y])", {"x": (3, 2), "Y": (2,)}, {"Y": 7}, "value", "Y holds"),
        ("L = sum(x[i])", {"x": (3, 2), "i": (2,)}, None, "value", "integer input"),
        ("L = cross_entropy(z, Y)", {"z": (4, 3), "Y": (5,)}, {"Y": 3}, "shape", "need class indices of shape (4,)"),
        ("L = sum(embedding(X, C))", {"X": (4,), "C": (3,)}, {"X": 3}, "shape", "C must be a 2-D table"),
        ("L = sum(Y * x)", {"x": (3,), "Y": (3,)}, {"Y": 2}, "value", "Y is an integer input"),
        ("L = sum(x > 0)", {"x": (3,)}, None, "not allowed", "a comparison is allowed only as where's condition"),
        ("m = x > 0; L = sum(m * x)", {"x": (3,)}, None, "value", "m is a mask"),
        ("L = sum(where(x, x, 0))", {"x": (3,)}, None, "value", "where's condition must be a comparison"),
        ("L = sum(permute(x, (0, 0)))", {"x": (2, 2)}, None, "value", "not an order of the axes"),
        ("L = sum(conv2d(x, W, padding=-1))", {"x": (1, 1, 3, 3), "W": (1, 1, 2, 2)}, None, "value", "at least 0"),
        ("L = sum(square(x))", {"x": ("B", 3)}, None, "shape", "symbolic size"),
        ("L = sum(x[range(4)])", {"x": (3,)}, None, "value", "reaches past axis 0 of length 3"),
        ("L = sum(square(f(x)))", {"x": (3,)}, None, "not allowed", "f(...), the generic elementwise function"),
        ("L = cross_entropy(z, Y)", {"z": (4, 3)}, {"Y": 3}, "missing value", "missing shape for Y"),
        ("L = sum(square(x))", {"x": (3,)}, {"Q": 3}, "unknown name", "unknown name 'Q' in the ints"),
        ("L = sum(x[i] * x)", {"x": (3,), "i": ()}, {"i": 3}, "shape", "the integer input i has shape ()"),
    ],
)
def test_bad_input_gets_a_clear_parse_error(program, shapes, ints, kind, fragment):
    with pytest.raises(cr.ParseError) as info:
        cr.derive(program, shapes, ints=ints)
    msg = str(info.value)
    assert info.value.kind == kind, msg
    assert fragment in msg, msg
    assert "\n" not in msg


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_the_command_derives_the_new_operations():
    rc, out, err = _cli(["derive", "L = sum(square(x))", "--shape", "x=3"])
    assert rc == 0, err
    assert "dx = 2 x" in out and "checked against central differences" in out
    argv = ["derive", "L = cross_entropy(logits, Y)", "--shape", "logits=32x27", "--ints", "Y=32:27", "--steps"]
    rc, out, err = _cli(argv)
    assert rc == 0, err
    assert "= (softmax(logits) − onehot(Y)) / 32" in out
    rc, out, err = _cli(["derive", "L = sum(tanh(C[X]))", "--shape", "C=5x2", "--ints", "X=4x3", "--numpy"])
    assert rc == 0, err
    assert "def backward(C, X):" in out
    rc, out, err = _cli(["derive", "L = sum(where(x > 0, x, 0))", "--at", "x=[1,-2,3]"])
    assert rc == 0, err
    assert "dx = [x > 0]" in out
    rc, out, err = _cli(["derive", "L = sum(x[Y] * x[Y])", "--shape", "x=4", "--ints", "Y=[3,0,3]", "--json"])
    assert rc == 0, err
    assert '"program": "L = sum(x[Y] * x[Y])"' in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["derive", "L = sum(frob(x))", "--shape", "x=3"], "unknown function 'frob'; the functions are"),
        (["derive", "L = cross_entropy(z, Y)", "--shape", "z=8x5", "--ints", "Y=8:9"], "must lie in 0..4"),
        (["derive", "L = cross_entropy(z, Y)", "--shape", "z=8x5", "--ints", "Y=8:x"], "class count after ':'"),
        (["derive", "L = sum(x[Y])", "--shape", "x=3", "--ints", "Y=[0.5]"], "whole numbers"),
        (["derive", "L = sum(x[Y])", "--shape", "x=3", "--ints", "Y"], "write NAME=VALUE"),
        (["derive", "L = sum(var(x, axis=0, keepdims=1))", "--shape", "x=3x2"], "keepdims must be True or False"),
    ],
)
def test_the_command_refuses_bad_input_with_one_line(argv, fragment):
    rc, out, err = _cli(argv)
    assert rc == 2
    assert fragment in err, err
    assert err.startswith("chainrule derive: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_planted_wrong_getitem_rule_fails_the_check(monkeypatch):
    """cross_entropy's picked log-probabilities scatter back through getitem: a rule that doubles them is caught."""
    (rule,) = SH.getitem.vjps
    monkeypatch.setattr(SH.getitem, "vjps", (lambda xp, g, out, *a: 2.0 * rule(xp, g, out, *a),))
    d = cr.derive("L = cross_entropy(logits, Y)", {"logits": (6, 4), "Y": (6,)}, ints={"Y": 4})
    assert d.check.status == "failed", d.check_text()
    assert d.errors["dlogits"] > 1e-3
    rc, _, err = _cli(["derive", "L = cross_entropy(logits, Y)", "--shape", "logits=6x4", "--ints", "Y=6:4"])
    assert rc == 1 and "check FAILED" in err


def test_planted_wrong_where_and_log_softmax_rules_fail_the_check(monkeypatch):
    monkeypatch.setattr(EW.where, "vjps", (None, lambda xp, g, out, c, a, b: g, lambda xp, g, out, c, a, b: g))
    d = cr.derive("y = where(x > 0, x, 0.1 * x); L = sum(y * y)", {"x": (6,)})
    assert not d.ok and d.errors["dx"] > 1e-3
    monkeypatch.undo()
    rule = RED.log_softmax.vjps
    monkeypatch.setattr(RED.log_softmax, "vjps", (lambda xp, g, out, x, axis: g,) + tuple(rule[1:]))
    d = cr.derive("L = cross_entropy(logits, Y)", {"logits": (6, 4), "Y": (6,)}, ints={"Y": 4})
    assert not d.ok and d.errors["dlogits"] > 1e-3


def test_constants_budget_and_layout():
    d = cr.derive("h = square(x - t); L = sum(h)", {"x": (3,), "t": (3,)}, constants=["t"])
    assert d.ok and [ln.name for ln in d.backward] == ["dL", "dh", "dx"]  # no gradient for the constant t
    with pytest.raises(cr.ParseError) as info:
        cr.derive("L = sum(square(x))", {"x": (300, 300)}, max_numbers=1000)
    assert info.value.kind == "limit" and "max_numbers" in str(info.value)
    d = cr.derive("h = linear(x, W, b); L = sum(tanh(h))", {"x": (4, 3), "W": (5, 3), "b": (5,)})
    assert d.own_layout() == "row" and d.layout("row").startswith("row layout (as written)")
    with pytest.raises(ValueError, match="only for the program form"):
        d.layout("column")
    with pytest.raises(cr.ParseError, match="has shape"):
        cr.derive("L = sum(square(x))", {"x": (3,)}, values={"x": [1.0, 2.0]})


@pytest.mark.parametrize("program", ['E = sum(x * x)  # """ \\N', 'h = square(x)  # """ \\N\nE = sum(h)'])
def test_a_comment_cannot_break_the_exported_module(program):
    """A comment holding a triple quote or a backslash used to end the module's docstring: a traceback."""
    d = cr.derive(program, {"x": (3,)})
    assert d.ok, d.check_text()
    assert '# \\"\\"\\" \\\\N' in d.numpy()
    rc, _, err = _cli(["derive", program, "--shape", "x=3"])
    assert rc == 0, err


@pytest.mark.parametrize(
    "text",
    [
        "L = x[::-1]",
        "L = x[0:2, None]",
        "L = x.__class__",
        "L = x[__import__('os')]",
        "L = x[open('f')]",
        "L = x[range(open('f'))]",
        "L = x[range(n)]",
        "L = where(open('f') > 0, x, x)",
        "L = where(lambda: 1, x, x)",
        "L = reshape(x, open('f'))",
        "L = reshape(x, (2, 'a'))",
        "L = conv2d(x, W, stride=open('f'))",
        "L = cat(*x)",
        "L = var(x, **{'axis': 0})",
        "L = x[...]",
        "L = x[x > 0]",
        "L = range(3)",
        "L = square",
        "square = x",
    ],
)
def test_the_extended_parser_refuses_what_it_does_not_know(text):
    from chainrule.explain.lang import parse_extended

    with pytest.raises(cr.ParseError) as info:
        parse_extended(text)
    assert info.value.kind in ("syntax", "not allowed", "unknown name", "value") and "\n" not in str(info.value)


def test_the_basic_parser_is_unchanged():
    from chainrule.explain.parse import parse_expression, parse_program

    for text, fragment in [("x[0]", "indexing is not allowed"), ("x < y", "a comparison is not allowed")]:
        with pytest.raises(cr.ParseError, match=fragment):
            parse_expression(text)
    with pytest.raises(cr.ParseError, match="unknown function 'square'"):
        parse_program("L = sum(square(x))")
