"""Indexing with mixed basic and advanced indices follows torch's rule (issue 25 item 4): result shapes, values,
gradients (repeated indices accumulate) and writes, each compared with torch over many index combinations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule import versions

torch = pytest.importorskip("torch")

SHAPE = (3, 4, 5)


def _idx(L: Any, v: Any) -> Any:
    """An index tensor (ints) or mask (bools) in library ``L``."""
    return L.tensor(v)


M3 = [True, False, True]
M4 = [False, True, True, False]
M5 = [True, False, True, False, True]
M34 = [[True, False, False, True], [False, True, False, False], [True, True, False, False]]

# Each case: (name, function of (library, tensor) giving the indexed tensor). Lists stay Python lists (both libraries
# read them as advanced indices); tensors are made in each library.
CASES: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("int,:,list", lambda L, t: t[0, :, [0, 1]]),
    ("int,:,list rep", lambda L, t: t[2, :, [1, 1, 3]]),
    ("list,:,list", lambda L, t: t[[0, 1], :, [0, 1]]),
    ("list,:,int", lambda L, t: t[[0, 2], :, 4]),
    ("list1,:,int", lambda L, t: t[[0], :, 2]),
    (":,list2d", lambda L, t: t[:, _idx(L, [[0, 1], [1, 2]])]),
    (":,list2d rep", lambda L, t: t[:, _idx(L, [[3, 3], [0, 3]])]),
    (":,:,list2d", lambda L, t: t[:, :, _idx(L, [[0, 4], [4, 0], [2, 2]])]),
    ("list2d", lambda L, t: t[_idx(L, [[0, 1], [2, 0]])]),
    ("list,slice", lambda L, t: t[[0, 1], 1:3]),
    ("list,slice,slice", lambda L, t: t[[2, 0, 2], 1:3, ::2]),
    ("None,list", lambda L, t: t[None, [0, 1]]),
    (":,None,list", lambda L, t: t[:, None, [0, 1]]),
    ("list,None,list", lambda L, t: t[[0, 1], None, [1, 2]]),
    ("None,int,list", lambda L, t: t[None, 1, [0, 3]]),
    ("mask,int", lambda L, t: t[_idx(L, M3), 1]),
    ("mask,:,int", lambda L, t: t[_idx(L, M3), :, 3]),
    ("int,:,mask", lambda L, t: t[1, :, _idx(L, M5)]),
    ("int,mask", lambda L, t: t[1, _idx(L, M4)]),
    (":,mask,int", lambda L, t: t[:, _idx(L, M4), 0]),
    ("int,mask,int", lambda L, t: t[2, _idx(L, M4), 4]),
    ("mask2d", lambda L, t: t[_idx(L, M34)]),
    ("mask2d,int", lambda L, t: t[_idx(L, M34), 2]),
    ("mask2d,list", lambda L, t: t[_idx(L, M34), [0, 1, 2, 3, 4]]),
    ("mask,slice,list", lambda L, t: t[_idx(L, M3), 1:, [0, 4]]),
    (":,1,list", lambda L, t: t[:, 1, [0, 2]]),
    ("1,list,:", lambda L, t: t[1, [0, 2], :]),
    ("1,list", lambda L, t: t[1, [3, 0]]),
    ("-1,:,list", lambda L, t: t[-1, :, [-1, 0]]),
    ("list,int,list", lambda L, t: t[[0, 1], 2, [1, 3]]),
    ("list,int,:", lambda L, t: t[[0, 1, 1], 2, :]),
    ("int,list,list", lambda L, t: t[0, [0, 1], [2, 3]]),
    ("int,int,list", lambda L, t: t[0, 1, [2, 3]]),
    ("list,list,int", lambda L, t: t[[0, 2], [1, 3], 4]),
    ("list,list,list", lambda L, t: t[[0, 2], [1, 3], [4, 0]]),
    ("list,list bcast", lambda L, t: t[[[0], [2]], [1, 3]]),
    ("list,:,list bcast", lambda L, t: t[[[0], [1]], :, [1, 2, 3]]),
    ("...,list", lambda L, t: t[..., [0, 1]]),
    ("...,int,list", lambda L, t: t[..., 1, [0, 1]]),
    ("list,...,int", lambda L, t: t[[0, 2], ..., 1]),
    ("int,...,list", lambda L, t: t[1, ..., [0, 4]]),
    ("list,...", lambda L, t: t[[2, 1], ...]),
    ("tensor0d,:,list", lambda L, t: t[L.tensor(1), :, [1]]),
    ("tensor0d,list", lambda L, t: t[L.tensor(2), [1, 1, 0]]),
    ("tensor idx,:,int", lambda L, t: t[_idx(L, [0, 2, 0]), :, 1]),
    ("int,slice,tensor", lambda L, t: t[1, 1:3, _idx(L, [4, 0, 0])]),
    ("int,step slice,list", lambda L, t: t[0, ::2, [1, 2, 3]]),
    ("slice,int,list2d", lambda L, t: t[1:, 3, _idx(L, [[0, 1], [2, 2]])]),
    ("list2d,int", lambda L, t: t[_idx(L, [[0, 1], [2, 2]]), 0]),
    ("list2d,:,int", lambda L, t: t[_idx(L, [[0, 1], [2, 2]]), :, 3]),
    ("int,list2d,:", lambda L, t: t[0, _idx(L, [[0, 1], [2, 3]]), :]),
    (":,list,list", lambda L, t: t[:, [0, 1], [1, 2]]),
    (":,list,int", lambda L, t: t[:, [0, 3], 1]),
    ("neg list,:,int", lambda L, t: t[[-1, -3], :, -2]),
    ("int,None,:,list", lambda L, t: t[1, None, :, [0, 2]]),
    ("None,list,None,int", lambda L, t: t[None, [0, 1], None, 2]),
    ("slice,None,list", lambda L, t: t[1:, None, [0, 2]]),
    ("list only", lambda L, t: t[[0, 0, 2]]),
    ("int only", lambda L, t: t[1]),
    ("int,slice", lambda L, t: t[1, 1:3]),
    ("slices", lambda L, t: t[:2, 1:, 1:4:2]),
    ("empty list,int", lambda L, t: t[_idx(L, np.zeros(0, dtype=np.int64)), 1]),
    ("int,:,all-false mask", lambda L, t: t[0, :, _idx(L, [False] * 5)]),
    ("int,int,mask", lambda L, t: t[2, 1, _idx(L, M5)]),
    ("mask,list,int", lambda L, t: t[_idx(L, M3), [0, 3], 2]),
]


def _run(L: Any, fn: Callable[[Any, Any], Any]) -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE) / 7.0
    x = L.tensor(values, requires_grad=True) if L is cr else torch.tensor(values, requires_grad=True)
    out = fn(L, x)
    weights = np.random.default_rng(0).standard_normal(tuple(out.shape))
    (out * L.tensor(weights)).sum().backward()
    as_np = (lambda t: t.detach().numpy()) if L is torch else (lambda t: np.asarray(t.data))
    return as_np(out), as_np(x.grad)


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_getitem_shape_value_and_gradient_match_torch(name, fn):
    ours, ref = _run(cr, fn), _run(torch, fn)
    assert ours[0].shape == ref[0].shape, f"{name}: shape {ours[0].shape}, torch {ref[0].shape}"
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12, atol=1e-12)  # repeated indices accumulate


def test_there_are_at_least_sixty_index_combinations():
    assert len(CASES) >= 60


SET_CASES = [c for c in CASES if "empty" not in c[0]]


def _set(L: Any, fn: Callable[[Any, Any], Any], with_grad: bool) -> tuple[np.ndarray, Any]:
    """Write a value of the selection's shape (as torch orders it) through the same index."""
    values = np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE)
    x = L.tensor(values) if L is cr else torch.tensor(values)
    selected = tuple(fn(L, x).shape)
    new = np.arange(int(np.prod(selected)), dtype=np.float64).reshape(selected) * -1.0 - 1.0
    index_of = _IndexCatcher()
    fn(L, index_of)
    w = L.tensor(new, requires_grad=True) if with_grad else L.tensor(new)
    x[index_of.index] = w * 2 if with_grad else w
    grad = None
    if with_grad:
        (x * L.tensor(np.arange(x.numel() if L is torch else x.size).reshape(SHAPE) + 1.0)).sum().backward()
        grad = w.grad.numpy() if L is torch else np.asarray(w.grad.data)
    return (x.detach().numpy() if L is torch else np.asarray(x.data)), grad


class _IndexCatcher:
    """Records the index a case applies, so the same index can be written through."""

    index: Any = None

    def __getitem__(self, index: Any) -> _IndexCatcher:
        self.index = index
        return self


@pytest.mark.parametrize("with_grad", [False, True], ids=["plain", "recorded"])
@pytest.mark.parametrize("name,fn", SET_CASES, ids=[c[0] for c in SET_CASES])
def test_setitem_through_the_same_index_matches_torch(name, fn, with_grad):
    (ours, og), (ref, rg) = _set(cr, fn, with_grad), _set(torch, fn, with_grad)
    np.testing.assert_array_equal(ours, ref)
    if with_grad:
        np.testing.assert_allclose(og, rg)


def test_planted_numpy_order_fails_the_comparison(monkeypatch):
    """Without torch's order (NumPy's rule for an integer among advanced indices), the shapes differ."""
    monkeypatch.setattr(versions, "torch_order", lambda index: None)
    import sys

    tensor_module = sys.modules["chainrule.tensor"]
    monkeypatch.setattr(tensor_module, "torch_order", lambda index: None)
    fn = dict(CASES)["int,:,list"]
    assert _run(cr, fn)[0].shape == (2, 4) != _run(torch, fn)[0].shape == (4, 2)


def test_a_repeated_index_writes_the_last_value_and_gives_every_value_its_gradient_as_torch():
    def run(L):
        x = L.zeros(3, dtype=L.float64)
        w = L.tensor([1.0, 2.0, 3.0], dtype=L.float64, requires_grad=True)
        x[[0, 0, 2]] = w * 1
        (x * L.tensor([10.0, 20.0, 30.0], dtype=L.float64)).sum().backward()
        return np.asarray(x.detach().numpy()), np.asarray(w.grad.numpy())

    (x, g), (tx, tg) = run(cr), run(torch)
    np.testing.assert_array_equal(x, tx)  # [2, 0, 3]: the last write wins
    np.testing.assert_array_equal(g, tg)  # [10, 10, 30]


def test_a_repeated_index_with_an_overwritten_infinity_is_refused_clearly():
    x = cr.zeros(3)
    w = cr.tensor([np.inf, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match="setitem: the index names an element more than once"):
        x[[0, 0, 2]] = w * 1
