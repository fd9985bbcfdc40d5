"""cr.derive(output, batch="x"): the batch size written B in a recorded graph's equations (issue 24), and
conv2d's closed forms (the im2col view, the cross-correlation, the full convolution) as checked claims.

The exported ``backward()`` is run on batches of other sizes than the recorded one and compared with
PyTorch's autograd (float64); the derivation's own check must pass at two batch sizes, and fail on a
planted wrong rule, including one that is right only at the recorded batch size.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn
from chainrule.explain import derive_forms
from chainrule.explain.derive_graph import DeriveError
from chainrule.explain.derive_run import load
from chainrule.nn import functional as F
from chainrule.primitives import elementwise as EW
from chainrule.primitives import reduction as RED

RTOL = 1e-6
PARAMS = ["emb.weight", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]


def _close(mine: np.ndarray, ref: torch.Tensor, what: str) -> None:
    ref = ref.detach().numpy()
    assert mine.shape == ref.shape, what
    scale = max(float(np.max(np.abs(ref))), 1e-9)
    err = float(np.max(np.abs(mine - ref))) / scale
    assert err < RTOL, f"{what}: relative error {err:.2e}"


# --- the makemore char MLP: embedding, view, linear, batch norm, tanh, linear, cross-entropy ---------------
def _modules(V: int = 27, E: int = 10, T: int = 3, H: int = 64, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    emb = nn.Embedding(V, E, dtype=np.float64, rng=rng)
    fc1 = nn.Linear(E * T, H, dtype=np.float64, rng=rng)
    bn = nn.BatchNorm1d(H, dtype=np.float64)
    with cr.no_grad():  # (a gain and shift that are not 1 and 0, so their gradients matter)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, H)
        bn.bias.data[...] = rng.normal(0, 0.2, H)
    fc2 = nn.Linear(H, V, dtype=np.float64, rng=rng)
    return {"emb": emb, "fc1": fc1, "bn": bn, "fc2": fc2}


def _batch(B: int, V: int = 27, T: int = 3, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, B])
    return rng.integers(0, V, (B, T)), rng.integers(0, V, B)


def _loss(mods: dict, Xb: np.ndarray, Yb: np.ndarray) -> cr.Tensor:
    embcat = mods["emb"](Xb).view(Xb.shape[0], -1)
    h = cr.tanh(mods["bn"](mods["fc1"](embcat)))
    logits = cr.name(mods["fc2"](h), "logits")
    return F.cross_entropy(logits, Yb)


def _torch_grads(mods: dict, Xb: np.ndarray, Yb: np.ndarray) -> dict[str, torch.Tensor]:
    tw = {}
    for prefix, m in mods.items():
        for pname, p in m.named_parameters(prefix=prefix):
            tw[pname] = torch.tensor(np.asarray(p.data), dtype=torch.float64, requires_grad=True)
    B = Xb.shape[0]
    emb = tw["emb.weight"][torch.from_numpy(Xb)].view(B, -1)
    pre = emb @ tw["fc1.weight"].T + tw["fc1.bias"]
    hpre = torch.nn.functional.batch_norm(pre, None, None, tw["bn.weight"], tw["bn.bias"], training=True)
    logits = torch.tanh(hpre) @ tw["fc2.weight"].T + tw["fc2.bias"]
    logits.retain_grad()
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(Yb)).backward()
    return {**{k: v.grad for k, v in tw.items()}, "logits": logits.grad}


def _arguments(d: cr.Derivation, mods: dict, Xb: np.ndarray, Yb: np.ndarray) -> dict:
    """backward()'s keyword arguments for another batch: the same parameters, other labels."""
    args = d.arrays()
    args[d.keywords["Xb"]], args[d.keywords["Yb"]] = Xb, Yb
    return args


def test_char_mlp_prints_the_batch_size_as_B():
    mods = _modules()
    Xb, Yb = _batch(32)
    loss = _loss(mods, Xb, Yb)
    d = cr.derive(loss, modules=mods, batch="Xb")
    assert d.ok, d.check_text()
    text = d.text(steps=True)
    assert "loss = −(Σ logprobs[range(B), Yb]) / B" in text  # the mean over the batch, its range and its count
    assert "logits = u1 · fc2.weightᵀ + fc2.bias" in text or "B×27" in text
    assert "dlogprobs = scatter(−1/B ones(B), (range(B), Yb), B×27)" in text
    assert "B×64" in text and "B×3×10" in text and "64×30" in text  # (the weights keep their numbers)
    assert "(1/B) broadcast(" in text  # batch norm's mean, through the walk
    assert "(2/B)" in text  # its variance's mean
    assert d.steps["dlogits"][-1].text == "= (softmax(logits) − onehot(Yb)) / B"
    norm = [st.text for st in d.steps["dbn.input"] if "σ" in st.text]
    assert norm and "mean_rows(" in norm[0]
    assert d.steps["demb.weight"][-1].text == "= onehot(Xb)ᵀ · reshape(demb, 3B×10)"
    assert "32" not in text.split("\nchecked against")[0]  # the equations: no recorded or stand-in size
    assert d.dims == {32: "B"}  # (no other axis is 32 long: the equations were derived at the recorded size)
    assert "each formula checked numerically at two values of B" in text
    assert d.check.sizes == [{"B": 32}, {"B": 35}]
    assert d.check.text().startswith("checked against central differences at B = 32 and B = 35")
    data = json.loads(d.to_json())
    assert data["sizes"] == {"B": 32}
    eq = {e["name"]: e for e in data["equations"]}
    assert eq["dlogprobs"]["shape"] == "B×27" and "−1/B" in eq["dlogprobs"]["text"]
    assert eq["dlogits"]["steps"][-1]["text"] == "= (softmax(logits) − onehot(Yb)) / B"
    assert eq["dlogits"]["steps"][-1]["check"]["max_error"] < 1e-10
    assert data["check"]["status"] == "passed" and data["check"]["sizes"] == [{"B": 32}, {"B": 35}]
    assert "B = Xb.shape[0]" in d.numpy() and "np.arange(B)" in d.numpy()
    assert "\\begin{aligned}" in d.latex() and "B" in d._repr_html_()


@pytest.mark.parametrize("other", [32, 5, 77])
def test_exported_backward_matches_torch_at_other_batch_sizes(other):
    mods = _modules()
    Xb, Yb = _batch(32)
    d = cr.derive(_loss(mods, Xb, Yb), modules=mods, batch="Xb")
    backward = load(d.numpy())
    X2, Y2 = _batch(other, seed=2)
    grads = backward(**_arguments(d, mods, X2, Y2))
    ref = _torch_grads(mods, X2, Y2)
    assert grads["logits"].shape == (other, 27)
    for name in [*PARAMS, "logits"]:
        _close(grads[name], ref[name], f"{name} at batch {other}")


def test_without_batch_the_export_is_tied_to_the_recorded_size():
    """The control: the same graph derived without batch= prints 32 and its export fails on another batch."""
    mods = _modules()
    Xb, Yb = _batch(32)
    d = cr.derive(_loss(mods, Xb, Yb), modules=mods)
    assert "range(32)" in d.text() and "B" not in d.shape_text((32, 27))
    X2, Y2 = _batch(20, seed=2)
    with pytest.raises(ValueError):
        load(d.numpy())(**_arguments(d, mods, X2, Y2))


def test_unrelated_axes_of_the_batch_length_stay_numbers():
    """Hidden size = batch size = 12, and the flattened embedding is 12 wide too: only the batch axis is B."""
    mods = _modules(E=4, T=3, H=12)
    Xb, Yb = _batch(12)
    d = cr.derive(_loss(mods, Xb, Yb), modules=mods, batch="Xb")
    assert d.ok, d.check_text()
    assert 12 not in d.dims  # (12 is taken by other axes: the equations were derived at a stand-in size)
    shapes = {ln.name: d.shape_text(ln.shape) for ln in d.forward + d.backward}
    assert shapes["bn.input"] == "B×12" and shapes["dfc1.weight"] == "12×12" and shapes["dfc2.weight"] == "27×12"
    assert shapes["logits"] == "B×27" and "B×B" not in d.text()
    assert "reshape(emb, B×12)" in d.text()
    # the notes and the chain were made at a stand-in size: their texts read B where they depend on it
    assert "local Jacobians (never built, sizes at B = 7)" in d.text()
    assert any(j.structure.description.startswith("B stacked identities") for j in d.jacobians)
    factors = [f for link in d.chain.links for path in link.paths for f in path.factors]
    assert any(f.operation.endswith(") / B") for f in factors), [f.operation for f in factors][:3]
    assert not any(" / 7" in f.operation or "7 stacked" in f.description for f in factors)
    grads = load(d.numpy())(**_arguments(d, mods, *_batch(9, seed=3)))
    ref = _torch_grads(mods, *_batch(9, seed=3))
    for name in PARAMS:
        _close(grads[name], ref[name], name)


def test_planted_wrong_rule_fails_the_check(monkeypatch):
    mods = _modules(seed=3)
    Xb, Yb = _batch(32)
    loss = _loss(mods, Xb, Yb)
    monkeypatch.setattr(EW.sqrt, "vjps", (lambda xp, g, out, x: g / out,))
    d = cr.derive(loss, modules=mods, batch="Xb")
    assert d.check.status == "failed" and max(d.errors.values()) > 1e-3


def test_a_rule_right_only_at_the_recorded_batch_size_fails(monkeypatch):
    """mean's rule dividing by the recorded 32 whatever the size: exact at B = 32, so only the second batch
    size the check runs at can catch it."""
    mods = _modules(seed=4)
    Xb, Yb = _batch(32)
    loss = _loss(mods, Xb, Yb)

    def mean_dx(xp, g, out, x, axis, keepdims):
        g = g if keepdims or axis is None else xp.expand_dims(g, axis)
        return xp.broadcast_to(g, xp.shape(x)) / 32.0

    monkeypatch.setattr(RED.mean, "vjps", (mean_dx,))
    d = cr.derive(loss, modules=mods, batch="Xb")
    assert d.check.status == "failed", d.check_text()
    assert "B = 32 and B = 35" in d.check_text()
    right = cr.derive(_loss(mods, Xb, Yb), modules=mods)  # (at the recorded size alone it is right)
    assert right.ok, right.check_text()


def test_bad_batch_arguments_are_named():
    mods = _modules()
    Xb, Yb = _batch(8)
    loss = _loss(mods, Xb, Yb)
    with pytest.raises(DeriveError, match="'X' is not an input of the graph; its inputs are emb.weight, .*Xb"):
        cr.derive(loss, modules=mods, batch="X")
    with pytest.raises(DeriveError, match=r"Xb has shape \(8, 3\), so the batch axis must be in -2..1, not 2"):
        cr.derive(loss, modules=mods, batch=("Xb", 2))
    assert cr.derive(loss, modules=mods, batch={"Xb": 0}, check=False).dims == {8: "B"}
    with pytest.raises(DeriveError, match="give the name of an input"):
        cr.derive(loss, modules=mods, batch=0)
    x = cr.tensor(np.ones((1, 3)))
    one = (x @ cr.tensor(np.ones((3, 2)), requires_grad=True)).sum()
    with pytest.raises(DeriveError, match="axis 0 of x has length 1; a batch of fewer than 2 cannot be told"):
        cr.derive(one, batch="x")


def test_a_batch_axis_merged_by_a_reshape_is_refused():
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((6, 4)))
    W = cr.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    loss = (cr.tanh(x @ W).reshape(-1) ** 2).sum()
    with pytest.raises(DeriveError, match="cannot be followed through 'reshape'"):
        cr.derive(loss, batch="x")
    d = cr.derive(loss, batch=("x", 1))  # (axis 1 of x is the rows of W: followed, and kept whole)
    assert d.ok and d.shape_text(W.shape) == "B×3"


# --- conv2d: the im2col view, the cross-correlation and the full convolution, each a checked claim ----------
def _conv_model(seed: int = 0, B: int = 3):
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=rng)
    fc = nn.Linear(3 * 4 * 4, 4, dtype=np.float64, rng=rng)
    x = cr.tensor(rng.standard_normal((B, 2, 4, 4)), requires_grad=True)
    y = rng.integers(0, 4, B)
    z = conv(x)
    logits = fc(cr.relu(z).reshape(B, -1))
    return {"conv": conv, "fc": fc}, x, y, z, F.cross_entropy(logits, y)


CONV_STEPS = {
    "dconv.weight": ("= Σ_n dz_n · im2col(x)_nᵀ: the im2col view, as matrices", "= dz ⋆ x: "),
    "dx": ("= col2im(conv.weight_matᵀ · dz_n): the im2col view, as matrices", "= dz ∗ flip(conv.weight): "),
}


def test_conv_closed_forms_are_printed_and_checked():
    mods, x, y, z, loss = _conv_model()
    d = cr.derive(loss, modules=mods, names={x: "x", z: "z"})
    assert d.ok, d.check_text()
    for name, texts in CONV_STEPS.items():
        steps = [st for st in d.steps[name] if st.claim is not None and st.claim.kind == "closed form"]
        assert [st.text[: len(t)] for st, t in zip(steps, texts)] == list(texts)
        assert all(st.check is not None and st.check["max_error"] < 1e-10 for st in steps)
    notes = {j.input: j for j in d.jacobians if j.operation == "conv2d(x, conv.weight)"}
    assert "cross-correlation of the input x with dz" in notes["conv.weight"].why
    assert "im2col view" in notes["conv.weight"].why and "im2col view" in notes["x"].why
    assert "full convolution of dz with the kernel flipped" in notes["x"].why
    assert any(j.text().startswith("∂(im2col(x))/∂x") for j in d.jacobians)  # (unfold, by its matrix name)
    for note in notes.values():  # what each note states is checked: the same closed forms as the steps
        assert len(note.claims) == 2 and note.check["max_error"] < 1e-10 and "FALSE" not in note.text()
        assert note.as_dict()["check"]["kind"] == "closed form"


@pytest.mark.parametrize("planted", ["_correlate", "_full_convolution", "_patches", "_col2im"])
def test_a_wrong_conv_closed_form_fails_the_check(planted, monkeypatch):
    """Each of the four statements is a claim the check evaluates: one computed wrongly is marked false."""
    right = getattr(derive_forms, planted)
    if planted == "_full_convolution":  # the kernel not flipped: a cross-correlation instead
        monkeypatch.setattr(derive_forms, planted, lambda dz, w, layer: right(dz, w[:, :, ::-1, ::-1], layer))
    elif planted == "_patches":  # patches read one column to the right
        monkeypatch.setattr(derive_forms, planted, lambda x, layer: right(np.roll(x, 1, axis=3), layer))
    else:
        monkeypatch.setattr(derive_forms, planted, lambda *a: 1.5 * right(*a))
    mods, x, y, z, loss = _conv_model(1)
    d = cr.derive(loss, modules=mods, names={x: "x", z: "z"})
    assert d.check.status == "failed"
    assert "false step line" in d.check.reason and "✗ FALSE" in d.steps_text()
    assert max(d.errors.values()) < 1e-5  # (the equations themselves are right: only the claim is false)
    wrt = "conv.weight" if planted in ("_correlate", "_patches") else "x"
    (note,) = [j for j in d.jacobians if j.operation == "conv2d(x, conv.weight)" and j.input == wrt]
    assert note.check["max_error"] > 1e-3 and "✗ FALSE" in note.text()
    assert f"the note of ∂(conv2d(x, conv.weight))/∂{wrt}: its VJP is false" in d.check.reason


def test_conv_model_with_symbolic_batch_matches_torch():
    mods, x, y, z, loss = _conv_model(2, B=3)
    d = cr.derive(loss, modules=mods, names={x: "x", z: "z"}, batch="x")
    assert d.ok, d.check_text()
    assert {ln.name: d.shape_text(ln.shape) for ln in d.forward}["z"] == "B×3×4×4"
    assert "reshape(relu(z), B×48)" in d.text()
    assert d.steps["dx"][-1].text.startswith("= dz ∗ flip(conv.weight)")
    rng = np.random.default_rng(5)
    x2, y2 = rng.standard_normal((6, 2, 4, 4)), rng.integers(0, 4, 6)
    args = d.arrays()
    args["x"], args["y"] = x2, y2
    grads = load(d.numpy())(**args)
    tw = {k: torch.tensor(np.asarray(v.data), requires_grad=True) for k, v in d.inputs.items() if k != "y" and k != "x"}
    tx = torch.tensor(x2, requires_grad=True)
    tz = torch.nn.functional.conv2d(tx, tw["conv.weight"], tw["conv.bias"], padding=1)
    tl = torch.relu(tz).reshape(6, -1) @ tw["fc.weight"].T + tw["fc.bias"]
    torch.nn.functional.cross_entropy(tl, torch.from_numpy(y2)).backward()
    for name, t in tw.items():
        _close(grads[name], t.grad, name)
    _close(grads["x"], tx.grad, "x")


def test_makemore_every_intermediate_with_symbolic_batch():
    """The exercise's own code (1/n written by hand, a log-softmax written out, .max(1).values): the mean's
    1/n is B, Bessel's 1/(n − 1) is not a count of what its sum adds up, so it stays the recorded number."""
    from tests.test_derive_recorded import _makemore

    rng = np.random.default_rng(8)
    n, V, E, T, H = 16, 27, 5, 3, 12
    shapes = {"C": (V, E), "W1": (E * T, H), "b1": (H,), "W2": (H, V), "b2": (V,), "bngain": (1, H), "bnbias": (1, H)}
    P = {k: cr.tensor(rng.standard_normal(s) * 0.3, requires_grad=True) for k, s in shapes.items()}
    Xb, Yb = rng.integers(0, V, (n, T)), rng.integers(0, V, n)
    values, loss = _makemore(cr, cr.tanh, P, cr.tensor(Xb), cr.tensor(Yb), n)
    d = cr.derive(loss, names=[*((t, k) for k, t in P.items()), *((t, k) for k, t in values.items())], batch="Xb")
    assert d.ok, d.check_text()
    text = d.text()
    assert "bnmeani = (1/B) Σ_rows(hprebn, keepdims)" in text and "bnvar = (1/15) Σ_rows(bndiff2, keepdims)" in text
    assert "loss = −mean(logprobs[range(B), Yb])" in text
    assert "logit_maxes = logits[range(B)[:, None], argmax]" in text
    assert d.steps["dlogits"][-1].text == "= (softmax(logits) − onehot(Yb)) / B"


def test_recorded_steps_are_written_out_and_their_claims_checked():
    """Without batch= too: every step's formulas are written (no placeholder left) and its claim evaluated."""
    mods = _modules(H=16)
    Xb, Yb = _batch(10)
    d = cr.derive(_loss(mods, Xb, Yb), modules=mods)
    assert d.ok, d.check_text()
    assert d.check.steps is not None and d.check.steps.checked > 50 and not d.check.steps.failures
    assert "\x02" not in d.steps_text() and "each formula checked numerically" in d.steps_text()
    assert all(st.check is not None for ln in d.backward for st in ln.steps if st.claim is not None)


def test_derive_inside_no_grad():
    mods = _modules(H=8)
    Xb, Yb = _batch(6)
    loss = _loss(mods, Xb, Yb)
    with cr.no_grad():
        d = cr.derive(loss, modules=mods, batch="Xb")
        plain = cr.derive(loss, modules=mods)
    assert d.ok and plain.ok and "range(B)" in d.text() and "range(6)" in plain.text()


def test_hidden_layer_as_wide_as_the_batch_stays_32():
    """32 rows in the batch and 32 hidden units: only the axes that come from Xb's rows print as B."""
    mods = _modules(H=32)
    Xb, Yb = _batch(32)
    loss = _loss(mods, Xb, Yb)
    d = cr.derive(loss, modules=mods, batch="Xb")
    assert d.ok, d.check_text()
    shapes = {ln.name: d.shape_text(ln.shape) for ln in d.forward + d.backward}
    assert shapes["bn.input"] == "B×32" and shapes["dfc1.weight"] == "32×30" and shapes["dfc2.weight"] == "27×32"
    assert shapes["bn_std"] == "1×32" and "B×B" not in d.text() and "32×B" not in d.text()
    assert "loss = −(Σ logprobs[range(B), Yb]) / B" in d.text()
    grads = load(d.numpy())(**_arguments(d, mods, *_batch(32 + 1, seed=4)))
    ref = _torch_grads(mods, *_batch(32 + 1, seed=4))
    for name in ["fc1.weight", "bn.weight", "fc2.weight", "emb.weight", "logits"]:
        _close(grads[name], ref[name], name)
