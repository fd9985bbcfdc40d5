"""cr.compile's lines (issues 15 and 22): the schedule written by the generator derive --numpy uses.

Each forward and VJP line is the primitive's own forward or rule run on symbols and written by
``chainrule.codegen``; it is kept only where it is the primitive's result bit for bit when traced,
otherwise the opaque call stays.  Replays must stay eager's bits either way.  Most tests read
the allocating schedule (``BUFFERS = False``), whose lines are the rules' formulas as expressions.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import codegen
from chainrule.compile import prove

C = sys.modules["chainrule.compile"]
RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 6)).astype(np.float32)
T = np.eye(4, dtype=np.float32)[RNG.integers(0, 4, 5)]


@pytest.fixture(autouse=True)
def fresh_forms(monkeypatch):
    """Every test starts without cached forms (a planted renderer must not meet an earlier test's forms)."""
    monkeypatch.setattr(prove, "_FORMS", {})


@pytest.fixture
def allocating(monkeypatch):
    monkeypatch.setattr(C, "BUFFERS", False)


def _mlp(dtype=np.float32):
    """tanh, sigmoid, exp, a keepdims sum, a broadcasting div, log_softmax, mul, sum over an axis, mean, neg."""
    r = np.random.default_rng(1)
    shapes = [(6, 8), (8,), (8, 4), (4,)]
    ps = [cr.tensor((r.standard_normal(s) * 0.5).astype(dtype), requires_grad=True) for s in shapes]
    opt = cr.optim.SGD(ps, lr=0.1, momentum=0.9)

    def step(x, t):
        opt.zero_grad()
        h = cr.tanh(x @ ps[0] + ps[1])
        s = cr.sigmoid(h @ ps[2] + ps[3])
        z = cr.exp(s) / s.sum(axis=1, keepdims=True)
        loss = -(cr.log_softmax(z, axis=1) * t).sum(axis=1).mean()
        loss.backward()
        opt.step()
        return loss

    return ps, opt, step


def _bits(a) -> bytes:
    return np.asarray(a).tobytes()


def _compare(steps: int = 3, dtype=np.float32):
    ps1, o1, eager = _mlp(dtype)
    ps2, o2, step = _mlp(dtype)
    compiled = cr.compile(step)
    x, t = cr.tensor(X.astype(dtype)), cr.tensor(T.astype(dtype))
    for k in range(steps):
        a, b = eager(x, t), compiled(x, t)
        assert _bits(a.data) == _bits(b.data), k
        for p, q in zip(ps1, ps2):
            assert _bits(p.data) == _bits(q.data) and _bits(p.grad.data) == _bits(q.grad.data), k
        for p, q in zip(ps1, ps2):  # the momentum buffers too
            s1, s2 = o1.state.get(id(p), {}), o2.state.get(id(q), {})
            assert s1.keys() == s2.keys() and all(_bits(s1[n]) == _bits(s2[n]) for n in s1), k
    assert compiled.traces == 1 and compiled.replays == steps - 1
    return compiled.code()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lines_are_the_formulas_of_the_primitives_and_replays_equal_eager_bitwise(dtype, allocating):
    src = _compare(dtype=dtype)
    for piece in (
        "v0 = a0 @ p0  # matmul",  # forwards
        "v2 = np.tanh(v1)  # tanh",
        "t0 = np.exp((-np.abs(v4)))",  # sigmoid's own forward, its shared term computed once
        "v5 = np.where((v4 >= 0.0), (1.0 / (1.0 + t0)), (t0 / (1.0 + t0)))  # sigmoid",
        "v6 = np.exp(v5)",
        "np.sum(v5, axis=(1,), keepdims=True)",
        "v8 = v6 / v7",
        "np.mean(v11, axis=None, keepdims=False)",
        "* (1.0 - (v2 * v2))  # tanh: to v1",  # VJP rules
        "* (v5 * (1.0 - v5))  # sigmoid: to v4",
        "- (np.exp(v9) * np.sum(g4, axis=(1,), keepdims=True))  # log_softmax: to v8",
        "np.reshape(np.sum((((-g5) * v8) / v7), axis=(1,), keepdims=False), (5, 1))  # div: to v7",
        "lg11 = np.sum(g9, axis=(0,), keepdims=False)  # add: to leaf p3",  # the engine's reduction, on symbols
    ):
        assert piece in src, piece
    for rule in ("d0_tanh(", "d0_sigmoid(", "d0_exp(", "d0_div(", "d1_div(", "d0_mean(", "d0_sum(", "d0_add("):
        assert rule not in src
    assert "f_tanh(" not in src and "f_sigmoid(" not in src and "f_div(" not in src
    # log_softmax's forward stays a call: NumPy would warn on a row of +inf where the primitive does not
    assert "norm(f_log_softmax(v8, (1,)))" in src
    assert "31 of 32 lines from the primitives' formulas" in src and "; 1 opaque call\n" in src


def test_buffered_lines_write_the_same_formulas_into_buffers():
    src = _compare()
    for piece in (
        "v0 = np.matmul(a0, p0, out=b0)  # matmul",
        "v1 = np.add(v0, p1, out=b0)  # add",  # in place: v0 is read for the last time
        "v2 = np.tanh(v1, out=b0)  # tanh",  # in place too: tanh's rule reads its output, not its input
        "np.multiply(v2, v2, out=",
        "# tanh: to v1",
        "np.exp(v9, out=",
        "# log_softmax: to v8",
        "out=rec(S, 0))  # add: to leaf p3",
    ):
        assert piece in src, piece
    assert "d0_" not in src and "; 1 opaque call\n" in src


def test_a_wrong_forward_spelling_is_caught_and_the_call_stays(monkeypatch, allocating):
    monkeypatch.setitem(codegen.NP_FORWARD, "tanh", "np.sinh")  # a planted bug in the shared generator
    src = _compare()
    assert "np.sinh" not in src
    assert "v2 = norm(f_tanh(v1))  # tanh" in src
    assert "* (1.0 - (v2 * v2))  # tanh: to v1" in src  # the rule's spelling is still right, so it is kept


def test_a_wrong_rule_spelling_is_caught_and_the_call_stays(monkeypatch, allocating):
    real = codegen.code

    def planted(x, used, exact=False, index=None):
        return real(x, used, exact, index).replace("(1.0 - ", "(1.0 + ")

    monkeypatch.setattr(codegen, "code", planted)
    src = _compare()
    assert "(1.0 + (v2 * v2))" not in src and "(1.0 + v5)" not in src  # the planted VJP spellings
    assert re.search(r"fit\(d0_tanh\(NP, g\d+, v2, v1\), v1\)", src)
    assert re.search(r"fit\(d0_sigmoid\(NP, g\d+, v5, v4\), v4\)", src)
    assert "np.tanh(v1)" in src  # the lines the plant did not touch are still written out


def test_the_probe_catches_what_the_traced_values_do_not(monkeypatch, allocating):
    """A spelling right on ordinary numbers but not on NaN / -0.0 is refused (the probe's specials)."""
    real = codegen.code

    def planted(x, used, exact=False, index=None):
        text = real(x, used, exact, index)
        return f"np.nan_to_num({text}, nan=0.0) + 0.0" if text.startswith("np.tanh(") else text

    monkeypatch.setattr(codegen, "code", planted)
    src = _compare()
    assert "nan_to_num" not in src and "norm(f_tanh(v1))" in src


def test_derive_numpy_uses_the_same_generator(monkeypatch):
    program, shapes = "h = tanh(x); E = sum(h)", {"x": (3,)}
    before = cr.explain.derive(program, shapes).numpy()
    assert "np.tanh(x)" in before
    monkeypatch.setitem(codegen.NP_FORWARD, "tanh", "np.sinh")
    after = cr.explain.derive(program, shapes, check=False).numpy()
    assert "np.sinh(x)" in after and "np.tanh" not in after
    assert after == before.replace("np.tanh", "np.sinh")


def test_exact_spelling_keeps_comparisons_boolean_and_refuses_float64_scatter():
    from chainrule import symbolic as S

    x, g = S.var("x", (3,)), S.var("g", (3,))
    assert codegen.code(g * (x > 0), set()) == "(g * (x > 0.0).astype(np.float64))"  # derive --numpy: float64
    assert codegen.code(g * (x > 0), set(), exact=True) == "(g * (x > 0.0))"
    with pytest.raises(codegen.ExportError):
        codegen.code(S.SYM.scatter_add(g, (np.arange(3),), (4,)), set(), exact=True)


def test_forms_are_cached_per_shape_and_rule(monkeypatch):
    calls = []
    real = codegen.code

    def counting(x, used, exact=False, index=None):
        calls.append(1)
        return real(x, used, exact, index)

    monkeypatch.setattr(codegen, "code", counting)
    _compare(steps=1)
    first = len(calls)
    assert first > 0
    _compare(steps=1)  # a second trace of the same shapes renders nothing again (still checked on its values)
    assert len(calls) == first


def test_scalar_schedules_are_python_arithmetic():
    """On Python floats eager runs the math module: lines are written out only where they are operators."""
    w = cr.tensor(0.5, requires_grad=True)

    def f(a):
        y = cr.tanh(w * a) + w
        y.backward()
        return y

    compiled = cr.compile(f)
    compiled(cr.tensor(2.0))
    src = compiled.code()
    assert "v0 = p0 * a0  # mul" in src and "float(sf_tanh(v0))" in src  # math.tanh, as eager calls it
    assert "(1.0 - (v1 * v1))  # tanh: to v0" in src and "np." not in src.split("replay")[1]


def test_a_user_primitive_is_called_not_spelled_nor_run_twice():
    calls = []

    @cr.custom_vjp
    def tanh(x):  # named like NumPy's: still the user's function, called as it is
        calls.append(1)
        return np.tanh(x) * 2.0

    @tanh.defvjp
    def tanh_vjp(g, out, x):
        calls.append(2)
        return (g * 2.0 * (1.0 - np.tanh(x) ** 2),)

    w = cr.tensor(np.linspace(-1, 1, 4).astype(np.float32), requires_grad=True)

    def f(a):
        y = (tanh(w * a)).sum()
        y.backward()
        return y

    compiled = cr.compile(f)
    compiled(cr.tensor(np.ones(4, np.float32)))
    assert calls == [1, 2]  # once each, as eager: the check never runs a user's function
    assert "np.tanh" not in compiled.code()


MASK = np.random.default_rng(9).standard_normal((4, 5)) > 0


def _many_ops(a, b, x, mask):
    h = cr.softmax(a * x, axis=1) + cr.logsumexp(a, axis=0)
    h = h + cr.maximum(a, b) * cr.minimum(a, 0.5) + cr.abs(a).sqrt()
    h = h + (cr.abs(a) + 1.0) ** b + cr.clip(a, -0.5, 0.5) + a.max(axis=1, keepdims=True) + a.mean(axis=0)
    h = h + cr.where(mask, a, b) + a.T.reshape(4, 5) + a[1:3, ::2].sum() + a**2 + a**3.0
    h = h + cr.log1p(cr.abs(b)) + cr.sin(a) * cr.cos(b) + b.exp() / (1.0 + a.min())
    return h.sum()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_many_primitives_written_out_or_called_replay_eager_bits(dtype):
    def make():
        r = np.random.default_rng(3)
        return [cr.tensor(r.standard_normal(s).astype(dtype), requires_grad=True) for s in [(4, 5), (5,)]]

    (a1, b1), (a2, b2) = make(), make()
    mask = cr.tensor(MASK)

    def f(x):
        loss = _many_ops(a2, b2, x, mask)
        loss.backward()
        return loss

    compiled = cr.compile(f)
    with np.errstate(all="ignore"):
        for k in range(3):
            x = cr.tensor(np.full((4, 5), 0.5 + k, dtype))
            for p in (a1, b1, a2, b2):
                p.grad = None
            want = _many_ops(a1, b1, x, mask)
            want.backward()
            got = compiled(x)
            assert _bits(want.data) == _bits(got.data), k
            assert _bits(a1.grad.data) == _bits(a2.grad.data) and _bits(b1.grad.data) == _bits(b2.grad.data), k
    src = compiled.code()
    written, total = (int(n) for n in re.search(r"# (\d+) of (\d+) lines from the primitives", src).groups())
    assert written >= 100 and total - written <= 7  # softmax, logsumexp, clip, where, getitem's scatter, pow
    assert "d0_getitem(" in src  # scatter has no exact spelling (derive's helper accumulates in float64)
