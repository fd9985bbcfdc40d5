"""cr.derive: matrix-form backward equations from the primitives' own VJP rules, checked independently."""

import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import symbolic as S
from chainrule.cli import main
from chainrule.explain.derive_run import load
from chainrule.primitive import REGISTRY

LAYER = "z = W @ a + b; h = sigmoid(z); E = sum(h)"
LAYER_SHAPES = {"W": (64, 32), "a": (32, 1), "b": (64, 1)}


def equations(d):
    return {line.name: (d.equation(line.name), line.shape) for line in d.backward}


def test_dense_layer_equations_shapes_and_check():
    d = cr.derive(LAYER, LAYER_SHAPES)
    assert equations(d) == {
        "dE": ("1", ()),
        "dh": ("ones(64×1)", (64, 1)),
        "dz": ("dh ⊙ h ⊙ (1 − h)", (64, 1)),
        "dW": ("dz · aᵀ", (64, 32)),
        "da": ("Wᵀ · dz", (32, 1)),
        "db": ("dz", (64, 1)),
    }
    assert d.ok and d.max_relative_error < 1e-5
    text = str(d)
    assert "dW = dz · aᵀ" in text and "64×32" in text
    assert "checked against central differences at the given sizes: max relative error" in text
    assert [S.render(line.formula) for line in d.forward] == ["W · a + b", "σ(z)", "Σ h"]


def test_the_check_runs_the_exported_code_not_the_engine():
    """The exported module reproduces torch's gradients, and the check compares it with central differences."""
    program = "z1 = W1 @ x + b1; h = tanh(z1); s = W2 @ h + b2; L = sum(logsumexp(s, axis=0)) - sum(y * s)"
    shapes = {"W1": (6, 4), "x": (4, 3), "b1": (6, 1), "W2": (5, 6), "b2": (5, 1), "y": (5, 3)}
    d = cr.derive(program, shapes, constants=["y"])
    backward = load(d.numpy())
    rng = np.random.default_rng(7)
    vals = {k: rng.standard_normal(v) for k, v in shapes.items()}
    t = {k: torch.tensor(v, requires_grad=k != "y") for k, v in vals.items()}
    s = t["W2"] @ torch.tanh(t["W1"] @ t["x"] + t["b1"]) + t["b2"]
    (torch.logsumexp(s, 0).sum() - (t["y"] * s).sum()).backward()
    got = backward(**vals)
    for name in ("W1", "x", "b1", "W2", "b2"):
        np.testing.assert_allclose(got[name], t[name].grad.numpy(), rtol=1e-10, atol=1e-12)
    assert d.equation("db1") == "Σ_cols(dz1, keepdims)" and d.equation("dz1") == "dh ⊙ (1 − h²)"
    assert set(d.check.errors) >= {"dW1", "dx", "db1", "dW2", "db2", "dz1", "dh", "ds"}


def test_a_planted_wrong_rule_fails_the_check(monkeypatch, capsys):
    sigmoid = REGISTRY["sigmoid"]
    monkeypatch.setattr(sigmoid, "vjps", (lambda xp, g, out, x: g * out,))  # forgot the (1 − σ) factor
    d = cr.derive(LAYER, {"W": (4, 3), "a": (3, 1), "b": (4, 1)})
    assert d.equation("dz") == "dh ⊙ h"
    assert d.check.status == "failed" and not d.ok
    assert d.check.errors["dz"] > 1e-2 and d.check.errors["dW"] > 1e-2
    assert main(["derive", LAYER, "--shape", "W=4x3", "a=3x1", "b=4x1"]) == 1
    captured = capsys.readouterr()
    assert "check FAILED" in captured.out and "check FAILED" in captured.err


def test_overflow_is_checked_at_tamer_values_or_not_at_all(capsys):
    program = "h = exp(exp(exp(exp(x)))); E = sum(w * h)"
    d = cr.derive(program, {"x": (3, 1), "w": (3, 1)})
    assert d.ok and all(np.isfinite(v) for v in d.check.errors.values())  # made where the values are finite
    nan = "E = sum(sqrt(x - x))"  # the gradient is NaN everywhere: never a pass
    assert main(["derive", nan, "--shape", "x=2x2"]) == 1
    captured = capsys.readouterr()
    assert "could not be checked" in captured.out and "NaN" in captured.out and "FAILED" in captured.err


def test_a_module_that_returns_nan_is_not_checked(monkeypatch):
    monkeypatch.setattr(REGISTRY["tanh"], "vjps", (lambda xp, g, out, x: g * xp.log(out - 10.0),))
    d = cr.derive("E = sum(tanh(x))", {"x": (2, 2)})
    assert d.check.status == "not made" and "NaN" in d.check.reason


def test_symbolic_sizes_stay_symbolic():
    d = cr.derive(
        "p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": ("B", 4), "y": ("B", 4)}, constants=["y"]
    )
    assert d.equation("dp") == "((−1/B) y) / p"
    assert d.check.sizes_text() == "at B = 3 and B = 5" and d.ok
    assert "checked against central differences at B = 3 and B = 5" in str(d)
    ln = cr.derive(
        "m = mean(x, axis=1, keepdims=True); v = mean((x - m) ** 2, axis=1, keepdims=True); "
        "y = (x - m) / sqrt(v + 0.00001); L = sum(y * w)",
        {"x": ("B", 6), "w": (6,)},
    )
    assert "broadcast(dv, B×6)" in ln.equation("dx") and "7" not in ln.equation("dx") and ln.ok


def test_shaped_constants_and_the_seed_of_a_non_scalar_output():
    d = cr.derive("L = mean(a @ W)", {"a": ("B", 4), "W": (4, 3)})
    assert d.equation("da") == "((1/(3B)) ones(B×3)) · Wᵀ" and d.ok
    z = cr.derive("z = W @ a", {"W": (3, 4), "a": (4, 1)})
    assert z.equation("dW") == "ones(3×1) · aᵀ"
    assert "not a scalar" in z.seed and "sum(z)" in z.seed and z.seed in str(z)


def test_batched_layer_sums_the_bias_gradient_over_rows():
    d = cr.derive("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": ("B", 32), "W": (64, 32), "b": (64,)})
    eq = {k: (v[0], d.shape_text(v[1])) for k, v in equations(d).items()}
    assert eq["dz"] == ("dh ⊙ h ⊙ (1 − h)", "B×64")
    assert eq["dW"] == ("dzᵀ · a", "64×32") and eq["da"] == ("dz · W", "B×32")
    assert eq["db"] == ("Σ_rows dz", "64")
    assert "   B×64" in str(d) and r"B \times 64" in d.latex() and d.ok


def test_vector_forms_outer_product_and_simplified_constants():
    d = cr.derive("s = W @ x; L = mean(s * s)", {"W": (3, 5), "x": (5,)})
    assert d.equation("dW") == "ds ⊗ x" and d.equation("dx") == "Wᵀ · ds" and d.equation("ds") == "(2/3) s"
    assert "np.outer(ds, x)" in d.numpy()
    assert any("np.outer" in t for t in d.legend())
    two = cr.derive("a = x * x; f = a + a", {"x": ()})
    assert two.equation("da") == "2" or two.equation("dx") == "2 da ⊙ x" or "2" in two.equation("dx")


def test_precedence_is_parenthesized():
    d = cr.derive("s = sum(x, axis=1); E = sum(s * y)", {"x": (3, 4), "y": (3,)})
    assert d.ok
    m = cr.derive("E = sum(sum(x, axis=0) * w)", {"x": (3, 4), "w": (4,)})
    for line in m.forward:
        text = S.render(line.formula)
        assert "Σ_rows x ⊙" not in text  # a sum inside a product is parenthesized
    assert S.render(m.forward[-1].formula) == "Σ ((Σ_rows x) ⊙ w)"


def test_steps_of_the_dense_layer():
    d = cr.derive(LAYER, LAYER_SHAPES)
    steps = {k: [s.text for s in v] for k, v in d.steps.items()}
    assert "dW_ij = Σ_k dz_k ∂(W · a)_k/∂W_ij = Σ_k dz_k [k = i] a_j = dz_i a_j" in steps["dW"]
    assert steps["dW"][-1] == "⇒ dW = dz · aᵀ"
    assert "outer product" in d.steps["dW"][-1].reason
    assert "∂(W · a)/∂a = dense: it is W itself (a is one column)" in steps["da"]
    assert "transpose belongs to the vector-Jacobian product" in d.steps["da"][-1].reason
    assert "∂h/∂z = diag(h ⊙ (1 − h))" in steps["dz"] and "elementwise" in d.steps["dz"][-1].reason
    big = cr.derive("h = sigmoid(z); E = sum(h)", {"z": (100, 4096)}, check=False)
    assert "409,600×409,600" in big.steps["dz"][-1].reason
    assert "steps (index form" in d.text(steps=True)


def test_fan_out_adds_branches_with_their_paths():
    d = cr.derive("a = tanh(x); b = a * a + sin(a); E = sum(b)", {"x": (3,)})
    texts = [s.text for s in d.steps["da"]]
    assert any(t.startswith("da = [via") and t.count("[via") == 2 for t in texts)  # a * a is one operation
    assert "∂(a ⊙ a)/∂a = diag(2 a)" in texts
    assert d.ok


def test_bias_broadcast_steps_say_the_adjoint_of_a_copy_is_a_sum():
    d = cr.derive("z = a @ W.T + b; E = sum(relu(z))", {"a": ("B", 3), "W": (5, 3), "b": (5,)})
    assert any("adjoint of a copy is a sum" in s.reason for s in d.steps["db"])


def test_nested_softmax_shares_subterms():
    inner = "x"
    for _ in range(58):
        inner = f"softmax({inner})"
    start = time.perf_counter()
    d = cr.derive(f"E = sum({inner})", {"x": (4, 5)})
    elapsed = time.perf_counter() - start
    assert len(d.forward) == 59 and d.forward[0].name == "u1"
    assert max(len(ln.text()) for ln in d.backward) < 80  # each line refers to named intermediates
    assert d.check.status in ("passed", "not made")  # (the gradient of a sum of softmaxes is exactly zero)
    assert elapsed < 120  # a generous bound; it takes about a second (the point is: not exponential)
    log = cr.derive("E = sum(log_softmax(log_softmax(log_softmax(log_softmax(x)))))", {"x": (3, 4)})
    assert log.ok


def test_total_size_is_bounded_before_anything_runs(monkeypatch):
    import sys

    D = sys.modules["chainrule.explain.derive"]

    def boom(*args, **kwargs):
        raise AssertionError("the program ran")

    monkeypatch.setattr(D, "evaluate", boom)
    program = "E = sum(x" + " + y" * 40 + ")"
    with pytest.raises(cr.ParseError) as info:
        cr.derive(program, {"x": (1000000, 1), "y": (1, 20)})
    assert info.value.kind == "limit" and "numbers in all" in str(info.value)
    assert "800,000,000" in str(info.value) or "820,000,000" in str(info.value) or "GB" in str(info.value)


def test_json_has_the_schema_of_the_issue(capsys):
    assert main(["derive", LAYER, "--shape", "W=4x3", "a=3x1", "b=4x1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"equations", "jacobians", "check"} <= set(data)
    eq = data["equations"][0]
    assert {"name", "text", "shape", "steps"} <= set(eq)
    jac = next(j for j in data["jacobians"] if j["of_expr"] == "W @ a" and j["wrt"] == "a")
    assert jac == {**jac, "rows": 4, "cols": 3, "structure": "dense", "nonzeros": 12}
    assert data["check"]["status"] == "passed"


def test_numpy_export_is_a_module_with_backward(capsys, tmp_path):
    assert main(["derive", "z = a @ W.T + b; E = sum(relu(z))", "--shape", "a=Bx3", "W=5x3", "b=5", "--numpy"]) == 0
    source = capsys.readouterr().out
    assert "def backward(a, W, b):" in source and "B = a.shape[0]" in source
    assert "keepdims" in source and "1 *" not in source
    path = tmp_path / "grad.py"
    path.write_text(source)
    import importlib.util

    spec = importlib.util.spec_from_file_location("grad", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    a, W, b = rng.standard_normal((9, 3)), rng.standard_normal((5, 3)), rng.standard_normal(5)
    out = mod.backward(a=a, W=W, b=b)
    ta, tW, tb = (torch.tensor(v, requires_grad=True) for v in (a, W, b))
    torch.relu(ta @ tW.T + tb).sum().backward()
    for k, t in (("a", ta), ("W", tW), ("b", tb)):
        np.testing.assert_allclose(out[k], t.grad.numpy(), rtol=1e-12)


def test_latex_output():
    d = cr.derive(LAYER, LAYER_SHAPES)
    tex = d.latex()
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert r"dz &= dh \odot h \odot \left(1 - h\right) && 64 \times 1" in tex
    assert r"dW &= dz \, a^\top" in tex and "×" not in tex and r"\mathbb" not in tex
    assert r"\sigma" in tex
    doc = d.latex_document()
    assert doc.startswith(r"\documentclass") and "×" not in doc.replace(r"$\times$", "")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: texlive-latex-base)")
def test_latex_compiles(tmp_path):
    for program, shapes in [
        (LAYER, LAYER_SHAPES),
        ("p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": ("B", 4), "y": ("B", 4)}),
    ]:
        (tmp_path / "d.tex").write_text(cr.derive(program, shapes).latex_document())
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout[-2000:]


def test_notebook_views_need_no_network():
    d = cr.derive(LAYER, {"W": (4, 3), "a": (3, 1), "b": (4, 1)})
    page = d._repr_html_()
    assert "dW = dz · aᵀ" in page and "steps" in page and "local Jacobians" in page and "<script" not in page
    assert "∂(W @ a)/∂a" in page
    assert d._repr_latex_().startswith("$$")


def test_legend_names_every_notation_used():
    d = cr.derive(
        "p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": ("B", 4), "y": ("B", 4)}, constants=["y"]
    )
    legend = "\n".join(d.legend())
    assert "keepdims" in legend and "Σ_cols" in legend and "B: symbolic" in legend
    r = cr.derive("E = sum(relu(x))", {"x": (2, 2)})
    assert "[a > b]" in "\n".join(r.legend())


@pytest.mark.parametrize(
    "program, shapes, kind, fragment",
    [
        (LAYER, {"W": (64, 32), "a": (32, 1)}, "missing value", "missing shape for b"),
        (LAYER, {"W": (64, 32), "a": (32, 1), "b": (64, 1), "q": (1,)}, "unknown name", "unknown name 'q'"),
        (LAYER, {"W": (64, 32), "a": (31, 1), "b": (64, 1)}, "shape", "matmul"),
        ("z = W.x; E = sum(z)", {"W": (2, 2)}, "not allowed", "attribute access"),
        ("sum(x)", {"x": (2,)}, "syntax", "must end with an assignment"),
        ("E = sum(x * y)", {"x": (2, 3), "y": (4,)}, "shape", "do not broadcast"),
    ],
)
def test_bad_programs(program, shapes, kind, fragment):
    with pytest.raises(cr.ParseError) as info:
        cr.derive(program, shapes)
    assert info.value.kind == kind and fragment in str(info.value)


def test_bad_symbolic_dimension():
    with pytest.raises(cr.ParseError, match="neither a number nor a name"):
        cr.derive("E = sum(a)", {"a": ("3x",)})


@pytest.mark.parametrize(
    "program, shapes",
    [
        (LAYER, {"W": (4, 3), "a": (3, 1), "b": (4, 1)}),
        ("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": (5, 3), "W": (4, 3), "b": (4,)}),
        (
            "h = tanh(x @ W1 + b1); s = h @ W2; L = sum(log_softmax(s, axis=1) * y)",
            {"x": (5, 3), "W1": (3, 4), "b1": (4,), "W2": (4, 2), "y": (5, 2)},
        ),
    ],
)
def test_the_other_layout_is_the_transposed_program(program, shapes):
    """Evaluate both layouts' equations: each value of the other layout is the transpose (weights: the same)."""
    from chainrule.explain.derive_layout import other_layout, weights
    from chainrule.explain.parse import parse_program

    d = cr.derive(program, shapes)
    keep = weights(d.forward, parse_program(program).inputs, d.input_shapes, d.dims)
    assert keep
    rng = np.random.default_rng(3)
    env = {k: rng.standard_normal(v) for k, v in shapes.items()}
    twin = {k: (v.T if v.ndim == 2 and k not in keep else v) for k, v in env.items()}
    for ln, (name, formula, shape) in zip(
        d.forward + d.backward, other_layout(d.forward, keep) + other_layout(d.backward, keep, True)
    ):
        env[ln.name] = np.broadcast_to(S.evaluate(ln.formula, env), ln.shape)
        twin[name] = np.broadcast_to(S.evaluate(formula, twin), shape)
        base = name[1:] if name.startswith("d") and name[1:] in keep else name
        expected = env[ln.name].T if env[ln.name].ndim == 2 and base not in keep else env[ln.name]
        np.testing.assert_allclose(twin[name], expected, rtol=1e-12, atol=1e-12)
    other = "row" if d.own_layout() == "column" else "column"
    assert "layout (every equation transposed" in d.layout(other)


def test_softmax_cross_entropy_reaches_p_minus_y():
    d = cr.derive(
        "p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": ("B", 4), "y": ("B", 4)}, constants=["y"]
    )
    texts = [s.text for s in d.steps["dz"]]
    assert texts[-1] == "= (1/B) (p − y)" and "one-hot" in d.steps["dz"][-1].reason
    col = cr.derive(
        "s = W @ h; p = softmax(s, axis=0); L = -sum(y * log(p))",
        {"W": (3, 2), "h": (2, 1), "y": (3, 1)},
        constants=["y"],
    )
    assert col.steps["ds"][-1].text == "= p − y"


def test_a_generic_activation_f():
    d = cr.derive("z = W @ a + b; h = f(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)})
    assert d.equation("dz") == "dh ⊙ f′(z)" and S.render(d.forward[1].formula) == "f(z)"
    assert "∂h/∂z = diag(f′(z))" in [s.text for s in d.steps["dz"]]
    assert d.ok and "sin standing in" in d.check_text()
    assert "def f_prime(x)" in d.numpy()
    with pytest.raises(cr.ParseError, match="may not also use sin"):
        cr.derive("h = f(z) + sin(z); E = sum(h)", {"z": (2,)})


def test_at_values_the_cs231n_example(capsys):
    argv = ["derive", "q = W @ x; f = sum(q * q)", "--at", "W=[[0.1,0.5],[-0.3,0.8]]", "x=[0.2,0.4]"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dW = [[0.0880, 0.1760], [0.1040, 0.2080]] (2×2)" in out and "dx = [-0.1120, 0.6360]" in out
    assert "∂(W @ x)/∂x  (2×2, dense):" in out and "[-0.3   0.8]" in out
    assert "both uses of q together" in out
    bad = ["derive", "q = W @ x; f = sum(q * q)", "--at", "W=[[0.1,0.5]]", "x=[0.2,0.4]", "--shape", "W=2x2"]
    assert main(bad) == 2
    assert "--shape says" in capsys.readouterr().err


def test_an_overflowing_program_runs_its_forward_once(monkeypatch):
    import sys

    D = sys.modules["chainrule.explain.derive"]
    calls = []
    real = D.evaluate

    def counting(node, env):
        calls.append(node)
        return real(node, env)

    monkeypatch.setattr(D, "evaluate", counting)
    cr.derive("h = exp(exp(exp(exp(x)))); E = sum(w * h)", {"x": (3, 1), "w": (3, 1)}, check=False)
    assert len(calls) == 2  # one forward pass of two statements (no second try on overflow)


def test_layout_on_the_command_line(capsys):
    assert main(["derive", "--layout", "both"]) == 0
    out = capsys.readouterr().out
    assert "column layout (as written):" in out and "row layout (every equation transposed" in out
    assert "z = a · Wᵀ + b" in out and "dW = dzᵀ · a" in out
    assert main(["derive", "E = sum(X @ Y)", "--shape", "X=2x3x4", "Y=2x4x2", "--layout", "row"]) == 2
    assert "more than two dimensions" in capsys.readouterr().err


def test_the_latex_document_has_steps_and_no_unknown_characters():
    d = cr.derive(
        "z1 = W1 @ x + b1; h = tanh(z1); L = sum(h * h) + sum(z1 ** 3)", {"W1": (3, 2), "x": (2, 1), "b1": (3, 1)}
    )
    doc = d.latex_document()
    assert r"\section*{Steps}" in doc and "?" not in doc


@pytest.mark.parametrize("layout", ["row", "column", "both"])
def test_layouts_of_a_program_with_the_generic_f(layout, capsys):
    """--layout with the generic f used to end in a ParseError traceback after the equations (issue 23)."""
    code = main(["derive", "z = W @ a + b; h = f(z); E = sum(h)", "--shape", "W=3x2", "a=2", "b=3", "--layout", layout])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err and "ParseError" not in err
    tail = out.split(" layout (", 1)[1]  # the layout view(s), after the equations
    assert "f′(z)" in tail and "sin" not in tail


def test_a_value_used_twice_in_one_operation_is_one_jacobian(capsys):
    """sum(q * q) (CS231n's ‖Wx‖²): q * q is one operation whose Jacobian with respect to q is diag(2q)
    (issue 23: it printed ∂(q²)/∂q = diag(q), and 'fan-out'; then one partial per operand)."""
    assert main(["derive", "q = W @ x; E = sum(q * q)", "--shape", "W=3x2", "x=2", "--steps"]) == 0
    out = capsys.readouterr().out
    steps = out.split("dq  (3):", 1)[1].split("dW  (", 1)[0]
    assert "∂(q ⊙ q)/∂q = diag(2 q)" in steps and "both uses of q together" in steps
    assert "operand" not in steps and "feeds" not in steps and "diag(q)" not in steps
    assert "⇒ dq = 2 q" in steps
    # each printed partial, built by torch: ∂(u ⊙ v)/∂u at u = v = q is diag(q), and the total is diag(2q)
    q = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    ju, jv = torch.autograd.functional.jacobian(lambda u, v: u * v, (q, q))
    np.testing.assert_allclose(ju.numpy(), np.diag(q.numpy()))
    np.testing.assert_allclose(jv.numpy(), np.diag(q.numpy()))
    total = torch.autograd.functional.jacobian(lambda u: u * u, q)
    np.testing.assert_allclose(total.numpy(), np.diag(2 * q.numpy()))


def test_steps_with_a_symbolic_batch_never_print_the_stand_in_size(capsys):
    """With B symbolic, the steps said 'a stack of identities (7 copies)' and 'over the 7 columns' (issue 23)."""
    assert main(["derive", LAYER, "--shape", "W=4x3", "a=3xB", "b=4x1", "--steps"]) == 0
    out = capsys.readouterr().out
    steps = out.split("steps (", 1)[1].split("local Jacobians", 1)[0]
    stand_in = re.search(r"sizes at B = (\d+)", out).group(1)
    assert "a stack of B identities" in steps and "over the B columns" in steps
    assert not re.search(rf"\b{stand_in}\b", steps)


def test_a_size_fraction_over_a_sum_reads_unambiguously(capsys):
    """'1/B / (1 + exp(−z))' read as 1/(B/(…)) to a learner (issue 23): the fraction is bracketed."""
    program = "z = W @ a + b; E = mean(log(1 + exp(-z)))"
    assert main(["derive", program, "--shape", "W=1x3", "a=3xB", "b=1x1"]) == 0
    out = capsys.readouterr().out
    dz = next(line for line in out.splitlines() if line.strip().startswith("dz ="))
    assert "(1/B) / (1 + exp(−z))" in dz and "1/B / " not in dz
    assert "checked against central differences" in out


def test_row_layout_steps_show_the_matrix_product_behind_dW(capsys):
    """z = a @ W.T + b: dW's steps went from ∂(Wᵀ)/∂W straight to dW = dzᵀ · a (issue 23); the product
    that gives d(Wᵀ) = aᵀ · dz is now derived first, in index form."""
    program = "z = a @ W.T + b; h = sigmoid(z); E = sum(h)"
    assert main(["derive", program, "--shape", "a=Bx3", "W=4x3", "b=4", "--steps"]) == 0
    out = capsys.readouterr().out
    steps = out.split("  dW  (4×3):", 1)[1].split("  db  (", 1)[0]
    order = [
        "d(Wᵀ) = (∂(a · Wᵀ)/∂(Wᵀ))ᵀ dz",
        "d(Wᵀ)_jp = Σ_i Σ_c dz_ic",  # (the index b is p here: the program names its bias b)
        "⇒ d(Wᵀ) = aᵀ · dz",
        "dW_ij = Σ_k Σ_l d(Wᵀ)_kl ∂(Wᵀ)_kl/∂W_ij",
        "⇒ dW = dzᵀ · a",
    ]
    at = [steps.find(text) for text in order]
    assert all(i >= 0 for i in at) and at == sorted(at), at
    # the printed d(Wᵀ) = aᵀ · dz, against torch's own gradient with respect to Wᵀ as a leaf
    rng = np.random.default_rng(2)
    a, wt, dz = (torch.tensor(rng.standard_normal(s)) for s in ((5, 3), (3, 4), (5, 4)))
    wt.requires_grad_(True)
    ((a @ wt) * dz).sum().backward()
    np.testing.assert_allclose(wt.grad.numpy(), (a.T @ dz).numpy(), rtol=1e-12)
