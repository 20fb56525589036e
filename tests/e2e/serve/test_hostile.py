"""Requests a production server meets (issue 25) against the shared real server: hostile nesting on
every route, a seeded fuzz of 500 bodies, abandoned requests, slow clients, too many connections.
Each one keeps its keep-alive connection or is closed cleanly with a JSON answer, never a 500."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from tests.e2e.serve.conftest import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    ISSUE_ANSWER,
    ISSUE_PUZZLE,
    KEY,
    MAX_BATCH,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_QUEUE,
    stats,
    wait_idle,
)

pytestmark = pytest.mark.slow  # a server subprocess
AUTH = {"Authorization": f"Bearer {KEY}"}
DEEP = "[" * 1000  # the issue's 1 KB request that gave a 500


class Conn:
    """One keep-alive HTTP/1.1 connection (http.client), which notices when the server drops it."""

    def __init__(self, server: Any):
        self.host, self.port = server.host_port
        self.http = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.http.connect()
        self.sock = self.http.sock

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        hdrs = {**AUTH, **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
        self.http.request(method, path, body=body, headers=hdrs)
        r = self.http.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    @property
    def same_socket(self) -> bool:
        return self.http.sock is self.sock and self.sock is not None

    def close(self) -> None:
        self.http.close()


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_deep_nesting_422_on_every_route_and_the_connection_lives(server):
    """1,000 `[` as the puzzle (JSON text in a string), as the body and inside a field, on every
    solve route: 422 JSON naming the field, and the same connection answers the next request."""
    c = Conn(server)
    cases = [
        ("POST", "/v1/solve", body({"puzzle": DEEP}), "puzzle: not valid JSON (nested deeper than 32 levels)"),
        ("POST", "/v1/solve/stream", body({"puzzle": DEEP}), "puzzle: not valid JSON (nested deeper than 32"),
        ("POST", "/v1/solve/batch", body({"puzzles": [{"puzzle": DEEP}]}), "puzzles[0].puzzle: not valid JSON"),
        ("GET", "/v1/solve/stream?puzzle=" + quote(DEEP), None, "puzzle: not valid JSON (nested deeper than 32"),
        ("POST", "/v1/solve", DEEP.encode(), "body: not valid JSON (nested deeper than 32 levels)"),
        ("POST", "/v1/solve", b'{"puzzle": ' + DEEP.encode() + b"1" + b"]" * 1000 + b"}", "body: not valid JSON"),
        ("POST", "/v1/solve/batch", b'{"puzzles": [' + b"{" * 500 + b"}", "body: not valid JSON (nested deeper"),
    ]
    for method, path, data, message in cases:
        status, headers, reply = c.send(method, path, data)
        assert status == 422 and headers["content-type"] == "application/json", (path, reply[:200])
        assert json.loads(reply)["error"].startswith(message), (path, reply)
        status, _, reply = c.send("POST", "/v1/solve", body({"puzzle": ISSUE_PUZZLE}))
        assert status == 200 and json.loads(reply)["answer"] == ISSUE_ANSWER
        assert c.same_socket, f"{path}: the keep-alive connection was dropped"
    c.close()


# ---- a seeded fuzz of 500 bodies --------------------------------------------------------------------
JUNK: list[Any] = [None, True, 0, -1, 2**70, 1e308, -0.0, "", "x" * 40, "\x00", "\ud800", [], {}, [[]], [1.5] * 36]
FIELDS = ["task", "puzzle", "grid", "tokens", "puzzle_identifier", "return_steps", "timeout_s", "puzzles"]


def nested(rng: np.random.Generator, depth: int) -> str:
    opens = "".join(rng.choice(["[", '{"a":'], size=depth))
    return opens + "1" + "".join("]" if ch == "[" else "}" for ch in reversed(opens) if ch in "[{")


def fuzz_case(rng: np.random.Generator) -> tuple[str, bytes, dict[str, str]]:
    """One generated request: a route, a body and its headers, from one of five kinds."""
    route = str(rng.choice(["/v1/solve", "/v1/solve", "/v1/solve/batch", "/v1/solve/stream"]))
    kind = int(rng.integers(5))
    headers = {"Content-Type": "application/json"}
    if kind == 0:  # nesting: in the body, in a field, as JSON text in the puzzle string
        depth = int(rng.choice([2, 5, 31, 33, 100, 999, 1000, 3000]))
        where = int(rng.integers(3))
        text = nested(rng, depth)
        data = [text.encode(), b'{"puzzle": ' + text.encode() + b"}", body({"puzzle": "[" * depth})][where]
    elif kind == 1:  # sizes: long strings, long arrays, huge numbers, bodies at and over the limit
        n = int(rng.choice([0, 1, 36, 37, 1000, MAX_BODY - 20, MAX_BODY + 10]))
        data = [
            body({"puzzle": "1" * n}),
            body({"tokens": [1] * min(n, MAX_BODY // 3)}),
            b'{"puzzle_identifier": ' + b"9" * min(max(n, 1), MAX_BODY - 40) + b"}",
            b'{"puzzle": "' + ISSUE_PUZZLE.encode() + b'", "timeout_s": 1e999}',
            body({"puzzles": [{"puzzle": ISSUE_PUZZLE}] * min(max(n, 1), MAX_QUEUE + 1)}),
        ][int(rng.integers(5))]
    elif kind == 2:  # types: junk in random fields
        picked = rng.choice(FIELDS, int(rng.integers(1, 4)), replace=False)
        data = json.dumps({f: JUNK[int(rng.integers(len(JUNK)))] for f in picked}).encode()
    elif kind == 3:  # encodings: not UTF-8, UTF-16, a BOM, NULs, escapes of lone surrogates
        text = json.dumps({"puzzle": ISSUE_PUZZLE, "task": "sudoku6"})
        data = [
            text.encode("utf-16"),
            b"\xef\xbb\xbf" + text.encode(),
            text.encode().replace(b"sudoku6", b"sud\xffku6"),
            b'{"task": "\\ud800", "puzzle": "' + ISSUE_PUZZLE.encode() + b'"}',
            b'{"puzzle": "\x00' + ISSUE_PUZZLE.encode() + b'"}',
            bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8)),
            text.encode("latin-1").replace(b"sudoku6", b"sudok\xe96"),
        ][int(rng.integers(7))]
    else:  # content types and truncations of a valid body
        text = body({"puzzle": ISSUE_PUZZLE})
        data = text[: int(rng.integers(len(text) + 1))]
        headers["Content-Type"] = str(
            rng.choice(["application/json", "text/plain", "application/json; charset=latin-1", "multipart/form-data"])
        )
    return route, data, headers


def test_fuzz_500_bodies_no_500_no_reset(server):
    """500 generated bodies (seeded): every answer is a documented status with the JSON error
    shape (or an answer), none is a 500, and no connection is reset: a connection is only ever
    closed after a response that said `Connection: close`."""
    rng = np.random.default_rng(25)
    c = Conn(server)
    seen: dict[int, int] = {}
    for i in range(500):
        route, data, headers = fuzz_case(rng)
        was = c.http.sock  # None after an announced close: http.client then opens a new connection
        try:
            status, hdrs, reply = c.send("POST", route, data, headers)
        except (ConnectionError, http.client.HTTPException) as e:
            pytest.fail(f"case {i} ({route}, {data[:80]!r}): connection broken: {e!r}")
        seen[status] = seen.get(status, 0) + 1
        assert status in (200, 413, 422), (i, route, data[:80], status, reply[:200])
        if status == 200:
            assert reply.startswith(b"event: puzzle") if route.endswith("stream") else b"answer" in reply
        else:
            assert hdrs["content-type"] == "application/json"
            assert set(json.loads(reply)) == {"error", "status"} and json.loads(reply)["status"] == status
        if hdrs.get("connection") != "close" and was is not None:
            assert c.http.sock is was, (i, route, data[:80], status)
    c.close()
    assert seen.get(422, 0) > 200 and seen.get(200, 0) > 10 and seen.get(413, 0) > 0, seen
    assert "500" not in stats_client_statuses(server)


def stats_client_statuses(server) -> dict[str, int]:
    c = Conn(server)
    status, _, reply = c.send("GET", "/v1/stats")
    c.close()
    return json.loads(reply)["responses_by_status"]


# ---- cancellation ---------------------------------------------------------------------------------------
def raw_post(server, path: str, data: bytes) -> socket.socket:
    s = socket.create_connection(server.host_port, timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
    s.sendall(head.encode() + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return s


def test_disconnected_clients_leave_the_queue(server, client):
    """50 clients post a puzzle each (16 slots: 34 wait) and hang up: their puzzles leave the queue
    and the engine within a few engine steps (without cancellation all 50 would be computed,
    ~10 steps), every puzzle is either answered before the hang-up or counted as cancelled, and a
    burst as large as the queue right after is served, not refused."""
    wait_idle(client)
    solved_before = stats(client)["puzzles"]
    cancelled_before = prometheus(client)["hrm_serve_puzzles_cancelled_total"]
    clients = [raw_post(server, "/v1/solve", body({"puzzle": ISSUE_PUZZLE})) for _ in range(25)]
    clients += [raw_post(server, "/v1/solve/batch", body({"puzzles": [{"puzzle": ISSUE_PUZZLE}]})) for _ in range(25)]
    deadline = time.monotonic() + 30
    while (now := stats(client))["queue"]["pending"] + now["puzzles"] - solved_before < 50:  # all 50 read
        assert time.monotonic() < deadline, now["queue"]
        time.sleep(0.005)
    for s in clients:
        s.close()
    at_close = now["engine"]["engine_steps"]
    deadline = time.monotonic() + 30
    while (now := stats(client))["queue"]["pending"]:
        assert time.monotonic() < deadline, now["queue"]
        time.sleep(0.01)
    assert now["engine"]["engine_steps"] - at_close <= 4, now["engine"]["engine_steps"] - at_close
    cancelled = prometheus(client)["hrm_serve_puzzles_cancelled_total"] - cancelled_before
    solved = stats(client)["puzzles"] - solved_before
    assert cancelled >= 50 - 2 * MAX_BATCH and solved + cancelled == 50, (solved, cancelled)
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}] * MAX_QUEUE})
    assert r.status_code == 200 and {a["answer"] for a in r.json()["answers"]} == {ISSUE_ANSWER}


def prometheus(client) -> dict[str, float]:
    """Sample name (with labels) -> value, parsed by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


# ---- slow clients -----------------------------------------------------------------------------------------
def read_all(s: socket.socket, limit_s: float) -> bytes:
    s.settimeout(limit_s)
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def test_slowloris_headers_cut_off_while_others_are_served(server, client):
    """Headers sent a byte every 0.1 s never finish: the server answers 408 JSON and closes the
    connection within --header-timeout (2 s), long before the 8 s drip would end, and answers
    normal requests all the while."""
    s = socket.create_connection(server.host_port, timeout=30)
    drip = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    opened, closed_at, served = time.monotonic(), None, 0
    for i, byte in enumerate(drip[:80]):
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic()
            break
        if i % 10 == 0:
            assert client.get("/health").status_code == 200
            served += 1
        s.settimeout(0.1)
        try:
            if s.recv(65536, socket.MSG_PEEK):
                closed_at = time.monotonic()
                break
        except TimeoutError:
            pass
    reply = read_all(s, 5)
    s.close()
    assert closed_at is not None, "the slow connection was never closed"
    assert closed_at - opened < HEADER_TIMEOUT_S + 4.0  # the drip would have run 8 s (slack: a busy machine)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {
        "error": f"headers: not received within {HEADER_TIMEOUT_S:g} s",
        "status": 408,
    }
    assert served >= 1


def test_slow_body_408(server):
    """A body announced as 100 bytes of which 9 arrive: 408 JSON within --body-timeout, closed."""
    s = socket.create_connection(server.host_port, timeout=30)
    head = f"POST /v1/solve HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
    s.sendall(head.encode() + b"Content-Length: 100\r\n\r\n" + b'{"puzzle"')
    reply = read_all(s, BODY_TIMEOUT_S + 10)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"connection: close" in reply.lower()
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"] == f"body: not received within {BODY_TIMEOUT_S:g} s"


def test_max_connections_503_json(server, client):
    """More than --max-connections open connections: the next one gets 503 JSON and is closed;
    when they close, requests are served again."""
    sockets = [socket.create_connection(server.host_port, timeout=30) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        # the server accepts in order: the last ones are over the cap (whenever it gets to them)
        refused = read_all(sockets[-1], 15)
    finally:
        for s in sockets:
            s.close()
    assert refused.startswith(b"HTTP/1.1 503 "), refused
    assert json.loads(refused.split(b"\r\n\r\n", 1)[1]) == {
        "error": f"connections: more than {MAX_CONNECTIONS} open",
        "status": 503,
    }
    deadline = time.monotonic() + 10
    while True:  # the server sees the closes a moment later
        try:
            if client.get("/health").status_code == 200:
                break
        except Exception:  # noqa: BLE001 - refused while it still counts the closed ones
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_head_and_favicon(server):
    c = Conn(server)
    for path in ("/", "/health", "/ready", "/v1/model"):
        c.http.request("HEAD", path, headers=AUTH)
        r = c.http.getresponse()
        assert r.status == 200 and r.read() == b"", path
    status, headers, data = c.send("GET", "/favicon.ico")
    assert status == 200 and headers["content-type"] == "image/png" and data.startswith(b"\x89PNG")
    status, _, data = c.send("DELETE", "/health")
    assert status == 405 and json.loads(data)["error"] == "method: DELETE not allowed on /health"
    c.close()


# ---- metrics ------------------------------------------------------------------------------------------
def test_prometheus_metrics_agree_with_the_requests_sent(client):
    """/metrics parses with prometheus_client's parser, and its counters moved by exactly what
    this test sent: 3 solves, 2 bad solves, a batch of 4, a stream that ends in a 504 (counted as
    the 504 it ended with, not the 200 it started with)."""
    from prometheus_client.parser import text_string_to_metric_families

    wait_idle(client)
    before = prometheus(client)
    for _ in range(3):
        assert client.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE}).status_code == 200
    for bad in ({"puzzle": "12"}, {"puzzel": ISSUE_PUZZLE}):
        assert client.post("/v1/solve", json=bad).status_code == 422
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}] * 4})
    assert r.status_code == 200
    r = client.post("/v1/solve/stream", json={"puzzle": ISSUE_PUZZLE, "timeout_s": 1e-9})
    assert r.status_code == 200 and '"status":504' in r.text
    after = prometheus(client)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    req = "hrm_serve_http_requests_total{method=POST,route=%s,status=%s}"
    assert delta(req % ("/v1/solve", 200)) == 3 and delta(req % ("/v1/solve", 422)) == 2
    assert delta(req % ("/v1/solve/batch", 200)) == 1
    assert delta(req % ("/v1/solve/stream", 504)) == 1 and delta(req % ("/v1/solve/stream", 200)) == 0
    assert delta("hrm_serve_http_request_duration_seconds_count{route=/v1/solve}") == 5
    assert delta("hrm_serve_puzzles_solved_total") == 7 and delta("hrm_serve_puzzles_verified_total") == 7
    assert delta("hrm_serve_act_steps_count") in (7, 8)  # the stream's puzzle if it finished a step first
    assert delta("hrm_serve_batch_size_count") >= 2 and after["hrm_serve_batch_size_sum"] > 0
    assert after["hrm_serve_slots"] == MAX_BATCH and after["hrm_serve_queue_depth"] == 0
    assert after["hrm_serve_internal_errors_total"] == 0 and after["hrm_serve_draining"] == 0
    info = next(k for k in after if k.startswith("hrm_serve_model_info{"))
    assert "name=sudoku6-hard-hrm/step_11250" in info and "family=hrm" in info and "task=sudoku6" in info

    types = {f.name: f.type for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert types["hrm_serve_http_requests"] == "counter" and types["hrm_serve_puzzles_solved"] == "counter"
    assert (
        types["hrm_serve_http_request_duration_seconds"] == "histogram" and types["hrm_serve_act_steps"] == "histogram"
    )
    assert types["hrm_serve_queue_depth"] == "gauge" and after[info] == 1  # an info metric: a gauge of 1
    assert not any("500" in k for k in after if k.startswith("hrm_serve_http_requests_total"))


def raw_request(server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request as raw bytes on a new connection: what no well-behaved client library sends."""
    s = socket.create_connection(server.host_port, timeout=30)
    s.sendall(request)
    reply = read_all(s, 10)
    s.close()
    head, _, data = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, data


GOOD = quote(ISSUE_PUZZLE)
RAW_CASES = [  # (request line and headers, status, error starts with)
    ("GET /v1/solve/stream?puzzle=%ff%fe HTTP/1.1", 422, "puzzle: sudoku6:"),
    ("GET /v1/solve/stream HTTP/1.1", 422, "puzzle: Field required"),
    (f"GET /v1/solve/stream?puzzle={GOOD}&task=%00 HTTP/1.1", 422, "task: unknown task"),
    (f"GET /v1/solve/stream?puzzle={'1' * 8000} HTTP/1.1", 422, "puzzle: sudoku6: board text must have 36"),
    ("GET /v1/%ff%00 HTTP/1.1", 404, "no route /v1/"),
    ("GET /v1/\xff HTTP/1.1", 400, "request: not valid HTTP/1.1"),
    ("POST /v1/solve HTTP/1.1\r\nContent-Length: abc", 400, "request: not valid HTTP/1.1"),
    ("POST /v1/solve HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6", 400, "request: not valid HTTP/1.1"),
    ("POST /v1/solve HTTP/1.1\r\nTransfer-Encoding: gzip", 400, "request: not valid HTTP/1.1"),
    ("GET /v1/model HTTP/1.1\r\nBad Header: x", 400, "request: not valid HTTP/1.1"),
    ("GET /v1/model HTTP/1.1\r\nAuthorization: Bearer \xe9\xff", 401, "Authorization: send"),
    ("BREW /v1/model HTTP/1.1", 405, "method: BREW not allowed on /v1/model"),
    ("OPTIONS /v1/solve HTTP/1.1", 405, "method: OPTIONS not allowed on /v1/solve"),
    ("GET /static/../../../etc/passwd HTTP/1.1", 404, "no route /static/"),
    ("GET /static/ HTTP/1.1", 404, "no route /static/"),
]


@pytest.mark.parametrize("line,status,message", RAW_CASES, ids=[c[0][:40] for c in RAW_CASES])
def test_hostile_queries_and_headers_get_json(server, line, status, message):
    head = line if "Authorization" in line else line + f"\r\nAuthorization: Bearer {KEY}"
    got, headers, data = raw_request(server, (head + "\r\nHost: t\r\nConnection: close\r\n\r\n").encode("latin-1"))
    assert got == status and headers["content-type"] == "application/json", (got, data[:300])
    assert json.loads(data)["error"].startswith(message) and json.loads(data)["status"] == status, data
