"""cr.trace: the backward pass step by step, checked against the CS231n lecture numbers and against torch."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.explain.parse import evaluate, parse_expression

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -3.0}


def neuron():
    env = {k: cr.tensor(v, requires_grad=True) for k, v in NEURON_AT.items()}
    f = evaluate(parse_expression(NEURON), env)
    return f, env


def r2(x):
    return round(float(x), 2)


def only_input(step):
    live = [e for e in step.inputs if not e.constant]
    assert len(live) == 1
    return live[0]


def test_sigmoid_neuron_reproduces_the_lecture_node_by_node():
    f, env = neuron()
    tr = cr.trace(f, names=env, output_name="f")
    ops = [s.op for s in tr.steps]
    assert ops == ["div", "add", "exp", "neg", "add", "add", "mul", "mul"]

    inv = tr.steps[0]  # the 1/x gate
    e = only_input(inv)
    assert (r2(e.value), r2(inv.upstream), r2(e.local), r2(e.grad)) == (1.37, 1.0, -0.53, -0.53)
    assert e.formula == "-1 / x²"

    plus1 = tr.steps[1]
    e = only_input(plus1)
    assert (r2(plus1.upstream), r2(e.local), r2(e.grad)) == (-0.53, 1.0, -0.53)

    ex = tr.steps[2]
    e = only_input(ex)
    assert (r2(ex.upstream), r2(e.local), r2(e.grad)) == (-0.53, 0.37, -0.2)
    assert e.formula == "exp(x)"

    neg = tr.steps[3]
    e = only_input(neg)
    assert (r2(neg.upstream), r2(e.local), r2(e.grad)) == (-0.2, -1.0, 0.2)

    for add in tr.steps[4:6]:  # add gates distribute
        assert r2(add.upstream) == 0.2
        assert [r2(e.grad) for e in add.inputs] == [0.2, 0.2]

    grads = {leaf.label: r2(leaf.grad) for leaf in tr.leaves}
    assert grads == {"w0": -0.2, "x0": 0.39, "w1": -0.39, "x1": -0.59, "w2": 0.2}
    # mul gates swap: dw0 = x0 * upstream (the two gates may come in either order)
    mul = next(s for s in tr.steps[6:] if s.expression == "w0 * x0")
    assert [e.formula for e in mul.inputs] == ["x0", "w0"]


def test_trace_instead_of_backward_fills_grad_like_backward():
    f, env = neuron()
    cr.trace(f, names=env)
    g, env2 = neuron()
    g.backward()
    for k in env:
        assert env[k].grad.item() == env2[k].grad.item()


def test_accumulate_false_and_after_retained_backward():
    f, env = neuron()
    f.backward(retain_graph=True)
    before = {k: t.grad.item() for k, t in env.items()}
    tr = cr.trace(f, names=env, accumulate=False)
    assert {k: t.grad.item() for k, t in env.items()} == before
    assert {leaf.label: leaf.grad for leaf in tr.leaves} == pytest.approx(before, rel=1e-15)


def test_after_plain_backward_the_error_says_what_to_do():
    f, _ = neuron()
    f.backward()
    with pytest.raises(cr.GraphFreedError, match=r"instead of y\.backward\(\)"):
        cr.trace(f)


def test_fan_out_shows_the_sum_of_the_branches():
    x = cr.tensor(3.0, requires_grad=True)
    y = x * x + x
    tr = cr.trace(y, names={"x": x})
    leaf = tr.leaves[0]
    assert len(leaf.branches) == 3  # x*x sends two branches, + sends one
    assert sum(v for _, v in leaf.branches) == pytest.approx(leaf.grad)
    assert leaf.grad == 7.0 and x.grad.item() == 7.0
    assert "1.00 (from out) + 3.00 (from n1) + 3.00 (from n1) = 7.00" in str(tr)


def test_intermediate_fan_out():
    x = cr.tensor(0.5, requires_grad=True)
    h = cr.tanh(x)
    y = h * h
    tr = cr.trace(y, names={"x": x, "h": h})
    step = tr.step("h")
    assert len(step.branches) == 2
    assert step.upstream == pytest.approx(2 * np.tanh(0.5))


def test_tensors_show_shapes_and_small_values_and_match_torch():
    rng = np.random.default_rng(1)
    W0, x0 = rng.standard_normal((2, 3)), rng.standard_normal(3)
    W, x = cr.tensor(W0, requires_grad=True), cr.tensor(x0, requires_grad=True)
    f = cr.sum(cr.tanh(W @ x))
    tr = cr.trace(f, names={"W": W, "x": x})
    text = str(tr)
    assert "(2×3)" in text and "x = [" in text  # the 2-vector shows its values, a matrix its shape after them
    Wt, xt = torch.tensor(W0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    torch.tanh(Wt @ xt).sum().backward()
    np.testing.assert_allclose(tr.grad("W"), Wt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(W.grad.data, Wt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(tr.grad("x"), xt.grad.numpy(), rtol=1e-12)
    tanh_step = tr.steps_for("tanh")[0]
    np.testing.assert_allclose(tanh_step.inputs[0].local, 1 - np.tanh(W0 @ x0) ** 2, rtol=1e-12)


def test_large_tensors_are_shown_by_shape():
    z = cr.tensor(np.zeros((100, 40)), requires_grad=True)
    tr = cr.trace(cr.sum(cr.sigmoid(z)), names={"z": z})
    assert "array 100×40" in str(tr)


def test_markdown_and_html():
    f, env = neuron()
    tr = cr.trace(f, names=env, output_name="f")
    md = tr.to_markdown()
    assert md.count("\n| ") >= 12 and "| 1 | f | 1 / n" in md and "-1 / x² = -0.53" in md
    html = tr._repr_html_()
    assert html.count("<table>") == 2 and "-0.53" in html and "&" not in html.replace("&lt;", "").replace("&gt;", "")


def test_non_scalar_output_needs_a_seed():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match="scalar"):
        cr.trace(y)
    tr = cr.trace(y, np.array([1.0, 10.0]))
    np.testing.assert_array_equal(tr.leaves[0].grad, [3.0, 30.0])


def test_output_without_graph():
    with pytest.raises(RuntimeError, match="does not require grad"):
        cr.trace(cr.tensor(1.0))


def test_plain_text_without_rich(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails as if rich were not installed
    f, env = neuron()
    text = str(cr.trace(f, names=env, output_name="f"))
    assert "┃" not in text and "-1 / x² = -0.53" in text and "step  node" in text


def test_local_formulas_keep_operand_names_when_several_inputs_vary():
    a = cr.tensor(2.0, requires_grad=True)
    b = cr.tensor(4.0, requires_grad=True)
    tr = cr.trace(a / b, names={"a": a, "b": b}, accumulate=False)
    assert [e.formula for e in tr.steps[0].inputs] == ["1 / b", "-a / b²"]
    x = cr.tensor(1.37, requires_grad=True)
    assert cr.trace(1 / x, names={"x": x}, accumulate=False).steps[0].inputs[-1].formula == "-1 / x²"


# --- what the learner sees: every formula visible, paths named, parameters named ----------------


def _rich_text(renderable, width=120) -> str:
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(renderable)
    return buf.getvalue()


@pytest.mark.parametrize(
    "make, formulas",
    [
        (lambda z, w: cr.maximum(z, w), ["[z > w] + ½[z = w] = 1.00", "[w > z] + ½[z = w] = 0.00"]),
        (lambda z, w: cr.minimum(z, w), ["[z < w] + ½[z = w] = 0.00", "[w < z] + ½[z = w] = 1.00"]),
        (lambda z, w: cr.relu(z) * w, ["[x > 0] = 1.00"]),
    ],
)
def test_bracketed_formulas_are_visible_in_rich_and_print(make, formulas):
    z, w = cr.tensor(2.0, requires_grad=True), cr.tensor(-1.0, requires_grad=True)
    tr = cr.trace(make(z, w), names={"z": z, "w": w})
    shown = [str(tr), _rich_text(tr)]
    for text in shown:
        for formula in formulas:
            assert formula in text, (formula, text)


def test_max_of_a_vector_shows_its_indicator():
    v = cr.tensor([1.0, 3.0, 2.0], requires_grad=True)
    text = _rich_text(cr.trace(cr.max(v), names={"v": v}))
    assert "[" in text.split("max(v)")[1].split("\n")[0]  # the local-gradient cell is not swallowed as markup


def test_vector_cells_do_not_start_with_their_length():
    v = cr.tensor([0.22, 0.26], requires_grad=True)
    text = str(cr.trace(cr.sum(v * v), names={"v": v}))
    assert "[0.44, 0.52]" in text and "2 [" not in text


def test_model_parameters_are_named_like_named_parameters():
    rng = np.random.default_rng(0)
    model = cr.nn.Sequential(cr.nn.Linear(3, 4), cr.nn.ReLU(), cr.nn.Linear(4, 2))
    loss = cr.nn.cross_entropy(model(cr.tensor(rng.normal(size=(5, 3)))), rng.integers(0, 2, size=5))
    tr = cr.trace(loss, model=model, accumulate=False)
    assert [leaf.label for leaf in tr.leaves] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "0.weight" in str(tr) and "x1" not in [leaf.label for leaf in tr.leaves]
    np.testing.assert_allclose(tr.grad("2.bias").shape, (2,))
    with pytest.raises(TypeError, match="model= expects a cr.nn.Module"):
        cr.trace(loss, model=object(), accumulate=False)


def test_local_jacobian_is_measured_from_the_rule_and_matches_torch():
    W0, a0 = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]]), np.array([0.3, -0.1, 0.2])
    W, a = cr.tensor(W0, requires_grad=True), cr.tensor(a0, requires_grad=True)
    tr = cr.trace(cr.sum(cr.tanh(W @ a)), names={"W": W, "a": a})
    matmul = tr.steps_for("matmul")[0]
    Wt, at = torch.tensor(W0, requires_grad=True), torch.tensor(a0, requires_grad=True)
    jW, ja = torch.autograd.functional.jacobian(lambda w, v: w @ v, (Wt, at))
    np.testing.assert_allclose(matmul.inputs[0].jacobian, jW.reshape(2, 6).numpy())
    np.testing.assert_allclose(matmul.inputs[1].jacobian, ja.numpy())
    assert matmul.inputs[0].structure.startswith("each input reaches one output")
    assert tr.steps_for("tanh")[0].inputs[0].structure.startswith("diagonal")


def test_a_models_parameters_are_named_without_being_told():
    from chainrule import nn

    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU(), nn.Linear(2, 1, rng=1))
    x = cr.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    t = cr.trace(model(x).sum())
    assert sorted(leaf.label for leaf in t.leaves) == ["0.bias", "0.weight", "2.bias", "2.weight", "x1"]
    assert "0.weight" in str(t)  # the printed table uses the same names


def test_a_parameter_registered_in_two_models_keeps_a_neutral_name():
    import copy

    from chainrule import nn

    a, b = nn.Sequential(nn.Linear(2, 1, rng=0)), nn.Sequential(nn.Linear(2, 1, rng=1))
    twin = copy.deepcopy(a)
    x = cr.tensor(np.ones((1, 2), np.float32))
    t = cr.trace((a(x) + twin(x) + b(x)).sum(), names={"b_w": b[0].weight})
    labels = {leaf.label for leaf in t.leaves}
    assert "b_w" in labels and "0.bias" not in labels  # three models' 0.bias: none may claim the name
    assert np.allclose(twin[0].weight.data, a[0].weight.data)


def test_a_one_input_formula_never_borrows_the_name_of_a_program_variable_called_x():
    x, y = cr.tensor(4.0, requires_grad=True), cr.tensor(2.0, requires_grad=True)
    t = cr.trace(cr.log(y) * x, names={"x": x, "y": y})
    (log_step,) = [s for s in t.steps if s.op == "log"]
    assert log_step.inputs[0].formula == "1 / y"  # not 1 / x, which would read as 1/4 here
    a = cr.tensor(2.0, requires_grad=True)
    (only,) = cr.trace(1.0 / a, names={"a": a}).steps
    assert [e.formula for e in only.inputs if e.formula] == ["-1 / x²"]  # the lecture's placeholder otherwise
