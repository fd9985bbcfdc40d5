"""derive --steps differential: the equations derived with matrix differentials alone, every line checked."""

import json

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import symbolic as S
from chainrule.cli import main
from chainrule.explain import derive_differential as DD
from chainrule.explain.derive_check import _run_forward
from chainrule.explain.derive_differential_check import _environment, _value
from chainrule.explain.parse import generic_program, parse_program

DENSE = "z = W @ a + b; h = f(z); E = sum(h)"
DENSE_SHAPES = {"W": (5, 3), "a": (3, 1), "b": (5, 1)}

PROGRAMS = [  # (program, shapes, constants)
    (DENSE, DENSE_SHAPES, ()),
    ("z = W @ a + b; h = sigmoid(z); E = sum(h)", DENSE_SHAPES, ()),
    ("z = a @ W.T + b; h = tanh(z); E = sum(h)", {"a": ("B", 3), "W": (4, 3), "b": (4,)}, ()),  # row layout, bias
    ("p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": ("B", 4), "y": ("B", 4)}, ("y",)),
    ("s = log_softmax(z, axis=1); L = -sum(y * s) / 3", {"z": (3, 5), "y": (3, 5)}, ("y",)),
    ("q = W @ x; f = sum(q * q)", {"W": (2, 2), "x": (2,)}, ()),  # a 1-D operand, v * v
    ("z = x @ W + b; E = sum(relu(z))", {"x": ("B", 3), "W": (3, 4), "b": (4,)}, ()),
    ("h = tanh(x); E = mean(h ** 2)", {"x": ("B", "D")}, ()),  # two symbolic sizes
    ("m = max(x, axis=1); l = logsumexp(x, axis=0); E = sum(m) + sum(l)", {"x": (3, 4)}, ()),
    ("E = sum(maximum(x, 0.5) * abs(x)) + sum(x ** 3 / sqrt(exp(x)))", {"x": (3, 4)}, ()),
    ("u = A @ B @ C; E = sum(u * u)", {"A": (2, 3), "B": (3, 4), "C": (4, 2)}, ()),
    ("z = x - mean(x, axis=1, keepdims=True); E = sum(z * z)", {"x": ("B", 4)}, ()),
    ("h = exp(x) / (1 + exp(x)); E = sum(log1p(h) * cos(x) + sin(x))", {"x": (4,)}, ()),
    ("y = x @ W; E = sum(min(y, axis=0))", {"x": (3, 4), "W": (4, 2)}, ()),
    (
        "s = q @ k.T / 2; p = softmax(s, axis=1); o = p @ v; E = sum(o * o)",
        {"q": ("T", 3), "k": ("T", 3), "v": ("T", 3)},
        (),
    ),
    (
        "z = W @ x + b; p = sigmoid(z); L = -mean(y * log(p) + (1 - y) * log(1 - p))",
        {"W": (1, 3), "x": (3, "B"), "b": (1, 1), "y": (1, "B")},
        ("y",),
    ),
    ("y = A @ x; E = sum(y)", {"A": (2, 4, 3), "x": (2, 3, 1)}, ()),  # batched matmul
    ("E = x @ A @ x", {"x": (3,), "A": (3, 3)}, ()),  # quadratic form
    ("E = sum(x.T @ x)", {"x": (3, 2)}, ()),  # transpose, the same value twice
    ("y = relu(x @ W1) @ W2; E = sum(y ** 2) / 2", {"x": ("B", 3), "W1": (3, 4), "W2": (4, 2)}, ()),
    ("z = W @ a", {"W": (3, 2), "a": (2, 1)}, ()),  # a non-scalar output: the route follows Σ z
    ("E = sum(x ** y)", {"x": (3,), "y": (3,)}, ()),
    ("E = a * b + a / b - b", {"a": (), "b": ()}, ()),
    ("h1 = relu(x @ W); h2 = h1 + relu(h1 @ W); E = sum(h2)", {"x": ("B", 3), "W": (3, 3)}, ()),  # relu's zeros
    (
        "mu = mean(x, axis=1, keepdims=True); v = mean((x - mu) ** 2, axis=1, keepdims=True); "
        "y = (x - mu) / sqrt(v + 0.00001); E = sum(y * g)",
        {"x": ("B", 5), "g": (5,)},
        (),
    ),  # layer norm from primitives
    (
        "r = sigmoid(x @ Wr); n = tanh(x @ Wn); h = (1 - r) * n + r * h0; E = sum(h)",
        {"x": (2, 3), "Wr": (3, 4), "Wn": (3, 4), "h0": (2, 4)},
        (),
    ),  # GRU-style gate
    ("E = sum(minimum(transpose(x), y) * cos(-y))", {"x": (3, 4), "y": (4, 3)}, ()),
]


def _route(d):
    assert not isinstance(d.differential, str), d.differential
    return d.differential


@pytest.mark.parametrize("program,shapes,constants", PROGRAMS, ids=[p for p, _, _ in PROGRAMS])
def test_every_line_is_checked_and_the_route_ends_in_the_printed_equations(program, shapes, constants):
    d = cr.derive(program, shapes, constants=constants)
    route = _route(d)
    assert d.ok, d.check.text()
    assert route.check.status == "passed", route.check.text()
    assert route.check.lines >= 2 * len(route.gradients)
    if any(isinstance(x, str) for v in shapes.values() for x in (v if isinstance(v, tuple) else (v,))):
        assert len(route.check.sizes) == 2  # checked at both stand-in sizes of the symbols
    names = {ln.name for ln in d.backward}
    by_name = {ln.name: ln for ln in d.backward}
    assert [f"d{n}" for n, _, _ in route.gradients] == [ln.name for ln in d.backward]
    with S.dims_context(d.dims):
        for name, _, steps in route.gradients:
            last = steps[-1]
            assert last.kind in ("read-off", "seed")
            # the same equation the index route prints (its names written δ), so both routes end in it
            want = S.render(DD.rename_gradients(S.simplify(by_name["d" + name].formula), names))
            assert DD.step_text(last) == want
            for st in steps:
                assert st.reason, st
    text = d.text(steps="differential")
    assert "⟨·,·⟩" in text or "⟨A, B⟩" in text  # the legend explains the notation
    for stand_in in (str(v) for v in d.dims):  # symbolic sizes never show their stand-in values
        assert f"1/{stand_in}" not in d.differential_text()


def test_every_primitive_of_the_program_language_is_covered():
    """The programs above use every function and operator derive accepts (each gets its differential and identity)."""
    from chainrule.explain.parse import FUNCTIONS

    used = set()
    for program, shapes, constants in PROGRAMS:
        d = cr.derive(program, shapes, constants=constants, check=False)
        used |= {j.primitive.name for j in d.jacobians}
    wanted = set(FUNCTIONS) | {"add", "sub", "mul", "div", "pow", "neg"}
    assert wanted <= used, wanted - used


def _directional(program, shapes, constants, x, seed=3):
    """⟨∂E/∂x, dx⟩ by float64 central differences of the forward program (no derivation involved)."""
    d = cr.derive(program, shapes, constants=constants)
    route = _route(d)
    prog = parse_program(generic_program(program))
    rng = np.random.default_rng(seed)
    inputs = {
        n: rng.uniform(0.5, 1.5, size=s) if s else np.float64(rng.uniform(0.5, 1.5)) for n, s in route.inputs.items()
    }
    env = _environment(route, inputs, np.random.default_rng(seed + 1))
    h = 1e-6
    plus, minus = dict(inputs), dict(inputs)
    plus[x] = inputs[x] + h * env["d" + x]
    minus[x] = inputs[x] - h * env["d" + x]
    out = prog.output
    fp = float(np.sum(_run_forward(prog, plus)[out].data))
    fm = float(np.sum(_run_forward(prog, minus)[out].data))
    return d, route, env, (fp - fm) / (2 * h)


@pytest.mark.parametrize("program,shapes,constants", PROGRAMS[:12], ids=[p for p, _, _ in PROGRAMS[:12]])
def test_each_line_of_an_inputs_derivation_is_the_directional_derivative(program, shapes, constants):
    """Every line for δx (x an input) is a number: the change of E along dx, by central differences of the program."""
    d = cr.derive(program, shapes, constants=constants)
    for x in [n for n in d.input_shapes if n not in constants]:
        _, route, env, cd = _directional(program, shapes, constants, x)
        (steps,) = [s for n, _, s in route.gradients if n == x]
        for st in steps:
            value, _ = _value(st, env, x)
            assert value == pytest.approx(cd, rel=1e-5, abs=1e-7), (x, st.lead, DD.step_text(st))


def test_dense_layer_text_and_torch():
    d = cr.derive(DENSE, {"W": (64, 32), "a": (32, 1), "b": (64, 1)})
    text = d.differential_text()
    for line in (
        "dz = dW · a + W · da + db",
        "dh = dz ⊙ f′(z)",
        "dE ∋ ⟨δz, dW · a⟩",
        "= tr(δzᵀ · dW · a)",
        "= tr(a · δzᵀ · dW)",
        "= ⟨δz · aᵀ, dW⟩",
        "⇒ δW = δz · aᵀ",
        "= ⟨Wᵀ · δz, da⟩",
        "⇒ δa = Wᵀ · δz",
        "= ⟨δh ⊙ f′(z), dz⟩",
        "⇒ δz = δh ⊙ f′(z)",
        "⇒ δb = δz",
    ):
        assert line in text, line
    assert "⟨A, B · C⟩ = ⟨A · Cᵀ, B⟩" in text and "tr(X · Y) = tr(Y · X)" in text
    # torch: ⟨δz aᵀ, dW⟩ is the derivative of E (f = sin, the check's stand-in) along dW
    route = _route(d)
    rng = np.random.default_rng(0)
    inputs = {n: rng.standard_normal(s) for n, s in route.inputs.items()}
    env = _environment(route, inputs, np.random.default_rng(1))
    W, a, b = (torch.tensor(inputs[n], dtype=torch.float64) for n in "Wab")
    dW = torch.tensor(env["dW"], dtype=torch.float64)
    _, jvp = torch.func.jvp(lambda w: torch.sin(w @ a + b).sum(), (W,), (dW,))
    (steps,) = [s for n, _, s in route.gradients if n == "W"]
    for st in steps:
        assert _value(st, env, "W")[0] == pytest.approx(float(jvp), rel=1e-9)


def test_cli_steps_differential_index_default_and_json(capsys):
    args = ["derive", DENSE, "--shape", "W=4x3", "a=3x1", "b=4x1"]
    assert main(args + ["--steps", "differential"]) == 0
    out = capsys.readouterr().out
    assert "steps (matrix differentials" in out and "⇒ δW = δz · aᵀ" in out
    assert "tr(M): the trace" in out and "Frobenius inner product" in out
    assert "index form → matrix form" not in out
    assert main(args + ["--steps"]) == 0
    plain = capsys.readouterr().out
    assert main(args + ["--steps", "index"]) == 0
    assert capsys.readouterr().out == plain
    assert "index form → matrix form" in plain and "matrix differentials" not in plain
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    diff = data["differential"]
    assert diff["check"]["status"] == "passed"
    assert diff["differentials"][0]["text"] == "dz = dW · a + W · da + db"
    w = next(g for g in diff["gradients"] if g["name"] == "δW")
    assert w["steps"][-1]["text"] == "⇒ δW = δz · aᵀ" and all(s["reason"] for s in w["steps"])
    assert main(args + ["--steps", "tensor"]) == 2
    assert "invalid choice: 'tensor'" in capsys.readouterr().err


def test_symbolic_sizes_and_broadcast_bias():
    d = cr.derive("z = a @ W.T + b; h = sigmoid(z); E = mean(h)", {"a": ("B", 3), "W": (4, 3), "b": (4,)})
    text = d.differential_text()
    assert "⇒ δb = Σ_rows δz" in text
    assert "the operand was broadcast (4 to B×4)" in text
    assert "⟨δz, broadcast(db, B×4)⟩" in text
    assert "B = 7 and B = 11" in _route(d).check.text() and "(1/(4B)) ones(B×4)" in text and "/(28)" not in text


def test_a_planted_false_differential_fails_the_check(monkeypatch, capsys):
    from chainrule.graph import node_of

    real = DD.jvp

    def wrong(walk, t, i, tangent):  # d(A · B) = 2 (dA · B + A · dB): false
        return real(walk, t, i, tangent) * (2.0 if node_of(t).prim.name == "matmul" else 1.0)

    monkeypatch.setattr(DD, "jvp", wrong)
    d = cr.derive(DENSE, DENSE_SHAPES)
    assert not d.ok and d.check.status == "failed"
    assert "a differential step is false" in d.check.reason
    assert "dE ∋ ⟨δz, 2 (W · da)⟩" in d.differential_text()
    assert d.backward and d.equation("dW") == "dz · aᵀ"  # the equations themselves are still right
    assert main(["derive", DENSE, "--shape", "W=4x3", "a=3x1", "b=4x1", "--steps", "differential"]) == 1
    assert "differential step is false" in capsys.readouterr().err


def test_a_planted_false_identity_fails_the_check(monkeypatch, capsys):
    """⟨A, B ⊙ C⟩ = ⟨A ⊙ B, C⟩ with the moved factor squared: a false identity, caught at a random direction."""
    from chainrule.graph import node_of

    real = DD.vjp

    def wrong(walk, t, i, g):
        out = real(walk, t, i, g)
        return out * out if node_of(t).prim.name == "tanh" else out

    monkeypatch.setattr(DD, "vjp", wrong)
    program = "z = a @ W.T + b; h = tanh(z); E = sum(h)"
    d = cr.derive(program, {"a": ("B", 3), "W": (4, 3), "b": (4,)})
    assert d.check.status == "failed" and "a differential step is false" in d.check.reason
    assert "δz" in d.check.reason
    assert main(["derive", program, "--shape", "a=Bx3", "W=4x3", "b=4", "--steps", "differential"]) == 1
    assert "check FAILED" in capsys.readouterr().err


def test_a_planted_false_trace_step_fails_the_check(monkeypatch):
    """tr(X · Y) = tr(Y · X) replaced by a shift that is not cyclic (transposes moved): caught."""
    from chainrule.explain import derive_differential_reasons as R

    real = R.trace_lines

    def wrong(b, t, role, g, d):
        lines = real(b, t, role, g, d)
        if role == 0 and len(lines) == 2:
            (terms, why) = lines[1]
            f1, f2, f3 = terms[0].trace
            lines[1] = ([DD.Term(trace=(f1, S._transpose(f2), f3))], why)  # tr(a · δz · dW): shapes fit, value wrong
        return lines

    monkeypatch.setattr(R, "trace_lines", wrong)
    d = cr.derive("z = W @ a; E = sum(z * z)", {"W": (3, 3), "a": (3, 3)})
    assert d.check.status == "failed" and "tr(" in d.check.reason


def test_a_route_that_cannot_be_made_is_named_not_hidden(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("no rule for this")

    monkeypatch.setattr(DD, "build", broken)
    d = cr.derive(DENSE, DENSE_SHAPES)
    assert d.differential == "ValueError: no rule for this"
    assert "differential steps not made: ValueError: no rule for this" in d.check.text()
    assert "not available: ValueError: no rule for this" in d.text(steps="differential")
    assert d.equation("dW") == "dz · aᵀ" and d.ok  # the equations and their check stand on their own
