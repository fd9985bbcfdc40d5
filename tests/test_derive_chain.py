"""derive --chain: each gradient as the sum over paths of the ordered product of the local Jacobians, checked."""

import json

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.cli import main
from chainrule.explain import derive_chain
from chainrule.graph import node_of
from chainrule.primitive import REGISTRY

DENSE = "z = W @ a + b; h = tanh(z); E = sum(h)"
DENSE_SHAPES = {"W": (4, 3), "a": (3, 1), "b": (4, 1)}


def _values(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, v) for k, v in shapes.items()}


def _torch_jacobian(fn, values, wrt):
    """The Jacobian of the output with respect to ``wrt``, by torch (rows: output entries, flattened)."""
    fixed = {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}

    def f(x):
        return fn({**fixed, wrt: x}).reshape(-1)

    J = torch.autograd.functional.jacobian(f, fixed[wrt])
    return J.reshape(J.shape[0], -1).numpy()


def test_dense_layer_chain_text_sizes_and_structures():
    d = cr.derive(DENSE, DENSE_SHAPES)
    texts = {ln.wrt: ln.text() for ln in d.chain.links}
    assert list(texts) == ["h", "z", "W", "a", "b"]
    assert texts["a"] == "∂E/∂a = ∂E/∂h · ∂h/∂z · ∂(W @ a)/∂a   (1×4)(4×4)(4×3)   [∂z/∂(W @ a) = I, left out]"
    assert texts["W"] == "∂E/∂W = ∂E/∂h · ∂h/∂z · ∂(W @ a)/∂W   (1×4)(4×4)(4×12)   [∂z/∂(W @ a) = I, left out]"
    assert texts["b"] == "∂E/∂b = ∂E/∂h · ∂h/∂z · ∂z/∂b   (1×4)(4×4)(4×4)"
    link = d.chain.link("a")
    assert [f.structure for f in link.paths[0].factors] == ["row of ones", "diagonal", "identity", "dense"]
    # the factors' structures are the Jacobian notes' own (one source)
    notes = {(j.operation, j.role): j.structure.kind for j in d.jacobians}
    for f in link.paths[0].factors:
        if f.rows * f.cols > 1:
            assert notes[(f.operation, f.role)] == f.structure
    # the shortcut: VJPs from the left, never a factor
    assert link.shortcut.startswith("dE = 1 → dh (a broadcast of the upstream gradient) → dz (an elementwise product")
    assert "da (a matrix product Wᵀ · g)" in link.shortcut and "never builds a factor" in link.shortcut
    assert "∂h/∂z, would be 4×4" in link.shortcut


def test_dense_layer_chain_at_values_matches_the_engine_central_differences_and_torch():
    d = cr.derive(DENSE, DENSE_SHAPES)
    values = _values(DENSE_SHAPES, 3)
    chain = d.chain.evaluate(values)
    assert chain.status == "passed" and chain.ok and chain.max_error < 1e-7
    for wrt in ("W", "a", "b"):
        ln = chain.link(wrt)
        ref = _torch_jacobian(lambda t: torch.tanh(t["W"] @ t["a"] + t["b"]).sum(), values, wrt)
        np.testing.assert_allclose(ln.product, ref, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(ln.engine, ref, rtol=1e-12, atol=1e-14)
    # the factors' entries are what the notes say: ∂h/∂z = diag(1 − tanh²(z)), ∂(W @ a)/∂a = W
    z = values["W"] @ values["a"] + values["b"]
    factors = {f.symbol: f.entries for f in chain.factors}
    np.testing.assert_allclose(factors["∂h/∂z"], np.diag(1 - np.tanh(z).ravel() ** 2), atol=1e-8)
    np.testing.assert_allclose(factors["∂(W @ a)/∂a"], values["W"], atol=1e-8)
    np.testing.assert_allclose(factors["∂z/∂(W @ a)"], np.eye(4), atol=1e-8)


def test_fan_out_is_a_sum_over_paths():
    d = cr.derive("u = tanh(x); v = sigmoid(x); E = sum(u * v)", {"x": (3,)})
    ln = d.chain.link("x")
    assert ln.n_paths == 2
    assert ln.text() == (
        "∂E/∂x = ∂E/∂(u * v) · ∂(u * v)/∂u · ∂u/∂x + ∂E/∂(u * v) · ∂(u * v)/∂v · ∂v/∂x   (the sum over 2 paths; 1×3)"
    )
    assert "2 terms added" in ln.shortcut and "adds their terms once, where they meet" in ln.shortcut
    values = {"x": np.array([0.3, -0.7, 1.1])}
    d.chain.evaluate(values)
    assert d.chain.ok
    x = torch.tensor(values["x"], requires_grad=True)
    (torch.tanh(x) * torch.sigmoid(x)).sum().backward()
    np.testing.assert_allclose(ln.product.ravel(), x.grad.numpy(), rtol=1e-7)
    one, two = (p.product.ravel() for p in d.chain.link("x").paths)
    assert not np.allclose(one, x.grad.numpy(), rtol=1e-3)  # one path alone is not the gradient
    np.testing.assert_allclose(one + two, x.grad.numpy(), rtol=1e-7)


def test_v_times_v_is_two_paths_one_per_operand():
    d = cr.derive("q = W @ x; f = sum(q * q)", {"W": (2, 2), "x": (2,)})
    ln = d.chain.link("q")
    assert ln.n_paths == 2 and "∂(q * q)/∂q [operand 1]" in ln.text() and "∂(q * q)/∂q [operand 2]" in ln.text()
    d.chain.evaluate({"W": np.array([[0.1, 0.5], [-0.3, 0.8]]), "x": np.array([0.2, 0.4])})
    q = np.array([[0.1, 0.5], [-0.3, 0.8]]) @ np.array([0.2, 0.4])
    np.testing.assert_allclose(d.chain.link("q").product.ravel(), 2 * q, rtol=1e-7)  # d(q²)/dq = 2q, both terms
    assert d.chain.ok


def test_many_paths_are_counted_and_summed_at_shared_values():
    d = cr.derive("a = x * x; b = a * a; c = b * b; d = c * c; E = sum(d)", {"x": (2,)})
    ln = d.chain.link("x")
    assert ln.n_paths == 16 and len(ln.paths) == derive_chain.MAX_PATHS
    assert "4 more paths" in ln.text()
    x = np.array([0.9, -1.05])
    d.chain.evaluate({"x": x})
    assert d.chain.ok
    np.testing.assert_allclose(ln.product.ravel(), 16 * x**15, rtol=1e-7)


def test_symbolic_size_and_the_full_jacobian_it_avoids():
    d = cr.derive("z = a * s; h = tanh(z); E = sum(h)", {"a": ("B", 4096), "s": (4096,)})
    ln = d.chain.link("a")
    assert ln.text() == "∂E/∂a = ∂E/∂h · ∂h/∂z · ∂z/∂a   (1×4096B)(4096B×4096B)(4096B×4096B)"
    assert "∂h/∂z, would be 4096B×4096B; at B = 100: 409,600×409,600 (1.3 TB of float64)" in ln.shortcut
    assert d.chain.link("s").text().endswith("(4096B×4096)")
    # the same program at small concrete values is checked
    small = cr.derive("z = a * s; h = tanh(z); E = sum(h)", {"a": ("B", 3), "s": (3,)})
    assert small.chain.link("a").text().endswith("(1×3B)(3B×3B)(3B×3B)")
    small.chain.evaluate(_values({"a": (2, 3), "s": (3,)}))
    assert small.chain.ok and small.chain.link("s").product.shape == (1, 3)


def test_row_layout_goes_through_the_transpose():
    program = "z = a @ W.T + b; h = tanh(z); E = sum(h)"
    d = cr.derive(program, {"a": ("B", 3), "W": (4, 3), "b": (4,)})
    ln = d.chain.link("W")
    assert ln.text() == (
        "∂E/∂W = ∂E/∂h · ∂h/∂z · ∂(a @ W.T)/∂(W.T) · ∂(W.T)/∂W   (1×4B)(4B×4B)(4B×12)(12×12)"
        "   [∂z/∂(a @ W.T) = I, left out]"
    )
    assert [f.structure for f in ln.paths[0].factors][-2:] == ["Kronecker product with an identity", "permutation"]
    assert d.chain.link("b").paths[0].factors[-1].structure == "stack of identities"
    values = _values({"a": (2, 3), "W": (4, 3), "b": (4,)}, 5)
    d.chain.evaluate(values)
    assert d.chain.ok
    for wrt in ("a", "W", "b"):
        ref = _torch_jacobian(lambda t: torch.tanh(t["a"] @ t["W"].T + t["b"]).sum(), values, wrt)
        np.testing.assert_allclose(d.chain.link(wrt).product, ref, rtol=1e-7, atol=1e-9)


def test_a_non_scalar_output_gives_the_whole_jacobian():
    d = cr.derive("z = W @ x", {"W": (2, 3), "x": (3,)})
    ln = d.chain.link("x")
    assert ln.text() == "∂z/∂x = ∂z/∂x   (2×3)" and "the whole 2-row Jacobian of z" in ln.shortcut
    values = _values({"W": (2, 3), "x": (3,)})
    d.chain.evaluate(values)
    np.testing.assert_allclose(ln.product, values["W"], atol=1e-8)
    assert d.chain.ok


def test_json_has_the_chain_its_factors_and_max_error(capsys):
    args = ["derive", DENSE, "--chain", "--json", "--at", "W=[[0.1,0.5,-0.2],[-0.3,0.8,0.4]]"]
    args += ["a=[[0.2],[0.4],[-0.1]]", "b=[[0.05],[-0.1]]"]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    chain = record["chain"]
    assert chain["status"] == "passed" and chain["max_error"] < 1e-7
    links = {ln["wrt"]: ln for ln in chain["links"]}
    assert links["a"]["text"].startswith("∂E/∂a = ∂E/∂h · ∂h/∂z · ∂(W @ a)/∂a   (1×2)(2×2)(2×3)")
    assert [f["structure"] for f in links["a"]["paths"][0]["factors"]] == [
        "row of ones",
        "diagonal",
        "identity",
        "dense",
    ]
    np.testing.assert_allclose(links["a"]["paths"][0]["factors"][-1]["entries"], [[0.1, 0.5, -0.2], [-0.3, 0.8, 0.4]])
    assert links["a"]["max_error"] < 1e-7 and np.shape(links["a"]["product"]) == (1, 3)
    assert {f["symbol"] for f in chain["factors"]} >= {"∂E/∂h", "∂h/∂z", "∂(W @ a)/∂W", "∂(W @ a)/∂a"}
    # without values: the chain's structure, no numbers
    plain = json.loads(cr.derive(DENSE, DENSE_SHAPES).to_json())["chain"]
    assert "max_error" not in plain and "entries" not in plain["links"][0]["paths"][0]["factors"][0]


def test_cli_text_with_values(capsys):
    args = ["derive", "z = W @ a + b; h = f(z); E = sum(h)", "--chain", "--at"]
    args += ["W=[[0.1,0.5,-0.2],[-0.3,0.8,0.4]]", "a=[[0.2],[0.4],[-0.1]]", "b=[[0.05],[-0.1]]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "∂E/∂a = ∂E/∂h · ∂h/∂z · ∂(W @ a)/∂a   (1×2)(2×2)(2×3)" in out
    assert "chain at the given values" in out and "chain checked:" in out
    assert "∂h/∂z  (2×2, diagonal) =" in out and "sin stands in" in out


def test_a_planted_false_chain_factor_fails_with_exit_1(monkeypatch, capsys):
    honest = derive_chain._local_jacobian

    def planted(t, i):
        J = honest(t, i)
        return 1.5 * J if node_of(t).prim.name == "tanh" else J  # a wrong ∂h/∂z

    monkeypatch.setattr(derive_chain, "_local_jacobian", planted)
    args = ["derive", DENSE, "--chain", "--at", "W=[[0.1,0.5,-0.2],[-0.3,0.8,0.4]]"]
    args += ["a=[[0.2],[0.4],[-0.1]]", "b=[[0.05],[-0.1]]"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "chain check FAILED" in captured.out and "chain check FAILED" in captured.err
    assert "∂E/∂a" in captured.err and "← WRONG" in captured.out
    failures = captured.err.split("relative errors ")[1]
    assert "∂E/∂z" in failures and "∂E/∂h " not in failures  # (the link without the false factor still agrees)


def test_a_wrong_path_fails_the_check(monkeypatch):
    honest = derive_chain._paths
    monkeypatch.setattr(derive_chain, "_paths", lambda *a: honest(*a)[:1] * 2)  # the first path twice
    d = cr.derive("u = tanh(x); v = sigmoid(x); E = sum(u * v)", {"x": (3,)})
    d.chain.evaluate({"x": np.array([0.3, -0.7, 1.1])})
    assert d.chain.status == "failed" and d.chain.link("x").error > 1e-3


def test_a_planted_wrong_rule_shows_as_disagreement_with_the_engine(monkeypatch):
    """The factors are built from the forwards: a wrong VJP rule makes the engine disagree with the chain."""
    monkeypatch.setattr(REGISTRY["tanh"], "vjps", (lambda xp, g, out, x: g * out,))
    d = cr.derive(DENSE, DENSE_SHAPES, check=False)
    d.chain.evaluate(_values(DENSE_SHAPES))
    ln = d.chain.link("a")
    assert d.chain.status == "failed"
    np.testing.assert_allclose(ln.product, ln.central, rtol=1e-6, atol=1e-9)  # central differences agree
    assert np.max(np.abs(ln.product - ln.engine)) > 1e-2


def test_values_must_cover_the_inputs():
    d = cr.derive(DENSE, DENSE_SHAPES)
    with pytest.raises(cr.ParseError, match="values are needed for b"):
        d.chain.evaluate({"W": np.zeros((4, 3)), "a": np.zeros((3, 1))})


def test_values_too_big_for_explicit_factors_are_not_checked_and_say_so():
    shapes = {"W": (80, 60), "a": (60, 1), "b": (80, 1)}
    d = cr.derive(DENSE, shapes, check=False)
    d.chain.evaluate(_values(shapes))
    assert d.chain.status == "not made" and not d.chain.ok
    assert "∂E/∂W has 4,800 columns" in d.chain.reason and "use smaller values" in d.chain.reason
    assert "could not be checked" in d.chain.check_text()


def test_every_audit_program_has_a_chain_that_checks():
    """The derive audit's programs: each chain, at values, agrees with cr.jacobian and central differences."""
    from .test_derive_audit import PROGRAMS

    worst, links = 0.0, 0
    for program, shapes, constants in PROGRAMS:
        concrete = {k: tuple(2 if d == "B" else d for d in v) for k, v in shapes.items()}
        rng = np.random.default_rng(1)
        values = {k: rng.uniform(0.3, 1.2, v) * rng.choice([-1.0, 1.0], v) for k, v in concrete.items()}
        if "log" in program or "sqrt" in program:  # inside the domain
            values = {k: v if k.startswith("W") else np.abs(v) for k, v in values.items()}
            if "y" in values:
                values["y"] = values["y"] / 2
        d = cr.derive(program, shapes, constants=constants, check=False)
        d.chain.evaluate(values)
        assert d.chain.ok, (program, d.chain.check_text())
        worst, links = max(worst, d.chain.max_error), links + len(d.chain.links)
    assert worst < 1e-7 and links > 100


def test_a_value_at_a_kink_is_named_and_not_compared():
    d = cr.derive("h = relu(x); E = sum(h * y)", {"x": (3,), "y": (3,)})
    d.chain.evaluate({"x": np.array([0.0, 1.0, -2.0]), "y": np.array([1.0, 2.0, 3.0])})
    assert d.chain.ok and d.chain.link("x").kinks == ["∂h/∂x"] and not d.chain.link("y").kinks
    assert "∂E/∂x not compared: at a kink" in d.chain.check_text()
    d.chain.evaluate({"x": np.array([0.5, 1.0, -2.0]), "y": np.array([1.0, 2.0, 3.0])})  # away from it: compared
    assert d.chain.ok and not d.chain.link("x").kinks
    np.testing.assert_allclose(d.chain.link("x").product.ravel(), [1.0, 2.0, 0.0], atol=1e-8)
    everywhere = cr.derive("E = sum(relu(x))", {"x": (2,)})
    everywhere.chain.evaluate({"x": np.array([0.0, 0.0])})
    assert everywhere.chain.status == "not made" and "kink" in everywhere.chain.reason
