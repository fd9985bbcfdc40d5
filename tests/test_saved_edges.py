"""Releasing values (chainrule.saved) at its edges: decisions made at record time that change later.

In-place ops that turn a candidate into a node whose rule reads its result, forward mode over a
function that uses an earlier graph's tensor, requires_grad turned on after recording, the value a
trace shows after an in-place op, `.data` of a tensor reached only through a weak reference, and a
rule replaced after recording.  Each compares with the same program recorded inside
``cr.keep_values()`` (the engine before the release), or expects a loud error.  Found by a review
that tried to break the release; each failed before its fix.
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np
import pytest

import chainrule as cr
from chainrule.primitive import REGISTRY, defvjp

N = 4096  # float32: 16 KiB, between MIN_BYTES and MAX_RESULT_BYTES


def _more_ops(x, n=6):
    for _ in range(n):
        x * 3.0


# --- 1. an in-place op turns a candidate into a node whose rule reads its result ------------------


def _mlp_with_inplace_tanh(keep: bool):
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((32, 64)).astype(np.float32))
    W1 = cr.tensor(rng.standard_normal((64, 64)).astype(np.float32) * 0.1, requires_grad=True)
    b1 = cr.tensor(np.zeros(64, np.float32), requires_grad=True)
    W2 = cr.tensor(rng.standard_normal((64, 64)).astype(np.float32) * 0.1, requires_grad=True)
    with cr.keep_values() if keep else contextlib.nullcontext():
        h = x @ W1  # (32, 64) float32, 8 KiB: matmul's rule does not read its result -> a candidate
        h.tanh_()  # h is now a tanh node, whose rule reads its result
        h = h + b1  # add keeps neither input; the program drops the old h
        h = h @ W2
        loss = (h * h).sum()
    loss.backward()
    return W1.grad.numpy()


def test_inplace_tanh_on_a_released_candidate_keeps_the_gradient():
    expected = _mlp_with_inplace_tanh(keep=True)
    np.testing.assert_array_equal(_mlp_with_inplace_tanh(keep=False), expected)


@pytest.mark.parametrize("op", ["exp_", "sigmoid_", "sqrt_", "div_param"])
def test_inplace_op_reading_its_result_on_a_candidate(op):
    def run(keep):
        x = cr.tensor(np.linspace(0.5, 1.5, N, dtype=np.float32), requires_grad=True)
        w = cr.tensor(np.linspace(1.0, 2.0, N, dtype=np.float32), requires_grad=True)
        with cr.keep_values() if keep else contextlib.nullcontext():
            t = x * 1.5
            if op == "div_param":
                t.div_(w)  # div's rule for its divisor reads the result
            else:
                getattr(t, op)()
            y = t * 3.0  # does not keep t's array
            del t
            _more_ops(x)
            z = (y * w).sum()
        z.backward()
        return x.grad.numpy(), w.grad.numpy()

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(b, a)


# --- 2. forward mode walks into an eagerly recorded graph ------------------------------------------


def _eager_tensor():
    w = cr.tensor(np.linspace(0, 1, N, dtype=np.float32), requires_grad=True)
    a = w * 1.5
    h = a * 2.0  # h's node does not keep a's array
    del a
    h * 3.0  # a later op releases a
    return w, h


@pytest.mark.parametrize("transform", ["jvp_closure", "jvp_primal", "linearize", "hvp", "hessian"])
def test_forward_mode_over_a_function_using_an_eager_graph_tensor(transform):
    w, h = _eager_tensor()
    ones = np.ones(N, np.float32)
    if transform == "jvp_closure":
        _, tangent = cr.jvp(lambda x: x * h, (ones,), (ones,))
        np.testing.assert_allclose(np.asarray(tangent), h.numpy())
    elif transform == "jvp_primal":
        _, tangent = cr.jvp(lambda x: x * 2.0, (h,), (ones,))
        np.testing.assert_allclose(np.asarray(tangent), 2 * ones)
    elif transform == "linearize":
        _, f_jvp = cr.linearize(lambda x: x * h, ones)
        np.testing.assert_allclose(np.asarray(f_jvp(ones)), h.numpy())
    elif transform == "hvp":
        hv = cr.hvp(lambda x: (x * x * h).sum(), ones, ones)
        np.testing.assert_allclose(np.asarray(hv), 2 * h.numpy())
    else:
        H = cr.hessian(lambda x: (x * x * h[:4]).sum())(np.ones(4, np.float32))
        np.testing.assert_allclose(np.asarray(H), np.diag(2 * h.numpy()[:4]))


# --- 3. requires_grad turned on after recording ----------------------------------------------------


def test_requires_grad_turned_on_after_recording():
    def run(keep):
        x = cr.tensor(np.linspace(0.5, 1.5, N, dtype=np.float32), requires_grad=True)
        c = cr.tensor(np.linspace(1.0, 2.0, N, dtype=np.float32))
        with cr.keep_values() if keep else contextlib.nullcontext():
            z = (x * c + x / c).sum()
            _more_ops(x)
        c.requires_grad_()
        z.backward()
        return x.grad.numpy(), c.grad.numpy()

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(b, a)


# --- 4. cr.trace shows a wrong forward value after an in-place op -----------------------------------


def test_trace_shows_the_value_an_inplace_op_read():
    x = cr.tensor(np.linspace(0, 1, N, dtype=np.float32), requires_grad=True)
    t = x * 2.0
    t.mul_(3.0)  # the in-place node read 2x; t's array now holds 6x
    loss = (t * t).sum()
    tr = cr.trace(loss, names={"x": x})
    step = [s for s in tr.steps if s.op == "mul" and s.expression.endswith("3")][0]
    np.testing.assert_array_equal(np.asarray(step.inputs[0].value), x.numpy() * np.float32(2.0))


# --- 5. a released tensor reached through a weak reference -----------------------------------------


def test_data_of_a_released_tensor_is_never_a_stand_in():
    x = cr.tensor(np.ones(N, np.float32), requires_grad=True)
    a = x * 1.5
    ref = weakref.ref(a)
    y = a + 1.0  # noqa: F841  (keeps a alive through its edge)
    del a
    _more_ops(x)
    t = ref()
    assert t is not None
    try:
        d = t.data
    except cr.ValueReleasedError:
        return
    assert isinstance(d, np.ndarray), f"Tensor.data handed out {type(d).__name__}"


# --- 6. a rule replaced after nodes were recorded ---------------------------------------------------


def test_rule_replaced_after_recording():
    exp = REGISTRY["exp"]
    rules = exp.vjps
    try:
        x = cr.tensor(np.linspace(0, 1, N), requires_grad=True)
        h = x * 2.0
        y = cr.exp(h)  # exp's node does not keep h's array
        del h
        _more_ops(x)
        defvjp(exp, lambda xp, g, out, x: g * xp.exp(x))  # the same derivative, reading x
        # the node was recorded under rules that did not read x: a loud error naming the cause, never a number
        with pytest.raises(cr.ValueReleasedError, match="defvjp after the graph was recorded"):
            y.sum().backward()
    finally:
        exp.vjps = rules
