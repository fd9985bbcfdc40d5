"""The explorer as a hardened local service (issue 26, round 3): origin and token, bounded bodies, time and load.

Each test names the probe that failed before: a cross-site POST was processed (200), 4,000 nested brackets got no
reply and a RecursionError traceback on the console, a body that never came held its connection forever, a chunked
body served the default explanation, and 200 concurrent POSTs against a backlog of 5 left some unanswered.
"""

import concurrent.futures
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chainrule.explain.explore import BACKLOG, MAX_JSON_DEPTH, TOKEN_HEADER, json_depth, make_server

SRC = str(Path(__file__).resolve().parents[1] / "src")
VALID = json.dumps({"expression": "x * y", "values": "x=2 y=3"}).encode()


@pytest.fixture
def server():
    srv = make_server("x * y", ["x=2", "y=-3"], port=0)
    srv.read_timeout = 1.0  # (10 s in service; short here so the slow clients below are cut quickly)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def exchange(server, data: bytes, timeout: float = 30.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the whole reply: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=timeout) as s:
        s.sendall(data)
        return read_reply(s)


def read_reply(s: socket.socket) -> tuple[int, dict, bytes]:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers, body


def post(server, body: bytes = VALID, **headers) -> tuple[int, dict, bytes]:
    port = server.server_address[1]
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Origin": f"http://127.0.0.1:{port}",
        "Content-Type": "application/json",
        TOKEN_HEADER: server.token,
        "Content-Length": str(len(body)),
    }
    for key, value in headers.items():
        key = key.replace("_", "-")
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    head = "POST /explain HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return exchange(server, head.encode("latin-1") + body)


def error_of(body: bytes) -> str:
    reply = json.loads(body)
    assert reply["ok"] is False
    return reply["error"]


def test_the_page_posts_with_its_origin_and_token(server):
    status, _, body = post(server)
    assert status == 200 and json.loads(body)["data"]["value"] == "6.00"
    port = server.server_address[1]
    status, _, _ = post(server, Host=f"localhost:{port}", Origin=f"http://localhost:{port}")
    assert status == 200  # the same page opened as http://localhost:PORT
    status, _, _ = post(server, Origin=None)  # not a browser (curl): no Origin, no Sec-Fetch-Site
    assert status == 200


def test_the_page_carries_the_servers_own_token(server):
    status, headers, page = exchange(
        server, f"GET / HTTP/1.0\r\nHost: 127.0.0.1:{server.server_address[1]}\r\n\r\n".encode()
    )
    assert status == 200 and f'data-token="{server.token}"'.encode() in page
    assert len(server.token) >= 40  # 32 random bytes
    assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    other = make_server(None, None, port=0)
    assert other.token != server.token
    other.server_close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Content_Type": "text/plain"},  # the probe: it was processed (200)
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": "http://127.0.0.1:1"},  # another port is another origin
        {"Origin": None, "Sec-Fetch-Site": "cross-site"},
        {TOKEN_HEADER: None},
        {TOKEN_HEADER: "guess"},
    ],
)
def test_posts_from_anywhere_else_are_refused_unprocessed(server, headers):
    before = len(server.timings)
    status, _, body = post(server, **headers)
    assert status == 403 and "its own page" in error_of(body)
    assert len(server.timings) == before  # nothing was explained


def test_only_json_is_read(server):
    status, _, body = post(server, Content_Type="text/plain")
    assert status == 415 and "application/json" in error_of(body)


def test_deep_json_is_refused_before_it_is_parsed(server):
    status, _, body = post(server, b"[" * 4000 + b"]" * 4000)  # the probe: no reply, RecursionError on the console
    assert status == 400 and f"nested too deeply (limit {MAX_JSON_DEPTH})" in error_of(body)
    # brackets inside a string are text: they reach the parser, which refuses the expression inline
    status, _, body = post(server, json.dumps({"expression": "(" * 100 + "x" + ")" * 100, "values": "x=1"}).encode())
    assert status == 200 and "nested too deeply" in error_of(body)
    assert json_depth(b'{"a": "[[[[", "b": [[1]], "c": "\\"]"}') == 3


@pytest.mark.parametrize(
    "body, fragment",
    [(b"{not json", "not JSON"), (b"", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1, 2]", "send JSON")],
)
def test_bad_bodies_get_json_errors(server, body, fragment):
    status, headers, reply = post(server, body)
    assert status in (200, 400) and fragment in error_of(reply)
    assert headers["Content-Type"].startswith("application/json")


def test_bodies_need_a_length(server):
    chunked = f"{len(VALID):x}\r\n".encode() + VALID + b"\r\n0\r\n\r\n"
    status, _, body = post(server, chunked, Transfer_Encoding="chunked", Content_Length=None)
    assert status == 411 and "chunked" in error_of(body)  # the probe: it served the default explanation
    status, _, body = post(server, b"", Content_Length=None)
    assert status == 411 and "Content-Length" in error_of(body)
    for bad in ("12abc", "-5", "\u00b2", "1" * 30):
        status, _, body = post(server, VALID, Content_Length=bad)
        assert status == 400 and "Content-Length" in error_of(body)
    status, _, body = post(server, VALID, Content_Length="100000")
    assert status == 413 and "too large" in error_of(body)


def test_a_body_that_never_comes_is_cut_at_the_deadline(server):
    port = server.server_address[1]
    head = (
        f"POST /explain HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{TOKEN_HEADER}: {server.token}\r\nContent-Length: 9000\r\n\r\n"
    )
    start = time.perf_counter()
    status, _, body = exchange(server, head.encode() + b'{"expression":')  # the probe: held open forever
    assert status == 408 and "did not arrive" in error_of(body)
    assert time.perf_counter() - start < 10


def test_headers_that_trickle_in_are_cut_at_the_deadline(server):
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as s:
        s.sendall(b"POST /explain HTTP/1.1\r\n")
        status = 0
        for _ in range(40):  # one header line every 0.2 s: each read is quick, the whole never ends
            time.sleep(0.2)
            try:
                s.sendall(b"X-Padding: 1\r\n")
            except OSError:
                break
            s.setblocking(False)
            try:
                status, _, body = read_reply_nowait(s)
            except BlockingIOError:
                status = 0
            s.setblocking(True)
            if status:
                break
    assert status == 408 and time.perf_counter() - start < 6


def read_reply_nowait(s: socket.socket):
    first = s.recv(65536)
    if not first:
        raise BlockingIOError
    s.setblocking(True)
    s.settimeout(5)
    rest = b""
    while chunk := s.recv(65536):
        rest += chunk
    data = first + rest
    status = int(data.split(b" ", 2)[1])
    return status, {}, data.partition(b"\r\n\r\n")[2]


def test_a_busy_explainer_answers_503(server):
    server.queue_wait = 0.2
    server.worker.acquire()  # an explanation is being computed
    try:
        status, headers, body = post(server)
    finally:
        server.worker.release()
    assert status == 503 and headers["Retry-After"] == "1" and "busy" in error_of(body)
    assert post(server)[0] == 200


def test_connections_beyond_the_limit_answer_503(server):
    server.connections = threading.BoundedSemaphore(1)
    server.connection_wait = 0.2
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
        slow.sendall(b"POST /explain HTTP/1.1\r\n")  # holds the one connection until the deadline
        time.sleep(0.1)
        status, headers, body = post(server)
        assert status == 503 and "busy" in error_of(body)
    time.sleep(1.5)  # the slow one was cut at 1 s
    assert post(server)[0] == 200


def test_200_concurrent_posts_all_get_an_answer():
    srv = make_server("x * y", ["x=2", "y=-3"], port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert srv.request_queue_size == BACKLOG >= 128
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            statuses = list(pool.map(lambda _: post(srv)[0], range(200)))  # the probe: 6 of 200 never answered
    finally:
        srv.shutdown()
        srv.server_close()
    assert len(statuses) == 200 and set(statuses) <= {200, 503}
    assert statuses.count(200) >= 100


def test_other_methods_and_garbage_get_json_errors(server):
    port = server.server_address[1]
    status, _, body = exchange(server, f"PUT /explain HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert status == 405 and "GET / and POST /explain" in error_of(body)
    status, _, body = exchange(server, b"GARBAGE\r\n\r\n")
    assert status == 400 and error_of(body)
    status, _, body = exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n")
    assert status == 414 and error_of(body)
    status, _, body = post(server, Host="evil.example")
    assert status == 403 and error_of(body)


def test_no_traceback_reaches_the_console():
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "explore", "x * y", "--at", "x=2", "y=3", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
        host = f"Host: 127.0.0.1:{port}\r\n"
        junk = [
            f"POST /explain HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 8000\r\n\r\n".encode()
            + b"[" * 4000
            + b"]" * 4000,
            b"GARBAGE\r\n\r\n",
            b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n",
            f"GET / HTTP/1.1\r\n{host}".encode() + b"X: y\r\n" * 200 + b"\r\n",  # too many headers
            f"POST /explain HTTP/1.1\r\n{host}Content-Length: 50\r\n\r\n{{".encode(),  # then hang up
            b"",  # connect and hang up
        ]
        for data in junk:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(data)
                if not data or data.endswith(b"{"):
                    continue  # hang up at once (mid-body, or before a word)
                while s.recv(65536):
                    pass
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "Error" not in err, err
