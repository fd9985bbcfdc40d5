"""In-place operations, .grad assignment and writes through .data (issue 12), checked against torch."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")


def test_sgd_loop_over_parameters_updates_them_in_place():
    # the silent bug: `p -= lr * p.grad` rebound the loop variable and the model never changed
    model = cr.nn.Linear(3, 1, rng=0)
    x = cr.tensor(np.random.default_rng(1).standard_normal((8, 3)))
    y = cr.tensor(np.random.default_rng(2).standard_normal((8, 1)))
    losses = []
    for _ in range(3):
        loss = ((model(x) - y) ** 2).mean()
        losses.append(loss.item())
        for p in model.parameters():
            p.grad = None
        loss.backward()
        with cr.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
    assert losses[0] > losses[1] > losses[2]
    assert all(p.requires_grad and p.is_leaf for p in model.parameters())


def test_augmented_assignment_keeps_identity_memory_and_requires_grad():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    memory = w._data
    ref = w
    with cr.no_grad():
        w -= 0.5 * w.grad
        w *= 2
        w /= 4
        w += 1
    assert w is ref and w._data is memory and w.requires_grad
    np.testing.assert_allclose(w.data, ((np.array([1.0, 2.0]) - 0.5 * np.array([2.0, 4.0])) * 2) / 4 + 1)
    (w * 3).sum().backward()  # the next step works (it used to fail: requires_grad was lost)


def test_a_view_sees_an_in_place_change_of_its_base():
    x = cr.zeros(2, 3)
    row = x.data[0]
    x += 1
    x.add_(cr.ones(3), alpha=2)
    np.testing.assert_array_equal(row, [3.0, 3.0, 3.0])


@pytest.mark.parametrize(
    "op",
    [
        lambda w: w.__iadd__(1),
        lambda w: w.add_(1),
        lambda w: w.sub_(1),
        lambda w: w.mul_(2),
        lambda w: w.div_(2),
        lambda w: w.zero_(),
        lambda w: w.fill_(1.0),
        lambda w: w.clamp_(0, 1),
        lambda w: w.copy_(cr.ones(2)),
        lambda w: w.__setitem__(0, 5.0),
    ],
    ids=["+=", "add_", "sub_", "mul_", "div_", "zero_", "fill_", "clamp_", "copy_", "setitem"],
)
def test_in_place_on_a_leaf_that_requires_grad_raises_as_torch_and_names_no_grad(op):
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        torch.tensor([1.0, 2.0], requires_grad=True).add_(1)  # torch raises too ...
    with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*cr\.no_grad\(\)"):
        op(w)
    np.testing.assert_array_equal(w.data, [1.0, 2.0])  # ... and nothing was changed


@pytest.mark.parametrize(
    "name,call",
    [
        ("add_", lambda t, L: t.add_(2.0)),
        ("add_ alpha", lambda t, L: t.add_(L.ones(3), alpha=0.5)),
        ("sub_", lambda t, L: t.sub_(L.tensor([1.0, 2.0, 3.0]))),
        ("mul_", lambda t, L: t.mul_(-2)),
        ("div_", lambda t, L: t.div_(4)),
        ("pow_", lambda t, L: t.pow_(2)),
        ("zero_", lambda t, L: t.zero_()),
        ("fill_", lambda t, L: t.fill_(-1.5)),
        ("clamp_", lambda t, L: t.clamp_(-1, 1)),
        ("clamp_ min", lambda t, L: t.clamp_(min=0)),
        ("copy_", lambda t, L: t.copy_(L.tensor([9.0, 8.0, 7.0]))),
        ("masked_fill_", lambda t, L: t.masked_fill_(t > 0, 0.0)),
        ("exp_", lambda t, L: t.exp_()),
        ("neg_", lambda t, L: t.neg_()),
        ("abs_", lambda t, L: t.abs_()),
        ("sqrt_ of abs", lambda t, L: t.abs_().sqrt_()),
        ("relu_", lambda t, L: t.relu_()),
        ("sigmoid_", lambda t, L: t.sigmoid_()),
        ("tanh_", lambda t, L: t.tanh_()),
    ],
)
def test_in_place_method_matches_torch(name, call):
    values = [[1.0, -2.0, 3.0], [0.5, 0.0, -4.0]]
    ours = cr.tensor(values)
    theirs = torch.tensor(values, dtype=torch.float64)
    out = call(ours, cr)
    ref = call(theirs, torch)
    assert out is ours
    np.testing.assert_allclose(ours.data, ref.numpy())
    assert ours.dtype == np.float64


def test_in_place_dtype_rules_as_torch():
    x = cr.tensor([1, 2])
    x += 3
    assert x.dtype == np.int64 and x.tolist() == [4, 5]
    with pytest.raises(RuntimeError, match="cannot be cast to the tensor's dtype int64"):
        x += 0.5
    with pytest.raises(RuntimeError, match="leaf"):
        torch.tensor([1.0], requires_grad=True).add_(1)
    with pytest.raises(RuntimeError, match="does not fit the tensor's shape"):
        cr.zeros(3).add_(cr.ones(2, 3))


def test_in_place_on_a_non_leaf_is_recorded_as_torch():
    def run(L):
        a = L.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = L.tensor([0.5, -1.0, 2.0], requires_grad=True)
        h = a * 2
        h.mul_(b)
        h += a
        h.clamp_(max=5.0)
        h.pow_(2)
        h.sum().backward()
        return a.grad, b.grad

    ours, theirs = run(cr), run(torch)
    for g, t in zip(ours, theirs):
        np.testing.assert_allclose(g.data, t.numpy(), rtol=1e-6)


def test_in_place_with_an_operand_that_requires_grad_records_the_operand():
    def run(L):
        w = L.tensor([1.0, 2.0], requires_grad=True)
        buf = L.zeros(2, dtype=L.float64)
        buf += w * 3
        buf[0] = w[1] ** 2
        buf.sum().backward()
        return w.grad, buf.requires_grad

    (g, rg), (tg, trg) = run(cr), run(torch)
    np.testing.assert_allclose(g.data, tg.numpy())
    assert rg and trg


def test_setitem_on_a_non_leaf_gives_torch_s_gradient():
    def run(L):
        x = L.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        h = x * x
        h[1:3] = x[:2] * 10
        h[L.tensor([0])] = 0.0
        (h * L.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
        return x.grad

    np.testing.assert_allclose(run(cr).data, run(torch).numpy())


def test_earlier_users_of_a_tensor_changed_in_place_refuse_to_backpropagate():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()  # mul saved h
    h += 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


# --- .grad assignment -------------------------------------------------------------------------
def test_grad_assignment_is_validated_as_torch():
    p = cr.tensor([1.0, 2.0], requires_grad=True)
    tp = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"Tensor or None, got int; to clear a gradient write p.grad = None"):
        p.grad = 0
    with pytest.raises(TypeError):
        tp.grad = 0
    with pytest.raises(ValueError, match=r"shape \(3,\), but the tensor has shape \(2,\)"):
        p.grad = cr.zeros(3)
    with pytest.raises(RuntimeError):
        tp.grad = torch.zeros(3)
    with pytest.raises(TypeError, match="dtype float32, but the tensor has dtype float64"):
        p.grad = cr.zeros(2, dtype=cr.float32)
    with pytest.raises(TypeError, match="cr.tensor"):
        p.grad = np.zeros(2)
    p.grad = cr.ones(2)
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad.data, [3.0, 5.0])
    p.grad = None
    assert p.grad is None


# --- writes through .data ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "write",
    [
        lambda d: d.__setitem__(Ellipsis, 5.0),
        lambda d: d.__setitem__(0, 5.0),
        lambda d: d[0:1].__iadd__(1.0),
        lambda d: d.__imul__(2.0),
        lambda d: d.fill(0.0),
        lambda d: np.copyto(d, 1.0),
        lambda d: np.add(d, 1.0, out=d),
        lambda d: d.T.__setitem__(0, 1.0),
    ],
    ids=["[...]=", "[0]=", "slice +=", "*=", "fill", "np.copyto", "ufunc out=", "view of view"],
)
@pytest.mark.parametrize("who", ["result", "input"])
def test_a_write_into_data_of_a_saved_array_is_detected_at_backward(write, who):
    x = cr.tensor([[1.0, 2.0]], requires_grad=True)
    y = cr.exp(x)  # exp saves its result (its rule is g * out) ...
    z = (y * y).sum() + cr.sin(x).sum()  # ... sin its input (g * cos(x)), and mul both
    write((y if who == "result" else x).data)
    with pytest.raises(RuntimeError, match="modified in place"):
        z.backward()


def test_torch_in_place_methods_on_data_are_tracked_too():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.exp(x)
    y.data.zero_()
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()


def test_reading_data_is_free_of_side_effects():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.exp(x)
    d = y.data
    _ = d + 1, d.sum(), np.exp(d), d.copy(), repr(d), d.T, d[0]
    copy = d.copy()
    copy[0] = 100.0  # a copy is not the tensor's memory
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp([1.0, 2.0]))
    assert type(d + 1) is np.ndarray and type(np.exp(d)) is np.ndarray


def test_data_update_works_on_a_tensor_made_from_a_python_float():
    p = cr.tensor(2.0, requires_grad=True)
    (p * p).backward()
    p.data -= 0.25 * p.grad
    assert p.item() == 1.0 and p.requires_grad and type(p._data) is float
    q = cr.tensor([2.0, 4.0], requires_grad=True)
    (q * q).sum().backward()
    q.data -= 0.25 * q.grad
    np.testing.assert_array_equal(q.data, [1.0, 2.0])


def test_plain_numpy_array_in_place_with_a_tensor_operand():
    a = np.ones(2)
    a -= cr.tensor([0.5, 0.25])
    np.testing.assert_array_equal(a, [0.5, 0.75])


def test_planted_missing_version_bump_would_give_a_stale_gradient(monkeypatch):
    """The check is what stands between a .data write and a wrong gradient: without it, the gradient is stale."""
    from chainrule.versions import DataView

    monkeypatch.setattr(DataView, "_touch", lambda self: None)
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.exp(x)
    y.data[...] = 5.0
    y.sum().backward()  # no error now ...
    assert not np.allclose(x.grad.data, np.exp([1.0, 2.0]))  # ... and the gradient is silently wrong


@pytest.mark.parametrize(
    "write",
    [
        lambda x: x[0].mul_(10),
        lambda x: x.T[1].add_(1),
        lambda x: x.reshape(4)[1:3].zero_(),
        lambda x: x[:, 1].data.fill(0.0),
    ],
    ids=["row mul_", "transposed row add_", "reshaped slice zero_", "column .data fill"],
)
def test_an_in_place_write_through_a_view_marks_its_source(write):
    """Views share memory with their source (and, as in torch, its version): no stale gradient via a view."""
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = cr.sin(x).sum()  # sin's rule reads its input
    with cr.no_grad():
        write(x)
    with pytest.raises(RuntimeError, match="an input of 'sin'.*modified in place.*version"):
        y.backward()


@pytest.mark.parametrize(
    "write",
    [lambda x: x[0].mul_(10), lambda x: x.T[1].add_(1), lambda x: x.reshape(4)[1:3].zero_()],
    ids=["row mul_", "transposed row add_", "reshaped slice zero_"],
)
def test_a_write_into_an_input_no_rule_reads_leaves_the_gradient_as_torch(write):
    """exp's rule reads its result, not its input: torch computes the gradient, and so does chainrule."""

    def run(L):
        x = L.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=L.float64, requires_grad=True)
        y = L.exp(x).sum()
        with L.no_grad():
            write(x)
        y.backward()
        return np.asarray(x.grad.numpy() if L is torch else x.grad.data)

    np.testing.assert_allclose(run(cr), run(torch))
    np.testing.assert_allclose(run(cr), np.exp([[1.0, 2.0], [3.0, 4.0]]))


def test_a_write_into_a_copy_leaves_the_source_alone():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = cr.exp(x).sum()
    with cr.no_grad():
        x[[0, 1]].mul_(3)  # advanced indexing copies
        x.T.reshape(4).zero_()  # reshaping a transpose copies
    y.backward()
    np.testing.assert_allclose(x.grad.data, np.exp([[1.0, 2.0], [3.0, 4.0]]))
