"""The trace's local-gradient formulas come from the primitives' own VJP rules, run on symbolic arrays.

Every primitive with a rule is checked: its printed formula, evaluated with NumPy, must equal the
true local derivative (central differences of the forward) at a few points.  A planted wrong rule
must be caught.
"""

import numpy as np
import pytest

import chainrule as cr
from chainrule import symbolic as S
from chainrule.explain.trace import ELEMENTWISE, local_derivative
from chainrule.graph import node_of
from chainrule.primitive import REGISTRY
from chainrule.walk import _fit

rng = np.random.default_rng(7)


def M(*shape, lo=-2.0, hi=2.0):
    return cr.tensor(rng.uniform(lo, hi, size=shape), requires_grad=True)


def P(*shape):  # positive
    return M(*shape, lo=0.5, hi=2.0)


def _unpool(g, x):
    from chainrule.primitives import pool
    from chainrule.tensor import apply

    return apply(pool.max_pool2d_unpool, g, x.detach(), (2, 2))


# One recorded call per primitive: the engine's own node gives the primitive, its inputs and its static params.
CASES = {
    "abs": lambda: cr.abs(M(3)),
    "add": lambda: M(3) + M(3),
    "sub": lambda: M(3) - M(3),
    "mul": lambda: M(3) * M(3),
    "div": lambda: M(3) / P(3),
    "neg": lambda: -M(3),
    "pow": lambda: P(3) ** M(3),
    "exp": lambda: cr.exp(M(3)),
    "log": lambda: cr.log(P(3)),
    "log1p": lambda: cr.log1p(P(3)),
    "log2": lambda: cr.log2(P(3)),
    "log10": lambda: cr.log10(P(3)),
    "sqrt": lambda: cr.sqrt(P(3)),
    "sin": lambda: cr.sin(M(3)),
    "cos": lambda: cr.cos(M(3)),
    "tanh": lambda: cr.tanh(M(3)),
    "sigmoid": lambda: cr.sigmoid(M(3)),
    "relu": lambda: cr.relu(cr.tensor([-1.5, 0.7, 1.2], requires_grad=True)),
    "maximum": lambda: cr.maximum(cr.tensor([1.0, -2.0, 3.0], requires_grad=True), M(3, lo=-0.5, hi=0.5)),
    "minimum": lambda: cr.minimum(cr.tensor([1.0, -2.0, 3.0], requires_grad=True), M(3, lo=-0.5, hi=0.5)),
    "where": lambda: cr.where(cr.tensor([True, False, True]), M(3), M(3)),
    "clip": lambda: cr.clip(cr.tensor([-1.5, 0.2, 1.7], requires_grad=True), -1.0, 1.0),
    "matmul": lambda: M(2, 3) @ M(3, 2),
    "sum": lambda: cr.sum(M(2, 3), axis=0),
    "mean": lambda: cr.mean(M(2, 3), axis=1),
    "max": lambda: cr.max(cr.tensor([[1.0, 5.0, 2.0], [7.0, 3.0, 4.0]], requires_grad=True), axis=1),
    "min": lambda: cr.min(cr.tensor([[1.0, 5.0, 2.0], [7.0, 3.0, 4.0]], requires_grad=True), axis=1),
    "logsumexp": lambda: cr.logsumexp(M(2, 3), axis=1),
    "softmax": lambda: cr.softmax(M(2, 3), axis=1),
    "log_softmax": lambda: cr.log_softmax(M(2, 3), axis=1),
    "transpose": lambda: M(2, 3).T,
    "reshape": lambda: cr.reshape(M(2, 3), (3, 2)),
    "broadcast_to": lambda: cr.broadcast_to(M(3), (2, 3)),
    "getitem": lambda: M(4, 3)[np.array([0, 2, 2])],
    "unfold": lambda: cr.nn.functional.unfold(M(1, 2, 3, 4), 2, padding=1, stride=(1, 2)),
    "fold": lambda: cr.nn.functional.fold(M(1, 8, 6), (3, 4), 2),
    "erf": lambda: cr.nn.functional.erf(M(3)),
    "conv2d": lambda: cr.nn.functional.fused_conv2d(M(2, 2, 4, 3), M(3, 2, 2, 2), stride=(1, 2), padding=1),
    "conv2d_input": lambda: cr.nn.functional.conv2d_input((1, 2, 4, 3), M(3, 2, 2, 2), M(1, 3, 5, 4), padding=1),
    "conv2d_weight": lambda: cr.nn.functional.conv2d_weight(M(1, 2, 4, 3), (3, 2, 2, 2), M(1, 3, 5, 4), padding=1),
    "max_pool2d_pick": lambda: cr.nn.functional.fused_max_pool2d(M(1, 2, 4, 5), 2),
    "max_pool2d_unpool": lambda: _unpool(M(1, 2, 2, 2), M(1, 2, 4, 5)),
    "inv": lambda: cr.linalg.inv(M(2, 2, lo=-0.3, hi=0.3) + 2.0 * cr.eye(2)),
    "linear": lambda: cr.linear(M(4, 3), M(2, 3), M(2)),
    "asin": lambda: cr.torch_more.asin(M(3, lo=-0.9, hi=0.9)),
    "acos": lambda: cr.torch_more.acos(M(3, lo=-0.9, hi=0.9)),
    "atan": lambda: cr.torch_more.atan(M(3)),
    "asinh": lambda: cr.torch_more.asinh(M(3)),
    "acosh": lambda: cr.torch_more.acosh(M(3, lo=1.5, hi=3.0)),
    "atanh": lambda: cr.torch_more.atanh(M(3, lo=-0.9, hi=0.9)),
    "expm1": lambda: cr.torch_more.expm1(M(3)),
    "atan2": lambda: cr.torch_more.atan2(M(3), M(3, lo=0.5, hi=2.0)),
}


def numeric_vjp(prim, args, i, g, h=1e-6):
    """d/d args[i] of sum(g * fwd(args)) by central differences, in float64."""
    x = np.array(args[i], dtype=np.float64)
    grad = np.zeros_like(x)
    for k in range(x.size):
        up, down = x.copy(), x.copy()
        up.flat[k] += h
        down.flat[k] -= h
        a_up, a_down = list(args), list(args)
        a_up[i], a_down[i] = up, down
        grad.flat[k] = np.sum(g * (prim.fwd(*a_up) - prim.fwd(*a_down))) / (2 * h)
    return grad


def formula_error(name: str) -> float:
    """Largest gap between the printed rule, evaluated, and central differences (over every input)."""
    out = CASES[name]()
    view = node_of(out)
    prim, args = view.prim, view.args
    assert prim.name == name
    nin = len(view.inputs)
    tensors, params = args[:nin], args[nin:]
    names = [f"a{j}" for j in range(nin)]
    syms = [S.var(n, np.shape(t)) for n, t in zip(names, tensors)]
    env = dict(zip(names, [np.asarray(t) for t in tensors]))
    shape = tuple(np.shape(out.data))
    if name in ELEMENTWISE:
        g, env["g"], upstream = np.ones(shape), None, S.const(1.0, shape)
    else:
        g = rng.normal(size=shape)
        env["g"], upstream = g, S.var("g", shape)
    worst = 0.0
    for i in range(nin):
        if view.inputs[i] is None or not prim.differentiable(i):
            continue
        formula = local_derivative(prim, i, syms, params, shape, upstream)
        value = np.asarray(S.evaluate(formula, env), dtype=np.float64)
        if name in ELEMENTWISE:  # the local derivative, one number per element: times the unit upstream
            value = np.broadcast_to(value, shape)
            value = value.reshape(np.shape(tensors[i])) if value.size == np.size(tensors[i]) else value
        else:  # the rule's result, reduced to the input's shape by the engine's broadcasting adjoint
            value = _fit(value, np.asarray(tensors[i]))
        expected = numeric_vjp(prim, args, i, g)
        worst = max(worst, float(np.max(np.abs(value - expected))))
    return worst


@pytest.mark.parametrize("name", sorted(CASES))
def test_printed_formula_is_the_true_local_derivative(name):
    assert formula_error(name) < 1e-6


def test_every_primitive_with_a_rule_is_covered():
    # dtype casts; variadic (einsum too); the adjoint of indexing; det's rule needs inv, which the symbolic
    # namespace does not have; a move between array libraries (checked in tests/test_backends.py)
    skipped = {"astype", "concatenate", "stack", "einsum", "scatter_add", "det", "to_device"}
    with_rules = {n for n, p in REGISTRY.items() if any(r is not None for r in p.vjps)}
    assert with_rules - skipped <= set(CASES), sorted(with_rules - skipped - set(CASES))


def test_a_planted_wrong_rule_is_caught(monkeypatch):
    sin = REGISTRY["sin"]
    monkeypatch.setattr(sin, "vjps", (lambda xp, g, out, x: g * xp.sin(x),))  # d sin = sin: wrong
    assert formula_error("sin") > 0.1
    tr = cr.trace(cr.sin(cr.tensor(1.0, requires_grad=True)))
    assert tr.steps[0].inputs[0].formula == "sin(x)"  # and the table shows the rule that runs, not a stored string


def test_table_formulas_read_as_in_the_lecture():
    x = cr.tensor(1.37, requires_grad=True)
    tr = cr.trace(1 / x + x**2 + 3 * cr.exp(x), names={"x": x})
    formulas = {s.expression: next(e.formula for e in s.inputs if not e.constant) for s in tr.steps}
    assert formulas["1 / x"] == "-1 / x²" and formulas["x ** 2"] == "2 x" and formulas["exp(x)"] == "exp(x)"
    w, v = cr.tensor(2.0, requires_grad=True), cr.tensor(-1.0, requires_grad=True)
    tr = cr.trace(w * v, names={"w": w, "v": v})
    assert [e.formula for e in tr.steps[0].inputs] == ["v", "w"]
