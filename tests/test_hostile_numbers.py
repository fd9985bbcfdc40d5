"""Numbers at the edges: float16 reductions, NaN/Inf against torch, constructor refusals, allocation failures.

The NaN/Inf conventions table in docs/trust.md is checked here: every row is
computed with chainrule and with torch, and the documented text must be what
both give now (a row changes when either library's behaviour does).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import chainrule as cr

nan, inf = float("nan"), float("inf")
DOC = Path(__file__).resolve().parents[1] / "docs" / "trust.md"


def fmt(values) -> str:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return "[" + ", ".join("nan" if np.isnan(v) else f"{v:.3g}" for v in a) + "]"


def run_cr(fn, data, dtype, extra=None):
    x = cr.tensor(np.array(data, dtype), requires_grad=True)
    args = [x] if extra is None else [x, cr.tensor(np.array(extra, dtype), requires_grad=True)]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        out = fn(*args)
        out.sum().backward()
    return out.data, [a.grad.data for a in args]


def run_torch(fn, data, dtype, extra=None):
    x = torch.tensor(np.array(data, dtype), requires_grad=True)
    args = [x] if extra is None else [x, torch.tensor(np.array(extra, dtype), requires_grad=True)]
    out = fn(*args)
    out.sum().backward()
    return out.detach().numpy(), [a.grad.numpy() for a in args]


def show(out, grads, pick=slice(None)):
    text = f"{fmt(np.asarray(out).reshape(-1)[pick])}; grad " + " ".join(fmt(g.reshape(-1)[pick]) for g in grads)
    return text


def _tlse(x):
    return torch.logsumexp(x, 0)


def _clip(x):
    return cr.clip(x, 0, 1)


N16 = 70_000  # past float16's largest finite value, 65504
# id: (chainrule function, torch function, data, dtype, second input, elements shown)
ROWS = {
    "relu(nan)": (cr.relu, torch.relu, [nan, 1.0, -1.0], np.float64, None, slice(None)),
    "abs(nan)": (cr.abs, torch.abs, [nan, 1.0, 0.0], np.float64, None, slice(None)),
    "maximum(nan, y)": (cr.maximum, torch.maximum, [nan, 2.0], np.float64, [1.0, nan], slice(None)),
    "minimum(nan, y)": (cr.minimum, torch.minimum, [nan, 2.0], np.float64, [1.0, nan], slice(None)),
    "max([nan, nan, 1]) vs amax": (cr.max, torch.amax, [nan, nan, 1.0], np.float64, None, slice(None)),
    "max([nan, nan, 1]) vs max()": (cr.max, torch.max, [nan, nan, 1.0], np.float64, None, slice(None)),
    "max(x, axis) with nan": (
        lambda x: cr.max(x, axis=1),
        lambda x: torch.max(x, 1)[0],
        [[nan, nan, 1.0]],
        np.float64,
        None,
        slice(None),
    ),
    "softmax([inf, 0, 1])": (
        lambda x: cr.softmax(x, axis=-1) * cr.tensor([1.0, 2.0, 3.0]),
        lambda x: torch.softmax(x, -1) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
        [inf, 0.0, 1.0],
        np.float64,
        None,
        slice(None),
    ),
    "log_softmax([inf, 0, 1])": (
        lambda x: cr.log_softmax(x, axis=-1),
        lambda x: torch.log_softmax(x, -1),
        [inf, 0.0, 1.0],
        np.float64,
        None,
        slice(None),
    ),
    "softmax([-inf, -inf])": (
        lambda x: cr.softmax(x, axis=-1),
        lambda x: torch.softmax(x, -1),
        [-inf, -inf],
        np.float64,
        None,
        slice(None),
    ),
    "logsumexp([inf, 0, 1])": (
        cr.logsumexp,
        lambda x: torch.logsumexp(x, 0),
        [inf, 0.0, 1.0],
        np.float64,
        None,
        slice(None),
    ),
    "logsumexp([-inf, -inf])": (
        cr.logsumexp,
        lambda x: torch.logsumexp(x, 0),
        [-inf, -inf],
        np.float64,
        None,
        slice(None),
    ),
    "clip(nan, 0, 1)": (
        lambda x: cr.clip(x, 0, 1),
        lambda x: torch.clamp(x, 0, 1),
        [nan, 0.5],
        np.float64,
        None,
        slice(None),
    ),
    "sqrt(0)": (cr.sqrt, torch.sqrt, [0.0], np.float64, None, slice(None)),
    "float16 mean of 70,000 ones": (cr.mean, torch.mean, np.ones(N16), np.float16, None, slice(0, 1)),
    "float16 softmax of 70,000 zeros": (
        lambda x: cr.softmax(x, axis=-1)[0],
        lambda x: torch.softmax(x, -1)[0],
        np.zeros(N16),
        np.float16,
        None,
        slice(0, 2),
    ),
    "float16 log_softmax of 70,000 zeros": (
        lambda x: cr.log_softmax(x, axis=-1)[0],
        lambda x: torch.log_softmax(x, -1)[0],
        np.zeros(N16),
        np.float16,
        None,
        slice(0, 2),
    ),
    "float16 logsumexp of 70,000 zeros": (
        cr.logsumexp,
        lambda x: torch.logsumexp(x, 0),
        np.zeros(N16),
        np.float16,
        None,
        slice(0, 1),
    ),
    "float16 sum of 70,000 ones": (cr.sum, torch.sum, np.ones(N16), np.float16, None, slice(0, 1)),
}


def doc_rows() -> dict[str, list[str]]:
    """The conventions table of docs/trust.md: case -> its cells."""
    text = DOC.read_text(encoding="utf8")
    start = text.index("<!-- nan-table -->")
    rows = {}
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if cells[0] not in ("case", "---"):  # the header and its rule
            rows[cells[0]] = cells
    return rows


def measured(name):
    fn, tfn, data, dtype, extra, pick = ROWS[name]
    ours = show(*run_cr(fn, data, dtype, extra), pick)
    theirs = show(*run_torch(tfn, data, dtype, extra), pick)
    return ours, theirs


@pytest.mark.parametrize("name", list(ROWS))
def test_documented_nan_and_inf_conventions_are_what_both_libraries_do(name):
    ours, theirs = measured(name)
    rows = doc_rows()
    assert name in rows, f"docs/trust.md's table has no row {name!r}"
    cells = rows[name]
    assert cells[1] == ours, f"chainrule gives {ours}, the docs say {cells[1]}"
    assert cells[2] == theirs, f"torch gives {theirs}, the docs say {cells[2]}"
    same = "same" if ours == theirs else "differs"
    assert cells[3].startswith(same), f"{name}: the docs' last column should start with {same!r}"


def test_the_table_has_no_rows_that_are_not_checked():
    assert set(doc_rows()) == set(ROWS)


def test_float16_mean_gradient_is_one_over_n_as_in_torch():
    x = cr.tensor(np.ones(70_000, np.float16), requires_grad=True)
    cr.mean(x).backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_array_equal(x.grad.data, np.float16(1 / 70_000))  # 1.43e-05, not 0
    y = cr.tensor(np.ones((3, 70_000), np.float16), requires_grad=True)
    cr.mean(y, axis=1).sum().backward()
    assert np.all(y.grad.data == np.float16(1 / 70_000))
    z = cr.tensor(np.ones((300, 300), np.float16), requires_grad=True)
    torch_z = torch.ones((300, 300), dtype=torch.float16, requires_grad=True)
    (cr.mean(z) * 2.0).backward()
    (torch.mean(torch_z) * 2.0).backward()
    # torch rounds 2/90000 once; chainrule rounds 1/90000 to float16, then the product: one subnormal step apart
    np.testing.assert_allclose(
        z.grad.data, torch_z.grad.numpy(), rtol=0, atol=float(np.finfo(np.float16).smallest_subnormal)
    )
    assert np.all(z.grad.data > 0)


@pytest.mark.parametrize(
    "data",
    [
        np.array([{"a": 1}, 2], dtype=object),
        np.array([1 + 2j]),
        np.array(["ab", "c"]),
        np.array([b"x"]),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.zeros(2, dtype=[("a", "f4")]),
    ],
    ids=["object", "complex", "str", "bytes", "datetime", "structured"],
)
def test_the_constructor_refuses_what_cr_tensor_refuses(data):
    with pytest.raises(TypeError):
        cr.tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match="not supported"):
        cr.Tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match="not supported"):
        cr.Tensor(data)


def test_the_constructor_refuses_gradients_for_integers():
    with pytest.raises(TypeError, match="floating-point"):
        cr.Tensor(np.arange(3), requires_grad=True)
    assert cr.Tensor(np.arange(3)).dtype == np.int64  # without gradients, integers are fine


def test_objects_never_run_their_arithmetic():
    class Loud:
        def __mul__(self, other):
            raise AssertionError("ran __mul__")

    with pytest.raises(TypeError):
        cr.Tensor(np.array([Loud(), Loud()], dtype=object), requires_grad=True)


def test_a_failed_forward_allocation_is_a_memory_error_naming_op_and_shapes():
    x = cr.tensor(np.ones((200_000, 1)), requires_grad=True)
    with pytest.raises(MemoryError, match=re.escape("mul: inputs with shapes (200000, 1), (1, 200000)")):
        x * np.ones((1, 200_000))  # 298 GiB
    with pytest.raises(MemoryError, match=re.escape("exp: inputs with shapes (1, 200000, 200000)")) as info:
        cr.exp(_huge())  # a unary op on a broadcast view: 298 GiB
    assert "GiB" in str(info.value)


def _huge():
    """A view that is cheap to hold but whose elementwise result cannot be allocated."""
    return np.lib.stride_tricks.as_strided(np.zeros(1), shape=(1, 200_000, 200_000), strides=(0, 0, 0))


# --- reductions over an empty axis (docs/trust.md, Notes) -----------------------------------------
@pytest.mark.parametrize("shape,axis", [((0,), None), ((0, 3), 0), ((2, 0), 1), ((0, 3), None)])
def test_mean_over_an_empty_axis_is_nan_as_in_torch(shape, axis):
    ours = cr.mean(cr.tensor(np.zeros(shape)), axis=axis)
    theirs = torch.zeros(shape, dtype=torch.float64)
    theirs = theirs.mean() if axis is None else theirs.mean(dim=axis)
    assert ours.shape == tuple(theirs.shape) and np.isnan(ours.data).all() and torch.isnan(theirs).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and quietly, unlike NumPy
        cr.tensor(np.zeros(shape, np.float32)).mean(axis)
    assert float(cr.sum(cr.tensor(np.zeros(shape))).item()) == 0.0


def test_max_min_and_logsumexp_over_an_empty_axis_raise_as_documented():
    x = cr.tensor(np.zeros(0))
    for f in (cr.max, cr.min):
        with pytest.raises(ValueError, match="the reduction has no identity"):
            f(x)
    with pytest.raises(ValueError, match="the reduction has no identity"):
        cr.logsumexp(x, axis=0)
    with pytest.raises(RuntimeError):  # torch raises for max without dim ...
        torch.zeros(0).max()
    assert torch.logsumexp(torch.zeros(0), 0) == -inf  # ... and returns -inf for logsumexp


@pytest.mark.parametrize("shape, axis", [((0,), None), ((3, 0), 1), ((0, 4), 0), ((2, 0, 3), (0, 1))])
def test_the_gradient_of_an_empty_mean_is_empty_as_in_torch(shape, axis):
    x = cr.tensor(np.zeros(shape), requires_grad=True)
    cr.mean(x, axis).sum().backward()
    tx = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (torch.mean(tx) if axis is None else torch.mean(tx, axis)).sum().backward()
    assert x.grad.shape == tuple(tx.grad.shape) == shape
