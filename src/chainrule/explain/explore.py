"""``chainrule explore [EXPR --at ...]``: the explorer page served on 127.0.0.1, with boxes to type into.

``GET /`` is the page of the starting expression (the CS231n neuron by default);
``POST /explain`` with ``{"expression": "...", "values": "x=-2 y=5"}`` answers
``{"ok": true, "data": ...}`` or ``{"ok": false, "error": "..."}``.  Every request
goes through the same safe parser, limits and budget (:mod:`.budget`) as
``chainrule explain``; nothing is evaluated.

The server is a local service for the page it serves, and only for it:

* it binds to 127.0.0.1 and answers only a ``Host`` of ``127.0.0.1:PORT`` or
  ``localhost:PORT`` (a DNS-rebinding page is refused);
* a ``POST`` needs the page's own origin: an ``Origin`` header, when present, must be
  exactly ``http://`` + that Host; without one, ``Sec-Fetch-Site`` (when present) must
  be ``same-origin`` or ``none``; and it needs the random token the server put in its
  page (``X-Chainrule-Token``; 256 bits, new at every start).  A page on another
  origin can neither read the token nor send the header without a CORS preflight,
  which the server never grants.  Otherwise: ``403``;
* the body must be ``application/json`` (``415``), with a ``Content-Length``
  (``411``; chunked bodies are refused) of at most :data:`MAX_BODY` bytes (``413``),
  nested at most :data:`MAX_JSON_DEPTH` deep (``400``), and arrive, headers and body,
  within :data:`READ_TIMEOUT` seconds (``408``);
* at most :data:`MAX_CONNECTIONS` connections are served at once (the kernel queues
  :data:`BACKLOG` more) and one explanation is computed at a time; a connection that
  finds every place taken for :data:`CONNECTION_WAIT` seconds, or a request that waits
  :data:`QUEUE_WAIT` seconds for its turn, gets ``503``;
* every error is an HTTP status with a JSON body ``{"ok": false, "error": ...}``, and
  nothing a client sends puts a traceback on the console.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import json
import secrets
import socket
import sys
import threading
import time
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from .budget import DEFAULT_MAX_NUMBERS
from .command import _values_text, add_value_arguments, explain_expression, split_values
from .page import page_data, render_page
from .parse import MAX_LENGTH, ParseError

HOST = "127.0.0.1"
MAX_BODY = 4 * MAX_LENGTH + 1024  # an expression and its values, as JSON
MAX_JSON_DEPTH = 4  # the request is one object of strings: depth 1
READ_TIMEOUT = 10.0  # seconds for a request's headers and body to arrive, all together
MAX_CONNECTIONS = 32  # connections served at once
CONNECTION_WAIT = 1.0  # seconds a new connection waits for one of them before 503
QUEUE_WAIT = 10.0  # seconds a request waits for the one explanation at a time before 503
BACKLOG = 128  # connections the kernel queues before the server accepts them
TOKEN_HEADER = "X-Chainrule-Token"


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


def explain_request(body: Any, precision: int = 2, max_numbers: int = DEFAULT_MAX_NUMBERS) -> dict[str, Any]:
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
        ex = explain_expression(
            expression if expression.strip() else None, items or None, precision, max_numbers, "in the values box"
        )
        return {"ok": True, "data": page_data(ex)}
    except ParseError as exc:
        return {"ok": False, "error": str(exc)}


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings not counted).

    Counted before :func:`json.loads`, whose recursion a few thousand brackets would exhaust.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


class ExplorerServer(ThreadingHTTPServer):
    """The explorer's HTTP server: loopback only, bounded in connections, time and work (see the module)."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self,
        port: int,
        first_page: str,
        precision: int,
        *,
        token: str,
        max_numbers: int = DEFAULT_MAX_NUMBERS,
    ) -> None:
        super().__init__((HOST, port), _Handler)
        self.first_page = first_page.encode("utf-8")
        self.precision = precision
        self.token = token
        self.max_numbers = max_numbers
        self.read_timeout, self.connection_wait, self.queue_wait = READ_TIMEOUT, CONNECTION_WAIT, QUEUE_WAIT
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.worker = threading.Lock()  # one explanation at a time: its memory is the budget's, not N times it
        self.timings: collections.deque[float] = collections.deque(maxlen=1000)  # seconds per answered explain
        self.refused: collections.Counter[int] = collections.Counter()  # error replies by status

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def process_request(self, request: Any, client_address: Any) -> None:
        # (the accept loop waits here: newer connections queue in the kernel's backlog meanwhile)
        if not self.connections.acquire(timeout=self.connection_wait):
            threading.Thread(target=self._busy, args=(request,), daemon=True).start()
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def _busy(self, request: socket.socket) -> None:
        """Every connection is taken: answer 503 without reading the request (a second at most)."""
        body = json.dumps({"ok": False, "error": "the explorer is busy; try again in a moment"}).encode()
        head = (
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)
            request.sendall(head.encode("ascii") + body)
            request.shutdown(socket.SHUT_WR)
            request.recv(MAX_BODY)  # let the request arrive, so closing does not reset the connection first
        except OSError:
            pass
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up or sends nonsense: nothing for the console (the reply said what was wrong)


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "chainrule-explorer"
    default_request_version = "HTTP/1.0"  # so even a garbled request line gets a status line with its error

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # each read from the socket; the whole request: the deadline
        super().setup()
        self.expired = False
        self.deadline = threading.Timer(self.server.read_timeout, self._expire)
        self.deadline.daemon = True
        self.deadline.start()

    def _expire(self) -> None:
        """The request did not arrive in time: end its reading (the reply can still go out)."""
        self.expired = True
        try:
            self.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def finish(self) -> None:
        self.deadline.cancel()
        try:
            super().finish()
        except OSError:
            pass  # the client went away before its reply

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass  # quiet: the terminal shows the address, not every request

    def _send(self, status: int, body: bytes, kind: str, extra: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, extra: Optional[dict[str, str]] = None) -> None:
        body = json.dumps(payload, allow_nan=False).encode("utf-8")  # (page data carries no NaN: see page._finite)
        self._send(status, body, "application/json; charset=utf-8", extra)

    def _error(self, status: int, message: str, extra: Optional[dict[str, str]] = None) -> None:
        self.server.refused[status] += 1
        self.close_connection = True
        self._json(status, {"ok": False, "error": message}, extra)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's own errors (a bad request line, too many headers, an unknown method) as JSON."""
        if self.expired:
            code, message = 408, f"the request did not arrive within {self.server.read_timeout:g} seconds"
        elif code == HTTPStatus.NOT_IMPLEMENTED:  # a method other than GET and POST
            code, message = 405, "the explorer serves GET / and POST /explain"
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        try:
            self._error(code, message or phrase, {"Allow": "GET, POST"} if code == 405 else None)
        except OSError:
            pass

    def _local_host(self) -> bool:
        """Only pages from this server may talk to it: a Host other than 127.0.0.1/localhost (a DNS-rebinding
        page) is refused."""
        port = self.server.server_address[1]
        if self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}"):
            return True
        self._error(403, "the explorer answers only http://127.0.0.1 on its own port")
        return False

    def _same_origin(self) -> bool:
        """The page's own origin and token (see the module's policy)."""
        origin = self.headers.get("Origin")
        if origin is not None:
            if origin != "http://" + self.headers.get("Host", ""):
                return False
        elif self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return False
        return hmac.compare_digest(self.headers.get(TOKEN_HEADER, "").encode(), self.server.token.encode())

    def _late(self) -> bool:
        """The headers took longer than the deadline (they were cut there): 408."""
        if self.expired:
            self._error(408, f"the request did not arrive within {self.server.read_timeout:g} seconds")
        return self.expired

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        if self._late() or not self._local_host():
            return
        if "Transfer-Encoding" in self.headers:
            self._error(411, "the explorer reads no chunked bodies")
        elif self.path.split("?", 1)[0] in ("/", "/index.html"):
            self._send(200, self.server.first_page, "text/html; charset=utf-8")
        else:
            self._error(404, "not found: the explorer serves / and POST /explain")

    def _read_body(self) -> Optional[bytes]:
        """The body, or None after answering 411/413/400/408."""
        if "Transfer-Encoding" in self.headers:
            self._error(411, "send the body with a Content-Length (chunked bodies are refused)")
            return None
        text = self.headers.get("Content-Length")
        if text is None:
            self._error(411, "send the body with a Content-Length")
            return None
        text = text.strip()
        length = int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else -1  # ("²".isdigit())
        if length < 0:
            self._error(400, "the Content-Length is not a number of bytes")
            return None
        if length > MAX_BODY:
            self._error(413, f"the request is too large (limit {MAX_BODY} bytes)")
            return None
        chunks, got, stalled = [], 0, False
        try:
            while got < length:
                chunk = self.rfile.read1(length - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except TimeoutError:
            stalled = True
        except OSError:
            pass
        if got < length:
            if self.expired or stalled:
                self._error(408, f"the request did not arrive within {self.server.read_timeout:g} seconds")
            else:
                self._error(400, f"the body ended after {got} of {length} bytes")
            return None
        self.deadline.cancel()  # all here: the rest is the explanation's time
        return b"".join(chunks)

    def do_POST(self) -> None:  # noqa: N802
        if self._late() or not self._local_host():
            return
        if self.path != "/explain":
            self._error(404, "POST to /explain")
            return
        raw = self._read_body()
        if raw is None:
            return
        if not self._same_origin():
            self._error(403, "the explorer answers only its own page (origin and token)")
            return
        kind = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            self._error(415, "send the request as application/json")
            return
        if json_depth(raw) > MAX_JSON_DEPTH:
            self._error(400, f"the JSON is nested too deeply (limit {MAX_JSON_DEPTH})")
            return
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._error(400, "the request is not JSON")
            return
        if not self.server.worker.acquire(timeout=self.server.queue_wait):
            self._error(503, "the explorer is busy; try again in a moment", {"Retry-After": "1"})
            return
        try:
            start = time.perf_counter()
            reply = explain_request(body, self.server.precision, self.server.max_numbers)
            self.server.timings.append(time.perf_counter() - start)
        except MemoryError:
            reply = None
            self._error(503, "out of memory for this expression; try smaller values")
        except Exception as exc:  # a bug of ours, not the client's: one line, no traceback on the console
            reply = None
            self._error(500, f"internal error ({type(exc).__name__}); please report the expression")
        finally:
            self.server.worker.release()
        if reply is not None:
            self._json(200, reply)


def make_server(
    expression: Optional[str],
    at: Optional[list[str]],
    port: int = 0,
    precision: int = 2,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> ExplorerServer:
    """A server (not yet serving) whose first page explains ``expression`` at ``at``; raises ParseError."""
    ex = explain_expression(expression, at, precision, max_numbers)
    token = secrets.token_urlsafe(32)
    page = render_page(page_data(ex), server=True, token=token)
    return ExplorerServer(port, page, precision, token=token, max_numbers=max_numbers)


def run(args: argparse.Namespace) -> int:
    expression, at = split_values(args.at, args.expression)
    try:
        server = make_server(expression, at, args.port, args.precision, args.max_numbers)
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
