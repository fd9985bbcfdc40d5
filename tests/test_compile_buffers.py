"""cr.compile's buffered array schedule (issues 15 and 22): the primitives' own formulas written as ``out=``
calls into preallocated buffers, in place where an operand dies on its line, recycled leaf gradients.

Every replay is compared with eager execution of the same step on a second copy of the
model: losses, parameters, gradients and optimizer state with ``==`` (the written lines
round exactly as the primitives' forwards and rules do), and with torch where a reference
from elsewhere helps.  Nothing a replay hands out (a returned tensor, a ``.grad``) may
change under the next one.  A rule planted in the registry is what the replay computes.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest
import torch

import chainrule as cr

C = sys.modules["chainrule.compile"]  # the module (cr.compile is the function)
RNG = np.random.default_rng(7)
X = RNG.standard_normal((16, 6)).astype(np.float32)
Y = RNG.integers(0, 4, 16)


def _mlp(seed: int = 0, dtype=np.float32):
    model = cr.nn.Sequential(
        cr.nn.Linear(6, 8, rng=seed), cr.nn.ReLU(), cr.nn.Linear(8, 8, rng=seed + 1), cr.nn.ReLU(), cr.nn.Linear(8, 4)
    )
    rng = np.random.default_rng(seed + 2)
    for p in model.parameters():  # the same values in every copy (the last layer has no rng argument)
        p.data = rng.standard_normal(p.shape).astype(dtype) * 0.5
    return model


def _optimizer(name: str, params):
    if name == "sgd":
        return cr.optim.SGD(params, lr=0.1)
    if name == "momentum":
        return cr.optim.SGD(params, lr=0.1, momentum=0.9)
    if name == "nesterov-wd":
        return cr.optim.SGD(params, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)
    if name == "adam":
        return cr.optim.Adam(params, lr=0.01)
    return cr.optim.AdamW(params, lr=0.01)


def _nn_step(opt_name: str, loss_fn=None, dtype=np.float32):
    model = _mlp(dtype=dtype)
    opt = _optimizer(opt_name, model.parameters())
    loss_fn = loss_fn or cr.nn.cross_entropy

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, opt, step


def _assert_same_state(m1, o1, m2, o2):
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(p.grad.data, q.grad.data)
        s1, s2 = o1.state.get(id(p), {}), o2.state.get(id(q), {})
        assert s1.keys() == s2.keys()
        for k in s1:  # momentum buffers, Adam's moments and step counts
            np.testing.assert_array_equal(s1[k], s2[k])


def _compare(make, steps: int = 5, x=X, y=Y):
    """Run eager and compiled copies side by side; returns the compiled function (for its schedule)."""
    m1, o1, eager = make()
    m2, o2, step = make()
    compiled = cr.compile(step)
    xt, yt = cr.tensor(x), cr.tensor(y)
    for _ in range(steps):
        a, b = eager(xt, yt), compiled(xt, yt)
        np.testing.assert_array_equal(a.data, b.data)
        _assert_same_state(m1, o1, m2, o2)
    assert compiled.traces == 1 and compiled.replays == steps - 1
    return compiled


@pytest.mark.parametrize("opt_name", ["sgd", "momentum", "nesterov-wd", "adam", "adamw"])
def test_buffered_nn_step_equals_eager_bitwise_with_every_optimizer(opt_name):
    compiled = _compare(lambda: _nn_step(opt_name))
    src = compiled.code()
    for piece in ("np.matmul(a0, p0.T, out=b0)", "np.maximum(", "np.greater(", "out=rec(S, "):
        assert piece in src  # the rules' formulas written into buffers, not the rules called
    assert _in_place(src)  # the bias added into the product's buffer, the ReLU mask applied over the gradient
    assert "d1_linear" not in src and "d0_relu" not in src and "d0_log_softmax" not in src


def _in_place(src: str) -> list[str]:
    """The elementwise lines that write over the buffer of an operand read for the last time."""
    holds = {}
    found = []
    for line in src.splitlines():
        m = re.match(r"\s+(\w+) = np\.(\w+)\((.*), out=(b\d+)\)", line)
        if m:
            target, fn, operands, buf = m.groups()
            if fn not in ("matmul", "sum") and any(holds.get(o.strip()) == buf for o in operands.split(",")):
                found.append(line.strip())
            holds[target] = buf
    return found


def test_buffered_float64_step_equals_eager_bitwise():
    compiled = _compare(lambda: _nn_step("momentum", dtype=np.float64), x=X.astype(np.float64))
    assert "(256, 8) float64" not in compiled.code() and "(16, 8) float64" in compiled.code()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ops_form_step_with_handwritten_cross_entropy(reduction):
    """``relu(x @ W + b)`` and ``-log_softmax(h)[rows, y].mean()``: matmul, the bias added in place."""
    rows = np.arange(len(Y))

    def make():
        rng = np.random.default_rng(3)
        ps = [cr.tensor(rng.standard_normal(s).astype(np.float32) * 0.5, requires_grad=True) for s in [(6, 8), (8,)]]
        ps += [cr.tensor(rng.standard_normal(s).astype(np.float32) * 0.5, requires_grad=True) for s in [(8, 4), (4,)]]
        opt = cr.optim.SGD(ps, lr=0.1, momentum=0.5)
        holder = types.SimpleNamespace(parameters=lambda: iter(ps))  # what _compare reads of a model

        def step(x, y):
            opt.zero_grad()
            h = cr.relu(x @ ps[0] + ps[1]) @ ps[2] + ps[3]
            picked = cr.log_softmax(h, axis=1)[rows, y]
            loss = -picked.mean() if reduction == "mean" else -picked.sum()
            loss.backward()
            opt.step()
            return loss

        return holder, opt, step

    src = _compare(make).code()
    assert "v0 = np.matmul(a0, p0, out=b0)" in src and "np.add(v0, p1, out=b0)" in src


def test_cross_entropy_gradient_matches_torch():
    """An independent reference for the written rules: torch's cross_entropy gradient of the same logits."""
    z = RNG.standard_normal((16, 4)).astype(np.float32) * 3

    def grad_of(x, y):
        x.grad = None
        loss = cr.nn.cross_entropy(x * 1.0, y)
        loss.backward()
        return loss

    x = cr.tensor(z.copy(), requires_grad=True)
    compiled = cr.compile(grad_of)
    compiled(x, cr.tensor(Y))
    compiled(x, cr.tensor(Y))
    assert "# log_softmax: to" in compiled.code() and "d0_log_softmax" not in compiled.code()
    tz = torch.tensor(z, requires_grad=True)
    torch.nn.functional.cross_entropy(tz * 1.0, torch.tensor(Y)).backward()
    diff = np.abs(x.grad.data - tz.grad.numpy()).max()
    assert diff < 1e-7  # measured 7.5e-9 (float32 rounding of softmax / N)
    eager = cr.tensor(z.copy(), requires_grad=True)
    grad_of(eager, cr.tensor(Y))
    np.testing.assert_array_equal(x.grad.data, eager.grad.data)  # and eager's bits: max difference 0.0


def test_a_rule_planted_in_the_registry_is_what_the_replay_computes(monkeypatch):
    """A wrong log_softmax VJP planted in the registry (the exp(out) term dropped): the replay follows it,
    as eager does, and its gradients differ from the true ones."""
    from chainrule.primitive import REGISTRY

    def true_grads():
        model, opt, step = _nn_step("sgd")
        step(cr.tensor(X), cr.tensor(Y))
        return [p.grad.data.copy() for p in model.parameters()]

    truth = true_grads()
    log_softmax = REGISTRY["log_softmax"]
    monkeypatch.setattr(log_softmax, "vjps", (lambda xp, g, out, x, axis: g - xp.sum(g, axis, True),))
    compiled = _compare(lambda: _nn_step("sgd"), steps=3)  # eager and replay both follow the registry
    src = compiled.code()
    assert "np.exp(" not in src.split("# backward()")[1] and "d0_log_softmax" not in src  # written out, planted
    model, opt, step = _nn_step("sgd")
    compiled = cr.compile(step)
    compiled(cr.tensor(X), cr.tensor(Y))
    model.zero_grad()
    compiled(cr.tensor(X), cr.tensor(Y))  # a replay, from the same weights as the first call
    assert compiled.replays == 1
    assert not all(np.array_equal(p.grad.data, t) for p, t in zip(model.parameters(), truth))


def test_patterns_the_fast_forms_must_not_take_fall_back_and_still_equal_eager():
    """A pre-activation read twice, two ReLUs sharing one gradient, label smoothing (log_softmax read twice),
    permuted rows in the pick: no in-place write over a value read later; results stay eager's."""
    perm = np.random.default_rng(0).permutation(len(Y))

    def twice(h):
        return cr.relu(h) + h * 0.5

    def make(kind):
        model = _mlp()
        opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        lin1, _, lin2, _, lin3 = list(model)

        def step(x, y):
            opt.zero_grad()
            if kind == "reread":
                h = lin3(twice(lin2(twice(lin1(x)))))
                loss = cr.nn.cross_entropy(h, y)
            elif kind == "shared-grad":
                a = lin1(x)
                h = lin3(cr.relu(lin2(cr.relu(a))) + cr.relu(lin2(cr.relu(a * 1.0))))
                loss = cr.nn.cross_entropy(h, y)
            elif kind == "smoothing":
                loss = cr.nn.cross_entropy(model(x), y, label_smoothing=0.1)
            else:
                loss = -cr.log_softmax(model(x), axis=1)[perm, y].mean()
            loss.backward()
            opt.step()
            return loss

        return model, opt, step

    for kind in ("reread", "shared-grad", "smoothing", "permuted"):
        src = _compare(lambda k=kind: make(k), steps=4).code()  # (equal to eager, step by step)
        relu_in_place = [line for line in _in_place(src) if "maximum" in line]
        if kind == "reread":
            assert not relu_in_place  # ReLU's input is read again (by h * 0.5): never overwritten
        else:
            # ReLU's rule reads its result (out > 0), so an input read for the last time by ReLU is overwritten
            assert relu_in_place


def test_nothing_handed_out_changes_under_the_next_replay():
    """Returned values (the loss, logits that live in a buffer) and kept .grad tensors stay as they were."""
    model = _mlp()
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    @cr.compile
    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = cr.nn.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss, logits

    x, y = cr.tensor(X), cr.tensor(Y)
    step(x, y)
    loss, logits = step(x, y)  # a replay
    kept = [p.grad for p in model.parameters()]
    copies = [loss.data.copy(), logits.data.copy()] + [g.data.copy() for g in kept]
    step(x, y)
    step(x, y)
    for now, then in zip([loss, logits] + kept, copies):
        np.testing.assert_array_equal(now.data, then)
    assert model[0].weight.grad is not kept[0]  # set_to_none: a new gradient each step, as in torch
    assert not np.array_equal(model[0].weight.grad.data, copies[2])  # it is this step's gradient


def test_leaf_gradient_arrays_are_recycled_only_when_nobody_holds_them():
    model, opt, step = _nn_step("sgd")
    compiled = cr.compile(step)
    x, y = cr.tensor(X), cr.tensor(Y)
    compiled(x, y)
    compiled(x, y)
    w = model[0].weight
    slots = compiled._last.replay.__globals__["S"]  # the schedule's leaf-gradient arrays
    ids = [id(a) for a in slots]
    compiled(x, y)
    assert [id(a) for a in slots] == ids  # nobody kept the old .grad arrays: written again
    assert any(w.grad._data is a for a in slots)
    held = w.grad
    before = held.data.copy()
    compiled(x, y)
    assert w.grad._data is not held._data  # the caller kept it: the replay takes a fresh array
    np.testing.assert_array_equal(held.data, before)
    assert sum(id(a) not in ids for a in slots) == 1


def test_zero_grad_keeping_tensors_accumulates_into_the_same_gradients():
    """zero_grad(set_to_none=False) zeroes .grad in place and backward adds into it, as eager does."""

    def make():
        model = _mlp()
        opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad(set_to_none=False)
            loss = cr.nn.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        return model, opt, step

    m1, o1, eager = make()
    m2, o2, step = make()
    compiled = cr.compile(step)
    xt, yt = cr.tensor(X), cr.tensor(Y)
    for _ in range(4):
        eager(xt, yt)
        compiled(xt, yt)
        _assert_same_state(m1, o1, m2, o2)
    grads = [p.grad for p in m2.parameters()]
    compiled(xt, yt)
    assert all(p.grad is g for p, g in zip(m2.parameters(), grads))  # the same tensors, updated in place


def test_a_busy_schedule_runs_eagerly_instead_of_sharing_its_buffers():
    """While a replay holds the buffers (another thread, a hook calling back), a call runs eagerly."""
    model, opt, step = _nn_step("sgd")
    m1, o1, eager = _nn_step("sgd")
    compiled = cr.compile(step)
    x, y = cr.tensor(X), cr.tensor(Y)
    compiled(x, y)
    eager(x, y)
    entry = compiled._last
    assert entry.lock is not None
    with entry.lock:
        compiled(x, y)
    eager(x, y)
    assert compiled.replays == 0
    compiled(x, y)
    eager(x, y)
    assert compiled.replays == 1
    _assert_same_state(m1, o1, model, opt)


def test_allocating_schedule_still_available_and_equal(monkeypatch):
    monkeypatch.setattr(C, "BUFFERS", False)
    compiled = _compare(lambda: _nn_step("adam"))
    assert "out=" not in compiled.code() and "(a0 @ p0.T) + p1" in compiled.code()


def test_in_place_edit_of_a_parameter_inside_is_still_refused():
    model, opt, _ = _nn_step("sgd")

    def step(x, y):
        loss = cr.nn.cross_entropy(model(x), y)
        loss.backward()
        model[0].weight.data[0, 0] = 1.0
        return loss

    with pytest.raises(C.CompileError, match="Tensor.data"):
        cr.compile(step)(cr.tensor(X), cr.tensor(Y))


def test_two_microbatches_accumulate_into_the_first_backwards_gradients():
    """Two backward() calls before one step: the second adds into the .grad arrays the first left (slots)."""

    def make():
        model = _mlp()
        opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x1, y1, x2, y2):
            opt.zero_grad()
            first = cr.nn.cross_entropy(model(x1), y1)
            first.backward()
            second = cr.nn.cross_entropy(model(x2), y2)
            second.backward()
            opt.step()
            return first + second

        return model, opt, step

    m1, o1, eager = make()
    m2, o2, step = make()
    compiled = cr.compile(step)
    batches = [cr.tensor(X[:8]), cr.tensor(Y[:8]), cr.tensor(X[8:]), cr.tensor(Y[8:])]
    for _ in range(4):
        np.testing.assert_array_equal(eager(*batches).data, compiled(*batches).data)
        _assert_same_state(m1, o1, m2, o2)
    assert compiled.replays == 3 and compiled.code().count("# backward() of") == 2
