"""torch's tensor API in chainrule (issue 12): op tests against torch, the four bugs, masked rules.

The op tests are written from torch's documented semantics, tinygrad style: for
each op, the same inputs go through torch and chainrule; values, dtypes and the
gradients of a random projection of the output must agree.  The masked-rule
sweep finds every primitive whose VJP rule uses ``where`` (by recording its
backward pass) and compares second derivatives with torch at the boundary
inputs where a masked branch is infinite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import chainrule as cr
from chainrule.primitive import REGISTRY
from tests.cases import CASES, Case

torch = pytest.importorskip("torch")


# --- op tests: forward and backward against torch --------------------------------------------
def _ops() -> list[tuple[str, Callable, Callable, list]]:
    """(name, chainrule fn, torch fn, input arrays): each fn takes tensors of its library."""
    r = np.random.default_rng(12)
    m = r.standard_normal((3, 4))
    v = r.standard_normal(5)
    c = r.standard_normal((2, 3, 4))
    pos = r.uniform(0.5, 2.0, (3, 4))
    same = lambda name: lambda x: getattr(x, name)()  # noqa: E731
    return [
        ("sum dim keepdim", lambda x: x.sum(dim=1, keepdim=True), lambda x: x.sum(dim=1, keepdim=True), [m]),
        ("sum axis keepdims", lambda x: x.sum(axis=0, keepdims=True), lambda x: x.sum(axis=0, keepdims=True), [m]),
        ("sum tuple dim", lambda x: cr.sum(x, dim=(0, 2)), lambda x: torch.sum(x, dim=(0, 2)), [c]),
        ("mean dim", lambda x: x.mean(dim=-1), lambda x: x.mean(dim=-1), [m]),
        ("mean keepdim", lambda x: cr.mean(x, 0, True), lambda x: torch.mean(x, 0, True), [c]),
        ("max dim values", lambda x: x.max(dim=1).values, lambda x: x.max(dim=1).values, [m]),
        ("max positional [0]", lambda x: x.max(0)[0], lambda x: x.max(0)[0], [m]),
        ("min dim keepdim", lambda x: x.min(1, keepdim=True).values, lambda x: x.min(1, keepdim=True).values, [m]),
        ("max of two", lambda x, y: cr.max(x, y), lambda x, y: torch.max(x, y), [m, m[::-1].copy()]),
        ("amax", lambda x: cr.amax(x, dim=(0, 1)), lambda x: torch.amax(x, dim=(0, 1)), [c]),
        ("amin", lambda x: x.amin(-1), lambda x: x.amin(-1), [m]),
        ("softmax dim", lambda x: cr.softmax(x, dim=0), lambda x: torch.softmax(x, dim=0), [m]),
        ("log_softmax dim", lambda x: x.log_softmax(dim=1), lambda x: x.log_softmax(dim=1), [m]),
        (
            "logsumexp dim keepdim",
            lambda x: x.logsumexp(dim=1, keepdim=True),
            lambda x: x.logsumexp(dim=1, keepdim=True),
            [m],
        ),
        ("var", same("var"), same("var"), [m]),
        ("var dim correction 0", lambda x: x.var(dim=1, correction=0), lambda x: x.var(dim=1, correction=0), [m]),
        ("std dim keepdim", lambda x: x.std(0, keepdim=True), lambda x: x.std(0, keepdim=True), [m]),
        ("norm", same("norm"), same("norm"), [m]),
        ("norm p=1 dim", lambda x: x.norm(p=1, dim=0), lambda x: x.norm(p=1, dim=0), [m]),
        ("norm p=3", lambda x: x.norm(p=3), lambda x: x.norm(p=3), [m]),
        ("linalg.norm", lambda x: cr.linalg.norm(x), lambda x: torch.linalg.norm(x), [v]),
        (
            "linalg.vector_norm inf",
            lambda x: cr.linalg.vector_norm(x, float("inf"), dim=1),
            lambda x: torch.linalg.vector_norm(x, float("inf"), dim=1),
            [m],
        ),
        ("linalg.matrix_norm 1", lambda x: cr.linalg.matrix_norm(x, 1), lambda x: torch.linalg.matrix_norm(x, 1), [m]),
        (
            "linalg.matrix_norm inf",
            lambda x: cr.linalg.matrix_norm(x, float("inf")),
            lambda x: torch.linalg.matrix_norm(x, float("inf")),
            [m],
        ),
        ("prod", same("prod"), same("prod"), [m]),
        ("prod dim", lambda x: x.prod(dim=1), lambda x: x.prod(dim=1), [m]),
        ("cumsum", lambda x: x.cumsum(dim=1), lambda x: x.cumsum(dim=1), [m]),
        ("transpose", lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2), [c]),
        ("transpose negative", lambda x: cr.transpose(x, -1, -2), lambda x: torch.transpose(x, -1, -2), [c]),
        ("permute", lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1), [c]),
        ("T", lambda x: x.T, lambda x: x.T, [m]),
        ("mT", lambda x: x.mT, lambda x: x.mT, [c]),
        ("t", same("t"), same("t"), [m]),
        ("reshape varargs", lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1), [m]),
        ("view", lambda x: x.view(2, 6), lambda x: x.view(2, 6), [m]),
        ("flatten", lambda x: x.flatten(1), lambda x: x.flatten(1), [c]),
        ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1), [m]),
        ("squeeze dim", lambda x: x[:, None].squeeze(1), lambda x: x[:, None].squeeze(1), [m]),
        ("expand", lambda x: x[:, None].expand(-1, 3, -1), lambda x: x[:, None].expand(-1, 3, -1), [m]),
        ("repeat", lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3), [m]),
        ("cat dim", lambda x, y: cr.cat([x, y], dim=1), lambda x, y: torch.cat([x, y], dim=1), [m, m * 2]),
        ("stack dim", lambda x, y: cr.stack((x, y), dim=2), lambda x, y: torch.stack((x, y), dim=2), [m, m + 1]),
        ("chunk", lambda x: x.chunk(3, dim=1)[1], lambda x: x.chunk(3, dim=1)[1], [m]),
        (
            "chunk count as torch",
            lambda x: cr.stack(list(x.chunk(3, dim=0))),
            lambda x: torch.stack(x.chunk(3, 0)),
            [m],
        ),
        ("split sizes", lambda x: x.split([1, 3], dim=1)[1], lambda x: x.split([1, 3], dim=1)[1], [m]),
        ("unbind", lambda x: cr.unbind(x, 1)[3], lambda x: torch.unbind(x, 1)[3], [m]),
        (
            "gather",
            lambda x: cr.gather(x, 1, np.array([[0, 3], [1, 1], [2, 0]])),
            lambda x: torch.gather(x, 1, torch.tensor([[0, 3], [1, 1], [2, 0]])),
            [m],
        ),
        ("flip", lambda x: cr.flip(x, [0, 1]), lambda x: torch.flip(x, [0, 1]), [m]),
        ("roll", lambda x: cr.roll(x, 2, 1), lambda x: torch.roll(x, 2, 1), [m]),
        ("tril", lambda x: cr.tril(x, -1), lambda x: torch.tril(x, -1), [m]),
        ("triu", lambda x: cr.triu(x), lambda x: torch.triu(x), [m]),
        ("diag of vector", lambda x: cr.diag(x, 1), lambda x: torch.diag(x, 1), [v]),
        ("diag of matrix", lambda x: cr.diag(x), lambda x: torch.diag(x), [m]),
        ("sort values", lambda x: cr.sort(x).values, lambda x: torch.sort(x).values, [v]),
        ("topk values", lambda x: cr.topk(x, 2, dim=1).values, lambda x: torch.topk(x, 2, dim=1).values, [m]),
        ("clone", same("clone"), same("clone"), [m]),
        ("einsum", lambda x, y: cr.einsum("ij,kj->ik", x, y), lambda x, y: torch.einsum("ij,kj->ik", x, y), [m, m]),
        (
            "einsum ellipsis",
            lambda x, y: cr.einsum("...j,j", x, y),
            lambda x, y: torch.einsum("...j,j", x, y),
            [c, m[0]],
        ),
        (
            "einsum list form",
            lambda x, y: cr.einsum("bij,bjk->bik", [x, y]),
            lambda x, y: torch.einsum("bij,bjk->bik", [x, y]),
            [c, c.transpose(0, 2, 1).copy()],
        ),
        ("linalg.inv", lambda x: cr.linalg.inv(x), lambda x: torch.linalg.inv(x), [m[:, :3] + 3 * np.eye(3)]),
        (
            "linalg.inv batched",
            lambda x: cr.linalg.inv(x),
            lambda x: torch.linalg.inv(x),
            [c[:, :3, :3] + 3 * np.eye(3)],
        ),
        ("linalg.det", lambda x: cr.linalg.det(x), lambda x: torch.linalg.det(x), [m[:, :3].copy()]),
        ("linalg.det batched", lambda x: cr.linalg.det(x), lambda x: torch.linalg.det(x), [c[:, :3, :3].copy()]),
        (
            "linalg.solve",
            lambda x, y: cr.linalg.solve(x, y),
            lambda x, y: torch.linalg.solve(x, y),
            [m[:, :3] + 3 * np.eye(3), m],
        ),
        ("mm", lambda x, y: cr.mm(x, y), lambda x, y: torch.mm(x, y), [m, m.T.copy()]),
        ("mv", lambda x, y: cr.mv(x, y), lambda x, y: torch.mv(x, y), [m, m[0]]),
        ("bmm", lambda x, y: cr.bmm(x, y), lambda x, y: torch.bmm(x, y), [c, c.transpose(0, 2, 1).copy()]),
        ("outer", lambda x, y: cr.outer(x, y), lambda x, y: torch.outer(x, y), [v, v[:3].copy()]),
        ("pow", lambda x: cr.pow(x, 3), lambda x: torch.pow(x, 3), [m]),
        ("square", same("square"), same("square"), [m]),
        ("rsqrt", same("rsqrt"), same("rsqrt"), [pos]),
        ("reciprocal", same("reciprocal"), same("reciprocal"), [pos]),
        ("tan", same("tan"), same("tan"), [m * 0.5]),
        ("sinh", same("sinh"), same("sinh"), [m]),
        ("cosh", same("cosh"), same("cosh"), [m]),
        ("log2", same("log2"), same("log2"), [pos]),
        ("log10", same("log10"), same("log10"), [pos]),
        ("exp2", lambda x: cr.exp2(x), lambda x: torch.exp2(x), [m]),
        ("sign", same("sign"), same("sign"), [np.array([-1.0, 0.0, 2.0])]),
        ("floor", same("floor"), same("floor"), [m]),
        ("round", same("round"), same("round"), [m * 3]),
        ("frac", same("frac"), same("frac"), [m * 3]),
        ("masked_fill", lambda x: x.masked_fill(x > 0, 1.5), lambda x: x.masked_fill(x > 0, 1.5), [m]),
        ("where method", lambda x: x.where(x > 0, 0.5), lambda x: x.where(x > 0, 0.5), [m]),
        ("clamp_min", lambda x: cr.clamp_min(x, 0.1), lambda x: torch.clamp_min(x, 0.1), [m]),
        ("lerp", lambda x, y: cr.lerp(x, y, 0.3), lambda x, y: torch.lerp(x, y, 0.3), [m, m[::-1].copy()]),
        ("addcdiv", lambda x, y: cr.addcdiv(x, x, y, value=2), lambda x, y: torch.addcdiv(x, x, y, value=2), [m, pos]),
        ("nan_to_num", lambda x: cr.nan_to_num(x / (x > 0)), lambda x: torch.nan_to_num(x / (x > 0)), [m]),
        (
            "div floor",
            lambda x: cr.div(x, 0.3, rounding_mode="floor"),
            lambda x: torch.div(x, 0.3, rounding_mode="floor"),
            [m],
        ),
        ("add alpha", lambda x, y: cr.add(x, y, alpha=-0.5), lambda x, y: torch.add(x, y, alpha=-0.5), [m, m]),
    ]


OPS = _ops()


@pytest.mark.parametrize("name,fn,tfn,inputs", OPS, ids=[o[0] for o in OPS])
def test_op_matches_torch_forward_and_backward(name, fn, tfn, inputs):
    ours = [cr.tensor(x, requires_grad=True) for x in inputs]
    theirs = [torch.tensor(x, requires_grad=True) for x in inputs]
    out, ref = fn(*ours), tfn(*theirs)
    assert out.shape == tuple(ref.shape)
    assert out.dtype.name == str(ref.dtype).removeprefix("torch.")
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    if not ref.requires_grad:
        return
    seed = np.random.default_rng(0).standard_normal(ref.shape)
    (out * cr.tensor(seed)).sum().backward()
    (ref * torch.tensor(seed)).sum().backward()
    for x, t in zip(ours, theirs):
        want = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
        got = np.zeros(x.shape) if x.grad is None else x.grad.data
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name,fn,tfn,inputs", OPS[:40], ids=[o[0] for o in OPS[:40]])
def test_op_keeps_float32(name, fn, tfn, inputs):
    ours = [cr.tensor(x.astype(np.float32), requires_grad=True) for x in inputs]
    theirs = [torch.tensor(x.astype(np.float32), requires_grad=True) for x in inputs]
    out, ref = fn(*ours), tfn(*theirs)
    assert out.dtype == np.float32 and ref.dtype == torch.float32
    out.sum().backward()
    assert all(x.grad is None or x.grad.dtype == np.float32 for x in ours)


def test_a_planted_wrong_rule_is_caught(monkeypatch):
    """The op test can fail: a wrong einsum rule gives a gradient torch disagrees with."""
    from chainrule.primitives import linalg as L

    real = L.einsum.vjps
    monkeypatch.setattr(L.einsum, "vjps", (lambda xp, g, out, i, *args: 2 * real[0](xp, g, out, i, *args),))
    name, fn, tfn, inputs = next(o for o in OPS if o[0] == "einsum")
    with pytest.raises(AssertionError):
        test_op_matches_torch_forward_and_backward(name, fn, tfn, inputs)


# --- torch's names -----------------------------------------------------------------------------
def test_dim_and_axis_keepdim_and_keepdims_are_aliases():
    x = cr.tensor(np.arange(6.0).reshape(2, 3))
    for fn in (cr.sum, cr.mean, cr.amax, cr.amin, cr.logsumexp):
        a = fn(x, dim=1, keepdim=True)
        b = fn(x, axis=1, keepdims=True)
        c = fn(x, 1, True)
        assert a.shape == b.shape == c.shape == (2, 1)
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(TypeError, match="sum: got dim=0 and axis=1; give one of them"):
        cr.sum(x, dim=0, axis=1)


def test_max_keeps_numpy_meaning_under_axis_and_torch_meaning_under_dim():
    x = cr.tensor([[1.0, 5.0], [7.0, 2.0]])
    np.testing.assert_array_equal(cr.max(x, axis=1).data, [5.0, 7.0])
    values, indices = cr.max(x, 1)
    np.testing.assert_array_equal(values.data, [5.0, 7.0])
    np.testing.assert_array_equal(indices.data, [1, 0])
    assert x.max(dim=0).indices.dtype == np.int64


def test_transpose_swaps_two_dims_and_numpy_meaning_is_permute():
    x = cr.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.transpose(0, 1).shape == (3, 2, 4)
    assert cr.permute_dims(x).shape == (4, 3, 2) == x.T.shape
    assert cr.permute(x, (1, 2, 0)).shape == (3, 4, 2)
    with pytest.raises(TypeError, match=r"two dims to swap.*cr\.permute"):
        x.transpose((1, 2, 0))
    with pytest.raises(TypeError, match=r"cr\.permute"):
        x.transpose(1)
    m = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(m.transpose(0, 1).data, [[1.0, 3.0], [2.0, 4.0]])  # was m unchanged


def test_size_is_numpy_count_and_torch_shape():
    x = cr.zeros(2, 3)
    assert x.size == 6 and x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2
    assert x.numel() == 6 and x.dim() == 2
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        x.size(2)


def test_varargs_shapes():
    assert cr.zeros(2, 3).shape == cr.zeros((2, 3)).shape == cr.ones([2, 3]).shape == (2, 3)
    assert cr.randn(4).shape == (4,) and cr.rand(2, 2).shape == (2, 2)
    x = cr.arange(6)
    assert x.reshape(2, 3).shape == x.view((3, 2)).T.shape == (2, 3)
    with pytest.raises(TypeError, match="zeros: sizes are ints"):
        cr.zeros("a")


# --- default dtype ------------------------------------------------------------------------------
def test_default_dtype_is_float64_and_switches_to_torchs_float32(monkeypatch):
    from chainrule.numeric import DEFAULTS

    monkeypatch.setattr(DEFAULTS, "promotion", None)  # as in a process that has not imported chainrule.torch
    assert cr.get_default_dtype() == cr.float64
    assert cr.tensor([1.0]).dtype == np.float64 and cr.zeros(2).dtype == np.float64
    assert (cr.tensor([1, 2]) + 0.5).dtype == np.float64
    cr.set_default_dtype(cr.float32)
    try:
        assert cr.tensor([1.0]).dtype == np.float32 and cr.tensor(2.0).dtype == np.float32
        for make in (cr.zeros, cr.ones, cr.randn, cr.rand, cr.empty):
            assert make(2).dtype == np.float32
        assert cr.arange(0.0, 1.0, 0.5).dtype == np.float32 and cr.eye(2).dtype == np.float32
        assert (cr.tensor([1, 2]) + 0.5).dtype == np.float32  # as torch
        assert (cr.tensor([1, 2]) / 2).dtype == np.float32
        assert cr.exp(cr.tensor([1, 2])).dtype == np.float32
        assert cr.tensor(np.array([1.0])).dtype == np.float64  # an array keeps its dtype, as torch.tensor
    finally:
        cr.set_default_dtype(cr.float64)
    with pytest.raises(TypeError, match="only float32 or float64"):
        cr.set_default_dtype(np.int64)


def test_int_tensor_with_float32_tensor_is_float32_as_torch():
    out = cr.tensor([1, 2]) + cr.tensor([0.5, 0.5], dtype=cr.float32)
    assert out.dtype == np.float32


# --- the four bugs from external suites ------------------------------------------------------------
def test_bug1_second_derivative_of_zero_power_is_finite_as_torch():
    y = cr.tensor(0.5, requires_grad=True)
    v = cr.tensor(1.0, requires_grad=True)
    (g,) = cr.autograd_grad(cr.tensor(0.0) ** y, [y], grad_outputs=v, create_graph=True)
    (gv,) = cr.autograd_grad(g, [v])
    ty = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    tv = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad(torch.tensor(0.0, dtype=torch.float64) ** ty, [ty], grad_outputs=tv, create_graph=True)
    (tgv,) = torch.autograd.grad(tg, [tv])
    assert gv.item() == tgv.item() == 0.0


def test_bug2_out_of_range_dims_and_a_tensor_for_the_list_are_refused():
    a, b = cr.ones(2, 3), cr.ones(2, 3)
    with pytest.raises(ValueError, match=r"cat: dim 2 is out of range for 2 dims .*valid: -2 to 1"):
        cr.concatenate([a, b], axis=2)
    with pytest.raises(ValueError, match=r"stack: dim 5 is out of range for 3 dims"):
        cr.stack([a, b], axis=5)
    with pytest.raises(TypeError, match=r"stack: expects a list or tuple of tensors, got a single Tensor"):
        cr.stack(a, b)
    with pytest.raises(TypeError, match=r"cat: expects a list or tuple"):
        cr.cat(a)
    assert cr.stack([a, b], dim=-1).shape == (2, 3, 2)


def test_bug3_indexing_a_python_float_tensor():
    t = cr.tensor(3.14, requires_grad=True)
    assert t[None].shape == (1,) and t[...].shape == ()
    t[None].sum().backward()
    assert t.grad.item() == 1.0


def test_bug4_numpy_functions_on_a_tensor_name_the_chainrule_function():
    t = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"np\.exp was applied to a chainrule Tensor.*Use cr\.exp\(t\)"):
        np.exp(t)
    with pytest.raises(TypeError, match=r"cr\.abs\(t\)"):
        np.absolute(t)
    out = np.array([2.0, 3.0]) * t  # arithmetic with NumPy on the left still records
    assert out.op == "mul" and (np.float64(2.0) + t).op == "add"
    assert (np.array([1.0, 5.0]) > t).dtype == np.bool_


def test_sign_has_a_zero_gradient_and_empty_mean_is_nan_as_torch():
    x = cr.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    cr.sign(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])
    with np.errstate(invalid="ignore"):
        empty = cr.ones(0, 3).mean(dim=0)
    assert empty.shape == (3,) and np.all(np.isnan(empty.data))
    assert np.isnan(cr.ones(0).mean().item())


# --- every masked rule under second order ---------------------------------------------------------
def _uses_where(name: str) -> bool:
    """Whether the primitive's VJP rule masks (records a ``where``) when run on tensors."""
    from chainrule.tensor import node_parts

    for case in CASES[name]:
        inputs = [cr.tensor(x, requires_grad=True) for x in case.inputs(np.random.default_rng(0))]
        out = case.fn(*inputs)
        if not out.requires_grad:
            continue
        v = cr.tensor(np.ones(out.shape), requires_grad=True)  # so the rule's use of g is recorded too
        gs = cr.autograd_grad(out, inputs, grad_outputs=v, create_graph=True, allow_unused=True)
        seen, stack = set(), [g for g in gs if g is not None and g._node is not None]
        while stack:
            t = stack.pop()
            if id(t) in seen or t._node is None:
                continue
            seen.add(id(t))
            if t._node.name == "where":
                return True
            stack.extend(i for i in node_parts(t)[0] if i is not None)
    return False


# Boundary cases beyond tests/cases.py: a constant zero base (the bug external suites found).
EXTRA = {
    "pow": [
        Case(
            lambda b: cr.tensor(0.0) ** b,
            lambda b: torch.tensor(0.0, dtype=torch.float64) ** b,
            ((4,),),
            label="zero base",
        ),
        Case(
            lambda a: a ** cr.tensor(0.0),
            lambda a: a ** torch.tensor(0.0, dtype=torch.float64),
            ((4,),),
            label="zero exponent",
        ),
    ]
}
MASKED = sorted(n for n in REGISTRY if n != "where" and _uses_where(n))
BOUNDARY = np.array([0.0, 0.0, 1.0, -1.0, 2.0, 0.5, 0.0, -0.5, 1.0, 3.0, 0.0, 2.0])


def _boundary_inputs(case, k):
    """Inputs built from zeros, ties and small values (where masks switch), shifted per input."""
    out = []
    for i, shape in enumerate(case.shapes):
        n = int(np.prod(shape))
        vals = np.roll(np.resize(BOUNDARY, n), k + i)
        dom = case.domain[i] if i < len(case.domain) else "any"
        if dom == "pos":
            vals = np.abs(vals)
        out.append(vals.reshape(shape))
    return out


@pytest.mark.parametrize("name", MASKED)
@pytest.mark.parametrize("shift", [0, 1, 3])
def test_every_masked_rule_matches_torch_under_second_order(name, shift):
    """Second derivatives, including with respect to the upstream gradient v, at zeros and ties."""
    for case in CASES[name] + EXTRA.get(name, []):
        inputs = _boundary_inputs(case, shift)
        ours = [cr.tensor(x, requires_grad=True) for x in inputs]
        theirs = [torch.tensor(x, requires_grad=True) for x in inputs]
        out, ref = case.fn(*ours), case.torch_fn(*theirs)
        seed = np.resize(np.array([1.0, -0.5, 2.0]), ref.shape).reshape(ref.shape)
        v = cr.tensor(seed, requires_grad=True)
        tv = torch.tensor(seed, requires_grad=True)
        gs = cr.autograd_grad(out, ours, grad_outputs=v, create_graph=True, allow_unused=True)
        tgs = torch.autograd.grad(ref, theirs, grad_outputs=tv, create_graph=True, allow_unused=True)
        ws = [np.resize(np.array([0.5, 1.0, -1.0]), x.shape).reshape(x.shape) for x in inputs]
        total = sum((g * w).sum() for g, w in zip(gs, ws) if g is not None and g.requires_grad)
        ttotal = sum((g * torch.tensor(w)).sum() for g, w in zip(tgs, ws) if g is not None and g.requires_grad)
        if not isinstance(ttotal, torch.Tensor):
            continue
        got = cr.autograd_grad(total, ours + [v], allow_unused=True) if isinstance(total, cr.Tensor) else None
        want = torch.autograd.grad(ttotal, theirs + [tv], allow_unused=True)
        for j, e in enumerate(want):
            g = None if got is None else got[j]
            shape = (inputs + [seed])[j].shape
            g = np.zeros(shape) if g is None else g.data
            e = np.zeros(shape) if e is None else e.numpy(force=True)
            # Where torch itself gives NaN (its pow rule at x = 0, y = 0 differentiates a masked branch,
            # 0 * inf), chainrule's safe masked branches give a finite number: only that may differ.
            torch_nan = np.isnan(e) & ~np.isnan(np.resize(g, e.shape))
            assert np.all(np.isfinite(g[torch_nan])), f"{name}: NaN where torch is NaN is not expected either"
            np.testing.assert_allclose(
                np.where(torch_nan, 0.0, g),
                np.where(torch_nan, 0.0, e),
                rtol=1e-10,
                atol=1e-12,
                equal_nan=True,
                err_msg=f"{name} {case.label} input {j} at {inputs}",
            )


def test_singular_matrices_get_clear_errors():
    with pytest.raises(ValueError, match=r"inv: the matrix of shape \(2, 2\) is singular"):
        cr.linalg.inv(cr.ones(2, 2))
    a = cr.ones(2, 2, requires_grad=True)
    d = cr.linalg.det(a)
    assert d.item() == 0.0
    with pytest.raises(ValueError, match="needs an invertible matrix"):
        d.backward()
    with pytest.raises(ValueError, match="square matrix"):
        cr.linalg.det(cr.ones(2, 3))


def test_the_masked_sweep_covers_the_rules_that_mask():
    assert {"pow", "maximum", "minimum"} <= set(MASKED)


def test_a_planted_unsafe_masked_rule_is_caught(monkeypatch):
    """The old pow rule (log(0) behind where) gives NaN where torch gives 0: the sweep must fail on it."""
    from chainrule.primitives import elementwise as E

    def unsafe_dy(xp, g, out, x, y):
        full = g * out * xp.log(x)
        return xp.where(x == 0, xp.where(y >= 0, 0.0, full), full)

    monkeypatch.setattr(E.power, "vjps", (E.power.vjps[0], unsafe_dy))
    with pytest.raises(AssertionError):
        for shift in (0, 1, 3):
            test_every_masked_rule_matches_torch_under_second_order("pow", shift)


def test_retain_grad_fills_on_backward_and_autograd_grad_as_torch():
    def run(L):
        x = L.tensor([1.0, 2.0], requires_grad=True)
        h = x * 3
        h.retain_grad()
        y = (h * h).sum()
        L.autograd.grad(y, x, retain_graph=True)
        before = h.grad
        y.backward(retain_graph=True)
        y.backward()
        return before, h.grad, x.grad

    (b, h, x), (tb, th, tx) = run(cr), run(torch)
    np.testing.assert_allclose(b.data, [6.0, 12.0])
    assert tb is not None
    np.testing.assert_allclose(h.data, th.numpy())
    np.testing.assert_allclose(x.data, tx.numpy())


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std"])
def test_an_empty_dim_reduces_every_dim_as_torch(name):
    x = np.arange(6.0).reshape(2, 3)
    want = getattr(torch, name)(torch.tensor(x), dim=())
    for empty in ((), []):
        got = getattr(cr, name)(cr.tensor(x), dim=empty)
        assert got.shape == tuple(want.shape) and np.allclose(got.numpy(), want.numpy())
    assert cr.sum(cr.tensor(x), axis=()).shape == (2, 3)  # NumPy's spelling keeps NumPy's meaning


def test_logsumexp_refuses_an_empty_dim():
    with pytest.raises(ValueError, match="dim=None"):
        cr.logsumexp(cr.ones(2, 3), dim=())


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_clone_has_memory_of_its_own(library):
    """torch's clone copies: writing into the clone never changes the source (it used to share a same-dtype array)."""
    raw = np.arange(6.0).reshape(2, 3)
    src = cr.tensor(torch.tensor(raw) if library == "torch" else raw, requires_grad=True)
    c = src.clone()
    with cr.no_grad():
        c += 1.0
    np.testing.assert_array_equal(src.numpy(), raw)
    np.testing.assert_array_equal(c.numpy(), raw + 1.0)
    plain = cr.tensor(raw.copy())
    d = cr.clone(plain)
    d[0, 0] = 100.0
    assert plain.numpy()[0, 0] == 0.0
    y = (src.clone() * 2.0).sum()
    y.backward()
    np.testing.assert_array_equal(src.grad.numpy(), np.full((2, 3), 2.0))
