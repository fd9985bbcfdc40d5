"""Every printed step of `derive --steps` checked (issue 23): an audit of programs written for it, and planted faults.

Each step that states a formula carries a claim (a local Jacobian, a vector-Jacobian product, an index
form, a substitution) which derive's check evaluates numerically at two values of each symbolic size against
Jacobians built by central differences of the operation's forward (chainrule.explain.derive_claims).  Here,
for every program: the step check passes with no step left out, each step line shows its error in the JSON,
no stand-in size leaks into the steps, no step is labelled with an invented name where the program has its own
subterm, and every layout prints (or refuses with a clear error).  Then false steps are planted and caught.
"""

import json
import re
import sys

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.cli import main
from chainrule.explain.derive_claims import TOLERANCE
from chainrule.explain.derive_layout import LayoutError
from chainrule.graph import node_of

B, N = "B", "N"
PROGRAMS = [
    # v * v, powers, scalars in front
    ("q = W @ x; f = sum(q * q)", {"W": (3, 2), "x": (2,)}, ()),
    ("L = sum(0.5 * m * m)", {"m": (4, 1)}, ()),
    ("L = sum(0.5 * (m * m))", {"m": (B, 3)}, ()),
    ("L = sum(m * m * m)", {"m": (3,)}, ()),
    ("L = sum(x * x + x)", {"x": (2, 3)}, ()),
    ("L = sum((x - y) * (x - y)) / 2", {"x": (B, 2), "y": (B, 2)}, ("y",)),
    # dense layers: column and row layouts, 1-D operands, symbolic sizes
    ("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, ()),
    ("z = W @ a + b; h = tanh(z); E = sum(h)", {"W": (4, 3), "a": (3, B), "b": (4, 1)}, ()),
    ("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": (B, 3), "W": (4, 3), "b": (4,)}, ()),
    ("z = a @ W.T + b; h = relu(z); E = sum(h)", {"a": (3,), "W": (4, 3), "b": (4,)}, ()),
    ("z = x @ W + b; E = sum(tanh(z))", {"x": (3,), "W": (3, 4), "b": (4,)}, ()),
    ("z = W @ x + b; E = sum(z * z)", {"W": (4, 3), "x": (3,), "b": (4,)}, ()),
    ("s = x @ y; E = s * s", {"x": (3,), "y": (3,)}, ()),
    ("z = x @ W; E = sum(z)", {"x": (N, 3), "W": (3, B)}, ()),
    ("z = W @ a + b; h = f(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, ()),
    ("z = a @ W.T + b; h = f(z); E = mean(h)", {"a": (B, 3), "W": (4, 3), "b": (4,)}, ()),
    # unnamed intermediates
    ("E = sum(sigmoid(W @ x + b))", {"W": (3, 2), "x": (2,), "b": (3,)}, ()),
    ("E = sum(exp(x) / sum(exp(x)))", {"x": (4,)}, ()),
    ("E = sum(tanh(tanh(x)) * y)", {"x": (B, 2), "y": (B, 2)}, ()),
    ("E = mean(log(sigmoid(x @ w)))", {"x": (B, 3), "w": (3,)}, ()),
    # losses
    ("p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": (B, 4), "y": (B, 4)}, ("y",)),
    ("L = mean(logsumexp(s, axis=1) - sum(y * s, axis=1))", {"s": (B, 3), "y": (B, 3)}, ("y",)),
    ("p = sigmoid(x @ w); L = -mean(y * log(p) + (1 - y) * log(1 - p))", {"x": (B, 3), "w": (3,), "y": (B,)}, ("y",)),
    ("z = x @ W; L = sum(maximum(0, 1 - y * z))", {"x": (B, 3), "W": (3, 2), "y": (B, 2)}, ("y",)),
    ("L = sum(log_softmax(s, axis=0) * y)", {"s": (4, B), "y": (4, B)}, ("y",)),
    # norms
    (
        "m = mean(x, axis=1, keepdims=True); c = x - m; v = mean(c * c, axis=1, keepdims=True); "
        "y = c / sqrt(v + 0.001); L = sum(y * w)",
        {"x": (B, 4), "w": (4,)},
        (),
    ),
    ("n = sqrt(sum(x * x, axis=1, keepdims=True)); L = sum(x / n * w)", {"x": (B, 3), "w": (3,)}, ()),
    ("m = mean(x, axis=0); L = sum((x - m) ** 2)", {"x": (B, 3)}, ()),
    # attention
    (
        "s = q @ k.T / 2; a = softmax(s, axis=1); o = a @ v; L = sum(o * o)",
        {"q": (N, 4), "k": (N, 4), "v": (N, 3)},
        (),
    ),
    ("a = softmax(x @ W @ x.T, axis=1); L = sum(a @ x)", {"x": (3, 2), "W": (2, 2)}, ()),
    # reductions, selections, transposes
    ("E = sum(max(x, axis=1) * w)", {"x": (B, 4), "w": (B,)}, ()),
    ("E = sum(min(x, axis=0)) + sum(abs(x))", {"x": (3, 2)}, ()),
    ("E = sum(x.T @ x)", {"x": (3, 2)}, ()),
    ("E = sum(mean(x, axis=0, keepdims=True) * x)", {"x": (B, 2)}, ()),
    ("h = exp(exp(x)); E = sum(w * h)", {"x": (3, 1), "w": (3, 1)}, ()),
]


def _derive(program, shapes, constants):
    return cr.derive(program, shapes, constants=constants)


@pytest.fixture(scope="module")
def audit():
    """Every program derived once: (program, derivation)."""
    return [(p, _derive(p, s, c)) for p, s, c in PROGRAMS]


def test_the_audit_covers_at_least_30_programs():
    assert len(PROGRAMS) >= 30


@pytest.mark.parametrize("program, shapes, constants", PROGRAMS, ids=[p[0][:40] for p in PROGRAMS])
def test_every_step_of_every_program_is_checked_and_true(program, shapes, constants):
    d = _derive(program, shapes, constants)
    steps = d.check.steps
    assert d.ok, d.check.text()
    assert steps.ok and steps.checked > 0 and not steps.unchecked, steps.as_dict()
    for name, lines in d.steps.items():
        for st in lines:
            if st.claim is None:  # said in words (a structure with nothing to compute), never as a formula
                assert " is " in st.text.split("=")[0] or "=" not in st.text, st.text
                continue
            assert st.check is not None and st.check["max_error"] is not None, (name, st.text)
            assert st.check["max_error"] <= TOLERANCE, (name, st.text, st.check)
    text = d.steps_text()
    if d.dims:  # a stand-in size never shows in a step meant to hold for every size
        for size in d.dims:
            assert not re.search(rf"(?<![\w.]){size}(?![\w.])", text), text
        assert "1/7" not in text and "0.142857" not in text
    assert "\x01" not in text and "\x02" not in text and "\x00" not in text


@pytest.mark.parametrize("program, shapes, constants", PROGRAMS, ids=[p[0][:40] for p in PROGRAMS])
def test_every_layout_prints_or_refuses_clearly(program, shapes, constants):
    d = _derive(program, shapes, constants)
    for which in ("column", "row"):
        try:
            out = d.layout(which)
        except LayoutError as exc:  # a clear refusal (an operation with no transposed form), not a crash
            assert str(exc)
            continue
        assert "layout" in out and "=" in out


def test_the_json_gives_each_step_its_error():
    d = _derive("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": (B, 3), "W": (4, 3), "b": (4,)}, ())
    record = json.loads(d.to_json())
    lines = [s for eq in record["equations"] for s in eq["steps"]]
    assert lines and all("check" in s and s["check"]["max_error"] <= TOLERANCE for s in lines)
    assert record["check"]["steps"]["checked"] == len(lines) and record["check"]["steps"]["failed"] == []


def test_v_times_v_is_one_operation_with_2v_and_its_jacobian_is_torchs():
    d = _derive("q = W @ x; f = sum(q * q)", {"W": (3, 2), "x": (2,)}, ())
    texts = [s.text for s in d.steps["dq"]]
    assert "∂(q ⊙ q)/∂q = diag(2 q)" in texts and not any("operand" in t or "feeds" in t for t in texts)
    q = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    total = torch.autograd.functional.jacobian(lambda u: u * u, q)
    np.testing.assert_allclose(total.numpy(), np.diag(2 * q.numpy()))


def test_a_scalar_times_a_square_names_the_programs_subterm():
    """0.5 m² printed ∂(0.5 m²)/∂m = diag(0.5 m) (it is m): the consumer is now the program's own (0.5 m ⊙ m),
    and the partial says which operand it holds fixed."""
    d = _derive("L = sum(0.5 * m * m)", {"m": (4, 1)}, ())
    texts = [s.text for s in d.steps["dm"]]
    assert "∂(0.5 m ⊙ m)/∂(m as operand 2) = diag(0.5 m)" in texts
    assert not any("0.5 m + 0.5 m" in t for t in texts) and texts[-1] == "⇒ dm = m"
    assert d.check.steps.ok


def test_row_layout_and_1d_operands_get_index_forms():
    row = _derive("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": (B, 3), "W": (4, 3), "b": (4,)}, ())
    texts = [s.text for s in row.steps["dW"]]
    assert any(t.startswith("d(Wᵀ)_jp = Σ_i Σ_c dz_ic") for t in texts)  # (index p: the program's b is the bias)
    assert any(t.startswith("dW_ij = Σ_k Σ_l d(Wᵀ)_kl") and t.endswith("= d(Wᵀ)_ji") for t in texts)
    one = _derive("z = a @ W.T + b; h = relu(z); E = sum(h)", {"a": (3,), "W": (4, 3), "b": (4,)}, ())
    assert any(t.startswith("d(Wᵀ)_jp = Σ_c dz_c") for t in (s.text for s in one.steps["dW"]))
    assert any(t.startswith("da_j = Σ_p dz_p") for t in (s.text for s in one.steps["da"]))
    cs = _derive("q = W @ x; f = sum(q * q)", {"W": (3, 2), "x": (2,)}, ())
    assert "dx_j = Σ_i dq_i ∂q_i/∂x_j = Σ_i dq_i W_ij" in [s.text for s in cs.steps["dx"]]


def test_unnamed_intermediates_get_steps_of_their_own():
    d = _derive("E = sum(sigmoid(W @ x + b))", {"W": (3, 2), "x": (2,), "b": (3,)}, ())
    texts = [s.text for s in d.steps["dW"]]
    assert any(t.startswith("⇒ d(W · x + b) = ") for t in texts)
    assert any(t.startswith("⇒ d(W · x) = ") for t in texts)
    # the one name derive adds (the program's sigmoid(W @ x + b), used twice by its rule) is said at once
    assert d.steps["du1"][0].text == "u1 = σ(W · x + b)" and "sigmoid(W @ x + b)" in d.steps["du1"][0].reason


def test_the_flattening_convention_holds_in_both_orders():
    d = _derive("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 2), "b": (4, 1)}, ())
    (kron,) = [s for s in d.steps["dW"] if s.text.startswith("∂(W · a)/∂W = ")]
    assert "numbered row by row" in kron.text and "aᵀ ⊗ I_4" in kron.text
    assert kron.claim.full_by_columns is not None and kron.check["max_error"] <= TOLERANCE


# --- planted faults ---------------------------------------------------------------------------------------
def _plant_wrong_local_derivative(monkeypatch):
    """The steps' builder shows sigmoid's derivative as h (the (1 − h) factor forgotten); the equations, built
    by the walk's own rule, stay right."""
    steps_mod = sys.modules["chainrule.explain.derive_steps"]
    real = steps_mod._edge_steps

    def planted(walk, x, xn, t, roles, g, term, many, edge):
        rule = walk.rule

        def wrong(t2, i, g2, out):
            if node_of(t2).prim.name == "sigmoid":
                return g2 * out  # forgot (1 − σ)
            return rule(t2, i, g2, out)

        walk.rule = wrong
        try:
            return real(walk, x, xn, t, roles, g, term, many, edge)
        finally:
            walk.rule = rule

    monkeypatch.setattr(steps_mod, "_edge_steps", planted)


def test_a_planted_false_step_fails_the_check(monkeypatch):
    _plant_wrong_local_derivative(monkeypatch)
    d = _derive("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, ())
    assert "∂h/∂z = diag(h)" in [s.text for s in d.steps["dz"]]  # the planted line is printed...
    assert not d.ok and d.check.status == "failed"  # ...and caught, although every equation is right
    assert all(e <= TOLERANCE for e in d.check.errors.values())
    assert any("∂h/∂z = diag(h)" in f and "is false" in f for f in d.check.steps.failures)


def test_a_planted_false_step_makes_the_cli_exit_1(monkeypatch, capsys):
    _plant_wrong_local_derivative(monkeypatch)
    rc = main(["derive", "z = W @ a + b; h = sigmoid(z); E = sum(h)", "--shape", "W=4x3", "a=3x1", "b=4x1", "--steps"])
    captured = capsys.readouterr()
    assert rc == 1 and "check FAILED" in captured.err and "false step line" in captured.err


def test_a_planted_wrong_index_form_fails_the_check(monkeypatch):
    """The matmul builder's index form with the operands' roles swapped (Σ_b dz_ib a_jb read as a_bj)."""
    steps_mod = sys.modules["chainrule.explain.derive_steps"]
    real = steps_mod._index_claim

    def planted(walk, forms, edge, shape):
        return real(walk, [lambda env, f=f: np.flip(f(env)) for f in forms], edge, shape)

    monkeypatch.setattr(steps_mod, "_index_claim", planted)
    d = _derive("z = W @ a + b; E = sum(tanh(z))", {"W": (4, 3), "a": (3, 2), "b": (4, 1)}, ())
    assert not d.ok and any("dW_ij" in f for f in d.check.steps.failures)


def test_a_planted_stand_in_size_in_a_step_fails_the_check(monkeypatch):
    """A step that printed the stand-in size (the old '7 copies') differs between the two runs: caught."""
    steps_mod = sys.modules["chainrule.explain.derive_steps"]
    monkeypatch.setattr(steps_mod, "_copies", lambda shape, target: str(int(np.prod(target)) // int(np.prod(shape))))
    d = _derive("z = W @ a + b; E = sum(tanh(z))", {"W": (4, 3), "a": (3, B), "b": (4, 1)}, ())
    assert not d.ok and any("at the other size" in f for f in d.check.steps.failures)


def test_the_planted_false_step_is_marked_where_it_is_printed(monkeypatch):
    _plant_wrong_local_derivative(monkeypatch)
    d = _derive("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, ())
    (line,) = [ln for ln in d.steps_text().split("\n") if "∂h/∂z = diag(h)" in ln]
    assert "✗ FALSE (relative error" in line
    assert (
        "✗" not in _derive("z = W @ a + b; E = sum(tanh(z))", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, ()).steps_text()
    )


def _matrix_claim(d, name, starts):
    (st,) = [s for s in d.steps[name] if s.text.startswith(starts)]
    return st.claim


def test_the_named_matrices_agree_with_torchs_jacobians():
    """The matrices the steps name, as the claims build them, against torch.autograd's Jacobians at the same
    recorded values (a reference independent of chainrule and of central differences)."""
    jac = torch.autograd.functional.jacobian
    dense = _derive("z = W @ a + b; E = sum(tanh(z))", {"W": (4, 3), "a": (3, 2), "b": (4, 1)}, ())
    kron = _matrix_claim(dense, "dW", "∂(W · a)/∂W = I_4 ⊗ aᵀ")
    W, a = (torch.tensor(v) for v in kron.edge.operands)
    J = jac(lambda w: w @ a, W).reshape(8, 12).numpy()
    np.testing.assert_allclose(kron.full(kron.env), J, atol=1e-12)
    J_by_columns = J[np.ix_(np.arange(8).reshape(4, 2).T.ravel(), np.arange(12).reshape(4, 3).T.ravel())]
    np.testing.assert_allclose(kron.full_by_columns(kron.env), J_by_columns, atol=1e-12)

    attn = _derive("a = softmax(s, axis=1); L = sum(a * a)", {"s": (3, 4)}, ())
    soft = _matrix_claim(attn, "ds", "∂a/∂s = ")
    s = torch.tensor(soft.edge.operands[0])
    np.testing.assert_allclose(soft.full(soft.env), jac(lambda u: torch.softmax(u, 1), s).reshape(12, 12), atol=1e-12)

    log = _derive("L = sum(log_softmax(s, axis=0) * y)", {"s": (4, 3), "y": (4, 3)}, ("y",))
    logc = _matrix_claim(log, "ds", "∂u1/∂s = ")  # (u1: the program's log_softmax(s, axis=0), defined in du1)
    assert log.steps["du1"][0].text == "u1 = log_softmax(s, axis=0)"
    s = torch.tensor(logc.edge.operands[0])
    want = jac(lambda u: torch.log_softmax(u, 0), s).reshape(12, 12)
    np.testing.assert_allclose(logc.full(logc.env), want, atol=1e-12)

    square = _derive("q = W @ x; f = sum(q * q)", {"W": (3, 2), "x": (2,)}, ())
    diag = _matrix_claim(square, "dq", "∂(q ⊙ q)/∂q = diag(2 q)")
    q = torch.tensor(diag.edge.operands[0])
    np.testing.assert_allclose(diag.full(diag.env), jac(lambda u: u * u, q), atol=1e-12)


def test_index_letters_never_clash_with_the_programs_names():
    """In attention the program names a value k: the steps' index k becomes another letter (dk_ij = Σ_p …)."""
    d = _derive("s = q @ k.T / 2; a = softmax(s, axis=1); L = sum(a)", {"q": ("N", 4), "k": ("N", 4)}, ())
    texts = [s.text + " " + s.reason for s in d.steps["dk"]]
    assert any("dk_ij = Σ_p Σ_l d(kᵀ)_pl" in t for t in texts)
    assert not any(re.search(r"Σ_k\b|_k[a-z]?\b|\[k = |entry k |column k ", t) for t in texts)
    assert "J would be N²×N²" in " ".join(texts) and d.check.steps.ok


CLI_LAYOUTS = [p for p in PROGRAMS if "f(" in p[0] or ".T" in p[0] or p[0].startswith("q = W @ x")]


@pytest.mark.parametrize("program, shapes, constants", CLI_LAYOUTS, ids=[p[0][:40] for p in CLI_LAYOUTS])
def test_the_cli_prints_every_layout_with_steps(program, shapes, constants, capsys):
    """`--layout both --steps` (it crashed with a ParseError for the generic f): exit 0, both layouts printed."""
    shape_args = ["x".join(str(d) for d in s) if s else "scalar" for s in shapes.values()]
    args = ["derive", program, "--shape", *[f"{n}={t}" for n, t in zip(shapes, shape_args)], "--steps"]
    args += ["--layout", "both"] + (["--const", *constants] if constants else [])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "column layout" in out and "row layout" in out and "each formula checked numerically" in out


def test_a_forward_name_as_upstream_is_not_taken_for_a_gradient():
    """In 0.5 * m * m the gradient of (0.5 m) is m (a formula that is a forward name): its steps are derived
    (it printed dm = (∂(0.5 m)/∂m)ᵀ m with no step giving m), each unnamed value's steps once per equation."""
    d = _derive("L = sum(0.5 * m * m)", {"m": (3,)}, ())
    texts = [s.text for s in d.steps["dm"]]
    assert "⇒ d(0.5 m) = m" in texts and "dm = (∂(0.5 m)/∂m)ᵀ d(0.5 m)  [path (0.5 m)]" in texts
    assert texts.count("⇒ d(0.5 m ⊙ m) = ones(3)") == 1
    twice = _derive("L = sum(0.5 * m * m + 0.5 * m * m)", {"m": (3,)}, ())
    assert any("[via (0.5 m ⊙ m), use 2]" in s.text for s in twice.steps["dm"]) and twice.check.steps.ok
