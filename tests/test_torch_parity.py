"""torch behaviour that chainrule used to differ from without a word (each test asserts torch's).

Found by a review that ran the same code in both libraries: in-place writes that were lost or reached
the wrong tensor, gradients through integer casts and into loss targets, products, logarithms and
descending sorts with wrong values, dtypes, `inplace=True`, `state_dict()` sharing and the schedules'
chainable form.  Each failed before its fix.  (The layers' default initialization differs on purpose:
docs/torch.md says how.)
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as CF

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _np(t):
    return np.asarray(t.tolist())


# --- 1. memory sharing: in-place writes that are lost, or that reach a source they should not --------


def test_element_of_1d_tensor_is_a_view():
    # torch: a[0] is a 0-d view; a[0].add_() changes a.  chainrule: a[0] is a copy, the write is lost.
    for lib in (torch, cr):
        a = lib.tensor([1.0, 2.0], dtype=lib.float32)
        a[0].add_(10)
        if lib is torch:
            want = a.tolist()
    assert a.tolist() == want == [11.0, 2.0]


def test_iterating_a_1d_tensor_gives_views():
    a = cr.tensor([1.0, 2.0], dtype=cr.float32)
    for v in a:
        v.mul_(2)
    assert a.tolist() == [2.0, 4.0]  # torch


def test_parameter_element_update_under_no_grad():
    w = cr.tensor([1.0, 2.0], dtype=cr.float32, requires_grad=True)
    with cr.no_grad():
        w[1].copy_(cr.tensor(7.0))
    assert w.tolist() == [1.0, 7.0]  # torch


def test_index_with_0d_int_tensor_is_a_view():
    a = cr.tensor([1.0, 2.0], dtype=cr.float32)
    a[cr.tensor(1)].add_(1)
    assert a.tolist() == [1.0, 3.0]  # torch: a 0-d integer tensor indexes like an int


def test_scalar_grad_data_zero_clears_the_gradient():
    # the old idiom `p.grad.data.zero_()` on a 0-d float64 parameter: chainrule's .data is a copy there,
    # so the gradient is not cleared and accumulates (8.0 instead of torch's 4.0)
    p = cr.tensor(2.0, dtype=cr.float64, requires_grad=True)
    (p * p).backward()
    p.grad.data.zero_()
    (p * p).backward()
    assert p.grad.item() == 4.0


def test_scalar_data_add_updates_the_parameter():
    p = cr.tensor(2.0, dtype=cr.float64, requires_grad=True)
    (p * p).backward()
    p.data.add_(p.grad.data, alpha=-0.1)
    assert p.item() == pytest.approx(1.6)  # torch; chainrule leaves 2.0


def test_scalar_detach_shares_memory():
    p = cr.tensor(2.0, dtype=cr.float64, requires_grad=True)
    d = p.detach()
    with cr.no_grad():
        p.mul_(3)
    assert d.item() == 6.0  # torch: detach() shares storage, also for 0-d tensors


def test_contiguous_of_a_transpose_is_a_copy():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = x.t().contiguous()
    y.add_(100)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]  # torch copies a non-contiguous tensor


@pytest.mark.parametrize("make", [lambda x: x.repeat(1, 1), lambda x: x.tile((1, 1)), lambda x: x.flip(0)])
def test_repeat_tile_flip_copy(make):
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = make(x)
    y.add_(100)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]  # torch: repeat, tile and flip always copy


def test_repeat_result_is_writable():
    y = cr.tensor([[1.0, 2.0]]).repeat(2, 1)
    y.add_(1)  # torch: fine; chainrule: "memory is read-only (a broadcast view?)"
    assert y.tolist() == [[2.0, 3.0], [2.0, 3.0]]


def test_state_dict_shares_memory_with_the_module():
    # torch's state_dict() holds the parameters' storage: the EMA idiom `ema.state_dict()[k].mul_(d)` updates ema
    m = cr.nn.Linear(2, 1)
    sd = m.state_dict()
    with cr.no_grad():
        sd["bias"].fill_(7.0)
    assert m.bias.tolist() == [7.0]


@pytest.mark.parametrize(
    "call",
    [
        lambda F, x: F.relu(x, inplace=True),
        lambda F, x: F.leaky_relu(x, 0.1, inplace=True),
        lambda F, x: F.hardtanh(x, inplace=True),
    ],
)
def test_functional_inplace_true_overwrites_the_input(call):
    xt = torch.tensor([-3.0, 2.0], dtype=torch.float64)
    call(TF, xt)
    xc = cr.tensor([-3.0, 2.0], dtype=cr.float64)
    call(CF, xc)
    assert xc.tolist() == xt.tolist()


# --- 2. gradients ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cast", ["long", "int", "bool"])
def test_cast_to_int_or_bool_stops_the_gradient(cast):
    grads = []
    for lib in (torch, cr):
        p = lib.tensor([1.5, -2.5], dtype=lib.float64, requires_grad=True)
        q = getattr(p, cast)()
        assert not q.requires_grad
        (q.double() * p).sum().backward()
        grads.append(p.grad.tolist())
    assert grads[1] == grads[0]


@pytest.mark.parametrize(
    "loss, target",
    [
        ("mse_loss", [3.0, 5.0]),
        ("l1_loss", [3.0, 5.0]),
        ("binary_cross_entropy_with_logits", [0.3, 0.5]),
    ],
)
def test_loss_gradient_reaches_a_target_that_requires_grad(loss, target):
    grads = []
    for lib, F in ((torch, TF), (cr, CF)):
        a = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        b = lib.tensor(target, dtype=lib.float64, requires_grad=True)
        getattr(F, loss)(a, b).backward()
        assert b.grad is not None, f"{lib.__name__}: {loss} gave the target no gradient"
        grads.append(b.grad.tolist())
    np.testing.assert_allclose(grads[1], grads[0])


def test_soft_cross_entropy_gradient_reaches_the_target():
    a = cr.tensor([[1.0, 2.0, 0.0]], dtype=cr.float64, requires_grad=True)
    b = cr.tensor([[0.2, 0.5, 0.3]], dtype=cr.float64, requires_grad=True)
    CF.cross_entropy(a, b).backward()
    assert b.grad is not None


# --- 3. values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, dtype",
    [([0, 1, 2], "uint8"), ([0, -(2**63), 5], "int64"), ([1.0, float("nan"), 0.0], "float32")],
)
def test_sort_descending(data, dtype):
    t = torch.tensor(data, dtype=getattr(torch, dtype)).sort(descending=True)
    c = cr.tensor(data, dtype=getattr(cr, dtype)).sort(descending=True)
    assert str(c.values.tolist()) == str(t.values.tolist())
    assert c.indices.tolist() == t.indices.tolist()


def test_topk_uint8():
    t = torch.tensor([0, 1, 2], dtype=torch.uint8).topk(2)
    c = cr.tensor([0, 1, 2], dtype=cr.uint8).topk(2)
    assert c.values.tolist() == t.values.tolist() == [2, 1]


def test_topk_treats_nan_as_largest():
    t = torch.tensor([3.0, float("nan"), 2.0]).topk(1)
    c = cr.tensor([3.0, float("nan"), 2.0]).topk(1)
    assert c.indices.tolist() == t.indices.tolist() == [1]


def test_prod_is_exact_on_small_integers():
    assert cr.tensor([3.0, 5.0, 7.0], dtype=cr.float32).prod().item() == 105.0
    assert cr.tensor([[2.0, 3.0], [4.0, 5.0]], dtype=cr.float32).prod(1).tolist() == [6.0, 20.0]


def test_prod_of_int_tensor_is_int64_and_exact():
    r = cr.tensor([[2, 3], [4, 5]]).prod(1)
    assert r.dtype == cr.int64
    assert r.tolist() == [6, 20]
    assert cr.tensor([3**20, 3]).prod().item() == 3**21


def test_log2_log10_exact_at_powers():
    assert cr.tensor([8.0], dtype=cr.float64).log2().tolist() == [3.0]
    assert cr.tensor([1000.0], dtype=cr.float64).log10().tolist() == [3.0]


# --- 4. dtypes ------------------------------------------------------------------------------------------------


def test_cumsum_of_int_and_bool_is_int64():
    assert cr.tensor([1, 2, 3], dtype=cr.int32).cumsum(0).dtype == cr.int64
    assert (cr.tensor([1, -1, 2]) > 0).cumsum(0).dtype == cr.int64
    assert cr.tensor([2**60, 1, 1]).cumsum(0).tolist() == [2**60, 2**60 + 1, 2**60 + 2]


@pytest.mark.parametrize("mode", ["floor", "trunc"])
def test_div_rounding_mode_keeps_int_dtype(mode):
    r = cr.div(cr.tensor([-7, 7]), 2, rounding_mode=mode)
    assert r.dtype == cr.int64
    assert r.tolist() == torch.div(torch.tensor([-7, 7]), 2, rounding_mode=mode).tolist()


def test_sum_of_uint8_is_int64():
    assert cr.tensor([200, 100], dtype=cr.uint8).sum().dtype == cr.int64


def test_cat_stack_where_of_int_and_float32_give_float32():
    i, f = cr.tensor([1]), cr.tensor([2.0], dtype=cr.float32)
    assert cr.cat([i, f]).dtype == cr.float32
    assert cr.stack([i, f]).dtype == cr.float32
    assert cr.where(cr.tensor([True]), i, f).dtype == cr.float32


def test_zero_dim_tensor_does_not_promote_within_a_kind():
    assert (cr.tensor([1], dtype=cr.int32) + cr.tensor(5)).dtype == cr.int32
    assert (cr.tensor([1.0], dtype=cr.float16) + cr.tensor(5.0, dtype=cr.float32)).dtype == cr.float16


def test_square_of_bool_is_int64():
    assert cr.tensor([True]).square().dtype == cr.int64


def test_type_without_argument_names_torch_type():
    # torch: 'torch.FloatTensor'; `x.type() == 'torch.FloatTensor'` is silently False in chainrule
    assert cr.tensor([1.0], dtype=cr.float32).type() == "torch.FloatTensor"


# --- 5. nn / optim defaults --------------------------------------------------------------------------------------


def test_scheduler_keeps_a_manually_changed_lr():
    p = cr.tensor([1.0], requires_grad=True)
    opt = cr.optim.SGD([p], lr=1.0)
    s = cr.optim.lr_scheduler.ExponentialLR(opt, 0.5)
    opt.step()
    s.step()
    opt.param_groups[0]["lr"] = 10.0
    opt.step()
    s.step()
    assert opt.param_groups[0]["lr"] == 5.0  # torch's chainable form; chainrule's closed form gives 0.25


def test_inplace_on_a_view_of_a_leaf_that_requires_grad_raises():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    for view in (lambda: a[0], lambda: a[0:1]):
        with pytest.raises(RuntimeError, match="view of a leaf tensor that requires grad"):
            view().add_(1.0)
    assert a.tolist() == [1.0, 2.0]
    with cr.no_grad():
        a[0].add_(1.0)
    assert a.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("shape, dim", [((5,), None), ((3, 4), 1), ((3, 4), 0), ((2, 3, 5), 1), ((2, 3), -1)])
@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_prod_values_and_gradients_match_torch(shape, dim, zeros):
    a = np.random.default_rng(0).standard_normal(shape)
    a.flat[:zeros] = 0.0
    xc, xt = cr.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    yc = xc.prod() if dim is None else xc.prod(dim)
    yt = xt.prod() if dim is None else xt.prod(dim)
    assert yc.shape == tuple(yt.shape)
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-12)
    seed = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    yc.backward(seed)
    yt.backward(torch.tensor(seed))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mse_loss", {}),
        ("l1_loss", {}),
        ("binary_cross_entropy_with_logits", {}),
        ("binary_cross_entropy_with_logits", {"pos_weight": [1.0, 2.0, 3.0]}),
        ("cross_entropy", {}),
        ("cross_entropy", {"label_smoothing": 0.1}),
    ],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_match_torch_for_both_arguments(name, kwargs, reduction):
    rng = np.random.default_rng(0)
    a0 = rng.standard_normal((4, 3))
    b0 = rng.dirichlet(np.ones(3), 4) if name == "cross_entropy" else rng.uniform(0.1, 0.9, (4, 3))
    ac, bc = cr.tensor(a0, requires_grad=True), cr.tensor(b0, requires_grad=True)
    at, bt = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    kc = {k: cr.tensor(np.array(v)) if isinstance(v, list) else v for k, v in kwargs.items()}
    kt = {k: torch.tensor(np.array(v)) if isinstance(v, list) else v for k, v in kwargs.items()}
    lc = getattr(CF, name)(ac, bc, reduction=reduction, **kc)
    lt = getattr(TF, name)(at, bt, reduction=reduction, **kt)
    seed = rng.standard_normal(tuple(lt.shape))
    lc.backward(seed)
    lt.backward(torch.tensor(seed))
    np.testing.assert_allclose(lc.numpy(), lt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ac.grad.numpy(), at.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bc.grad.numpy(), bt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("StepLR", {"step_size": 3, "gamma": 0.5}),
        ("ExponentialLR", {"gamma": 0.9}),
        ("CosineAnnealingLR", {"T_max": 5, "eta_min": 0.01}),
    ],
)
def test_schedules_equal_torchs_bit_for_bit_also_after_a_manual_change(name, kwargs):
    p, tp = cr.tensor([1.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    opt, topt = cr.optim.SGD([p], lr=0.1), torch.optim.SGD([tp], lr=0.1)
    sched = getattr(cr.optim.lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for epoch in range(14):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        if epoch == 4:
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.05
        assert opt.param_groups[0]["lr"] == topt.param_groups[0]["lr"]


@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh", "leaky_relu", "elu", "silu"])
def test_inplace_activation_of_a_node_gives_torchs_values_and_gradients(name):
    xt = torch.tensor([-3.0, 0.5, 2.0], dtype=torch.float64)
    wt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    xc = cr.tensor([-3.0, 0.5, 2.0])
    wc = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ht, hc = xt * wt, xc * wc
    assert getattr(TF, name)(ht, inplace=True) is ht
    assert getattr(CF, name)(hc, inplace=True) is hc
    (ht * ht).sum().backward()
    (hc * hc).sum().backward()
    np.testing.assert_allclose(hc.numpy(), ht.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(wc.grad.numpy(), wt.grad.numpy(), rtol=1e-12)


def test_integer_division_by_zero_with_a_rounding_mode_raises_as_torch():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):  # (torch's RuntimeError says ZeroDivisionError)
        torch.div(torch.tensor([1, 2]), 0, rounding_mode="floor")
    with pytest.raises(ZeroDivisionError, match="integer division by zero"):
        cr.div(cr.tensor([1, 2]), 0, rounding_mode="floor")


def test_contiguous_refuses_a_memory_format_it_cannot_give():
    x = cr.tensor(np.ones((1, 2, 3, 3)))
    assert x.contiguous(memory_format=torch.contiguous_format) is x
    with pytest.raises(ValueError, match="channels_last"):
        x.contiguous(memory_format=torch.channels_last)
