"""The whole primitive suite on other array libraries: array-api-strict and torch CPU tensors.

Every case of tests/cases.py runs twice, once on NumPy arrays and once on the other
library's arrays; values, gradients, second-order gradients and forward-mode
tangents must agree (the libraries' own float64 kernels may differ in the last
bits, so the comparison allows 1e-10 relative error), and every result must stay
in the library it came from.
"""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.backend import library_name

from .cases import CASES

LIBRARIES = {
    "array_api_strict": lambda a: array_api_strict.asarray(np.asarray(a)),
    "torch": lambda a: torch.asarray(np.asarray(a)),
}
# The library each label's arrays belong to (the GPU suite, tests/test_gpu.py, adds "torch-cuda" and "cupy").
LIBRARY_OF = {"array_api_strict": "array_api_strict", "torch": "torch"}
# Not in the Array API standard, and array-api-strict has no implementation of its own:
# these raise an error that names the operation and the library (tested below).
NOT_IN_STANDARD = {"array_api_strict": {"einsum", "erf"}, "torch": set()}

ALL = [
    pytest.param(lib, name, case, id=f"{lib}-{name}-{case.label or i}")
    for lib in LIBRARIES
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
    if name not in NOT_IN_STANDARD[lib]
]


def _host(x):
    return np.asarray(x.numpy() if isinstance(x, cr.Tensor) else x)


def _close(got, expected, what):
    np.testing.assert_allclose(_host(got), _host(expected), rtol=1e-10, atol=1e-12, err_msg=what)


def _run(case, inputs, seed, make):
    ts = [cr.tensor(make(x), requires_grad=True) for x in inputs]
    out = case.fn(*ts)
    out.backward(make(seed))
    return ts, out


@pytest.mark.parametrize("lib,name,case", ALL)
def test_values_and_gradients_match_numpy(lib, name, case):
    rng = np.random.default_rng(11)
    inputs = case.inputs(rng)
    ref_in = [cr.tensor(x, requires_grad=True) for x in inputs]
    ref_out = case.fn(*ref_in)
    seed = rng.standard_normal(ref_out.shape)
    ref_out.backward(seed)
    make = LIBRARIES[lib]
    ts, out = _run(case, inputs, seed, make)
    if name != "to_device":  # the to_device case moves its data on purpose
        assert library_name(out.data) == LIBRARY_OF[lib], f"{name}: the result left {lib}"
    _close(out, ref_out, f"{name} value")
    for i, (mine, ref) in enumerate(zip(ts, ref_in)):
        if ref.grad is None:
            assert mine.grad is None
            continue
        assert library_name(mine.grad.data) == LIBRARY_OF[lib], f"{name}: the gradient of input {i} left {lib}"
        _close(mine.grad, ref.grad, f"{name} gradient of input {i}")


def _second_order(case, inputs, make, v):
    ts = [cr.tensor(make(x), requires_grad=True) for x in inputs]
    out = case.fn(*ts)
    grads = cr.autograd.grad(cr.sum(out * out), ts, create_graph=True, allow_unused=True)
    total = None
    for g, vi in zip(grads, v):
        if g is not None:
            term = cr.sum(g * cr.tensor(make(vi)))
            total = term if total is None else total + term
    if total is None or not total.requires_grad:
        return ts
    total.backward()
    return ts


@pytest.mark.parametrize("lib,name,case", ALL)
def test_second_order_matches_numpy(lib, name, case):
    rng = np.random.default_rng(5)
    inputs = case.inputs(rng)
    v = [rng.standard_normal(np.shape(x)) for x in inputs]
    ref = _second_order(case, inputs, lambda a: np.asarray(a), v)
    mine = _second_order(case, inputs, LIBRARIES[lib], v)
    for i, (m, r) in enumerate(zip(mine, ref)):
        if r.grad is None:
            assert m.grad is None or not np.any(_host(m.grad)), f"{name}: input {i}"
            continue
        _close(m.grad, r.grad, f"{name} second-order gradient of input {i}")


@pytest.mark.parametrize("lib,name,case", ALL)
def test_forward_mode_matches_numpy(lib, name, case):
    rng = np.random.default_rng(9)
    inputs = case.inputs(rng)
    tangents = [rng.standard_normal(np.shape(x)) for x in inputs]
    make = LIBRARIES[lib]
    ref_out, ref_t = cr.jvp(case.fn, [np.asarray(x) for x in inputs], tangents)
    out, t = cr.jvp(case.fn, [cr.tensor(make(x)) for x in inputs], [make(x) for x in tangents])
    if name != "to_device":
        assert library_name(t) == LIBRARY_OF[lib]
    _close(out, ref_out, f"{name} jvp value")
    _close(t, ref_t, f"{name} jvp tangent")


@pytest.mark.parametrize("name", sorted(NOT_IN_STANDARD["array_api_strict"]))
def test_functions_outside_the_standard_name_the_operation_and_library(name):
    case = CASES[name][0]
    inputs = [cr.tensor(array_api_strict.asarray(x)) for x in case.inputs(np.random.default_rng(0))]
    with pytest.raises(NotImplementedError, match=rf"{name}: .*array_api_strict"):
        case.fn(*inputs)
