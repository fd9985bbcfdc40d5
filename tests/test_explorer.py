"""The explorer without a browser: the page is self-contained, its data is the trace's, the server is local and safe."""

import json
import re
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.explain.command import explain_expression
from chainrule.explain.explore import HOST, explain_request, make_server
from chainrule.explain.page import page_data, render_page

TENSOR_AT = ["W=[[1, 2, 3], [4, 5, 6]]", "a=[0.1, -0.2, 0.3]", "b=[0.5, -1]"]


def embedded_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S)
    assert m, "the page embeds its data"
    return json.loads(m.group(1))


def test_html_page_is_self_contained_and_carries_the_trace(tmp_path, capsys):
    path = tmp_path / "neuron.html"
    assert main(["explain", "--html", str(path)]) == 0
    assert "explorer page written to" in capsys.readouterr().out
    page = path.read_text(encoding="utf-8")
    # nothing to fetch: no external script, style sheet, font, image or link target
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(" not in page and "<link" not in page
    assert "default-src 'none'" in page  # and the page forbids it anyway
    data = embedded_data(page)
    assert data["value"] == "0.73" and "<svg" in data["svg"]
    backward = data["backward"]
    assert [s["upstream"] for s in backward[:4]] == ["1.00", "-0.53", "-0.53", "-0.20"]
    div = backward[0]["inputs"][0]
    assert div["formula"] == "-1 / x²" and div["local"] == "-0.53" and div["line"] == "df/dn7 = 1.00 × -0.53 = -0.53"
    grads = {leaf["label"]: leaf["grad"] for leaf in data["leaves"]}
    assert grads == {"w0": "-0.20", "x0": "0.39", "w1": "-0.39", "x1": "-0.59", "w2": "0.20"}


def test_tensor_page_has_shapes_jacobians_and_derive():
    ex = explain_expression("sum(sigmoid(W @ a + b))", TENSOR_AT)
    data = page_data(ex, draw_graph=False)
    steps = {s["node"]: s for s in data["backward"]}
    sigmoid = next(s for s in data["backward"] if s["op"] == "sigmoid")["inputs"][0]["jacobian"]
    assert sigmoid["structure"].startswith("diagonal") and sigmoid["rows"] == sigmoid["cols"] == 2
    matmul = next(s for s in data["backward"] if s["op"] == "matmul")
    wrt_a = next(i for i in matmul["inputs"] if i["label"] == "a")["jacobian"]
    # d(W @ a)/da is W itself: the page shows the measured matrix
    np.testing.assert_allclose(wrt_a["entries"], [[1, 2, 3], [4, 5, 6]])
    wrt_W = next(i for i in matmul["inputs"] if i["label"] == "W")["jacobian"]
    assert wrt_W["structure"].startswith("each input reaches one output")
    assert "dW" in data["derive"] and "2×3" in data["derive"]
    assert any("shapes W: 2×3, a: 3 → 2" in (f.get("shapes") or "") for f in data["forward"])
    assert steps  # (every step is keyed by its node)


def test_script_data_cannot_close_the_script_element():
    ex = explain_expression("x * 2", ["x=1"])
    data = page_data(ex, draw_graph=False)
    data["title"] = "</script><script>alert(1)</script>"
    page = render_page(data)
    assert page.count("</script>") == 2  # the data's and the page script's own
    assert embedded_data(page)["title"] == data["title"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"expression": "x +", "values": "x=1"}, "invalid syntax"),
        ({"expression": "__import__('os')", "values": ""}, "unknown function '__import__'"),
        ({"expression": "x.__class__", "values": "x=1"}, "attribute access"),
        ({"expression": "x * y", "values": "x=1"}, "missing value for y"),
        ({"expression": "x", "values": "x=[1, 2"}, "invalid syntax"),
        ({"expression": "x", "values": ["x=1"]}, "as text"),
        (["not", "an object"], "send JSON"),
        ({"expression": "x ** 1000", "values": "x=2"}, "too large"),
    ],
)
def test_bad_requests_answer_one_line_errors(body, fragment):
    reply = explain_request(body)
    assert reply["ok"] is False and fragment in reply["error"] and "\n" not in reply["error"]


def test_values_box_accepts_spaces_commas_and_lists():
    reply = explain_request({"expression": "sum(w * x) + b", "values": "w=[1, 2], x = [3, 4],b=0.5"})
    assert reply["ok"], reply
    assert reply["data"]["value"] == "11.50"
    assert reply["data"]["values_text"] == "w=[1.0,2.0] x=[3.0,4.0] b=0.5"


@pytest.fixture(scope="module")
def server():
    srv = make_server("x * y", ["x=2", "y=-3"], port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def post(server, payload: bytes, path: str = "/explain"):
    req = urllib.request.Request(server.url.rstrip("/") + path, data=payload, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Chainrule-Token", server.token)  # the page's secret, as the page's script sends it
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_server_binds_to_loopback_and_serves_the_page(server):
    assert server.server_address[0] == HOST == "127.0.0.1"
    with urllib.request.urlopen(server.url, timeout=30) as r:
        page = r.read().decode("utf-8")
    assert 'data-mode="server"' in page and embedded_data(page)["value"] == "-6.00"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "etc/passwd", timeout=30)


def test_server_explains_and_refuses(server):
    status, reply = post(server, json.dumps({"expression": "maximum(z, w)", "values": "z=2 w=-1"}).encode())
    assert status == 200 and reply["ok"] and reply["data"]["value"] == "2.00"
    assert reply["data"]["backward"][0]["inputs"][0]["formula"].startswith("[")
    status, reply = post(server, b"{not json")
    assert status == 400 and not reply["ok"]
    status, reply = post(server, b"x" * 100_000)
    assert status == 413 and "too large" in reply["error"]


def test_server_refuses_other_hosts(server):
    req = urllib.request.Request(server.url, headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 403


def test_fan_out_is_the_sum_of_named_branches():
    data = page_data(explain_expression("x * x + x", ["x=3"]), draw_graph=False)
    (leaf,) = data["leaves"]
    assert leaf["grad"] == "7.00"
    assert [(b["from"], b["grad"]) for b in leaf["branches"]] == [("f", "1.00"), ("n1", "3.00"), ("n1", "3.00")]


def test_explore_command_errors_exit_2(capsys):
    assert main(["explore", "x +", "--at", "x=1", "--no-browser", "--port", "0"]) == 2
    assert "invalid syntax" in capsys.readouterr().err
    assert main(["explore", "--port", "70000"]) == 2


def test_explore_command_prints_its_local_address_and_serves(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "explore", "--at", "x=3", "x * x", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        with urllib.request.urlopen(m.group(0), timeout=30) as r:
            assert embedded_data(r.read().decode("utf-8"))["value"] == "9.00"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_nan_and_inf_travel_as_valid_json():
    reply = explain_request({"expression": "sum(log(v))", "values": "v=[-1, 0, 2]"})
    assert reply["ok"]
    text = json.dumps(reply, allow_nan=False)  # raises if any NaN/Infinity slipped through
    assert "nan" in text and "-inf" in text  # the formatted values still say so
    page = render_page(reply["data"])
    assert embedded_data(page)["value"] == "nan"


def test_a_python_trace_saves_as_an_explorer_page(tmp_path):
    import chainrule as cr

    rng = np.random.default_rng(0)
    model = cr.nn.Sequential(cr.nn.Linear(3, 4), cr.nn.ReLU(), cr.nn.Linear(4, 2))
    loss = cr.nn.cross_entropy(model(cr.tensor(rng.normal(size=(5, 3)))), rng.integers(0, 2, size=5))
    tr = cr.trace(loss, model=model, output_name="loss")
    data = embedded_data(tr.save_html(tmp_path / "mlp.html").read_text(encoding="utf-8"))
    assert data["title"] == "backward pass of loss"
    assert [leaf["label"] for leaf in data["leaves"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(data["backward"]) == len(tr.steps) and data["backward"][0]["node"] == "loss"
