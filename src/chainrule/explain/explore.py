"""``chainrule explore [EXPR --at ...]``: the explorer page served on 127.0.0.1, with boxes to type into.

``GET /`` is the page of the starting expression (the CS231n neuron by default);
``POST /explain`` with ``{"expression": "...", "values": "x=-2 y=5"}`` answers
``{"ok": true, "data": ...}`` or ``{"ok": false, "error": "..."}``.  Every request
goes through the same safe parser and limits as ``chainrule explain``; nothing
is evaluated.  The server binds to the loopback address only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from .command import _values_text, add_value_arguments, explain_expression, split_values
from .page import page_data, render_page
from .parse import MAX_LENGTH, ParseError

HOST = "127.0.0.1"
MAX_BODY = 4 * MAX_LENGTH + 1024  # an expression and its values, as JSON


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expression", nargs="?", help="the starting expression (default: the CS231n sigmoid neuron)")
    add_value_arguments(parser)
    parser.add_argument(
        "--port", type=_port, default=8765, help="the port on 127.0.0.1 (0: any free port; default 8765)"
    )
    parser.add_argument("--no-browser", action="store_true", help="print the address but do not open a browser")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range: use 0 (any free port) to 65535")
    return value


def explain_request(body: Any, precision: int = 2) -> dict[str, Any]:
    """The answer to one ``POST /explain``: the page data, or the parser's one-line error."""
    if not isinstance(body, dict) or not isinstance(body.get("expression", ""), str):
        return {"ok": False, "error": 'send JSON {"expression": "...", "values": "x=-2 y=5"}'}
    expression = body.get("expression", "")
    values = body.get("values", "")
    if not isinstance(values, str):
        return {"ok": False, "error": "values: write them as text, as in x=-2 y=5"}
    if len(values) > 2 * MAX_LENGTH:
        return {"ok": False, "error": f"values: {len(values)} characters (limit {2 * MAX_LENGTH})"}
    try:
        items = _values_text(values)
        ex = explain_expression(expression if expression.strip() else None, items or None, precision)
        return {"ok": True, "data": page_data(ex)}
    except ParseError as exc:
        return {"ok": False, "error": str(exc)}


class ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, first_page: str, precision: int) -> None:
        super().__init__((HOST, port), _Handler)
        self.first_page = first_page.encode("utf-8")
        self.precision = precision
        self.timings: list[float] = []  # seconds per POST /explain, for the curious

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "chainrule-explorer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass  # quiet: the terminal shows the address, not every request

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, allow_nan=False).encode("utf-8")  # (page data carries no NaN: see page._finite)
        self._send(status, body, "application/json; charset=utf-8")

    def _local_host(self) -> bool:
        """Only pages from this server may talk to it: a Host other than 127.0.0.1/localhost (a DNS-rebinding
        page) is refused."""
        port = self.server.server_address[1]
        if self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}"):
            return True
        self._send(403, b"the explorer answers only http://127.0.0.1 on its own port\n", "text/plain; charset=utf-8")
        return False

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        if not self._local_host():
            return
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            self._send(200, self.server.first_page, "text/html; charset=utf-8")
        else:
            self._send(404, b"not found: the explorer serves / and POST /explain\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        if not self._local_host():
            return
        if self.path != "/explain":
            self._json(404, {"ok": False, "error": "POST to /explain"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._json(413, {"ok": False, "error": f"the request is too large (limit {MAX_BODY} bytes)"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError):
            self._json(400, {"ok": False, "error": "the request is not JSON"})
            return
        start = time.perf_counter()
        reply = explain_request(body, self.server.precision)
        self.server.timings.append(time.perf_counter() - start)
        self._json(200, reply)


def make_server(
    expression: Optional[str], at: Optional[list[str]], port: int = 0, precision: int = 2
) -> ExplorerServer:
    """A server (not yet serving) whose first page explains ``expression`` at ``at``; raises ParseError."""
    ex = explain_expression(expression, at, precision)
    return ExplorerServer(port, render_page(page_data(ex), server=True), precision)


def run(args: argparse.Namespace) -> int:
    expression, at = split_values(args.at, args.expression)
    try:
        server = make_server(expression, at, args.port, args.precision)
    except ParseError as exc:
        print(f"chainrule explore: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"chainrule explore: error: cannot listen on {HOST}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"chainrule explorer at {server.url}  (Ctrl+C stops it)", flush=True)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        server.server_close()
    return 0
