"""The HTTP API against a real server (tests/e2e/serve/conftest.py): answers checked against the
bundled test set and the Sudoku rules, every error code of the issue, the API key, streaming."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import httpx
import numpy as np
import pytest

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks import get_task
from tests.conftest import ROOT
from tests.e2e.serve.conftest import ISSUE_ANSWER, ISSUE_PUZZLE, KEY, MAX_BATCH, MAX_BODY, MAX_QUEUE, stats, wait_idle

pytestmark = pytest.mark.slow  # a server subprocess
SUDOKU6 = get_task("sudoku6")


def test_solve_the_issue_example(client):
    r = client.post("/v1/solve", json={"task": "sudoku6", "puzzle": ISSUE_PUZZLE})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["answer"] == ISSUE_ANSWER
    assert a["verified"] is True and a["task"] == "sudoku6"
    assert 1 <= a["steps"] <= 8  # adaptive halting within halt_max_steps
    assert 0.5 < a["q_halt_probability"] < 1  # it halted before 8 steps only because it was confident
    assert a["model"] == "sudoku6-hard-hrm/step_11250"  # the default model
    assert a["latency_ms"] >= a["queue_ms"] >= 0


def test_batch_answers_test_puzzles_in_order(client):
    """32 test puzzles of the first bundled model: answers come back in request order (each
    equals its own solution; the default model solves all 1,000 of that set) and `verified` is
    the Sudoku rule check."""
    data = PuzzleDataset(ROOT / "checkpoints" / "sudoku6-hrm" / "data", split="test")
    arrays = data.sets["all"]
    n = 32
    puzzles = [SUDOKU6.decode_answer(arrays["inputs"][i]) for i in range(n)]
    solutions = [SUDOKU6.decode_answer(arrays["labels"][i]) for i in range(n)]
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": p} for p in puzzles]})
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    assert len(answers) == n
    exact = [a["answer"] == s for a, s in zip(answers, solutions)]
    assert sum(exact) >= n - 2
    for a, p in zip(answers, puzzles):  # a valid answer keeps every given digit and breaks no rule
        assert a["verified"] == SUDOKU6.verify(SUDOKU6.encode_puzzle(p), SUDOKU6.encode(a["answer"]))
    assert all(a["verified"] for a, e in zip(answers, exact) if e)


def test_forms_tokens_and_rows_give_the_same_answer(client):
    tokens = SUDOKU6.encode_puzzle(ISSUE_PUZZLE).tolist()
    rows = [[0 if ch == "." else int(ch) for ch in ISSUE_PUZZLE[r * 6 : r * 6 + 6]] for r in range(6)]
    by_tokens = client.post("/v1/solve", json={"tokens": tokens}).json()
    by_rows = client.post("/v1/solve", json={"puzzle": rows}).json()
    assert by_tokens["tokens"] == SUDOKU6.encode(ISSUE_ANSWER).tolist()
    assert by_tokens["answer"] == by_rows["answer"] == ISSUE_ANSWER
    assert "tokens" not in by_rows


def test_return_steps(client):
    a = client.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE, "return_steps": True}).json()
    steps = a["by_step"]
    assert [s["step"] for s in steps] == list(range(1, a["steps"] + 1))
    assert steps[-1]["answer"] == a["answer"]
    assert steps[-1]["q_halt_probability"] == a["q_halt_probability"]
    assert all(len(s["answer"]) == 36 for s in steps)


def read_events(response: httpx.Response):
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_stream_one_event_per_step_then_final(client, method):
    if method == "POST":
        r = client.post("/v1/solve/stream", json={"puzzle": ISSUE_PUZZLE})
    else:
        r = client.get("/v1/solve/stream", params={"puzzle": ISSUE_PUZZLE, "task": "sudoku6"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = read_events(r)
    kinds = [k for k, _ in events]
    final = events[-1][1]
    assert kinds == ["puzzle"] + ["step"] * final["steps"] + ["final"]
    assert events[0][1]["answer"] == ISSUE_PUZZLE
    assert [d["step"] for k, d in events if k == "step"] == list(range(1, final["steps"] + 1))
    assert events[-2][1]["answer"] == final["answer"] == ISSUE_ANSWER
    assert final["verified"] is True


def test_model_info_and_health(client, server):
    info = client.get("/v1/model").json()
    path = ROOT / "checkpoints" / "sudoku6-hard-hrm" / "step_11250"  # the default: the run's newest step
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (info["family"], info["dtype"], info["task"], info["max_batch"]) == ("hrm", "float32", "sudoku6", MAX_BATCH)
    assert info["halting"] == {"mode": "adaptive", "max_steps": 8, "min_steps": 1}
    assert info["layout"] == {"vocab_size": 8, "seq_len": 36, "puzzle_identifiers": 1}
    limits = info["limits"]  # what a client may run into, as started (tests/e2e/serve/conftest.py)
    assert (limits["max_queue"], limits["max_body_bytes"], limits["max_connections"]) == (MAX_QUEUE, MAX_BODY, 100)
    assert (limits["header_timeout_s"], limits["body_timeout_s"]) == (2, 2)
    assert limits["drain_timeout_s"] == limits["timeout_s"] == 30  # the drain defaults to the request timeout
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # no key needed outside /v1
    random = client.get("/v1/puzzles/random").json()
    data = PuzzleDataset(ROOT / "checkpoints" / "sudoku6-hard-hrm" / "data", split="test").sets["all"]
    assert random["puzzle"] == SUDOKU6.decode_answer(data["inputs"][random["index"]])
    assert SUDOKU6.verify(SUDOKU6.encode(random["puzzle"]), SUDOKU6.encode(random["solution"]))


# ---- the API key --------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {KEY}x", f"Basic {KEY}", KEY])
def test_api_key_required_on_v1(server, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/v1/model", "/v1/puzzles/random"):
        r = httpx.get(server.url + path, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(server.url + "/v1/solve", headers=headers, json={"puzzle": ISSUE_PUZZLE})
    assert r.status_code == 401 and r.json() == {"error": "Authorization: send `Bearer <key>`", "status": 401}


# ---- bad requests: the status and the field named -------------------------------------------------
BAD = [
    ({"puzzle": ISSUE_PUZZLE[:-2]}, "puzzle: sudoku6: board text must have 36 characters, got 34"),
    ({"puzzle": ISSUE_PUZZLE[:-1] + "9"}, "puzzle: sudoku6:"),
    ({"puzzle": [[1, 2], [3]]}, "puzzle: sudoku6: a board is 6 rows of 6 numbers"),
    ({"puzzle": 7}, "puzzle: sudoku6: a board is text or a list of rows, got int"),
    ({"task": "chess", "puzzle": ISSUE_PUZZLE}, "task: unknown task 'chess'"),
    ({"task": "sudoku", "puzzle": ISSUE_PUZZLE}, "task: sudoku (vocab_size 11, seq_len 81) does not fit this model"),
    ({"puzzle": ISSUE_PUZZLE, "tokens": [1] * 36}, "give exactly one of puzzle, grid, tokens (got puzzle, tokens)"),
    ({}, "give exactly one of puzzle, grid, tokens (got none)"),
    ({"tokens": [1] * 35}, "tokens: expected 36 token ids, got 35"),
    ({"tokens": [1, 2, 3, 8] + [1] * 32}, "tokens[3]: 8 is not a token id below 8"),
    ({"tokens": [1] * 36, "puzzle_identifier": 1}, "puzzle_identifier: 1 is not below the model's 1 identifiers"),
    ({"puzzel": ISSUE_PUZZLE}, "puzzel: Extra inputs are not permitted"),
    ({"puzzle": ISSUE_PUZZLE, "timeout_s": -1}, "timeout_s: Input should be greater than 0"),
]


@pytest.mark.parametrize("body,message", BAD)
def test_bad_puzzle_422_names_the_field(client, body, message):
    r = client.post("/v1/solve", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith(message) or message in r.json()["error"], r.json()


def test_fuzzed_bodies_never_500(client):
    """Seeded junk in every field: always a 200 or a named 4xx, never a 500 (checked at the end
    by test_no_500_and_the_stats_count_everything)."""
    rng = np.random.default_rng(0)
    junk = [None, True, -1, 2**70, 1e308, "", "x" * 40, [], [[]], [[1] * 6] * 6, [[7] * 6] * 6, {"a": 1}, [1.5] * 36]
    fields = ["task", "puzzle", "grid", "tokens", "puzzle_identifier", "return_steps", "timeout_s"]
    for _ in range(60):
        body = {f: junk[rng.integers(len(junk))] for f in rng.choice(fields, rng.integers(1, 4), replace=False)}
        r = client.post("/v1/solve", json=body)
        assert r.status_code in (200, 422), (body, r.text)
        assert r.status_code == 200 or r.json()["error"], body


def test_malformed_json_422(client):
    for raw in (b"{bad", b'{"puzzle": "3', b"[1, 2]", b""):
        r = client.post("/v1/solve", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        assert r.json()["error"].startswith("body"), r.json()


def test_bad_item_in_a_batch_is_named(client):
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}, {"puzzle": "12"}]})
    assert r.status_code == 422
    assert r.json()["error"].startswith("puzzles[1].puzzle: sudoku6: board text must have 36 characters")
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}, {"tokens": "x"}]})
    assert r.status_code == 422 and r.json()["error"].startswith("puzzles[1].tokens:")
    assert client.post("/v1/solve/batch", json={"puzzles": []}).status_code == 422


def test_too_large_413(client):
    r = client.post("/v1/solve", content=b" " * (MAX_BODY + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == f"body: larger than {MAX_BODY} bytes"

    def chunked():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000

    r = client.post("/v1/solve", content=chunked(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}] * (MAX_QUEUE + 1)})
    assert r.status_code in (413,), r.text  # over --max-request-puzzles (or, as bytes, over the body limit)


def test_unknown_route_404(client):
    for path in ("/nope", "/v1/nope", "/v1/solve/nope"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"] == f"no route {path}"


def test_deadline_504(client):
    """A full queue of work cannot be done in a millisecond: 504, and the server goes on."""
    wait_idle(client)
    puzzles = [{"puzzle": ISSUE_PUZZLE}] * MAX_QUEUE
    r = client.post("/v1/solve/batch", json={"puzzles": puzzles, "timeout_s": 0.001})
    assert r.status_code == 504 and r.json()["error"] == "timeout_s: no answer within 0.001 s"  # never negative
    r = client.post("/v1/solve/stream", json={"puzzle": ISSUE_PUZZLE, "timeout_s": 0.001})
    events = read_events(r)
    assert events[-1] == ("error", {"error": "timeout_s: the deadline passed", "status": 504})
    wait_idle(client)
    assert client.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE}).json()["answer"] == ISSUE_ANSWER


def test_queue_full_503_with_retry_after(client):
    """While a batch as large as the queue is in flight, nothing more fits: 503 + Retry-After."""
    wait_idle(client)
    results = {}

    def big():
        body = {"puzzles": [{"puzzle": ISSUE_PUZZLE}] * MAX_QUEUE}
        results["big"] = client.post("/v1/solve/batch", json=body)

    t = threading.Thread(target=big)
    t.start()
    deadline = time.monotonic() + 60
    while stats(client)["queue"]["pending"] == 0:
        assert time.monotonic() < deadline and t.is_alive(), "the batch never showed up in the queue"
        time.sleep(0.01)
    r = client.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}] * MAX_QUEUE})
    t.join()
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.json()["error"].startswith("queue full:")
    assert results["big"].status_code == 200
    assert {a["answer"] for a in results["big"].json()["answers"]} == {ISSUE_ANSWER}


def test_no_500_and_the_stats_count_everything(client):
    """After every bad request above the server is alive, has never answered 500, and its
    stats add up."""
    m = stats(client)
    assert "500" not in m["responses_by_status"]
    assert m["requests"] == sum(m["requests_by_route"].values()) == sum(m["responses_by_status"].values())
    assert m["errors"] == sum(v for k, v in m["responses_by_status"].items() if int(k) >= 400)
    assert m["responses_by_status"]["401"] >= 5 and m["responses_by_status"]["422"] >= len(BAD)
    solve = m["latency_ms"]["/v1/solve"]  # per route: single solves apart from batches and streams
    assert solve["p50"] <= solve["p95"] <= solve["p99"] and "/v1/solve/batch" in m["latency_ms"]
    assert m["puzzles_per_s_window_s"] == 10.0 and m["puzzles_per_s"] >= 0
    assert m["engine"]["mean_batch"] > 1  # the batch requests shared engine steps
    assert client.get("/health").json()["status"] == "ok"
