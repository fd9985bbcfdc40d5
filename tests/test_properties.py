"""Property-based differential tests: random programs against PyTorch and float64 finite differences.

Each generated program (see tests/strategies.py) runs three ways: chainrule at
the program's dtype, PyTorch at the same dtype, and chainrule in float64 under
central differences.  Forward values and gradients must agree within the
tolerances below.  A failure prints (via ``note``) the shrunk program as
runnable chainrule code.

Run more examples with ``HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties.py``.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule.graph import topological
from chainrule.primitive import REGISTRY

from .cases import CASES
from .strategies import DTYPES, TEMPLATES, TORCH_NS, Program, programs


@dataclass(frozen=True)
class Tolerance:
    """``|got - want| <= atol * scale + rtol * |want|``, scale = max(1, largest |want|)."""

    torch_rtol: float  # chainrule vs PyTorch at the program's dtype
    torch_atol: float
    fd_rtol: float  # chainrule gradients vs float64 central differences
    fd_atol: float
    tie_margin: float  # kinks closer than this (but not exactly on them) skip the gradient comparison


TOLERANCES = {
    "float64": Tolerance(torch_rtol=1e-9, torch_atol=1e-11, fd_rtol=1e-5, fd_atol=1e-6, tie_margin=1e-6),
    "float32": Tolerance(torch_rtol=1e-4, torch_atol=1e-4, fd_rtol=2e-3, fd_atol=2e-3, tie_margin=1e-3),
}
FD_EPS = 1e-6
FD_MARGIN = 1e-3  # finite differences need every kink at least this far away


def assert_close(got, want, rtol: float, atol: float, what: str) -> None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = np.abs(got - want)
    bound = atol * scale + rtol * np.abs(want)
    bad = ~(err <= bound)
    if bad.any():
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(np.where(bad, err, -1))), want.shape))
        raise AssertionError(f"{what}: element {i}: got {got[i]!r}, want {want[i]!r} (|diff| {err[i]:.3g})")


def run_chainrule(prog: Program, dtype: str | None = None) -> tuple[float, list[np.ndarray]]:
    env = prog.run(cr, dtype)
    out = env["out"]
    out.backward()
    grads = [
        np.zeros(np.shape(v)) if env[n].grad is None else np.asarray(env[n].grad.data) for n, v in prog.inputs.items()
    ]
    for n in prog.inputs:
        if env[n].grad is not None:
            assert env[n].grad.dtype == DTYPES[dtype or prog.dtype], f"gradient of {n} has dtype {env[n].grad.dtype}"
    assert out.dtype == DTYPES[dtype or prog.dtype], f"out has dtype {out.dtype}"
    return out.item(), grads


def run_torch(prog: Program) -> tuple[float, list[np.ndarray]]:
    env = prog.run(TORCH_NS)
    out = env["out"]
    out.backward()
    grads = [np.zeros(np.shape(v)) if env[n].grad is None else env[n].grad.numpy() for n, v in prog.inputs.items()]
    return out.item(), grads


def finite_differences(prog: Program) -> list[np.ndarray]:
    """Central differences of the float64 rendering of ``prog``, one input element at a time."""

    def f(inputs: dict) -> float:
        with cr.no_grad():
            return prog.run(cr, "float64", inputs, grad=False)["out"].item()

    base = {n: np.asarray(v, dtype=np.float64, order="C") for n, v in prog.inputs.items()}
    if prog.dtype == "float32":  # the float32 program's inputs, exactly
        base = {n: v.astype(np.float32).astype(np.float64) for n, v in base.items()}
    grads = []
    for name, value in base.items():
        g = np.zeros(value.shape)
        for e in range(value.size):
            plus, minus = value.copy(), value.copy()
            plus.reshape(-1)[e] += FD_EPS
            minus.reshape(-1)[e] -= FD_EPS
            g.reshape(-1)[e] = (f({**base, name: plus}) - f({**base, name: minus})) / (2 * FD_EPS)
        grads.append(g)
    return grads


def check_program(prog: Program) -> None:
    note(repr(prog))
    tol = TOLERANCES[prog.dtype]
    value, grads = run_chainrule(prog)
    t_value, t_grads = run_torch(prog)
    assert math.isfinite(value), f"chainrule gave {value} where torch gave {t_value}"
    assert_close(value, t_value, tol.torch_rtol, tol.torch_atol, "forward value vs torch")
    against_torch = prog.margin >= tol.tie_margin  # exact ties are compared (torch's conventions); near-ties not
    if against_torch:
        for name, g, tg in zip(prog.inputs, grads, t_grads):
            assert_close(g, tg, tol.torch_rtol, tol.torch_atol, f"gradient of {name} vs torch")
    against_fd = not prog.tie and prog.margin >= FD_MARGIN
    if against_fd:
        for name, g, fd in zip(prog.inputs, grads, finite_differences(prog)):
            assert_close(g, fd, tol.fd_rtol, tol.fd_atol, f"gradient of {name} vs float64 finite differences")
    event(f"gradients checked against: {'torch' if against_torch else ''}{' + FD' if against_fd else ''} ")
    event(f"{prog.dtype}, exact tie or kink hit: {prog.tie}")


@settings(max_examples=settings().max_examples * 10)
@given(programs())
def test_random_programs_match_torch_and_finite_differences(prog):
    check_program(prog)


@settings(max_examples=max(10, settings().max_examples // 2))
@given(programs())
def test_printed_program_is_the_program_that_ran(prog):
    """The repr is runnable chainrule code that computes the same value and gradients."""
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(repr(prog), "<printed program>", "exec"), namespace)  # noqa: S102  (code generated by the test)
    value, grads = run_chainrule(prog)
    assert namespace["out"].item() == value
    for name, g in zip(prog.inputs, grads):
        ran = namespace[name].grad
        np.testing.assert_array_equal(np.zeros(g.shape) if ran is None else ran.data, g)
    assert printed.getvalue().startswith("tensor(")


# to_device moves data between array libraries; the generated programs are NumPy-only, so
# tests/test_backends.py checks it (values, gradients and second order on torch and array-api-strict).
# max_pool2d_unpool is reached only as max pooling's gradient: every max_pool2d program's gradients run it
GENERATED = sorted(set(REGISTRY) - {"to_device", "max_pool2d_unpool"})


def test_every_primitive_has_a_template():
    assert set(TEMPLATES) == set(GENERATED), (
        f"primitives without a program template in tests/strategies.py: {sorted(set(GENERATED) - set(TEMPLATES))}; "
        f"templates for unknown primitives: {sorted(set(TEMPLATES) - set(GENERATED))}"
    )
    assert set(CASES) == set(REGISTRY)


@pytest.mark.parametrize("name", GENERATED)
@settings(max_examples=max(5, settings().max_examples // 4))
@given(data=st.data())
def test_every_primitive_is_generated_and_checked(name, data):
    dtypes = ("float32",) if name == "astype" else ("float64", "float32")
    prog = data.draw(programs(dtypes=dtypes, require=name), label="program")
    env = prog.run(cr)
    recorded = {t.op for t in topological(env["out"])}
    assert name in recorded, f"the program for {name} recorded only {sorted(recorded)}"
    check_program(prog)


# --- very large and very small magnitudes ------------------------------------------------------------
MAGNITUDES = [0.0, 1e-30, -1e-30, 1e-8, -1e-8, 1.0, -1.0, 30.0, -30.0, 100.0, -100.0, 1e3, -1e3, 1e5, -1e5, 1e30, -1e30]

# name -> (chainrule function, torch function); x has at least one axis
STABLE = {
    "sigmoid": (cr.sigmoid, torch.sigmoid),
    "tanh": (cr.tanh, torch.tanh),
    "softmax": (lambda x: cr.softmax(x, axis=-1), lambda x: torch.softmax(x, dim=-1)),
    "log_softmax": (lambda x: cr.log_softmax(x, axis=0), lambda x: torch.log_softmax(x, dim=0)),
    "logsumexp": (lambda x: cr.logsumexp(x, axis=-1), lambda x: torch.logsumexp(x, dim=-1)),
    "logsumexp-all": (cr.logsumexp, lambda x: torch.logsumexp(x.reshape(-1), dim=0)),
    "x - logsumexp": (
        lambda x: x - cr.logsumexp(x, axis=-1, keepdims=True),
        lambda x: x - torch.logsumexp(x, dim=-1, keepdim=True),
    ),
    "softplus via logsumexp": (
        lambda x: cr.logsumexp(cr.stack([x, x * 0.0]), axis=0),
        lambda x: torch.logsumexp(torch.stack([x, x * 0.0]), dim=0),
    ),
    "log1p": (lambda x: cr.log1p(cr.abs(x)), lambda x: torch.log1p(torch.abs(x))),
    "log1p(sigmoid)": (lambda x: cr.log1p(cr.sigmoid(x)), lambda x: torch.log1p(torch.sigmoid(x))),
    "log(sigmoid)": (lambda x: cr.log(cr.sigmoid(x)), lambda x: torch.log(torch.sigmoid(x))),
}


def _finite_where_torch_is(got: np.ndarray, want: np.ndarray, tol: float, what: str) -> None:
    finite = np.isfinite(want)
    assert np.isfinite(got[finite]).all(), f"{what}: non-finite {got[finite & ~np.isfinite(got)]} where torch is finite"
    assert_close(got[finite], want[finite], tol, tol, what)


@given(
    name=st.sampled_from(sorted(STABLE)),
    dtype=st.sampled_from(["float64", "float32"]),
    data=st.lists(st.lists(st.sampled_from(MAGNITUDES), min_size=3, max_size=3), min_size=1, max_size=3),
    weights=st.lists(st.sampled_from([1.0, -0.5, 2.0, 0.0]), min_size=3, max_size=3),
)
def test_extreme_magnitudes_stay_finite_where_torch_does(name, dtype, data, weights):
    fn, tfn = STABLE[name]
    x_np = np.array(data, dtype=DTYPES[dtype])
    note(f"{name} on {dtype} {x_np.tolist()}")
    x = cr.tensor(x_np, requires_grad=True)
    t = torch.tensor(x_np, requires_grad=True)
    with np.errstate(all="ignore"):
        out = fn(x)
        ref = tfn(t)
        w = np.resize(np.array(weights, dtype=x_np.dtype), ref.shape)
        out.backward(w)
    ref.backward(torch.tensor(w))
    tol = 16 * float(np.finfo(x_np.dtype).eps)  # relative, and absolute on the scale of the largest value
    _finite_where_torch_is(np.asarray(out.data, np.float64), ref.detach().double().numpy(), tol, "forward")
    _finite_where_torch_is(np.asarray(x.grad.data, np.float64), t.grad.double().numpy(), tol, "gradient")


# --- empty arrays -----------------------------------------------------------------------------------------
EMPTY = [
    # (label, chainrule function, torch function, input shapes)
    ("sum over the empty axis", lambda x: cr.sum(x * 2.0, axis=0), lambda x: (x * 2.0).sum(dim=0), [(0, 3)]),
    ("sum keepdims", lambda x: cr.sum(x, axis=1, keepdims=True), lambda x: x.sum(dim=1, keepdim=True), [(2, 0)]),
    ("sum of everything", lambda x: cr.sum(cr.exp(x)), lambda x: torch.exp(x).sum(), [(2, 0, 3)]),
    ("sum over a full axis", lambda x: cr.sum(x, axis=2), lambda x: x.sum(dim=2), [(2, 0, 3)]),
    ("matmul, empty inner", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 0), (0, 3)]),
    ("matmul, empty rows", lambda a, b: cr.tanh(a @ b), lambda a, b: torch.tanh(a @ b), [(0, 3), (3, 2)]),
    ("broadcast with empty", lambda a, b: a * b + a, lambda a, b: a * b + a, [(0, 3), (3,)]),
    ("concatenate empty", lambda a, b: cr.concatenate([a, b]), lambda a, b: torch.cat([a, b]), [(0, 2), (3, 2)]),
    ("softmax on empty rows", lambda x: cr.softmax(x, axis=1), lambda x: torch.softmax(x, dim=1), [(0, 4)]),
    ("max over rows of no rows", lambda x: cr.max(x, axis=1), lambda x: torch.amax(x, dim=1), [(0, 4)]),
    ("reshape empty", lambda x: cr.reshape(x, (3, 0)), lambda x: x.reshape(3, 0), [(0, 3)]),
]


@pytest.mark.parametrize("label,fn,tfn,shapes", EMPTY, ids=[row[0] for row in EMPTY])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_empty_arrays_match_torch(label, fn, tfn, shapes, dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    xs = [cr.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = fn(*xs), tfn(*ts)
    assert out.shape == tuple(ref.shape) and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-6)
    seed = rng.standard_normal(out.shape).astype(dtype)
    out.backward(seed)
    ref.backward(torch.tensor(seed))
    for x, t in zip(xs, ts):
        assert x.grad.shape == x.shape and x.grad.dtype == np.dtype(dtype)
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "call,fragment",
    [
        (lambda x: x.max(axis=0), "max: the reduction has no identity"),
        (lambda x: cr.logsumexp(x), "logsumexp: the reduction has no identity"),
    ],
    ids=["max", "logsumexp"],
)
def test_reductions_without_identity_refuse_empty_input(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call(cr.tensor(np.ones((0, 3)), requires_grad=True))
