"""cr.derive(output) on graphs recorded from ordinary chainrule code (issue 24).

Every gradient the exported NumPy ``backward()`` returns is compared with PyTorch's autograd on the same
weights (float64), the derivation's own check (central differences of the replayed forward) must pass,
and a planted wrong VJP rule must make that check fail.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn
from chainrule.explain.derive_graph import DeriveError, keyword_name
from chainrule.nn import functional as F
from chainrule.primitives import elementwise as EW
from chainrule.primitives import linear as LIN

RTOL = 1e-6


def _exported(d: cr.Derivation, tmp_path) -> object:
    """The printed module, imported by Python itself (not the check's interpreter)."""
    path = tmp_path / "exported_backward.py"
    path.write_text(d.numpy())
    spec = importlib.util.spec_from_file_location("exported_backward", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _close(mine: np.ndarray, ref: torch.Tensor, what: str) -> None:
    ref = ref.detach().numpy()
    assert mine.shape == ref.shape, what
    # (a floor for gradients that are zero in exact arithmetic, as the bias before batch norm: rounding noise)
    scale = max(float(np.max(np.abs(ref))), 1e-9)
    err = float(np.max(np.abs(mine - ref))) / scale
    assert err < RTOL, f"{what}: relative error {err:.2e}"


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a.data if isinstance(a, cr.Tensor) else a, dtype=np.float64), requires_grad=True)


# --- a 2-layer MLP in the row layout ------------------------------------------------------------------
def _mlp():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 6, dtype=np.float64), nn.Tanh(), nn.Linear(6, 3, dtype=np.float64))
    x = cr.tensor(rng.standard_normal((5, 4)))
    y = rng.integers(0, 3, 5)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    return model, x, y, logits, loss


def test_mlp_names_equations_and_check():
    model, x, y, logits, loss = _mlp()
    d = cr.derive(loss, module=model)
    assert d.ok, d.check_text()
    assert set(d.inputs) == {"x", "0.weight", "0.bias", "2.weight", "2.bias", "y"}
    assert d.inputs["0.weight"] is model[0].weight and d.inputs["y"] is y
    assert d.tensors["logits"] is logits and d.tensors["loss"] is loss and d.tensors["0.bias"] is model[0].bias
    assert d.keywords["0.weight"] == "_0_weight" and d.keywords["x"] == "x"
    # linear is written in its matrix form, and the row layout's weight gradient is dzᵀ · a
    forward = {ln.name: ln for ln in d.forward}
    assert "logits" in forward  # the caller's own variable
    assert d.equation("d2.weight") == "dlogitsᵀ · u1"
    assert "x · 0.weightᵀ + 0.bias" in d.text()
    assert "[range(5), y]" in d.text()
    assert [ln.name for ln in d.backward if ln.name.startswith("d0")] == ["d0.weight", "d0.bias"]
    assert all(ln.steps for ln in d.backward)
    assert d.own_layout() == "row" and d.layout("row").startswith("row layout (as written)")
    with pytest.raises(ValueError, match="layout it was written in"):
        d.layout("column")


def test_mlp_exported_backward_matches_torch(tmp_path):
    model, x, y, logits, loss = _mlp()
    unused = nn.Linear(2, 2)  # (a module the graph does not use changes no name)
    d = cr.derive(loss)  # the model is found among this function's variables
    assert "0.weight" in d.inputs, unused
    assert d.ok
    grads = _exported(d, tmp_path).backward(**d.arrays())
    tm = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for k in (0, 2):
            tm[k].weight.copy_(torch.from_numpy(model[k].weight.data))
            tm[k].bias.copy_(torch.from_numpy(model[k].bias.data))
    tl = tm(torch.from_numpy(x.data))
    tl.retain_grad()
    torch.nn.functional.cross_entropy(tl, torch.from_numpy(y)).backward()
    for k in (0, 2):
        _close(grads[f"{k}.weight"], tm[k].weight.grad, f"{k}.weight")
        _close(grads[f"{k}.bias"], tm[k].bias.grad, f"{k}.bias")
    _close(grads["logits"], tl.grad, "logits")


def test_planted_wrong_tanh_rule_fails_the_check(monkeypatch):
    model, *_, loss = _mlp()
    monkeypatch.setattr(EW.tanh, "vjps", (lambda xp, g, out, x: g * (1.0 - out),))
    d = cr.derive(loss)
    assert d.check.status == "failed", d.check_text()
    assert "FAILED" in d.check_text()
    assert d.errors["d0.weight"] > 1e-3


def test_planted_wrong_linear_weight_rule_fails_the_check(monkeypatch):
    model, *_, loss = _mlp()
    dx, dW, db = LIN.linear.vjps
    monkeypatch.setattr(LIN.linear, "vjps", (dx, lambda xp, g, out, x, W, b: 2.0 * dW(xp, g, out, x, W, b), db))
    d = cr.derive(loss)
    assert not d.ok
    assert d.errors["d2.weight"] > 0.1


# --- the character-level MLP: embedding, view, linear, batch norm, tanh, linear, cross-entropy -----------
def _char_mlp(seed: int = 0):
    rng = np.random.default_rng(seed)
    V, E, T, H, B = 27, 4, 3, 8, 12
    emb = nn.Embedding(V, E, dtype=np.float64, rng=rng)
    fc1 = nn.Linear(E * T, H, dtype=np.float64, rng=rng)
    bn = nn.BatchNorm1d(H, dtype=np.float64)
    with cr.no_grad():  # (a gain and shift that are not 1 and 0, so their gradients matter)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, H)
        bn.bias.data[...] = rng.normal(0, 0.2, H)
    fc2 = nn.Linear(H, V, dtype=np.float64, rng=rng)
    Xb = rng.integers(0, V, (B, T))
    Yb = rng.integers(0, V, B)
    embcat = emb(Xb).view(B, -1)
    hpreact = bn(fc1(embcat))
    h = cr.tanh(hpreact)
    logits = fc2(h)
    loss = F.cross_entropy(logits, Yb)
    mods = {"emb": emb, "fc1": fc1, "bn": bn, "fc2": fc2}
    return mods, Xb, Yb, loss, {"embcat": embcat, "hpreact": hpreact, "h": h, "logits": logits}


def test_char_mlp_matches_torch(tmp_path):
    mods, Xb, Yb, loss, named = _char_mlp()
    d = cr.derive(loss, modules=mods, names={t: n for n, t in named.items()})
    assert d.ok, d.check_text()
    params = ["emb.weight", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]
    assert set(params) <= set(d.inputs)
    assert {"embcat", "hpreact", "h", "logits"} <= {ln.name for ln in d.forward}
    assert d.equation("demb.weight").startswith("scatter(")
    grads = _exported(d, tmp_path).backward(**d.arrays())

    tw = {name: _t(d.inputs[name]) for name in params}
    B = Xb.shape[0]
    t_emb = tw["emb.weight"][torch.from_numpy(Xb)].view(B, -1)
    t_emb.retain_grad()
    pre = t_emb @ tw["fc1.weight"].T + tw["fc1.bias"]
    t_hpre = torch.nn.functional.batch_norm(pre, None, None, tw["bn.weight"], tw["bn.bias"], training=True)
    t_hpre.retain_grad()
    t_h = torch.tanh(t_hpre)
    t_h.retain_grad()
    t_logits = t_h @ tw["fc2.weight"].T + tw["fc2.bias"]
    t_logits.retain_grad()
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(Yb))
    assert abs(t_loss.item() - float(loss.data)) < 1e-12
    t_loss.backward()
    for name in params:
        _close(grads[name], tw[name].grad, name)
    for name, ref in (("embcat", t_emb), ("hpreact", t_hpre), ("h", t_h), ("logits", t_logits)):
        _close(grads[name], ref.grad, name)


def test_char_mlp_planted_wrong_sqrt_rule_fails(monkeypatch):
    mods, *_, loss, _ = _char_mlp(1)
    # batch norm's 1/√(var + eps) is recorded with sqrt: a wrong rule there must show
    monkeypatch.setattr(EW.sqrt, "vjps", (lambda xp, g, out, x: g / out,))
    d = cr.derive(loss, modules=mods)
    assert d.check.status == "failed"
    assert max(d.errors.values()) > 1e-3


def test_char_mlp_views():
    mods, Xb, Yb, loss, named = _char_mlp()
    emb, fc1, bn, fc2 = mods.values()  # (found among this function's variables: emb.weight, fc1.weight, ...)
    d = cr.derive(loss, names={t: n for n, t in named.items()})
    assert {"emb.weight", "fc1.weight", "bn.bias", "fc2.bias"} <= set(d.inputs), (emb, fc1, bn, fc2)
    data = json.loads(d.to_json())
    assert data["check"]["status"] == "passed"
    assert any(e["name"] == "dbn.weight" for e in data["equations"])
    assert "\\begin{aligned}" in d.latex()
    assert "dhpreact" in d.steps_text()
    assert "chainrule-derivation" in d._repr_html_()


# --- names -------------------------------------------------------------------------------------------
def test_names_from_cr_name_and_names_mapping():
    rng = np.random.default_rng(3)
    W = cr.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    a = cr.tensor(rng.standard_normal((4, 2)))
    out = (cr.tanh(cr.name(W @ a, "z")) ** 2).sum()
    d = cr.derive(out, names={W: "Weights", a: "acts"})
    assert "Weights" in d.inputs and "acts" in d.inputs
    assert "z" in {ln.name for ln in d.forward}
    assert d.equation("dWeights") == "dz · actsᵀ"
    assert d.own_layout() == "column"
    assert d.ok and "at the recorded values" in d.check_text()
    with pytest.raises(ValueError, match="not a usable name"):
        cr.name(W, "two words")


def test_names_as_pairs_name_label_arrays():
    model, x, y, logits, loss = _mlp()
    labels = y
    del y  # (the caller's own name for the labels is gone; the pair gives one)
    d = cr.derive(loss, module=model, names=[(labels, "Y"), (x, "inputs")])
    assert "Y" in d.inputs and d.inputs["Y"] is labels and "inputs" in d.inputs
    assert "[range(5), Y]" in d.text()
    assert d.ok


def test_keyword_spelling():
    assert keyword_name("fc1.weight") == "fc1_weight"
    assert keyword_name("0.bias") == "_0_bias"
    assert keyword_name("lambda") == "_lambda"


# --- operations real code uses -----------------------------------------------------------------------
OPS = {
    "var": (lambda x: x.var(0), lambda x: x.var(0)),
    "std": (lambda x: x.std(1), lambda x: x.std(1)),
    "norm": (lambda x: x.norm(), lambda x: x.norm()),
    "square": (lambda x: x.square(), lambda x: x.square()),
    "where": (lambda x: cr.where(x.data > 0, x, x * 2), lambda x: torch.where(x > 0, x, x * 2)),
    "cat": (lambda x: cr.cat([x, x * x], 1), lambda x: torch.cat([x, x * x], 1)),
    "permute": (lambda x: x.permute(1, 0), lambda x: x.permute(1, 0)),
    "view": (lambda x: x.view(12), lambda x: x.view(12)),
    "layer_norm": (lambda x: F.layer_norm(x, (3,)), lambda x: torch.nn.functional.layer_norm(x, (3,))),
    "relu": (cr.relu, torch.relu),
    "softmax": (lambda x: cr.softmax(x, 1), lambda x: torch.softmax(x, 1)),
    "log_softmax": (lambda x: F.log_softmax(x, 1), lambda x: torch.log_softmax(x, 1)),
    "sigmoid": (cr.sigmoid, torch.sigmoid),
    "mse": (lambda x: F.mse_loss(x, cr.ones((4, 3))), lambda x: torch.nn.functional.mse_loss(x, torch.ones(4, 3))),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7)),
    "sin_cos": (lambda x: cr.sin(x) * cr.cos(x), lambda x: torch.sin(x) * torch.cos(x)),
    "log1p_log2": (
        lambda x: cr.log1p(x * x) + cr.log2(x * x + 1),
        lambda x: torch.log1p(x * x) + torch.log2(x * x + 1),
    ),
    "max_values": (lambda x: x.max(1, keepdim=True).values, lambda x: x.max(1, keepdim=True).values),
    "silu": (F.silu, torch.nn.functional.silu),
    "leaky_relu": (F.leaky_relu, torch.nn.functional.leaky_relu),
    "elu": (F.elu, torch.nn.functional.elu),
    "softplus": (F.softplus, torch.nn.functional.softplus),
    "avg_pool": (
        lambda x: F.avg_pool2d(x.reshape(1, 1, 4, 3), 2, 1),
        lambda x: torch.nn.functional.avg_pool2d(x.reshape(1, 1, 4, 3), 2, 1),
    ),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_operation_matches_torch(op, tmp_path):
    mine, theirs = OPS[op]
    rng = np.random.default_rng(7)
    xv = rng.standard_normal((4, 3))
    x = cr.tensor(xv, requires_grad=True)
    y = mine(x)
    w = rng.standard_normal(y.shape)
    loss = (y * w).sum()
    d = cr.derive(loss)
    assert d.ok, d.check_text()
    grads = _exported(d, tmp_path).backward(**d.arrays())
    tx = torch.tensor(xv, requires_grad=True)
    (theirs(tx) * torch.from_numpy(w)).sum().backward()
    _close(grads["x"], tx.grad, op)


def test_unsupported_operation_is_named():
    x = cr.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    loss = (F.gelu(x) * 2.0).sum()  # (the exact GELU records erf)
    with pytest.raises(DeriveError, match=r"'erf' \(output shape \(3, 4\)\).*supports: .*matmul"):
        cr.derive(loss)


def test_string_form_unchanged_and_bad_calls():
    d = cr.derive("z = W @ a; E = sum(z)", {"W": (2, 3), "a": (3, 1)})
    assert d.ok and d.equation("dW") == "dz · aᵀ"
    with pytest.raises(TypeError, match="needs the shapes"):
        cr.derive("z = W @ a")
    *_, loss = _mlp()
    with pytest.raises(TypeError, match="pass no shapes"):
        cr.derive(loss, {"x": (2, 2)})
    with pytest.raises(DeriveError, match="'q' is not an input of the graph; its inputs are x1, "):
        cr.derive(loss, batch="q")  # (batch= itself: tests/test_derive_batch.py)
    with pytest.raises(DeriveError, match="leaf"):
        cr.derive(cr.tensor([1.0], requires_grad=True))


# --- closed forms of the composite layers (steps, claimed only where they agree) --------------------------
def _last_step(d: cr.Derivation, name: str) -> str:
    return d.steps[name][-1].text


def test_char_mlp_closed_forms():
    mods, Xb, Yb, loss, named = _char_mlp()
    d = cr.derive(loss, modules=mods, names={t: n for n, t in named.items()})
    B = Xb.shape[0]
    assert all(ln.steps for ln in d.backward)  # every parameter and named value: an equation with its steps
    assert _last_step(d, "dlogits") == f"= (softmax(logits) − onehot(Yb)) / {B}"
    # the batch norm input was unnamed: it is named after the layer, and its gradient gets the closed form
    assert "bn.input" in {ln.name for ln in d.forward}
    assert _last_step(d, "dbn.input") == (
        "= (bn.weight / σ) ⊙ (dhpreact − mean_rows(dhpreact) − x̂ ⊙ mean_rows(dhpreact ⊙ x̂))"
    )
    assert _last_step(d, "demb.weight") == f"= onehot(Xb)ᵀ · reshape(demb, {Xb.size}×4)"
    # the closed forms, computed here independently, against the exported gradients
    grads = _exported_grads(d)
    logits = named["logits"].data
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(27)[Yb]
    assert np.allclose(grads["logits"], (p - onehot) / B, rtol=1e-10, atol=1e-14)
    onehot_x = np.eye(27)[Xb.reshape(-1)]
    assert np.allclose(grads["emb.weight"], onehot_x.T @ grads["emb"].reshape(-1, 4), rtol=1e-10, atol=1e-14)


def _exported_grads(d: cr.Derivation) -> dict:
    from chainrule.explain.derive_run import load

    return load(d.numpy())(**d.arrays())


def test_layer_norm_closed_form_and_wrong_rule(monkeypatch):
    rng = np.random.default_rng(5)
    ln = nn.LayerNorm(6, dtype=np.float64)
    with cr.no_grad():
        ln.weight.data[...] = rng.uniform(0.5, 1.5, 6)
    x = cr.tensor(rng.standard_normal((4, 6)), requires_grad=True)
    w = rng.standard_normal((4, 6))
    out = ln(x)
    loss = (out * w).sum()
    d = cr.derive(loss)
    assert d.ok
    assert _last_step(d, "dx").startswith("= (1 / σ) ⊙ ((dout ⊙ ln.weight) − mean_cols(dout ⊙ ln.weight)")
    # a wrong rule for the division inside the norm: the check fails and no closed form is claimed
    div_dx, div_dy = EW.div.vjps
    monkeypatch.setattr(EW.div, "vjps", (div_dx, lambda xp, g, out, x, y: -g * x / y))
    bad = cr.derive(loss)
    assert not bad.ok
    assert "closed form" not in bad.steps["dx"][-1].reason


# --- docs/derive.md's "Your own model" prints what it shows ------------------------------------------------
def _doc_examples() -> list[tuple[str, str]]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "derive.md").read_text(encoding="utf-8")
    section = text[text.index("## Your own model") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```\n\nprints \(a real run\)\n\n```\n(.*?)```", section, re.S)


@pytest.mark.parametrize("index", range(2))
def test_doc_examples_print_what_they_show(index, capsys):
    examples = _doc_examples()
    assert len(examples) == 2
    code, shown = examples[index]
    exec(compile(code, "docs/derive.md", "exec"), {"__name__": "__doc__"})  # the project's own docs
    printed = capsys.readouterr().out.split("\n")
    for got, want in zip(printed, shown.split("\n"), strict=True):
        if want.startswith("checked against"):  # (the error's last digits depend on the BLAS)
            assert got.startswith("checked against central differences at the recorded values")
        else:
            assert got == want


def test_linear_jacobian_notes_count_the_real_nonzeros():
    model, x, y, logits, loss = _mlp()
    d = cr.derive(loss)
    notes = [j for j in d.jacobians if j.primitive is not None and j.primitive.name == "linear"]
    assert {j.role for j in notes} == {0, 1, 2}
    rng = np.random.default_rng(11)
    for j in notes:
        shapes = [shape for _, shape in j.operands]
        args = [torch.tensor(rng.standard_normal(s)) for s in shapes]

        def f(a, j=j, args=args):
            full = list(args)
            full[j.role] = a
            return full[0] @ full[1].T + full[2]

        jac = torch.autograd.functional.jacobian(f, args[j.role]).reshape(j.rows, j.cols)
        assert int((jac != 0).sum()) == j.structure.nonzeros, j.text()
        assert j.structure.kind != "dense"


# --- a one-block attention model -----------------------------------------------------------------------------
def test_attention_block_matches_torch(tmp_path):
    rng = np.random.default_rng(4)
    B, T, C, V = 2, 5, 4, 7
    layers = {n: nn.Linear(C, C if n != "head" else V, dtype=np.float64, rng=rng) for n in ("q", "k", "v", "head")}
    x = cr.tensor(rng.standard_normal((B, T, C)))
    targets = rng.integers(0, V, B * T)
    q, k, v = layers["q"](x), layers["k"](x), layers["v"](x)
    att = cr.softmax(q @ k.transpose(-2, -1) / np.sqrt(C), -1)
    mixed = att @ v
    logits = layers["head"](mixed).view(B * T, V)
    loss = F.cross_entropy(logits, targets)
    d = cr.derive(loss, modules=layers)
    assert d.ok, d.check_text()
    assert {"att", "mixed", "logits"} <= {ln.name for ln in d.forward}
    assert d.equation("dv") == "attᵀ · dmixed"
    grads = _exported(d, tmp_path).backward(**d.arrays())
    tw = {name: _t(d.inputs[name]) for name in d.inputs if "." in name}
    tx = torch.from_numpy(x.data)

    def lin(n, a):
        return a @ tw[f"{n}.weight"].T + tw[f"{n}.bias"]

    tq, tk, tv = lin("q", tx), lin("k", tx), lin("v", tx)
    tatt = torch.softmax(tq @ tk.transpose(-2, -1) / np.sqrt(C), -1)
    tl = lin("head", tatt @ tv).reshape(B * T, V)
    torch.nn.functional.cross_entropy(tl, torch.from_numpy(targets)).backward()
    assert len(tw) == 8
    for name, t in tw.items():
        _close(grads[name], t.grad, name)


# --- a small CNN: conv2d (im2col), relu, max pooling, linear, cross-entropy -------------------------------------
def _cnn(seed: int = 0, padding: int = 1):
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(2, 3, 3, padding=padding, dtype=np.float64, rng=rng)
    side = 4 if padding else 6
    fc = nn.Linear(3 * 2 * 2, 4, dtype=np.float64, rng=rng)
    x = cr.tensor(rng.standard_normal((2, 2, side, side)), requires_grad=True)
    y = rng.integers(0, 4, 2)
    z = conv(x)
    pooled = F.max_pool2d(cr.relu(z), 2)
    logits = fc(pooled.view(2, -1))
    loss = F.cross_entropy(logits, y)
    return {"conv": conv, "fc": fc}, x, y, z, loss


@pytest.mark.parametrize("padding", [1, 0])
def test_cnn_matches_torch(padding, tmp_path):
    mods, x, y, z, loss = _cnn(padding=padding)
    d = cr.derive(loss, modules=mods, names={x: "x", z: "z"})
    assert d.ok, d.check_text()
    assert "im2col(x)" in d.text() and d.equation("dx").startswith("col2im(")
    assert d.steps["dconv.weight"][-1].text.startswith("= dz ⋆ x")
    assert d.steps["dx"][-1].text == "= dz ∗ flip(conv.weight): the full convolution of dz with the kernel flipped"
    grads = _exported(d, tmp_path).backward(**d.arrays())
    tw = {name: _t(d.inputs[name]) for name in ("conv.weight", "conv.bias", "fc.weight", "fc.bias")}
    tx = _t(x)
    tz = torch.nn.functional.conv2d(tx, tw["conv.weight"], tw["conv.bias"], padding=padding)
    tz.retain_grad()
    tp = torch.nn.functional.max_pool2d(torch.relu(tz), 2)
    tl = tp.reshape(2, -1) @ tw["fc.weight"].T + tw["fc.bias"]
    torch.nn.functional.cross_entropy(tl, torch.from_numpy(y)).backward()
    for name, t in tw.items():
        _close(grads[name], t.grad, name)
    _close(grads["x"], tx.grad, "x")
    _close(grads["z"], tz.grad, "z")


def test_cnn_planted_wrong_conv_rule_fails(monkeypatch):
    from chainrule.primitives import nn as PNN

    mods, x, y, z, loss = _cnn(2)
    (rule,) = PNN.unfold.vjps
    monkeypatch.setattr(PNN.unfold, "vjps", (lambda xp, g, out, x, *p: 2.0 * rule(xp, g, out, x, *p),))
    d = cr.derive(loss, modules=mods, names={x: "x", z: "z"})
    assert d.check.status == "failed"
    assert d.errors["dx"] > 0.1
    # the closed forms are printed, and the one the wrong rule contradicts is marked false by the steps' check
    last = d.steps["dx"][-1]
    assert "full convolution" in last.text and last.check["max_error"] > 0.1
    assert "✗ FALSE" in d.steps_text()


def test_unfold_jacobian_note_counts_the_real_nonzeros():
    mods, x, y, z, loss = _cnn(padding=0)
    d = cr.derive(loss, modules=mods)
    (note,) = [j for j in d.jacobians if j.primitive is not None and j.primitive.name == "unfold"]
    kernel, dilation, padding, stride = note.params
    jac = torch.autograd.functional.jacobian(
        lambda a: torch.nn.functional.unfold(a, kernel, dilation, padding, stride), torch.tensor(x.data)
    ).reshape(note.rows, note.cols)
    assert note.structure.exact and int((jac != 0).sum()) == note.structure.nonzeros


def test_dropout_mask_is_an_input_and_float32_models_check_in_float64():
    rng = np.random.default_rng(9)
    fc = nn.Linear(5, 3, rng=rng)  # float32 parameters: the check and the export run in float64
    x = cr.tensor(rng.standard_normal((4, 5)).astype(np.float32))
    hidden = F.dropout(fc(x), 0.5, rng=rng)
    loss = (hidden**2).sum()
    d = cr.derive(loss)
    assert d.ok, d.check_text()
    masks = [n for n, v in d.inputs.items() if isinstance(v, np.ndarray) and n not in ("x",)]
    assert masks == ["c1"]  # the dropout's scaled mask, an input of backward()
    grads = _exported_grads(d)
    ref = cr.autograd.grad(loss, [fc.weight])[0].data  # the engine's own float32 backward
    assert np.allclose(grads["fc.weight"], ref, rtol=1e-5, atol=1e-6)
    assert all(ln.steps for ln in d.backward)


def test_float32_mlp_with_cross_entropy_checks():
    """The mean's divisor is recorded as a float32 constant; the replay computes in float64 all the same."""
    rng = np.random.default_rng(2)
    model = nn.MLP([5, 6, 3], rng=rng)  # float32 parameters, relu between the layers
    x = cr.tensor(rng.standard_normal((4, 5)).astype(np.float32))
    y = rng.integers(0, 3, 4)
    loss = F.cross_entropy(model(x), y)
    d = cr.derive(loss)
    assert d.ok, d.check_text()
    assert d.max_relative_error < 1e-6


# --- the makemore exercise: every intermediate of a hand-split char-MLP, against torch -----------------------
def _makemore(lib, tanh, P, Xb, Yb, n):
    v = {}
    v["emb"] = P["C"][Xb]
    v["embcat"] = v["emb"].view(v["emb"].shape[0], -1)
    v["hprebn"] = v["embcat"] @ P["W1"] + P["b1"]
    v["bnmeani"] = 1 / n * v["hprebn"].sum(0, keepdim=True)
    v["bndiff"] = v["hprebn"] - v["bnmeani"]
    v["bndiff2"] = v["bndiff"] ** 2
    v["bnvar"] = 1 / (n - 1) * (v["bndiff2"]).sum(0, keepdim=True)
    v["bnvar_inv"] = (v["bnvar"] + 1e-5) ** -0.5
    v["bnraw"] = v["bndiff"] * v["bnvar_inv"]
    v["hpreact"] = P["bngain"] * v["bnraw"] + P["bnbias"]
    v["h"] = tanh(v["hpreact"])
    v["logits"] = v["h"] @ P["W2"] + P["b2"]
    v["logit_maxes"] = v["logits"].max(1, keepdim=True).values
    v["norm_logits"] = v["logits"] - v["logit_maxes"]
    v["counts"] = v["norm_logits"].exp()
    v["counts_sum"] = v["counts"].sum(1, keepdim=True)
    v["counts_sum_inv"] = v["counts_sum"] ** -1
    v["probs"] = v["counts"] * v["counts_sum_inv"]
    v["logprobs"] = v["probs"].log()
    loss = -v["logprobs"][range(n), Yb].mean()
    return v, loss


def test_makemore_exercise_every_intermediate_matches_torch():
    rng = np.random.default_rng(8)
    n, V, E, T, H = 16, 27, 5, 3, 12
    shapes = {"C": (V, E), "W1": (E * T, H), "b1": (H,), "W2": (H, V), "b2": (V,), "bngain": (1, H), "bnbias": (1, H)}
    raw = {k: rng.standard_normal(s) * (1.0 if k == "C" else 0.3) for k, s in shapes.items()}
    Xb, Yb = rng.integers(0, V, (n, T)), rng.integers(0, V, n)
    P = {k: cr.tensor(a, requires_grad=True) for k, a in raw.items()}
    values, loss = _makemore(cr, cr.tanh, P, cr.tensor(Xb), cr.tensor(Yb), n)
    d = cr.derive(loss, names=[*((t, k) for k, t in P.items()), *((t, k) for k, t in values.items())])
    assert d.ok, d.check_text()
    # (the labels were converted on the way in: named by the caller's array of equal values)
    assert "loss = −mean(logprobs[range(16), Yb])" in d.text() and "emb = C[Xb]" in d.text()
    assert "logit_maxes = logits[range(16)[:, None], argmax]" in d.text()  # (.max(1).values: the picked entries)
    grads = _exported_grads(d)
    TP = {k: torch.tensor(a, requires_grad=True) for k, a in raw.items()}
    tvalues, tloss = _makemore(torch, torch.tanh, TP, torch.from_numpy(Xb), torch.from_numpy(Yb), n)
    for t in tvalues.values():
        t.retain_grad()
    tloss.backward()
    for name, t in {**TP, **tvalues}.items():
        _close(grads[name], t.grad, name)
    assert len(tvalues) == 19 and all(ln.steps for ln in d.backward)
    # the log-softmax written out by hand: the textbook form still holds for the scores (and their shift)
    assert d.steps["dlogits"][-1].text == "= (softmax(logits) − onehot(Yb)) / 16"
    assert d.steps["dnorm_logits"][-1].text == "= (softmax(norm_logits) − onehot(Yb)) / 16"
    assert "softmax" not in d.steps["dcounts"][-1].text


def test_first_conv_on_data_names_its_patches():
    """An input that needs no gradient records no im2col node: its patches are a data input, named im2col(x)."""
    rng = np.random.default_rng(6)
    conv = nn.Conv2d(1, 2, 3, padding=1, dtype=np.float64, rng=rng)
    x = cr.tensor(rng.standard_normal((2, 1, 4, 4)))
    loss = (conv(x) ** 2).mean()
    d = cr.derive(loss)
    assert d.ok, d.check_text()
    assert "im2col(x)" in d.inputs and d.keywords["im2col(x)"] == "im2col_x_"
    assert d.equation("dconv.weight").endswith("· im2col(x)ᵀ), 2×1×3×3)")
    grads = _exported_grads(d)
    tw = _t(conv.weight)
    (
        torch.nn.functional.conv2d(torch.from_numpy(x.data), tw, torch.from_numpy(conv.bias.data), padding=1) ** 2
    ).mean().backward()
    _close(grads["conv.weight"], tw.grad, "conv.weight")


def test_clashing_names_get_a_suffix_and_bad_names_are_refused():
    rng = np.random.default_rng(12)
    a = cr.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    b = cr.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    out = cr.name((a @ b).sum(), "total")
    d = cr.derive(out, names=[(a, "W"), (b, "W")])
    assert {"W", "W_2", "total"} <= set(d.tensors) and d.ok
    assert d.keywords["W_2"] == "W_2"
    with pytest.raises(DeriveError, match="not a name"):
        cr.derive(out, names=[(a, "")])
    with pytest.raises(TypeError, match="chainrule.nn modules"):
        cr.derive(out, module=a)
    with pytest.raises(TypeError, match="expected a program string"):
        cr.derive(3.0)


# --- the steps of a recorded graph are written out and checked, as a program's are ---------------------------
def test_recorded_steps_are_written_out_and_checked():
    model, x, y, logits, loss = _mlp()
    d = cr.derive(loss, module=model)
    text = d.steps_text()
    assert "\x02" not in text and "\x01" not in text
    assert text.splitlines()[0].startswith("steps (index form → matrix form") and "each formula checked" in text
    assert "dloss = 1 " in text  # the seed, not a placeholder's number
    assert d.ok and d.check.steps.checked > 10 and not d.check.steps.failures
    x1 = cr.tensor(np.linspace(-1, 1, 3), requires_grad=True)
    t = cr.derive(cr.tanh(x1).sum()).steps_text()
    assert "∂(tanh(x1))/∂x1 = diag(1 − tanh(x1) ⊙ tanh(x1))" in t and "⇒ dx1 = 1 − tanh(x1) ⊙ tanh(x1)" in t


def test_recorded_step_check_fails_on_a_planted_wrong_step(monkeypatch):
    """A wrong local Jacobian in one step (broadcasting's stack of identities, doubled) leaves every equation
    right but makes the step check, and so the derivation's check, fail."""
    from chainrule.explain import derive_steps as DS

    true_bcast = DS._bcast
    monkeypatch.setattr(DS, "_bcast", lambda V, a, b: 2.0 * true_bcast(V, a, b))
    model, x, y, logits, loss = _mlp()
    d = cr.derive(loss, module=model)
    assert not d.ok
    assert "false step line" in d.check_text() and "is false" in " ".join(d.check.steps.failures)


def test_linear_kronecker_notes_are_checked_and_a_wrong_one_fails(monkeypatch):
    """'∂z/∂W is x ⊗ I_m' (W numbered by columns) and '∂z/∂x is I_n ⊗ W' are claims the check evaluates; the
    same text over a wrong matrix fails it."""
    from chainrule.explain import derive_claims as DC
    from chainrule.explain import derive_steps as DS

    model, x, y, logits, loss = _mlp()
    d = cr.derive(loss, module=model)
    notes = [st for ln in d.backward for st in ln.steps if "⊗" in st.text]
    assert len(notes) == 3 and all(st.check is not None and st.check["max_error"] < 1e-8 for st in notes)

    true_claim = DS._linear_claim

    def swapped(edge, env, role, small):  # the Kronecker factors in the wrong order
        claim = true_claim(edge, env, role, small)
        apply = claim.apply
        n_out = int(np.prod(edge.out_shape))
        perm = np.random.default_rng(0).permutation(n_out)
        return DC.Matrix(lambda env, V: apply(env, V)[perm], edge, env, None)

    monkeypatch.setattr(DS, "_linear_claim", swapped)
    model, x, y, logits, loss = _mlp()
    bad = cr.derive(loss, module=model)
    assert not bad.ok and any("⊗" in f and "is false" in f for f in bad.check.steps.failures)


def test_batched_matmul_block_notes_are_checked_and_a_wrong_block_fails(monkeypatch):
    from chainrule.explain import derive_claims as DC
    from chainrule.explain import derive_steps as DS

    rng = np.random.default_rng(2)
    q = cr.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    k = cr.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True)
    scores = q @ k
    loss = (scores * scores).sum()
    d = cr.derive(loss)
    notes = [st for ln in d.backward for st in ln.steps if "⊗" in st.text and "block by block" in st.text]
    assert len(notes) == 2 and all(st.check is not None and st.check["max_error"] < 1e-8 for st in notes)

    true_claim = DS._batched_matmul_claim

    def shifted(edge, env, role):  # the blocks of the wrong batch entries
        claim = true_claim(edge, env, role)
        half = int(np.prod(edge.out_shape)) // 2
        return DC.Matrix(lambda env, V: np.roll(claim.apply(env, V), half, axis=0), edge, env, None)

    monkeypatch.setattr(DS, "_batched_matmul_claim", shifted)
    bad = cr.derive(loss)
    assert not bad.ok and any("block by block" in f and "is false" in f for f in bad.check.steps.failures)


def test_a_shared_matrix_times_a_batch_has_checked_stacked_blocks(monkeypatch):
    """W (one matrix) @ cols (a batch), as conv's im2col product: wrt cols the blocks are on the diagonal, wrt W
    they stack (the VJP sums over the batch); both claims are checked, and a wrong one fails."""
    from chainrule.explain import derive_claims as DC
    from chainrule.explain import derive_steps as DS

    rng = np.random.default_rng(4)
    W = cr.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    cols = cr.tensor(rng.standard_normal((2, 4, 5)), requires_grad=True)
    out = W @ cols
    loss = (out * out).sum()
    d = cr.derive(loss)
    notes = [st for ln in d.backward for st in ln.steps if "⊗" in st.text]
    assert len(notes) == 2 and all(st.check is not None and st.check["max_error"] < 1e-8 for st in notes)
    true_claim = DS._batched_matmul_claim

    def halved(edge, env, role):
        claim = true_claim(edge, env, role)
        return DC.Matrix(lambda env, V: 0.5 * claim.apply(env, V), edge, env, None)

    monkeypatch.setattr(DS, "_batched_matmul_claim", halved)
    assert not cr.derive(loss).ok
