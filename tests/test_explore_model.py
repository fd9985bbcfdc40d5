"""``cr.explore(output)``: the explorer on a graph recorded from ordinary code (issue 24, item 4), in Chromium."""

from __future__ import annotations

import html
import re
import shutil

import numpy as np
import pytest
import torch

import chainrule as cr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _model_and_loss():
    rng = np.random.default_rng(3)
    model = cr.nn.Sequential(cr.nn.Linear(3, 4), cr.nn.Tanh(), cr.nn.Linear(4, 2))
    x = rng.normal(size=(5, 3))
    y = np.array([0, 1, 1, 0, 1])
    loss = cr.nn.cross_entropy(model(cr.tensor(x)), y)
    return model, x, y, loss


def test_explore_names_parameters_and_leaves_grad_alone():
    model, _, _, loss = _model_and_loss()
    ex = cr.explore(loss, model=model)
    assert isinstance(ex, cr.explain.Exploration)
    assert [leaf.label for leaf in ex.trace.leaves if "." in leaf.label] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(p.grad is None for p in model.parameters())  # accumulate=False by default
    loss.backward()  # the graph is kept for the learner's own backward
    assert model[0].weight.grad is not None


def test_the_notebook_view_is_a_sandboxed_offline_frame():
    model, _, _, loss = _model_and_loss()
    frame = cr.explore(loss, model=model)._repr_html_()
    assert frame.startswith("<iframe") and 'sandbox="allow-scripts"' in frame
    page = html.unescape(re.search(r'srcdoc="(.*)"></iframe>', frame, re.S).group(1))
    assert page.startswith("<!DOCTYPE html>") and "0.weight" in page
    assert not re.search(r"(src|href)=\"https?://", page), "the page must fetch nothing"


def test_the_page_carries_the_matrix_form_in_the_same_names():
    model, _, _, total = _model_and_loss()  # the page calls the output what this code calls it
    ex = cr.explore(total, model=model)
    assert ex.trace.output == "total" and ex.derive_text is not None
    assert "d0.weight = " in ex.derive_text and "checked against central differences" in ex.derive_text
    labels = {s.label for s in ex.trace.steps}
    assert "logprobs" in labels and "logprobs = log_softmax" in ex.derive_text  # one name for one value


def test_explore_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="explore: expected the Tensor"):
        cr.explore(3.0)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_steps_to_torch_s_gradients(tmp_path):
    from playwright.sync_api import sync_playwright

    model, x, y, loss = _model_and_loss()
    path = cr.explore(loss, model=model).save_html(tmp_path / "model.html")
    # the same weights in torch: the gradients the page ends on must be torch's
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    with torch.no_grad():
        for (_, p), (_, q) in zip(model.named_parameters(), tm.named_parameters()):
            q.copy_(torch.from_numpy(np.asarray(p.data, dtype=np.float64)))
    torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        assert "?" in page.inner_text("#gradients")  # nothing is known before the backward pass
        while not page.is_disabled("#next"):
            page.click("#next")
        shown = page.inner_text("#gradients")
        chain = page.inner_text("#chain")
        browser.close()
    assert "∂out/∂0.weight = " in chain or "∂loss/∂0.weight = " in chain, chain[:300]  # a product along the path
    assert "shortcut:" in chain and "(1×1)" in chain
    assert not errors, errors
    bias = tm[2].bias.grad.numpy()
    assert f"dloss/d2.bias = [{bias[0]:.2f}, {bias[1]:.2f}]".replace("-0.00", "0.00") in shown, shown
    assert "?" not in shown


def test_layer_steps_are_the_derivation_s_equations_with_their_checked_steps():
    model, x, y, loss = _model_and_loss()
    ex = cr.explore(loss, model=model)
    d = cr.derive(loss, module=model)
    layers = ex.layers
    assert [s["equation"] for s in layers if s["phase"] == "forward"] == [ln.text() for ln in d.forward]
    assert [s["equation"] for s in layers if s["phase"] == "backward"] == [ln.text() for ln in d.backward]
    back = {s["name"]: s for s in layers if s["phase"] == "backward"}
    weight = back["d0.weight"]
    assert any("diag(1 − u1²)" in st["text"] for st in weight["steps"])  # tanh's local Jacobian, with its why
    checked = [st["error"] for st in weight["steps"] if st["error"] is not None]
    assert len(checked) >= 5 and max(checked) < 1e-5  # the steps' checks, as derive measured them
    assert weight["chain"]["symbol"] == "∂loss/∂0.weight" and weight["chain"]["paths"][0][-1]["size"] == "20×12"
    # the heat map's numbers are the gradient torch computes for the same weights
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    with torch.no_grad():
        for (_, p), (_, q) in zip(model.named_parameters(), tm.named_parameters()):
            q.copy_(torch.from_numpy(np.asarray(p.data, dtype=np.float64)))
    torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    np.testing.assert_allclose(np.array(weight["values"]["entries"]), tm[0].weight.grad.numpy(), rtol=1e-5)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_steps_layer_by_layer(tmp_path):
    from playwright.sync_api import sync_playwright

    model, _, _, loss = _model_and_loss()
    ex = cr.explore(loss, model=model)
    path = ex.save_html(tmp_path / "layers.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        seen = []
        while True:
            seen.append((page.inner_text("#layer-counter"), page.inner_text("#layer-step .equation")))
            if page.is_disabled("#layer-next"):
                break
            page.click("#layer-next")
        page.click("#layer-prev")
        assert page.inner_text("#layer-step .equation").startswith(ex.layers[-2]["equation"])
        page.click("#layer-next")
        factors = page.locator("#layer-chain .factor .symbol").all_inner_texts()
        cells = page.locator('#layer-step table.heat[aria-label="gradient"] td').count()
        why = page.inner_text("#layer-step .why")
        if tmp_path.exists():
            page.locator("#layers").screenshot(path=str(tmp_path / "layers.png"))
        browser.close()
    assert not errors, errors
    assert [eq.split("    (")[0] for _, eq in seen] == [s["equation"] for s in ex.layers]
    assert seen[0][0].startswith("forward 1 of") and seen[-1][0].startswith("backward")
    last = ex.layers[-1]
    assert factors == [f["symbol"] for f in last["chain"]["paths"][0]]
    assert cells == len(last["values"]["entries"][0]) * len(last["values"]["entries"])
    assert "✓ checked" in why and last["steps"][0]["reason"] in why
