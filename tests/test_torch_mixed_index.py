"""Mixed advanced indexing takes torch's layout (issue 25, item 4): integers apply first, as basic indexing,
and only the remaining advanced indices are laid out together (NumPy counts integers as advanced, so
``x[0, :, [1, 2]]`` is (2, 3) in NumPy and (3, 2) in torch).  Reads, writes and gradients, against torch."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import versions

torch = pytest.importorskip("torch")

X = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)

CASES = [
    (0, slice(None), [1, 2]),
    ([0, 1], 0, [1, 2]),
    (slice(None), 1, [0, 2], slice(None)),
    (1, [0, 2], slice(1, 3), [1, 4]),
    (Ellipsis, 0, [1, 3]),
    ([1, 0], slice(None), 2),
    (0, [[0, 1, 2]], slice(None), 3),
    (None, 0, slice(None), [1, 2]),
    (np.array([True, False]), 1, slice(None), [0, 1]),
    (0, np.array([True, False, True]), [1, 2]),
    (slice(None), [0, 1], 1, [2, 3]),
    (0, Ellipsis, [1, 2], 1),
    (1, slice(None), slice(None), [4, 0, 2]),
]


def _torch_index(idx):
    return tuple(torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in idx)


@pytest.mark.parametrize("idx", CASES, ids=[str(i) for i in range(len(CASES))])
def test_read_write_and_gradients_follow_torch(idx):
    tidx = _torch_index(idx)
    want = torch.tensor(X)[tidx]
    got = cr.tensor(X)[idx]
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())

    v = -torch.arange(want.numel(), dtype=torch.float64).reshape(want.shape)
    tt = torch.tensor(X).clone()
    tt[tidx] = v
    cc = cr.tensor(X.copy())
    cc[idx] = cr.tensor(v.numpy())
    np.testing.assert_array_equal(cc.numpy(), tt.numpy())

    tw = torch.tensor(X, requires_grad=True)
    ty = tw[tidx]
    (ty * torch.arange(ty.numel(), dtype=torch.float64).reshape(ty.shape)).sum().backward()
    cw = cr.tensor(X, requires_grad=True)
    cy = cw[idx]
    (cy * cr.tensor(np.arange(cy.numel(), dtype=np.float64).reshape(cy.shape))).sum().backward()
    np.testing.assert_array_equal(cw.grad.numpy(), tw.grad.numpy())

    vw = v.clone().requires_grad_()
    tg = torch.tensor(X).clone()
    tg[tidx] = vw
    (tg * tg).sum().backward()
    cv = cr.tensor(v.numpy(), requires_grad=True)
    cg = cr.tensor(X) * 1.0
    cg[idx] = cv
    (cg * cg).sum().backward()
    np.testing.assert_array_equal(cv.grad.numpy(), vw.grad.numpy())


def test_plain_indices_keep_numpys_path():
    assert versions.torch_order((slice(None), np.array([0, 1]))) is None
    assert versions.torch_order((0, 1)) is None
    assert versions.torch_order((0, slice(None), np.array([1, 2]))) is not None


def test_a_planted_numpy_layout_is_caught(monkeypatch):
    """Without the rule (NumPy's layout), the first case differs from torch."""
    monkeypatch.setattr(cr.Tensor, "__getitem__", _numpy_getitem)
    got = cr.tensor(X)[CASES[0]]
    assert got.shape == (2, 3, 5) != tuple(torch.tensor(X)[_torch_index(CASES[0])].shape) == (3, 2, 5)


def _numpy_getitem(self, index):
    from chainrule.primitives import shape as S
    from chainrule.tensor import apply

    return apply(S.getitem, self, versions._raw_index(index))
