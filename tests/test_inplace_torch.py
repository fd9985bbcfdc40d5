"""In-place changes checked as torch checks them (issue 25 item 4): every case runs the same code in torch and in
chainrule, and either both raise (chainrule naming the operation and the versions) or both give equal gradients.

- a leaf changed under ``no_grad`` after use: an error only where a rule saved its value (``w * x``), not where
  none did (``w + x``);
- ``relu_`` (or any in-place op) on a tensor whose value a rule saved (``x.exp()``'s result): an error; on an
  input whose rule saved nothing (``h.exp()`` then ``h.relu_()``): earlier uses read the old history;
- an in-place change through a view of a non-leaf (``h[:, 0].mul_(2)``): the base is rebased, as torch's
  CopySlices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")

X = [[1.0, -2.0], [0.5, 3.0]]


def _leaf(L: Any, v: Any = X) -> Any:
    return L.tensor(v, dtype=L.float64, requires_grad=True)


def _const(L: Any, v: Any = X) -> Any:
    return L.tensor(v, dtype=L.float64)


# --- (a) a leaf changed under no_grad after it was used -------------------------------------------------------
def _leaf_case(forward: Callable[[Any, Any, Any], Any], change: Callable[[Any], Any] = lambda w: w.add_(1.0)):
    def case(L: Any) -> list:
        w, x = _leaf(L), _leaf(L, [[2.0, 1.0], [-1.0, 0.5]])
        y = forward(L, w, x)
        with L.no_grad():
            change(w)
        y.sum().backward()
        return [w, x]

    return case


A_CASES = {
    "w * x (mul saved w)": _leaf_case(lambda L, w, x: w * x),
    "w + x (add saves nothing)": _leaf_case(lambda L, w, x: w + x),
    "w - x": _leaf_case(lambda L, w, x: w - x),
    "w * 2 (a number: nothing saved)": _leaf_case(lambda L, w, x: w * 2),
    "w * constant (w not saved)": _leaf_case(lambda L, w, x: w * _const(L)),
    "w / 2": _leaf_case(lambda L, w, x: w / 2),
    "w ** 2 (pow saved w)": _leaf_case(lambda L, w, x: w**2),
    "exp(w) (exp saves its result)": _leaf_case(lambda L, w, x: w.exp()),
    "tanh(w) (its result)": _leaf_case(lambda L, w, x: w.tanh()),
    "sigmoid(w) (its result)": _leaf_case(lambda L, w, x: w.sigmoid()),
    "sin(w) (saved w)": _leaf_case(lambda L, w, x: w.sin()),
    "log(w) (saved w)": _leaf_case(lambda L, w, x: (w * w).log()),
    "sum(w) then mean": _leaf_case(lambda L, w, x: w.sum() + w.mean()),
    "w @ x (matmul saved both)": _leaf_case(lambda L, w, x: w @ x),
    "w @ constant (w not saved)": _leaf_case(lambda L, w, x: w @ _const(L)),
    "w[0] (a view saves no value)": _leaf_case(lambda L, w, x: w[0] * 3),
    "w.reshape then add": _leaf_case(lambda L, w, x: w.reshape(4) + 1),
    "w.T * x (x saved, w not)": _leaf_case(lambda L, w, x: w.T + x),
    "change through a view: w[0].mul_ after w * x": _leaf_case(lambda L, w, x: w * x, lambda w: w[0].mul_(10)),
    "change through a view: w[0].mul_ after w + x": _leaf_case(lambda L, w, x: w + x, lambda w: w[0].mul_(10)),
    "w -= lr * grad after w * 2": _leaf_case(lambda L, w, x: w * 2, lambda w: w.sub_(0.1 * w)),
    "w.zero_() after w.exp()": _leaf_case(lambda L, w, x: w.exp(), lambda w: w.zero_()),
    "w.zero_() after w.sin()": _leaf_case(lambda L, w, x: w.sin(), lambda w: w.zero_()),
    "prod(w) (its pairwise products saved views of w)": _leaf_case(lambda L, w, x: w.prod()),
    "w[0] * w[0] (mul saved a view of w)": _leaf_case(lambda L, w, x: w[0] * w[0]),
    "w.reshape(4) * x.reshape(4)": _leaf_case(lambda L, w, x: w.reshape(4) * x.reshape(4)),
    "x * w.T (a view of w saved for x)": _leaf_case(lambda L, w, x: x * w.T),
    "cat([w, x]) (saves nothing)": _leaf_case(lambda L, w, x: L.cat([w, x]) * 2),
    "stack([w, w])": _leaf_case(lambda L, w, x: L.stack([w, w]) * 2),
    "softmax(w) (its result)": _leaf_case(lambda L, w, x: w.softmax(-1)),
    "w.relu() (its result)": _leaf_case(lambda L, w, x: w.relu()),
    "w.abs() (saved w)": _leaf_case(lambda L, w, x: w.abs()),
    "w.max()": _leaf_case(lambda L, w, x: w.max()),
    "w.norm()": _leaf_case(lambda L, w, x: w.norm()),
    "where(mask, w, 0)": _leaf_case(lambda L, w, x: L.where(x > 0, w, w * 0)),
    "cumsum": _leaf_case(lambda L, w, x: w.cumsum(0)),
    "logsumexp (saved w)": _leaf_case(lambda L, w, x: w.logsumexp(-1)),
    "w.T @ x": _leaf_case(lambda L, w, x: w.T @ x),
}


def _constant_view(L: Any) -> list:
    """A constant's view saved by mul; the constant then changes: the view changes with it (one version)."""
    w, c = _leaf(L), _const(L)
    y = w * c[0]
    c.add_(1.0)
    y.sum().backward()
    return [w]


A_CASES["a constant's view saved, then the constant changed"] = _constant_view


# --- (b) in place on a tensor whose value (or whose history) a rule saved --------------------------------------
def _b(body: Callable[[Any, Any], Any]) -> Callable[[Any], list]:
    def case(L: Any) -> list:
        x = _leaf(L)
        body(L, x).sum().backward()
        return [x]

    return case


def _exp_relu(L, x):
    e = x.exp()
    return e.relu_()


def _exp_relu_square(L, x):
    e = x.exp()
    r = e.relu_()
    return r * r


def _exp_of_h_then_relu(L, x):
    h = x * 2
    y = h.exp()
    h.relu_()
    return y + h


def _mul_then_relu(L, x):
    h = x * 2
    h.relu_()
    return h


def _tanh_relu(L, x):
    h = x.tanh()
    h.relu_()
    return h


def _sigmoid_mul(L, x):
    h = x.sigmoid()
    h.mul_(2)
    return h


def _saved_by_mul_then_relu(L, x):
    h = x * 2
    y = h * h
    h.relu_()
    return y


def _add_then_relu(L, x):
    h = x * 2
    y = h + 1
    h.relu_()
    return y + h


def _exp_add(L, x):
    h = x.exp()
    h.add_(1)
    return h


def _exp_in_place(L, x):
    h = x + 0
    h.exp_()
    return h * 3


def _chain(L, x):
    h = x * 2
    h.mul_(3)
    h.add_(1)
    h.relu_()
    return h


def _sum_then_mul(L, x):
    h = x * 2
    y = h.sum()
    h.mul_(3)
    return y + h.sum()


def _exp_then_mul(L, x):
    h = x * 2
    y = h.exp()
    h.mul_(3)
    return y.sum() + (h * h).sum()


def _twice(L, x):
    h = x * 2
    y1 = h + 1
    h.mul_(3)
    y2 = h * 1
    h.add_(x)
    return y1 + y2 * 2 + h * 4


def _operand_requires_grad(L, x):
    h = x + 0
    y = h.exp()
    h.mul_(x)
    return y + h


B_CASES = {
    "x.exp().relu_() (exp saved its result)": _b(_exp_relu),
    "x.exp().relu_(), then r * r": _b(_exp_relu_square),
    "h.exp() then h.relu_() (exp saved its result, not h)": _b(_exp_of_h_then_relu),
    "(x * 2).relu_()": _b(_mul_then_relu),
    "x.tanh().relu_() (tanh saved its result)": _b(_tanh_relu),
    "x.sigmoid().mul_(2)": _b(_sigmoid_mul),
    "h * h then h.relu_() (mul saved h)": _b(_saved_by_mul_then_relu),
    "h + 1 then h.relu_(), both used": _b(_add_then_relu),
    "x.exp().add_(1)": _b(_exp_add),
    "exp_ on a non-leaf": _b(_exp_in_place),
    "mul_, add_, relu_ in a row": _b(_chain),
    "sum, then mul_, then sum again": _b(_sum_then_mul),
    "exp of h, then h.mul_(3), both used": _b(_exp_then_mul),
    "two in-place changes between three uses": _b(_twice),
    "h.mul_(x) after h.exp()": _b(_operand_requires_grad),
}


# --- (c) in place through a view of a non-leaf ------------------------------------------------------------------
def _c(body: Callable[[Any, Any, Any], Any]) -> Callable[[Any], list]:
    def case(L: Any) -> list:
        x = _leaf(L, [[1.0, 2.0, -1.0], [3.0, -4.0, 0.5]])
        w = _leaf(L, [0.5, -2.0])
        body(L, x, w).sum().backward()
        return [x, w]

    return case


def _col_mul(L, x, w):
    h = x * 3
    h[:, 0].mul_(2)
    return h * h


def _row_add_w(L, x, w):
    h = x * 3
    h[0, :2].add_(w)
    return h * h


def _col_relu(L, x, w):
    h = x * 3
    h[:, 1:].relu_()
    return h.exp()


def _transposed(L, x, w):
    h = x * 3
    h.T[0].mul_(w)
    return h * x


def _reshaped(L, x, w):
    h = x * 3
    h.reshape(6)[1:3].mul_(w)
    return h * h


def _view_used_too(L, x, w):
    h = x * 3
    v = h[0]
    v.mul_(2)
    return h.sum() + (v * v).sum()


def _view_of_view(L, x, w):
    h = x * 3
    h[1][1:].mul_(w)
    return h * h


def _sum_before(L, x, w):
    h = x * 3
    y = h.sum()
    h[:, 0].mul_(2)
    return y + (h * h).sum()


def _saved_before(L, x, w):
    h = x * 3
    y = h * h
    h[:, 0].mul_(2)
    return y


def _exp_view(L, x, w):
    h = x.exp()
    h[:, 0].mul_(2)
    return h


def _setitem_on_view(L, x, w):
    h = x * 3
    h[0][1] = w[0] * 2
    return h * h


def _augmented_on_view(L, x, w):
    h = x * 3
    h[:, 0] *= w
    return h * h


def _two_views(L, x, w):
    h = x * 3
    h[0].mul_(2)
    h[:, 1].add_(w)
    return h * h


def _sibling_apart(L, x, w):
    h = x * 3
    r = h[1, 1:]
    h[0, :].mul_(2)
    return r.sum() + (h * h).sum()


def _view_then_base(L, x, w):
    h = x * 3
    h[:, 0].mul_(w)
    h.mul_(2)
    return h * x


def _clamp_view(L, x, w):
    h = x * 3
    h[:, 1:].clamp_(-2.0, 4.0)
    return h * h


def _sibling_overlapping_used(L, x, w):
    h = x * 3
    r = h[0]
    y = r * 1
    h[:, 0].mul_(2)
    return y.sum() + r.sum()


def _sibling_overlapping(L, x, w):
    h = x * 3
    r = h[0]
    h[:, 0].mul_(2)
    return r * 1


def _sigmoid_half(L, x, w):
    h = x * 3
    h[:, :2] = h[:, :2].sigmoid()  # the view on the right is taken before the write
    return h * h


def _view_before_and_after(L, x, w):
    h = x * 3
    r = h[0]
    y = r * 2  # r used before the write ...
    h[:, 0].mul_(2)
    return y.sum() + (r * r).sum() + h.sum()  # ... and after it


def _view_of_view_before(L, x, w):
    h = x * 3
    r = h[1]
    rr = r[1:]
    y = rr.exp()
    h.mul_(3)
    return y.sum() + (rr * r[1:]).sum()


def _transpose_before(L, x, w):
    h = x * 3
    t = h.T
    y = t * 1
    h[1].add_(w[0])
    return y.sum() + (t * t).sum()


def _operand_is_a_view_of_the_same(L, x, w):
    h = x * 3
    h[:, :1].mul_(h[:, 1:2])  # mul saved the operand, a view of the tensor written (torch: stale)
    return h


def _operand_apart(L, x, w):
    h = x * 3
    h[:, :1].mul_(h[:, 2:])  # apart from the write, but a view of the same tensor: torch's one version counter
    return h


C_CASES = {
    "h[:, :2] = h[:, :2].sigmoid()": _c(_sigmoid_half),
    "a view used before and after a write it overlaps": _c(_sibling_overlapping_used),
    "a view used before and after a write (with h)": _c(_view_before_and_after),
    "a view of a view taken before h.mul_(3)": _c(_view_of_view_before),
    "h.T taken before h[1].add_": _c(_transpose_before),
    "h[:, :1].mul_(h[:, 1:2])": _c(_operand_is_a_view_of_the_same),
    "h[:, :1].mul_(h[:, 2:])": _c(_operand_apart),
    "h[:, 0].mul_(2)": _c(_col_mul),
    "h[0, :2].add_(w)": _c(_row_add_w),
    "h[:, 1:].relu_() then exp": _c(_col_relu),
    "h.T[0].mul_(w)": _c(_transposed),
    "h.reshape(6)[1:3].mul_(w)": _c(_reshaped),
    "v = h[0]; v.mul_(2); v and h used": _c(_view_used_too),
    "h[1][1:].mul_(w) (a view of a view)": _c(_view_of_view),
    "h.sum() before h[:, 0].mul_(2)": _c(_sum_before),
    "h * h before h[:, 0].mul_(2) (mul saved h)": _c(_saved_before),
    "x.exp()[:, 0].mul_(2) (exp saved its result)": _c(_exp_view),
    "h[0][1] = w[0] * 2": _c(_setitem_on_view),
    "h[:, 0] *= w": _c(_augmented_on_view),
    "h[0].mul_(2), then h[:, 1].add_(w)": _c(_two_views),
    "a view apart from the write, taken before it": _c(_sibling_apart),
    "h[:, 0].mul_(w), then h.mul_(2)": _c(_view_then_base),
    "h[:, 1:].clamp_(-2, 4)": _c(_clamp_view),
}

CASES = {**A_CASES, **B_CASES, **C_CASES}


def _outcome(L: Any, case: Callable[[Any], list]) -> tuple[str, Any]:
    try:
        tensors = case(L)
    except RuntimeError as exc:
        return "raises", str(exc)
    grads = []
    for t in tensors:
        g = t.grad
        grads.append(None if g is None else np.asarray(g.numpy() if L is torch else g.data))
    return "grads", grads


@pytest.mark.parametrize("name", list(CASES))
def test_in_place_case_matches_torch(name):
    case = CASES[name]
    kind, ours = _outcome(cr, case)
    ref_kind, ref = _outcome(torch, case)
    assert kind == ref_kind, f"{name}: chainrule {kind} ({ours}), torch {ref_kind} ({ref})"
    if kind == "raises":
        assert "modified by an inplace operation" in ref
        assert "modified in place" in ours and "version" in ours and "torch raises here too" in ours
        assert "'" in ours.split("modified in place")[0]  # the operation is named before the verb
    else:
        assert len(ours) == len(ref)
        for g, r in zip(ours, ref):
            assert (g is None) == (r is None)
            if g is not None:
                np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_the_issue_cases_now_compute_as_torch():
    """The three cases of the issue: the ones torch computes, chainrule computes, with torch's gradients."""
    for name in (
        "w + x (add saves nothing)",
        "h.exp() then h.relu_() (exp saved its result, not h)",
        "h[:, 0].mul_(2)",
    ):
        assert _outcome(cr, CASES[name])[0] == "grads" == _outcome(torch, CASES[name])[0]


def test_errors_name_the_operation_and_what_was_saved():
    kind, msg = _outcome(cr, CASES["w * x (mul saved w)"])
    assert kind == "raises" and "an input of 'mul'" in msg and "its input 0" in msg
    kind, msg = _outcome(cr, CASES["x.exp().relu_() (exp saved its result)"])
    assert kind == "raises" and "the result of 'exp'" in msg and "its result" in msg


# --- where chainrule and torch differ, never silently -----------------------------------------------------------
@pytest.mark.parametrize(
    "forward",
    [lambda L, w: w.var(), lambda L, w: w.std(), lambda L, w: L.nn.functional.leaky_relu(w, 0.1)],
    ids=["var", "std", "leaky_relu"],
)
def test_composites_that_keep_no_changed_value_give_the_gradient_of_the_recorded_values(forward):
    """torch's var/std/leaky_relu save their input, so torch refuses a change of it; chainrule builds them from
    operations that saved no value of ``w`` itself, so it computes, and its gradient is the one of the values
    the forward saw (the gradient torch gives when nothing is changed)."""

    def run(L, change):
        w = _leaf(L)
        y = forward(L, w)
        if change:
            with L.no_grad():
                w.add_(1.0)
        y.sum().backward()
        return np.asarray(w.grad.numpy() if L is torch else w.grad.data)

    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        run(torch, True)
    np.testing.assert_allclose(run(cr, True), run(torch, False), rtol=1e-12)


def test_a_number_divided_by_a_changed_tensor_is_refused_where_torch_computes():
    """torch computes 2 / w as reciprocal (which saves its result); chainrule's div saves w: a clear error."""

    def run(L):
        w = _leaf(L)
        y = 2 / w
        with L.no_grad():
            w.add_(1.0)
        y.sum().backward()

    run(torch)
    with pytest.raises(RuntimeError, match="an input of 'div'.*its input 1.*version"):
        run(cr)


# --- what chainrule still refuses (clearly) where torch computes --------------------------------------------------
def _unrecorded_view(L, x, w):
    buf = L.zeros(2, 3, dtype=L.float64)
    buf[:, 0].add_(w)
    return buf * x


def test_an_unrecorded_view_written_with_a_recorded_operand_is_refused_clearly():
    """torch makes the viewed buffer require grad; chainrule cannot follow an unrecorded view back: it says so."""
    assert _outcome(torch, _c(_unrecorded_view))[0] == "grads"
    with pytest.raises(RuntimeError, match=r"Write through the tensor itself \(base\[index\] = "):
        _c(_unrecorded_view)(cr)


def test_planted_views_not_taken_again_are_refused(monkeypatch):
    """Without taking earlier views again, a view used before and after a write it overlaps is ambiguous:
    the walk refuses it (the safety net) rather than guess."""
    import chainrule.inplace as inplace

    monkeypatch.setattr(inplace, "views_of", lambda source: [])
    with pytest.raises(RuntimeError, match="Take the view again after the in-place change"):
        _c(_sibling_overlapping)(cr)


def test_the_written_base_itself_is_fine_when_the_view_is_taken_again():
    def body(L, x, w):
        h = x * 3
        h[:, 0].mul_(2)
        r = h[0]  # taken after the write: reads the rebased base
        return r * 1

    kind, ours = _outcome(cr, _c(body))
    kind_t, ref = _outcome(torch, _c(body))
    assert kind == kind_t == "grads"
    for g, r in zip(ours, ref):
        assert (g is None) == (r is None)
        if g is not None:
            np.testing.assert_allclose(g, r)


# --- planted wrong rules: the comparison catches them ------------------------------------------------------------
def test_planted_all_saved_rule_refuses_what_torch_computes(monkeypatch):
    """If every input counted as saved (the old rule), 'w + x' would raise where torch computes."""
    import chainrule.walk as walk

    monkeypatch.setattr(walk, "needed_values", lambda prim, nin, active: (True,) * (nin + 1))
    assert _outcome(cr, CASES["w + x (add saves nothing)"])[0] == "raises"
    assert _outcome(torch, CASES["w + x (add saves nothing)"])[0] == "grads"


def test_planted_missing_history_gives_a_wrong_gradient(monkeypatch):
    """Without reading the history copy, an earlier use of a rebased tensor sends its gradient into the in-place
    operation's node, which the walk has already passed: the outcome differs from torch's."""
    import chainrule.walk as walk

    monkeypatch.setattr(walk, "rebases_after", lambda t, seq: [])
    kind, ours = _outcome(cr, CASES["exp of h, then h.mul_(3), both used"])
    _, ref = _outcome(torch, CASES["exp of h, then h.mul_(3), both used"])
    assert kind == "raises" or not np.allclose(ours[0], ref[0])


def test_planted_view_version_ignored_gives_a_wrong_gradient(monkeypatch):
    """A view shares its base's version, as in torch: without that, prod (products of views) is silently wrong."""
    import chainrule.walk as walk

    monkeypatch.setattr(walk, "_viewed_version", lambda x: x._version)
    kind, ours = _outcome(cr, CASES["prod(w) (its pairwise products saved views of w)"])
    assert _outcome(torch, CASES["prod(w) (its pairwise products saved views of w)"])[0] == "raises"
    assert kind == "grads"  # ... a gradient computed from the changed values


def test_planted_missing_view_rebase_gives_a_wrong_gradient(monkeypatch):
    import chainrule.inplace as inplace

    monkeypatch.setattr(inplace, "_rebase_views", lambda chain, olds: None)
    kind, ours = _outcome(cr, CASES["h[:, 0].mul_(2)"])
    _, ref = _outcome(torch, CASES["h[:, 0].mul_(2)"])
    assert kind == "grads" and not np.allclose(ours[0], ref[0])
