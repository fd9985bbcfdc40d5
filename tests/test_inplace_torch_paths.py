"""More in-place paths against torch (issue 25 item 4): no_grad on a non-leaf, retain_grad, autograd.grad,
retain_graph, create_graph, detach, setitem, buffers; and which saved values a rule needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr

from .test_inplace_torch import CASES, _leaf, _outcome

torch = pytest.importorskip("torch")


# --- more paths: no_grad on a non-leaf, retain_grad, autograd.grad, retain_graph, create_graph, detach, setitem ----
def _x(L: Any) -> Any:
    return _leaf(L)


def _e_no_grad_nonleaf(L):
    x = _x(L)
    h = x * 2
    y = h + 1
    with L.no_grad():
        h.mul_(2)
    (y + h).sum().backward()
    return [x.grad]


def _e_no_grad_nonleaf_saved(L):
    x = _x(L)
    h = x * 2
    y = h * h
    with L.no_grad():
        h.mul_(2)
    y.sum().backward()
    return [x.grad]


def _e_retain_grad(L):
    x = _x(L)
    h = x * 2
    h.retain_grad()
    h.mul_(3)
    (h * h).sum().backward()
    return [x.grad, h.grad]  # retain_grad follows the tensor to its new value


def _e_autograd_grad_view(L):
    x = _x(L)
    h = x * 3
    h[:, 0].mul_(2)
    return list(L.autograd.grad((h * h).sum(), [x]))


def _e_autograd_grad_relu(L):
    x = _x(L)
    h = x * 2
    y = h.exp()
    h.relu_()
    return list(L.autograd.grad((y + h).sum(), [x]))


def _e_retain_graph(L):
    x = _x(L)
    h = x * 3
    h[:, 0].mul_(2)
    s = (h * h).sum()
    s.backward(retain_graph=True)
    first = x.grad.clone()
    s.backward()
    return [first, x.grad]


def _e_create_graph(L):
    x = _x(L)
    h = x * 3
    h[:, 0].mul_(x[:, 1])
    (g,) = L.autograd.grad((h * h).sum(), [x], create_graph=True)
    (g * g).sum().backward()
    return [x.grad]


def _e_detach_saved(L):
    x = _x(L)
    h = x * 2
    d = h.detach()
    y = h * h
    d.mul_(2)
    y.sum().backward()
    return [x.grad]


def _e_detach_recorded(L):
    x = _x(L)
    w = _leaf(L, [1.0, 2.0])
    h = x * 2
    d = h.detach()
    y = h + 1
    d.mul_(w)
    (y.sum() + d.sum()).backward()
    return [x.grad, w.grad]


def _e_setitem(L):
    x = _x(L)
    h = x * 3
    h[0, 1] = 5.0
    h[:, 0] = x[:, 1]
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_element(L):
    x = _x(L)
    h = x * 3
    h[0, 1].mul_(2)
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_flat_view(L):
    x = _x(L)
    h = x * 3
    v = h.view(4) if L is torch else h.reshape(4)
    v[1:3].mul_(2)
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_transposed_whole(L):
    x = _x(L)
    h = x * 3
    h.T.mul_(2)
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_copy_into_row(L):
    x = _x(L)
    h = x * 3
    h[0].copy_(x[1] * 5)
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_zero_row_of_exp(L):
    x = _x(L)
    h = x.exp()
    h[0].zero_()
    return [L.autograd.grad(h.sum(), [x])[0]]


def _e_unsqueezed(L):
    x = _x(L)
    h = (x * 3).unsqueeze(0)
    h[0, 0].mul_(2)
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_advanced_copy(L):
    x = _x(L)
    h = x * 3
    h[[0, 1], 0].mul_(2)  # advanced indexing copies: h is unchanged
    return [L.autograd.grad((h * h).sum(), [x])[0]]


def _e_buffer_saved(L):
    w, v = _x(L), _leaf(L, [[0.5, 0.5], [1.0, -1.0]])
    buf = L.zeros(2, 2, dtype=L.float64)
    y = buf * w  # mul saved buf (for w's gradient)
    buf.add_(v)  # recorded: buf becomes a node
    y.sum().backward()
    return [w.grad, v.grad]


def _e_buffer_added(L):
    w, v = _x(L), _leaf(L, [[0.5, 0.5], [1.0, -1.0]])
    buf = L.zeros(2, 2, dtype=L.float64)
    y = buf + w
    buf.add_(v)
    (y * 2 + buf * 3).sum().backward()
    return [w.grad, v.grad]


E_CASES = {
    "a buffer mul saved, then changed by a recorded add_": _e_buffer_saved,
    "a buffer used by add, then changed by a recorded add_": _e_buffer_added,
    "no_grad mul_ of a non-leaf, add saved nothing": _e_no_grad_nonleaf,
    "no_grad mul_ of a non-leaf that mul saved": _e_no_grad_nonleaf_saved,
    "retain_grad, then mul_": _e_retain_grad,
    "autograd.grad through a rebased view": _e_autograd_grad_view,
    "autograd.grad through relu_ after exp": _e_autograd_grad_relu,
    "retain_graph twice through a rebased view": _e_retain_graph,
    "create_graph through h[:, 0].mul_(x[:, 1])": _e_create_graph,
    "mul_ on a detach() of a saved tensor": _e_detach_saved,
    "recorded mul_ on a detach()": _e_detach_recorded,
    "setitem twice on a non-leaf": _e_setitem,
    "h[0, 1].mul_(2) (one element)": _e_element,
    "a flat view's slice mul_": _e_flat_view,
    "h.T.mul_(2) (the whole tensor through a view)": _e_transposed_whole,
    "h[0].copy_(x[1] * 5)": _e_copy_into_row,
    "x.exp()[0].zero_() (exp saved its result)": _e_zero_row_of_exp,
    "(x * 3).unsqueeze(0)[0, 0].mul_(2)": _e_unsqueezed,
    "advanced indexing copies: mul_ leaves h": _e_advanced_copy,
}


def _values(L: Any, case: Callable[[Any], list]) -> tuple[str, Any]:
    try:
        got = case(L)
    except RuntimeError as exc:
        return "raises", str(exc)
    return "grads", [None if g is None else np.asarray(g.detach().numpy() if L is torch else g.data) for g in got]


@pytest.mark.parametrize("name", list(E_CASES))
def test_more_in_place_paths_match_torch(name):
    (kind, ours), (ref_kind, ref) = _values(cr, E_CASES[name]), _values(torch, E_CASES[name])
    assert kind == ref_kind, f"{name}: chainrule {kind} ({ours}), torch {ref_kind} ({ref})"
    if kind == "raises":
        assert "modified by an inplace operation" in ref and "version" in ours and "modified in place" in ours
        return
    for g, r in zip(ours, ref):
        assert (g is None) == (r is None)
        if g is not None:
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_planted_retain_grad_left_on_the_old_value_differs_from_torch(monkeypatch):
    import chainrule.inplace as inplace

    monkeypatch.setattr(inplace, "Hooked", type(None))  # the keeper is never moved
    ours, ref = _values(cr, _e_retain_grad)[1], _values(torch, _e_retain_grad)[1]
    assert not np.allclose(ours[1], ref[1])


# --- which saved values a rule needs: read off the rule, shapes excepted ------------------------------------------
def test_needed_values_reads_the_rules_and_ignores_shape_only_uses():
    from chainrule.primitive import Primitive, defvjp
    from chainrule.saved import needed_values

    def made(rule, kind=None):
        p = Primitive("probe", lambda xp, x: x, kind=kind)  # (not registered)
        defvjp(p, rule)
        return p

    assert needed_values(made(lambda xp, g, out, x: g * x), 1, (True,)) == (True, False)
    assert needed_values(made(lambda xp, g, out, x: g * out), 1, (True,)) == (False, True)
    assert needed_values(made(lambda xp, g, out, x: xp.reshape(g, xp.shape(x))), 1, (True,)) == (False, False)
    assert needed_values(made(lambda xp, g, out, x: g * x.shape[0]), 1, (True,)) == (False, False)
    assert needed_values(made(lambda xp, g, out, x: g * len(x)), 1, (True,)) == (True, False)  # not judged: kept
    assert needed_values(made(lambda xp, g, out, x: (lambda: x)() * g), 1, (True,)) == (True, False)  # a closure
    assert needed_values(made(lambda xp, g, out, x: g * x), 1, (False,)) == (False, False)  # no gradient wanted
    assert needed_values(made(lambda xp, g, out, x: g * x, kind="linear"), 1, (True,)) == (False, False)


def test_planted_shape_only_everywhere_misses_a_stale_value(monkeypatch):
    """If every use counted as shape-only, sin's stale input would go unnoticed: a gradient torch refuses."""
    import chainrule.saved as saved

    monkeypatch.setattr(saved, "_shape_only", lambda code, name: True)
    monkeypatch.setattr(saved, "_VALUE_READS", {})
    assert _outcome(torch, CASES["sin(w) (saved w)"])[0] == "raises"
    assert _outcome(cr, CASES["sin(w) (saved w)"])[0] == "grads"
