"""Every idiom in tests/torch_idioms.py, run in torch and in chainrule, compared.

Both run with torch's default float dtype (chainrule switched to float32 with
``cr.set_default_dtype``), so dtypes are compared too: an idiom "works" only if
chainrule gives the same values, shapes and dtypes as torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import chainrule as cr
from tests.torch_idioms import IDIOMS, Idiom

torch = pytest.importorskip("torch")


@pytest.fixture
def torch_defaults():
    """chainrule with torch's default dtype; both libraries seeded."""
    saved = cr.get_default_dtype()
    cr.set_default_dtype(cr.float32)
    torch.manual_seed(0)
    cr.manual_seed(0)
    try:
        yield
    finally:
        cr.set_default_dtype(saved)


def plain(x: Any) -> Any:
    """A result as plain data: (array, dtype name) for tensors, tuples for sequences, else itself."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return ("tensor", x.numpy(force=True), str(x.dtype).removeprefix("torch."))
    if isinstance(x, cr.Tensor):
        return ("tensor", np.asarray(x.data), x.dtype.name)
    if isinstance(x, np.ndarray):
        return ("tensor", np.asarray(x), x.dtype.name)
    if isinstance(x, torch.dtype):
        return str(x).removeprefix("torch.")
    if isinstance(x, (tuple, list, torch.Size)):
        return tuple(plain(v) for v in x)
    if isinstance(x, (np.bool_, np.integer, np.floating)):
        return x.item()
    return x


def assert_same(got: Any, want: Any, shape_only: bool, where: str = "result") -> None:
    if isinstance(want, tuple) and want and want[0] == "tensor":
        assert isinstance(got, tuple) and got and got[0] == "tensor", f"{where}: expected a tensor, got {got!r}"
        _, g, gd = got
        _, w, wd = want
        assert gd == wd, f"{where}: dtype {gd}, torch gives {wd}"
        assert g.shape == w.shape, f"{where}: shape {g.shape}, torch gives {w.shape}"
        if not shape_only:
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6, equal_nan=True, err_msg=where)
            else:
                np.testing.assert_array_equal(g, w, err_msg=where)
        return
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{where}: {got!r} vs torch {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, shape_only, f"{where}[{i}]")
        return
    if isinstance(want, float) and not shape_only:
        assert got == pytest.approx(want, rel=2e-5, abs=1e-6, nan_ok=True), f"{where}: {got!r} vs torch {want!r}"
        return
    if not shape_only:
        assert got == want, f"{where}: {got!r}, torch gives {want!r}"
    else:
        assert type(got) is type(want), f"{where}: {type(got)} vs torch {type(want)}"


def run(idiom: Idiom, lib: Any) -> Any:
    return plain(idiom.fn(lib))


def outcome(idiom: Idiom) -> str:
    """'works', 'refused' (an error naming the chainrule way, as intended) or 'fails: <why>'."""
    try:
        want = run(idiom, torch)
    except Exception as exc:  # torch itself refuses: chainrule must refuse too
        want = exc
    try:
        got = run(idiom, cr)
    except Exception as exc:
        if idiom.kind == "raises" and idiom.match in str(exc):
            return "refused"
        return f"fails: {type(exc).__name__}: {exc}"
    if idiom.kind == "raises":
        return "fails: chainrule did not raise"
    if isinstance(want, Exception):
        return f"fails: torch raised {want!r} but chainrule did not"
    try:
        assert_same(got, want, idiom.kind == "shape")
    except AssertionError as exc:
        return f"fails: {exc}"
    return "works"


TENSOR_IDIOMS = [i for i in IDIOMS if i.scope == "tensor"]
NN_IDIOMS = [i for i in IDIOMS if i.scope == "nn"]


@pytest.mark.parametrize("idiom", TENSOR_IDIOMS, ids=[i.name for i in TENSOR_IDIOMS])
def test_idiom_works_as_in_torch_or_names_the_chainrule_way(idiom, torch_defaults):
    result = outcome(idiom)
    assert result in ("works", "refused"), result


def test_idiom_counts(torch_defaults, capsys):
    """The headline numbers of issue 12: how many idioms work, and that the rest are refused with a hint."""
    names = [i.name for i in IDIOMS]
    assert len(set(names)) == len(names), "idiom names must be unique"
    results = {i.name: outcome(i) for i in TENSOR_IDIOMS}
    works = sum(r == "works" for r in results.values())
    refused = sum(r == "refused" for r in results.values())
    nn_results = {}
    for i in NN_IDIOMS:
        try:
            nn_results[i.name] = outcome(i)
        except Exception as exc:  # pragma: no cover - reported only
            nn_results[i.name] = f"fails: {exc}"
    nn_works = sum(r == "works" for r in nn_results.values())
    with capsys.disabled():
        print(
            f"\ntorch idioms (tensor/autograd scope): {len(TENSOR_IDIOMS)} total, {works} work as in torch, "
            f"{refused} refused on purpose with the chainrule way named; "
            f"nn/optim/data scope (other part of issue 12): {nn_works} of {len(NN_IDIOMS)} work"
        )
    assert len(TENSOR_IDIOMS) >= 166
    assert works + refused == len(TENSOR_IDIOMS), {k: v for k, v in results.items() if v.startswith("fails")}


def test_a_planted_difference_is_caught(torch_defaults):
    """The comparison is not vacuous: a wrong value, a wrong dtype and a missing error each fail."""
    wrong_value = Idiom("planted", lambda L: L.ones(2) * (3 if L is cr else 2))
    wrong_dtype = Idiom("planted", lambda L: L.ones(2, dtype=L.float64 if L is cr else L.float32))
    silent = Idiom("planted", lambda L: L.ones(2), "raises", "anything")
    assert outcome(wrong_value).startswith("fails")
    assert outcome(wrong_dtype).startswith("fails") and "dtype" in outcome(wrong_dtype)
    assert outcome(silent).startswith("fails")
