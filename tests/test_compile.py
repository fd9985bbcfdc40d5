"""cr.compile: replays equal eager bitwise, guards re-trace, and what a trace cannot repeat is refused."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.compile import CompileError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 5)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 1, 0])


def _model_and_step(momentum: float = 0.9, weight_decay: float = 0.0):
    model = cr.nn.Sequential(cr.nn.Linear(5, 6, rng=0), cr.nn.ReLU(), cr.nn.Linear(6, 3, rng=1))
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)

    def step(x, y):
        opt.zero_grad()
        loss = cr.nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, opt, step


@pytest.mark.parametrize("options", [{}, {"momentum": 0.0}, {"weight_decay": 0.01}], ids=["momentum", "plain", "wd"])
def test_compiled_training_equals_eager_bitwise(options):
    m1, o1, eager = _model_and_step(**options)
    m2, o2, step = _model_and_step(**options)
    compiled = cr.compile(step)
    x, y = cr.tensor(X), cr.tensor(Y)
    for _ in range(4):
        a, b = eager(x, y), compiled(x, y)
        assert a.item() == b.item()
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_array_equal(p.data, q.data)
            np.testing.assert_array_equal(p.grad.data, q.grad.data)
    assert compiled.traces == 1 and compiled.replays == 3
    for p, q in zip(m1.parameters(), m2.parameters()):
        s1, s2 = o1.state.get(id(p), {}), o2.state.get(id(q), {})
        assert s1.keys() == s2.keys()
        for k in s1:
            np.testing.assert_array_equal(s1[k], s2[k])


def test_compiled_training_matches_torch():
    model, _, step = _model_and_step()
    compiled = cr.compile(step)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    with torch.no_grad():
        for tp, p in zip(tm.parameters(), model.parameters()):
            tp.copy_(torch.tensor(p.data))
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    x, y = cr.tensor(X), cr.tensor(Y)
    for _ in range(4):
        topt.zero_grad()
        tl = torch.nn.functional.cross_entropy(tm(torch.tensor(X)), torch.tensor(Y))
        tl.backward()
        topt.step()
        assert compiled(x, y).item() == pytest.approx(tl.item(), rel=1e-5)
    for tp, p in zip(tm.parameters(), model.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_replay_reads_new_argument_values_and_parameters_changed_outside():
    model, _, step = _model_and_step()
    compiled = cr.compile(step)
    ref_model, _, ref_step = _model_and_step()
    for k in range(3):
        xs = cr.tensor(X * (k + 1))
        assert compiled(xs, cr.tensor(Y)).item() == ref_step(xs, cr.tensor(Y)).item()
        with cr.no_grad():  # an edit outside the compiled function: the replay must see it
            for p, q in zip(model.parameters(), ref_model.parameters()):
                p.data = p.data * 0.5
                q.data = q.data * 0.5
    assert compiled.traces == 1


def test_scalar_graph_replays_generated_float_code():
    ws = [cr.tensor(v, requires_grad=True) for v in (0.3, -0.7, 0.2)]
    xs = [cr.tensor(v) for v in (1.5, -2.0)]

    def f():
        h = (ws[0] * xs[0] + ws[1] * xs[1]).relu()
        loss = (h - ws[2]).tanh() * (h / 3.0) - ws[2] * 2.0
        loss.backward()
        return loss

    compiled = cr.compile(f)
    for _ in range(3):
        got = compiled()
        g = [w.grad.item() for w in ws]
        for w in ws:
            w.grad = None
        ref = f()
        assert got.item() == ref.item()
        assert g == [w.grad.item() for w in ws]
        for w in ws:
            w.grad = None
            w.data = w.item() + 0.25  # changes between calls are read, never frozen
    src = compiled.code()
    assert "v0 = p0 * p1" in src.replace("a0", "p1") or " * " in src  # inlined float arithmetic
    assert "f_mul" not in src and "d0_mul" not in src
    assert type(got._data) is float


def test_math_domain_error_falls_back_to_eager_ieee_semantics():
    x = cr.tensor(1.0, requires_grad=True)

    def f(d):
        y = x / d
        y.backward()
        return y

    compiled = cr.compile(f)
    zero = cr.tensor(0.0)
    assert compiled(cr.tensor(2.0)).item() == 0.5
    x.grad = None
    with np.errstate(all="ignore"):
        assert compiled(zero).item() == np.inf  # replay raised ZeroDivisionError: eager ran instead


def test_guards_retrace_on_shape_dtype_requires_grad_and_numbers():
    calls = []

    def f(x, scale):
        calls.append(1)
        return (x * scale).sum()

    compiled = cr.compile(f, cache_size=2)
    a = cr.tensor(np.ones(3))
    assert compiled(a, 2.0).item() == 6.0
    assert compiled(a, 2.0).item() == 6.0 and len(calls) == 1  # replayed: f did not run
    assert compiled(a, 3.0).item() == 9.0 and len(calls) == 2  # a Python number changed
    assert compiled(cr.tensor(np.ones(4)), 2.0).item() == 8.0  # a shape changed
    assert compiled(cr.tensor(np.ones(3, np.float32)), 2.0).item() == 6.0  # a dtype changed
    assert compiled.traces == 4 and len(compiled.cache) == 2  # the cache stays small
    r = cr.tensor(np.ones(3), requires_grad=True)
    out = compiled(r, 2.0)
    assert compiled.traces == 5 and not out.requires_grad  # outputs come back detached


def test_closure_and_global_numbers_are_guarded():
    state = {"lr": 0.5}
    scale = 2.0

    def f(x):
        return (x * scale).sum()

    compiled = cr.compile(f)
    x = cr.tensor(np.ones(2))
    assert compiled(x).item() == 4.0
    scale = 5.0  # noqa: F841  (read through f's closure)
    assert compiled(x).item() == 10.0
    assert compiled.traces == 2 and state["lr"] == 0.5


def test_data_dependent_control_flow_raises_naming_the_line():
    def f(x):
        y = (x * 2.0).sum()
        if y.item() > 0:  # the offending line
            return y
        return -y

    with pytest.raises(CompileError, match=r"test_compile\.py:\d+ reads a tensor's value \(Tensor\.item"):
        cr.compile(f)(cr.tensor(np.ones(2)))


def test_raw_update_through_data_is_refused():
    w = cr.tensor(np.ones(2), requires_grad=True)

    def f():
        loss = (w * w).sum()
        loss.backward()
        with cr.no_grad():
            w.data -= 0.1 * w.grad.data
        return loss

    with pytest.raises(CompileError, match="Tensor.data"):
        cr.compile(f)()


def test_unrecorded_tensor_made_inside_is_refused():
    w = cr.tensor(np.ones(2), requires_grad=True)

    def f(x):
        with cr.no_grad():
            scaled = x * 3.0  # not recorded: its value would be frozen
        loss = (w * scaled).sum()
        loss.backward()
        return loss

    with pytest.raises(CompileError, match="without being recorded"):
        cr.compile(f)(cr.tensor(np.ones(2)))


def test_in_place_edit_inside_is_refused():
    w = cr.tensor(np.ones(2), requires_grad=True)

    def f(x):
        loss = (w * x).sum()
        loss.backward()
        with cr.no_grad():
            w[0] = 5.0
        return loss

    with pytest.raises(CompileError, match="modified in place"):
        cr.compile(f)(cr.tensor(np.ones(2)))


def test_in_place_staleness_inside_still_raises_like_eager():
    w = cr.tensor(np.ones(2), requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1)

    def f(x):
        e = (w * x).exp().sum()
        w.grad = cr.tensor(np.ones(2))
        opt.step()  # w changes before backward: eager refuses, so must the trace
        e.backward()
        return e

    with pytest.raises(RuntimeError, match="modified in place"):
        cr.compile(f)(cr.tensor(np.ones(2)))


def test_unsupported_backward_forms_are_refused():
    w = cr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(CompileError, match="create_graph"):
        cr.compile(lambda: (w * w).sum().backward(create_graph=True))()
    with pytest.raises(CompileError, match="returned a float"):
        cr.compile(lambda: 1.5)()


@pytest.mark.parametrize("buffered", [True, False], ids=["buffers", "allocating"])
def test_schedule_prints_the_whole_step(buffered, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["chainrule.compile"], "BUFFERS", buffered)
    _, _, step = _model_and_step()
    compiled = cr.compile(step)
    compiled(cr.tensor(X), cr.tensor(Y))
    src = compiled.code()
    if buffered:
        fwd, pieces = "np.matmul(a0, p0.T, out=b0)", ("# buffers", "out=rec(S, 0)", "# log_softmax: to")
    else:  # linear's forward and VJP rules written out, not called
        fwd, pieces = "(a0 @ p0.T) + p1", ("# linear: to leaf", "# log_softmax: to")
    for piece in ("SGD.zero_grad", fwd, "# backward() of", "deliver(", "SGD.step()", *pieces):
        assert piece in src
    assert src.index("SGD.zero_grad") < src.index(fwd) < src.index("deliver(") < src.index("SGD.step()")


def test_decorator_forms_and_no_grad_runs_eagerly():
    @cr.compile
    def f(x):
        return (x * x).sum()

    @cr.compile(cache_size=1)
    def g(x):
        return x + 1.0

    x = cr.tensor(np.arange(3.0))
    assert f(x).item() == 5.0 and g(x).data.tolist() == [1.0, 2.0, 3.0]
    with cr.no_grad():
        assert f(x).item() == 5.0
    assert f.traces == 1


def test_a_rule_planted_in_the_registry_flows_into_the_float_replay(monkeypatch):
    """compile spells no rule of its own: a wrong VJP rule planted in the registry is what the replay computes."""
    from chainrule.primitive import REGISTRY

    mul = REGISTRY["mul"]
    monkeypatch.setattr(mul, "vjps", (lambda xp, g, out, x, y: g * x, mul.vjps[1]))  # d(x*y)/dx = x: wrong
    w = cr.tensor(0.5, requires_grad=True)
    x = cr.tensor(3.0)

    def f():
        loss = w * x
        loss.backward()
        return loss

    compiled = cr.compile(f)
    compiled()
    w.grad = None
    compiled()  # a replay: the planted rule, written out
    assert compiled.replays == 1 and w.grad.item() == 0.5 != 3.0
    assert "lg1 = g0 * p0  # mul: to leaf p0" in compiled.code()  # the planted formula, as the schedule's line
    monkeypatch.undo()
    w.grad = None
    f()
    assert w.grad.item() == 3.0


def test_a_library_conversion_of_an_argument_is_refused_not_frozen():
    w = cr.tensor(np.ones((3, 1)), requires_grad=True)

    def f(x, y):
        loss = cr.nn.hinge_loss(x @ w, y)  # converts y to a float copy: that copy would be frozen
        loss.backward()
        return loss

    x = cr.tensor(np.ones((4, 3)))
    with pytest.raises(CompileError, match="made something else from it"):
        cr.compile(f)(x, cr.tensor(np.array([[1], [-1], [1], [1]])))


def test_a_target_used_as_it_is_follows_each_call():
    w = cr.tensor(np.ones(3), requires_grad=True)

    def f(x, y):
        loss = cr.nn.mse_loss(x * w, y)  # same dtype: mse_loss uses y's own array
        loss.backward()
        return loss

    compiled = cr.compile(f)
    x = cr.tensor(np.arange(3.0))
    for k in range(3):
        y = cr.tensor(np.full(3, float(k)))
        got = compiled(x, y).item()
        w.grad = None
        assert got == f(x, y).item()
        w.grad = None
    assert compiled.traces == 1


def test_numpy_array_arguments_are_refused():
    with pytest.raises(CompileError, match=r"pass cr\.tensor\(array\)"):
        cr.compile(lambda a: cr.tensor(a).sum())(np.ones(2))


@pytest.mark.parametrize("dataset", ["digits", "moons"])
def test_train_compile_gives_the_same_run(dataset):
    import argparse
    import io

    from chainrule import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--dataset", dataset, "--epochs", "2", "--quiet"])
    cfg = train._config(args, None)
    runs = [train.fit(cfg, stream=io.StringIO(), quiet=True, compiled=c) for c in (False, True)]
    (m1, h1, _, _), (m2, h2, _, _) = runs
    assert h1.loss == h2.loss and h1.train_acc == h2.train_acc and h1.test_acc == h2.test_acc
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize(
    ("argv", "compiled"),
    [
        ([], True),  # the MLP: compiled by default (twice as fast, the same run)
        (["--no-compile"], False),
        (["--compile"], True),
        (["--model", "cnn"], False),  # eager unless asked for
        (["--model", "cnn", "--compile"], True),  # asked for: the replay repeats batch norm's statistics
    ],
)
def test_train_compiles_by_default_where_a_replay_can_run(argv, compiled):
    import argparse

    from chainrule import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(argv)
    args.distributed = False
    assert train._compiles(args, train._config(args, None)) is compiled


def test_train_cnn_compiled_gives_the_same_run_running_statistics_included(capsys, tmp_path):
    """``chainrule train --model cnn --compile``: batch norm's running statistics are replayed, so the compiled
    run's history, weights and buffers are eager's bit for bit (and the command succeeds)."""
    import argparse
    import io

    from chainrule import cli, train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--model", "cnn", "--epochs", "1", "--quiet"])
    cfg = train._config(args, None)
    runs = [train.fit(cfg, stream=io.StringIO(), quiet=True, compiled=c) for c in (False, True)]
    (m1, h1, _, _), (m2, h2, _, _) = runs
    assert h1.loss == h2.loss and h1.train_acc == h2.train_acc and h1.test_acc == h2.test_acc
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert any("running_var" in k for k in s1)
    for k in s1:
        np.testing.assert_array_equal(np.asarray(s1[k].data), np.asarray(s2[k].data), err_msg=k)
    code = cli.main(
        ["train", "--model", "cnn", "--epochs", "1", "--compile", "--quiet", "--checkpoint", str(tmp_path / "x.npz")]
    )
    assert code == 0, capsys.readouterr().err


GLOBAL_SCALE = 2.0
step = 0  # a global that shares its name with the attribute opt.step


def test_global_numbers_guarded_but_attribute_names_are_not_globals():
    global GLOBAL_SCALE, step
    w = cr.tensor(np.ones(2), requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1)

    def f(x):
        loss = (w * x * GLOBAL_SCALE).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    compiled = cr.compile(f)
    x = cr.tensor(np.ones(2))
    for step in range(3):  # noqa: B007  (changes the global named like opt.step)
        compiled(x)
    assert compiled.traces == 1 and compiled.replays == 2
    GLOBAL_SCALE = 3.0
    try:
        expected = float((w.data * 3.0).sum())
        assert compiled(x).item() == expected  # the new value is used: a re-trace, not a stale replay
        assert compiled.traces == 2
    finally:
        GLOBAL_SCALE = 2.0


def test_grad_cleared_by_hand_inside_is_refused():
    w = cr.tensor(np.ones(2), requires_grad=True)

    def f(x):
        loss = (w * x).sum()
        loss.backward()
        w.grad = None  # not a recorded call: a replay would accumulate instead
        return loss

    with pytest.raises(CompileError, match=r"\.grad of a tensor of shape \(2,\) was replaced"):
        cr.compile(f)(cr.tensor(np.ones(2)))


def test_accumulating_gradients_follow_the_callers_state():
    """Without zero_grad inside, .grad accumulates across calls as in eager, also when the caller clears it."""
    w1 = cr.tensor(np.ones(2), requires_grad=True)
    w2 = cr.tensor(np.ones(2), requires_grad=True)

    def make(w):
        def f(x):
            loss = (w * x * w).sum()
            loss.backward()
            return loss

        return f

    eager, compiled = make(w1), cr.compile(make(w2))
    x = cr.tensor(np.array([1.0, 2.0]))
    for k in range(5):
        if k == 3:
            w1.grad = w2.grad = None
        eager(x)
        compiled(x)
        np.testing.assert_array_equal(w1.grad.data, w2.grad.data)
    assert compiled.replays >= 1 and compiled.traces >= 2  # a different .grad state traces again


def test_negative_labels_on_a_replay_get_eager_checks_not_a_silent_wrap():
    _, _, step = _model_and_step()
    compiled = cr.compile(step)
    x = cr.tensor(X)
    compiled(x, cr.tensor(Y))
    compiled(x, cr.tensor(Y))
    assert compiled.replays == 1
    bad = Y.copy()
    bad[0] = -1  # NumPy would index class 2; cross_entropy refuses it
    with pytest.raises(ValueError, match="cross_entropy: target -1 is not a class index"):
        compiled(x, cr.tensor(bad))


def test_random_draws_inside_are_refused_and_eval_mode_compiles():
    model = cr.nn.Sequential(cr.nn.Linear(5, 4, rng=0), cr.nn.Dropout(0.5, rng=3), cr.nn.Linear(4, 3, rng=1))

    def f(x):
        loss = model(x).sum()
        loss.backward()
        return loss

    with pytest.raises(CompileError, match="draws random numbers"):
        cr.compile(f)(cr.tensor(X))
    model.eval()  # dropout is the identity: nothing random left
    compiled = cr.compile(f)
    assert compiled(cr.tensor(X)).item() == compiled(cr.tensor(X)).item()
    assert compiled.replays == 1


def test_switching_train_and_eval_retraces_instead_of_replaying_the_other_mode():
    m = cr.nn.Sequential(cr.nn.Linear(3, 4, rng=0), cr.nn.Dropout(0.5))
    x = cr.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    m.eval()
    f = cr.compile(lambda x: m(x).sum())
    f(x)
    m.train()  # dropout is now active: a replay of the eval trace would silently skip it
    with pytest.raises(cr.CompileError):
        f(x)
    m.eval()
    assert f(x).item() == m(x).sum().item()


def test_a_replaced_parameter_is_read_not_the_traced_one():
    m = cr.nn.Linear(3, 1, rng=0)
    x = cr.tensor(np.ones((2, 3)))
    f = cr.compile(lambda x: m(x).sum())
    f(x)
    m.weight = cr.nn.Parameter(np.zeros((1, 3)))
    assert f(x).item() == m(x).sum().item() == float(m.bias.data.sum()) * 2
    assert f.traces == 2


SCALE = np.float64(1.0)


def test_a_numpy_scalar_global_is_guarded_like_a_python_number():
    global SCALE
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    x = cr.tensor([3.0, 4.0])
    f = cr.compile(lambda x: (w * x).sum() * SCALE)
    assert f(x).item() == 11.0
    SCALE = np.float64(2.0)
    try:
        assert f(x).item() == 22.0
    finally:
        SCALE = np.float64(1.0)


def test_compile_spells_no_operation_of_its_own():
    """Every computing line of a schedule comes from a primitive through chainrule.codegen: compile's own
    source names no NumPy or torch computation and none of the former hand-written forms (issue 22)."""
    from pathlib import Path

    import chainrule.codegen

    package = Path(chainrule.codegen.__file__).parent / "compile"
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted(package.glob("*.py")))
    spelled = re.findall(r"\b(?:np|numpy|torch)\.(\w+)\(", source)
    computing = {"matmul", "add", "subtract", "multiply", "divide", "negative", "maximum", "greater", "exp", "log"}
    computing |= {"sum", "mean", "where", "tanh", "clamp_min", "clamp_min_", "gt", "mul", "sub", "neg", "amax"}
    assert not computing & set(spelled), sorted(computing & set(spelled))
    for old in ("_SCALAR_FWD", "_SCALAR_VJP", "_FUSED_CE", "_torch_log_softmax", "_backward_buffered", "_OUT_FREE"):
        assert old not in source
