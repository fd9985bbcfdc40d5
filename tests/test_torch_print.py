"""chainrule.torch prints tensors as torch 2.13 does: the same text for the same values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import chainrule.torch as ct

CASES = [
    ("randn(2, 3)", lambda t: t.randn(2, 3)),
    ("requires_grad", lambda t: t.randn(2, 3, requires_grad=True)),
    ("arange", lambda t: t.arange(5)),
    ("floats", lambda t: t.tensor([1.5, 2.25])),
    ("integers as floats", lambda t: t.tensor([1.0, 2.0, 300.0])),
    ("small: scientific", lambda t: t.tensor([1e-5, 1.0])),
    ("wide: scientific", lambda t: t.tensor([1e9, 1.0])),
    ("zeros", lambda t: t.zeros(3)),
    ("0-d", lambda t: t.tensor(3.14159)),
    ("wrapped lines", lambda t: t.randn(30)),
    ("summarised", lambda t: t.randn(40, 40)),
    ("3-d", lambda t: t.randn(2, 2, 3)),
    ("bool", lambda t: t.tensor([True, False])),
    ("int32", lambda t: t.tensor([1, 2], dtype=t.int32)),
    ("float64", lambda t: t.randn(3, dtype=t.float64)),
    ("empty", lambda t: t.tensor([])),
    ("empty 0x3", lambda t: t.zeros(0, 3)),
    ("inf and nan", lambda t: t.tensor([float("inf"), float("nan"), 1.0])),
    ("large values", lambda t: t.randn(5, 7) * 1000),
    ("0-d int", lambda t: t.tensor(7)),
    ("long summarised vector", lambda t: t.randn(2000)),
    ("mul grad_fn", lambda t: t.randn(3, requires_grad=True) * 2),
    ("sum grad_fn", lambda t: t.randn(3, requires_grad=True).sum()),
]


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_repr_is_torch_s(name, make):
    torch.manual_seed(3)
    ct.manual_seed(3)  # (the same random values: chainrule.torch draws torch's streams)
    assert repr(make(ct)) == repr(make(torch))


@pytest.mark.parametrize("options", [{"precision": 2}, {"threshold": 5, "edgeitems": 1}, {"sci_mode": True}])
def test_set_printoptions_as_torch(options):
    torch.manual_seed(0)
    ct.manual_seed(0)
    a, b = ct.randn(4, 3), torch.randn(4, 3)
    try:
        ct.set_printoptions(**options)
        torch.set_printoptions(**options)
        assert repr(a) == repr(b)
    finally:
        ct.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")
    assert repr(a) == repr(b)
    with pytest.raises(ValueError, match="profile"):
        ct.set_printoptions(profile="wide")


def test_a_seeded_script_prints_torch_s_text(tmp_path):
    """The same script with only the import changed prints the same lines (tensors included)."""
    script = (
        "torch.manual_seed(1)\n"
        "w = torch.randn(3, 2, requires_grad=True)\n"
        "x = torch.rand(4, 3)\n"
        "print(w)\n"
        "print(x @ w)\n"
        "print((x @ w).relu().mean().item())\n"
    )
    outs = []
    for head in ("import torch\n", "import chainrule.torch as torch\n"):
        path = tmp_path / "s.py"
        path.write_text(head + script)
        outs.append(subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True).stdout)
    assert outs[0] == outs[1]
    assert np.isfinite(float(outs[0].splitlines()[-1]))


INDEXINGS = [
    ("x[0]", lambda x: x[0]),
    ("x[:, 1]", lambda x: x[:, 1]),
    ("x[0:2]", lambda x: x[0:2]),
    ("x[[0, 1]]", lambda x: x[[0, 1]]),
    ("x[0, 1]", lambda x: x[0, 1]),
    ("x[None]", lambda x: x[None]),
]


@pytest.mark.parametrize("name,index", INDEXINGS, ids=[i[0] for i in INDEXINGS])
def test_an_indexing_names_its_grad_fn_as_torch(name, index):
    torch.manual_seed(5)
    ct.manual_seed(5)
    a, b = ct.randn(3, 2, requires_grad=True), torch.randn(3, 2, requires_grad=True)
    assert repr(index(a)) == repr(index(b))


def test_a_parameter_prints_as_torch_s():
    torch.manual_seed(2)
    ct.manual_seed(2)
    ours, theirs = ct.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    assert repr(ours.weight) == repr(theirs.weight) and repr(ours.weight).startswith("Parameter containing:\n")
    assert repr(ct.nn.Parameter(ct.zeros(2))) == repr(torch.nn.Parameter(torch.zeros(2)))
    assert repr(ours.weight * 1) == repr(theirs.weight * 1)  # a value computed from it is not a parameter


def test_shapes_are_torch_size_and_print_as_torch():
    for make in (lambda T: T.zeros(2, 3), lambda T: T.tensor(1.0), lambda T: T.ones(4, 1, 5)):
        ours, theirs = make(ct), make(torch)
        for f in (
            lambda t: t.shape,
            lambda t: t.size(),
            lambda t: t.shape[1:],
            lambda t: t.shape + (7,),
            lambda t: (7,) + t.shape,
        ):
            assert repr(f(ours)) == repr(f(theirs))
        assert ours.shape == tuple(theirs.shape) and isinstance(ours.shape, tuple)
        assert ours.shape.numel() == theirs.shape.numel()
