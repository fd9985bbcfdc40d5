"""The slot walk (first-order backward into .grad, gradients in the tensors' _bg slots) against the heap walk."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import chainrule as cr
import chainrule.autodiff as ad


def _scalar_graph(seed: int) -> tuple[list, object]:
    rng = np.random.default_rng(seed)
    ws = [cr.tensor(float(v), requires_grad=True) for v in rng.uniform(-1, 1, 6)]
    h = ws[0]
    for i in range(40):
        a, b = ws[rng.integers(6)], ws[rng.integers(6)]
        op = i % 5
        if op == 0:
            h = h * a + b
        elif op == 1:
            h = (h - a).relu() + 0.5 * b
        elif op == 2:
            h = h.tanh() * b
        elif op == 3:
            h = h / (1.0 + a * a) + h.exp() * 0.01
        else:
            h = h + a.log() if a.item() > 0 else h - a
    return ws, h


def _array_graph(seed: int) -> tuple[list, object]:
    rng = np.random.default_rng(seed)
    x = cr.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    b = cr.tensor(rng.normal(size=(3,)), requires_grad=True)
    s = cr.tensor(1.5, requires_grad=True)  # a Python-float tensor broadcast into arrays
    y = ((x + b) * s).tanh()
    z = (y * y).sum(axis=0) + b * s
    return [x, b, s], z.sum() + cr.concatenate([y.reshape(-1), z]).mean()


def _grads(build, seed: int, slots: bool) -> list:
    ad.FAST_PATH = slots
    try:
        leaves, out = build(seed)
        out.backward()
        return [leaf.grad.numpy() for leaf in leaves]
    finally:
        ad.FAST_PATH = True


@pytest.mark.parametrize("build", [_scalar_graph, _array_graph])
@pytest.mark.parametrize("seed", range(4))
def test_slot_walk_matches_heap_walk_bitwise(build, seed):
    for a, b in zip(_grads(build, seed, True), _grads(build, seed, False)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)


def test_slot_walk_matches_central_differences():
    x = cr.tensor(0.7, requires_grad=True)
    y = cr.tensor(-1.3, requires_grad=True)
    f = lambda u, v: ((u * v).tanh() + u * u) * (v - u).exp()  # noqa: E731
    f(x, y).backward()
    h = 1e-6
    dx = (f(cr.tensor(0.7 + h), cr.tensor(-1.3)).item() - f(cr.tensor(0.7 - h), cr.tensor(-1.3)).item()) / (2 * h)
    dy = (f(cr.tensor(0.7), cr.tensor(-1.3 + h)).item() - f(cr.tensor(0.7), cr.tensor(-1.3 - h)).item()) / (2 * h)
    assert abs(x.grad.item() - dx) < 1e-6 and abs(y.grad.item() - dy) < 1e-6


def _all_slots(t) -> list:
    """Every tensor reachable from ``t`` (leaves too), read through the public graph module's view of node inputs."""
    from chainrule.tensor import node_parts

    seen, stack, out = set(), [t], []
    while stack:
        u = stack.pop()
        if id(u) in seen:
            continue
        seen.add(id(u))
        out.append(u)
        if u._node is not None:
            stack.extend(i for i in node_parts(u)[0] if i is not None)
    return out


def test_slots_are_cleared_after_a_walk_and_after_a_failing_one():
    w = cr.tensor(2.0, requires_grad=True)
    a = w * 3.0
    out = a * a + w
    everything = _all_slots(out)
    out.backward(retain_graph=True)
    assert all(t._bg is None for t in everything)
    assert w.grad.item() == 2 * 6.0 * 3.0 + 1.0
    w.grad = None

    class Boom(Exception):
        pass

    def hook(g):
        raise Boom()

    a.register_hook(hook)
    b = a * w
    with pytest.raises(Boom):
        (b + out).backward(retain_graph=True)
    assert all(t._bg is None for t in _all_slots(b) + everything)
    assert w.grad is None  # nothing was delivered
    assert a._node is not None and a._node is not ad.FREED  # not released by the failed walk
    w2 = cr.tensor(1.0, requires_grad=True)
    (w2 * w2).backward()
    assert w2.grad.item() == 2.0


def test_hook_on_a_tensor_already_used_behaves_as_the_heap_walk():
    results = []
    for slots in (True, False):
        ad.FAST_PATH = slots
        try:
            x = cr.tensor(3.0, requires_grad=True)
            t = x * 1.0
            y = t * 2
            t.retain_grad()  # puts a node newer than y in front of t
            (y + t * t).backward(retain_graph=True)
            results.append((x.grad.item(), t.grad.item()))
        finally:
            ad.FAST_PATH = True
    assert results[0] == results[1] == (8.0, 8.0)


def test_sparse_creation_numbers_jump():
    w = cr.tensor(2.0, requires_grad=True)
    old = w * 3
    junk = [w * 1 for _ in range(3000)]  # nodes of other graphs between old and its reader
    (old * old).backward()
    assert w.grad.item() == 36.0
    assert len(junk) == 3000


def test_concurrent_backward_through_shared_leaves():
    w = cr.tensor(0.5, requires_grad=True)
    errors = []

    def work():
        try:
            for _ in range(30):
                h = w
                for _ in range(50):
                    h = (h * 1.01).tanh() + w * 0.001
                h.backward()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    w2 = cr.tensor(0.5, requires_grad=True)
    h = w2
    for _ in range(50):
        h = (h * 1.01).tanh() + w2 * 0.001
    h.backward()
    assert np.isclose(w.grad.item(), 120 * w2.grad.item(), rtol=1e-12)


def test_the_inlined_float_rules_of_mul_and_add_give_way_to_a_replaced_rule(monkeypatch):
    """The walk inlines mul's and add's rules on Python floats; a rule put in their place is still the one run."""
    from chainrule.primitives import elementwise as E

    def grads():
        x, y = cr.tensor(3.0, requires_grad=True), cr.tensor(5.0, requires_grad=True)
        (x * y + x).backward()
        return x.grad.item(), y.grad.item()

    assert grads() == (6.0, 3.0)
    wrong = (lambda xp, g, out, x, y: 2 * g * y, E.mul.vjps[1])  # a planted wrong rule for d(x*y)/dx
    monkeypatch.setattr(E.mul, "vjps", wrong)
    assert grads() == (11.0, 3.0)
