"""examples/char_mlp.py: the backprop-ninja exercise, checked by cr.compare and against PyTorch's autograd."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import chainrule as cr

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "char_mlp.py"


def _load():
    spec = importlib.util.spec_from_file_location("char_mlp_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ex = _load()


@pytest.fixture(scope="module")
def setup():
    cr.manual_seed(0)
    X, Y = ex.build_dataset(ex.make_names(200))
    model = ex.CharMLP()
    ex.train(model, X, Y, steps=5)
    ix = np.random.default_rng(3).integers(0, len(X), 32)
    return model, X[ix], Y[ix]


def test_made_up_names_are_deterministic():
    assert ex.make_names(5) == ex.make_names(5)
    assert ex.make_names(5, seed=1) != ex.make_names(5)
    X, Y = ex.build_dataset(["ab"])
    assert X.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2]] and Y.tolist() == [1, 2, 0]


def test_every_hand_written_gradient_passes(setup):
    model, Xb, Yb = setup
    pieces = ex.forward_in_pieces(model, Xb, Yb)
    mine = ex.backward_by_hand(pieces, Xb, Yb)
    res = cr.compare(mine, pieces["loss"], names=pieces)
    assert res.ok and len(res.rows) == 26
    assert {r.status for r in res.rows} <= {"exact", "close"}
    assert res.rows[0].name == "logprobs" and res.rows[-1].name == "C"  # backward order
    # the pieces are the modules' forward pass
    module_loss = cr.nn.functional.cross_entropy(model(Xb), Yb)
    assert pieces["loss"].item() == pytest.approx(module_loss.item(), rel=1e-12)


def test_true_gradients_agree_with_torch_autograd(setup):
    """The same weights in torch (float64): its autograd against the hand-written gradients and compare's."""
    model, Xb, Yb = setup
    pieces = ex.forward_in_pieces(model, Xb, Yb)
    mine = ex.backward_by_hand(pieces, Xb, Yb)
    res = cr.compare(mine, pieces["loss"], names=pieces)

    def leaf(t):
        return torch.tensor(t.detach().numpy(), dtype=torch.float64, requires_grad=True)

    C, W1, b1 = leaf(model.emb.weight), leaf(model.fc1.weight), leaf(model.fc1.bias)
    gain, bias, W2, b2 = leaf(model.bn.weight), leaf(model.bn.bias), leaf(model.fc2.weight), leaf(model.fc2.bias)
    Xt, Yt = torch.tensor(Xb), torch.tensor(Yb)
    emb = C[Xt]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ W1.T + b1
    hpreact = torch.nn.functional.batch_norm(hprebn, None, None, gain, bias, training=True, eps=model.bn.eps)
    h = torch.tanh(hpreact)
    logits = h @ W2.T + b2
    for t in (emb, embcat, hprebn, hpreact, h, logits):
        t.retain_grad()
    loss = torch.nn.functional.cross_entropy(logits, Yt)
    loss.backward()
    assert loss.item() == pytest.approx(pieces["loss"].item(), rel=1e-12)
    theirs = {"C": C, "W1": W1, "b1": b1, "bngain": gain, "bnbias": bias, "W2": W2, "b2": b2}
    theirs.update({"emb": emb, "embcat": embcat, "hprebn": hprebn, "hpreact": hpreact, "h": h, "logits": logits})
    for name, t in theirs.items():
        g = t.grad.numpy()  # (b1's is zero up to rounding: batch norm removes the mean; hence the atol)
        np.testing.assert_allclose(mine[name], g, rtol=1e-6, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(res.row(name).true, g, rtol=1e-6, atol=1e-15, err_msg=name)
        assert np.abs(g).max() > 1e-6 or name == "b1"


def test_closed_forms_against_the_modules_graph(setup):
    model, Xb, Yb = setup
    pieces = ex.forward_in_pieces(model, Xb, Yb)
    mine = ex.backward_by_hand(pieces, Xb, Yb)
    short = ex.closed_forms(model, pieces, Yb)
    np.testing.assert_allclose(short["hprebn"], mine["hprebn"], rtol=1e-7, atol=1e-15)
    logits = model(Xb)
    loss = cr.nn.functional.cross_entropy(logits, Yb)
    given = {"emb.weight": mine["C"], "fc1.weight": mine["W1"], "bn.weight": mine["bngain"], "logits": short["logits"]}
    res = cr.compare(given, loss, names={"logits": logits}, module=model)
    assert res.ok and {r.name for r in res.rows} == set(given)
    assert "fc2.bias" in res.missing


def test_planted_fan_out_mistake_is_pinpointed(setup):
    model, Xb, Yb = setup
    pieces = ex.forward_in_pieces(model, Xb, Yb)
    wrong = ex.backward_by_hand(pieces, Xb, Yb, plant="fanout")
    res = cr.compare(wrong, pieces["loss"], names=pieces)
    assert not res.ok
    names = [r.name for r in res.rows]
    at = names.index("bndiff")
    assert all(r.ok for r in res.rows[:at])
    row = res.row("bndiff")
    assert row.status == "wrong" and row.follows is None
    assert "yours leaves out the term from bndiff2 = bndiff ** 2" in row.hints
    assert {t.node for t in row.terms} == {"bnraw", "bndiff2"}
    step = next(t for t in row.terms if t.node == "bndiff2")
    assert step.formula == "2 bndiff" and step.your_upstream_status == "exact"
    np.testing.assert_allclose(step.local, 2 * pieces["bndiff"].numpy())
    assert res.row("hprebn").follows == "bndiff"
    for name in ("W1", "embcat"):
        assert res.row(name).follows == "hprebn"
    assert res.row("emb").follows == "embcat" and res.row("C").follows == "emb"
    assert "start with dbndiff" in str(res)


def test_example_runs_quickly():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), CHAINRULE_EXAMPLE_QUICK="1")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )
    took = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "training 4137 parameters for 20 steps" in out
    assert "compare: 26 gradients of loss checked against its backward pass: 26 exact" in out
    assert "yours leaves out the term from bndiff2 = bndiff ** 2" in out
    assert "all hand-written gradients right: True; the planted mistake caught: True" in out
    assert took < 20
