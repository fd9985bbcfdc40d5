"""The explorer in a real browser: headless Chromium (Debian's package) driven by Playwright.

One browser for the module.  Every page is watched for script errors, console
errors and requests to anywhere but the page itself or the local server.
Set CHAINRULE_SCREENSHOTS=DIR to also save the screenshots the docs show.
"""

import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chainrule.explain.command import explain_expression
from chainrule.explain.explore import make_server
from chainrule.explain.page import write_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (it is in the test extra)")
expect = sync_api.expect

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = os.environ.get("CHAINRULE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page that records its errors and every request it makes."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def step_text(self) -> str:
        return self.page.inner_text("#step")

    def check_clean(self, allowed_prefix: str) -> None:
        assert self.errors == []
        outside = [u for u in self.requests if not u.startswith(allowed_prefix)]
        assert outside == [], f"requests outside {allowed_prefix}: {outside}"

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


# The CS231n numbers, by the node's expression: what each backward step must show.
NEURON_BACKWARD = {
    "f = 1 / n7": ["upstream: df/df = 1.00", "-1 / x² = -0.53", "df/dn7 = 1.00 × -0.53 = -0.53"],
    "n7 = 1 + n6": ["df/dn7 = -0.53", "df/dn6 = -0.53 × 1.00 = -0.53"],
    "n6 = exp(n5)": ["exp(x) = 0.37", "df/dn5 = -0.53 × 0.37 = -0.20"],
    "n5 = -n4": ["df/dn4 = -0.20 × -1.00 = 0.20"],
    "n4 = n3 + w2": ["df/dn3 = 0.20 × 1.00 = 0.20", "df/dw2 = 0.20 × 1.00 = 0.20"],
    "n3 = n1 + n2": ["df/dn1 = 0.20 × 1.00 = 0.20", "df/dn2 = 0.20 × 1.00 = 0.20"],
    # 0.20 × 2.00 is 0.40, not the lecture's 0.39: the page shows more decimals where the rounded factors
    # would not give the rounded product
    "n1 = w0 * x0": ["df/dw0 = 0.20 × -1.00 = -0.20", "df/dx0 = 0.1966 × 2.0000 = 0.3932"],
    "n2 = w1 * x1": ["df/dw1 = 0.1966 × -2.0000 = -0.3932", "df/dx1 = 0.1966 × -3.0000 = -0.5898"],
}

TENSOR_AT = ["W=[[1, 2, 3], [4, 5, 6]]", "a=[0.1, -0.2, 0.3]", "b=[0.5, -1]"]


def test_neuron_page_steps_through_the_lecture_numbers(browser, tmp_path):
    # the default expression: what `python -m chainrule` explains
    path, _ = write_page(explain_expression(None, None), tmp_path / "neuron.html")
    w = Watched(browser)
    w.page.goto(path.as_uri())
    assert "f = 0.73" in w.page.inner_text("#title")
    assert w.page.inner_text("#counter") == "step 1 of 21" and w.page.is_disabled("#prev")
    forward, backward = [], {}
    for _ in range(21):
        phase = w.page.inner_text("#phase").lower()
        text = w.step_text()
        node = w.page.eval_on_selector("#graph g.node.current title", "t => t.textContent")
        first = text.splitlines()[0]
        if phase == "forward pass":
            forward.append(text)
        else:
            backward[first] = text
            assert first.startswith(node + " = "), (node, first)  # the highlighted node is this step's
            edges = w.page.eval_on_selector_all("#graph g.edge.current-bwd title", "ts => ts.map(t => t.textContent)")
            assert edges and all(e.endswith("->" + node) for e in edges)
        if "1 / n7" in first and phase == "backward pass":
            w.shot("explorer-neuron.png")
        w.page.keyboard.press("ArrowRight")
    assert w.page.is_disabled("#next") and w.page.inner_text("#counter") == "step 21 of 21"
    assert any("= 1.37" in t for t in forward) and any("= 0.73" in t for t in forward)
    assert any("= 0.37" in t for t in forward) and any("= -1.00" in t for t in forward)
    assert set(backward) == set(NEURON_BACKWARD)
    for text in backward.values():  # every product shown adds up: the shown factors give the shown result
        for a, b, c in re.findall(r"= (-?[\d.]+) × (-?[\d.]+) = (-?[\d.]+)", text):
            decimals = len(c.split(".")[1]) if "." in c else 0
            assert round(float(a) * float(b), decimals) == float(c), (a, b, c)
    for expression, expected in NEURON_BACKWARD.items():
        for fragment in expected:
            assert fragment in backward[expression], (expression, fragment, backward[expression])
    # at the last step every gradient is known; stepping back to the start hides them again
    assert "?" not in w.page.inner_text("#gradients") and "df/dx1 = -0.59" in w.page.inner_text("#gradients")
    w.page.keyboard.press("ArrowLeft")  # ← goes back
    assert w.page.inner_text("#counter") == "step 20 of 21"
    assert "df/dw0 = ?" in w.page.inner_text("#gradients") and "df/dw1 = -0.39" in w.page.inner_text("#gradients")
    w.page.click("#restart")
    assert w.page.inner_text("#phase").lower() == "forward pass"
    pending = w.page.inner_text("#gradients").splitlines()
    assert len(pending) == 5 and all("= ?" in line for line in pending), pending  # no answer before its step
    red = "ts => ts.filter(t => getComputedStyle(t).visibility !== 'hidden').length"
    assert (
        w.page.eval_on_selector_all('#graph g.node text[fill="#cf222e"], #graph g.edge text[fill="#cf222e"]', red) == 0
    )  # no gradient drawn yet
    w.check_clean("file://")


def test_tensor_page_shows_shapes_and_a_jacobian_heat_map(browser, tmp_path):
    ex = explain_expression("sum(sigmoid(W @ a + b))", TENSOR_AT)
    path, _ = write_page(ex, tmp_path / "tensor.html")
    w = Watched(browser)
    w.page.goto(path.as_uri())
    while not w.page.is_disabled("#next"):
        w.page.click("#next")
    text = w.step_text()
    assert text.startswith("n1 = W @ a") and "local Jacobian 2×3" in text and "local Jacobian 2×6" in text
    assert w.page.locator("table.heat").count() == 2
    assert w.page.locator("table.heat").nth(1).locator("td").count() == 6
    assert "dW" in w.page.inner_text("pre.derive")
    w.shot("explorer-tensor.png")
    w.check_clean("file://")


@pytest.fixture(scope="module")
def served():
    srv = make_server(None, None, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_server_mode_explains_what_is_typed_and_shows_errors_inline(browser, served):
    w = Watched(browser)
    w.page.goto(served.url)
    assert "f = 0.73" in w.page.inner_text("#title")
    w.page.fill("#expr", "max(x, y) * z")
    w.page.fill("#values", "x=-2 y=5 z=-4")
    w.page.press("#expr", "Enter")
    expect(w.page.locator("#title")).to_contain_text("-20.00")
    assert "parsed as f = maximum(x, y) * z" in w.page.inner_text("#parsed")
    while w.page.inner_text("#phase").lower() != "backward pass":
        w.page.click("#next")
    w.page.click("#next")  # the max gate, after the product
    text = w.step_text()
    assert (
        "[x > y] + ½[x = y] = 0.00" in text
        and "[y > x] + ½[x = y] = 1.00" in text
        and "df/dy = -4.00 × 1.00 = -4.00" in text
    )
    w.shot("explorer-server.png")

    w.page.fill("#expr", "x +* 2")
    w.page.press("#expr", "Enter")
    expect(w.page.locator("#error")).to_contain_text("invalid syntax")
    assert "invalid syntax" in w.page.inner_text("#error")
    assert "-20.00" in w.page.inner_text("#title")  # the last good explanation stays, and still steps
    w.page.click("#restart")
    assert w.page.inner_text("#counter").startswith("step 1 of")
    w.page.fill("#expr", "x * x")
    w.page.fill("#values", "x=3")
    w.page.press("#values", "Enter")
    expect(w.page.locator("#title")).to_contain_text("9.00")
    assert w.page.inner_text("#error") == ""
    assert "df/dx = ?" in w.page.inner_text("#gradients")  # a new explanation starts at its first step
    w.page.click("#restart")
    while not w.page.is_disabled("#next"):  # to the last step
        w.page.click("#next")
    assert "df/dx = 6.00 (3.00 from f + 3.00 from f)" in w.page.inner_text("#gradients")
    w.check_clean(served.url)


class _OtherOrigin(BaseHTTPRequestHandler):
    """A page on another port: another origin, as a site the user happens to visit."""

    def do_GET(self) -> None:  # noqa: N802
        body = b"<!DOCTYPE html><title>another origin</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass


def test_another_origin_cannot_make_the_server_explain(browser, served):
    # a page elsewhere posts as a cross-site form would (no-cors, text/plain: no preflight) and as a script would
    # (JSON and a guessed token: a preflight, never granted); the server explains nothing
    other = ThreadingHTTPServer(("127.0.0.1", 0), _OtherOrigin)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        before, refused = len(served.timings), served.refused.copy()
        outcome = page.evaluate(
            """async (url) => {
              const out = [];
              const body = JSON.stringify({ expression: "x * 2", values: "x=1" });
              try {
                await fetch(url, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body });
                out.push("sent");
              } catch (e) { out.push("blocked"); }
              try {
                const r = await fetch(url, {
                  method: "POST", headers: { "Content-Type": "application/json", "X-Chainrule-Token": "guess" }, body,
                });
                out.push("read " + r.status);
              } catch (e) { out.push("blocked"); }
              return out;
            }""",
            served.url + "explain",
        )
    finally:
        page.close()
        other.shutdown()
        other.server_close()
    assert outcome == ["blocked", "blocked"]  # neither script can read an answer
    assert served.refused[403] == refused[403] + 1  # the form-like post arrived, from the other origin: refused
    assert served.refused[405] == refused[405] + 1  # the script's preflight (OPTIONS) was never granted
    assert len(served.timings) == before  # and the server explained nothing
