"""cr.draw: DOT source with every node, its value and its gradient; rendering when Graphviz is installed."""

import html
import re
import shutil
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.explain.draw import GraphvizUnavailable, RendererUnavailable, _pip_renderer, renderer

draw_module = sys.modules["chainrule.explain.draw"]

HAS_DOT = shutil.which("dot") is not None


def neuron():
    env = {k: cr.tensor(v, requires_grad=True) for k, v in dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0).items()}
    z = env["w0"] * env["x0"] + env["w1"] * env["x1"] + env["w2"]
    return 1 / (1 + cr.exp(-z)), env


def test_dot_source_has_every_node_with_value_and_gradient():
    f, env = neuron()
    tr = cr.trace(f, names=env, output_name="f", accumulate=False)
    src = cr.draw(f, names=env, output_name="f").source
    assert src.startswith("digraph")
    for leaf in tr.leaves:  # inputs: name, value (green) and gradient (red)
        m = re.search(rf'"{leaf.label}" \[shape=box.*\n', src)
        assert m, leaf.label
        assert f"{leaf.value:.2f}" in m.group(0) and f"{leaf.grad:.2f}" in m.group(0)
    for step in tr.steps:  # operations, and every edge carries value and gradient
        assert re.search(rf'"{step.label}" \[shape=circle', src), step.label
        for e in step.inputs:
            if not e.constant:
                edge = re.search(rf'"{re.escape(e.label)}" -> "{step.label}" \[label=<(.*)>\];', src)
                assert edge, (e.label, step.label)
                assert f"{e.value:.2f}" in edge.group(1) and f"{e.grad:.2f}" in edge.group(1)
                assert "#1a7f37" in edge.group(1) and "#cf222e" in edge.group(1)
    for gate in ("1/x", "+1", "exp", "×(−1)", "×", "+"):
        assert f"label=<{gate}" in src
    assert all(t.grad is None for t in env.values())  # drawing does not touch .grad


def test_draw_accepts_a_trace_and_shows_tensor_shapes():
    W = cr.tensor(np.ones((50, 40)), requires_grad=True)
    v = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.sum(cr.tanh(W)) + cr.sum(v * v)
    src = cr.draw(cr.trace(y, names={"W": W, "v": v})).source
    assert "array 50×40" in src and "[1.00, 2.00]" in src and "[2.00, 4.00]" in src


def test_long_chains_are_collapsed():
    x = cr.tensor(0.1, requires_grad=True)
    y = x
    for _ in range(300):
        y = cr.sin(y)
    src = cr.draw(y, names={"x": x}).source
    assert "297 operations (sin)" in src
    assert src.count("shape=circle") < 10


def test_huge_graphs_are_cut():
    xs = [cr.tensor(float(i), requires_grad=True) for i in range(200)]
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    src = cr.draw(total, max_nodes=30).source
    assert src.count("shape=circle") == 30 and "169 more operations not drawn" in src


HAS_PIP_RENDERER = _pip_renderer() is not None


def hide_dot(monkeypatch, tmp_path):
    """PATH without Graphviz's dot, as for someone who ran only pip install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("dot") is None


def test_without_dot_the_pip_installed_renderer_draws(monkeypatch, tmp_path):
    if not HAS_PIP_RENDERER:
        pytest.skip("graphviz-pure is not installed (the explain and test extras bring it)")
    hide_dot(monkeypatch, tmp_path)
    f, env = neuron()
    d = cr.draw(f, names=env)
    assert "graphviz-pure" in renderer()
    svg = html.unescape(d.save(tmp_path / "neuron.svg").read_text())
    assert "<svg" in svg and "1/x" in svg and "0.39" in svg and "-0.59" in svg
    assert "<svg" in d._repr_svg_() and "<svg" in d._repr_html_()
    assert d.png()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RendererUnavailable, match="PDF needs Graphviz's dot program"):
        d.save(tmp_path / "neuron.pdf")


def test_with_no_renderer_the_error_says_what_to_install(monkeypatch, tmp_path):
    hide_dot(monkeypatch, tmp_path)
    monkeypatch.setattr(draw_module, "_pip_renderer", lambda: None)
    f, env = neuron()
    d = cr.draw(f, names=env)
    assert renderer() is None
    with pytest.raises(RendererUnavailable, match=r"pip install 'chainrule\[explain\]'.*apt-get install graphviz"):
        d.svg()
    assert d._repr_svg_() is None
    note = d._repr_html_()  # a notebook shows why, and the DOT source
    assert "could not draw" in note and "pip install" in note and "digraph" in note
    d.save(tmp_path / "g.dot")  # the source never needs a renderer
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    with pytest.raises(ValueError, match="use .svg, .png"):
        d.save(tmp_path / "g.jpeg2")
    assert GraphvizUnavailable is RendererUnavailable  # the old name still catches it


def test_svg_and_png_are_produced(tmp_path):
    if not HAS_DOT:
        pytest.skip("the Graphviz program 'dot' is not installed (CI installs it)")
    f, env = neuron()
    d = cr.draw(f, names=env)
    svg = d.save(tmp_path / "neuron.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "1/x" in svg and "0.39" in svg
    png = d.save(tmp_path / "neuron.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert "<svg" in d._repr_svg_()


def test_a_two_layer_mlp_drawing_fits_a_notebook():
    rng = np.random.default_rng(0)
    model = cr.nn.Sequential(cr.nn.Linear(4, 8), cr.nn.ReLU(), cr.nn.Linear(8, 3))
    loss = cr.nn.cross_entropy(model(cr.tensor(rng.normal(size=(8, 4)))), rng.integers(0, 3, size=8))
    d = cr.draw(loss, model=model)
    src = d.source
    assert 'size="10.5,100"' in src  # never wider than 10.5 in (fused linear layers keep it shallow: left to right)
    assert "label=<[·]" in src and not re.search(r"label=<[^\n]*indices", src)  # the picking node is compact
    assert '"0.weight" [shape=box' in src and '"2.bias" [shape=box' in src  # parameters by name
    assert "array 8×3" in src and "gradient 8×3" in src  # large tensors by shape
    if renderer() is None:
        pytest.skip("no renderer here (dot or graphviz-pure)")
    width = float(re.search(r'<svg width="([0-9.]+)pt"', d.svg()).group(1))
    assert width <= 10.5 * 72


def test_the_neuron_keeps_its_left_to_right_figure():
    f, env = neuron()
    assert "rankdir=LR" in cr.draw(f, names=env).source
    with pytest.raises(ValueError, match="rankdir must be"):
        cr.draw(f, names=env, rankdir="sideways")
