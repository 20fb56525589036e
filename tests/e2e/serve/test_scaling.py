"""Thinking harder over HTTP (issue 22): a request's "budget" against the real server of
tests/e2e/serve/conftest.py (the default model, sudoku6-hard-hrm, its default --max-budget 64)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.serve.conftest import ISSUE_ANSWER, ISSUE_PUZZLE, KEY, stats, wait_idle
from tests.e2e.serve.test_api import read_events

pytestmark = pytest.mark.slow  # a server subprocess
# The 5th held-out puzzle with 27 blanks (checkpoints/sudoku6-hard-hrm/raw/heldout.csv, line 121):
# the plain adaptive run answers it wrongly; with 64 ACT steps the 3rd attempt (a view) solves it.
HARD = ".5....3...4.......2....34..6....21.."
HARD_SOLUTION = "154326326541643215215463431652562134"
# line 92: four attempts before one passes; line 1423: five
HARDER = "..5....2..65..3....5...2......1...3."
HARDEST = "..4.3.....6.......25.........1..354."
MAX_BUDGET = 64  # 8 x halt_max_steps: the server's default bound
PLAIN_KEYS = ["task", "answer", "verified", "steps", "q_halt_probability", "model", "latency_ms", "queue_ms"]
COST_KEYS = ["attempts", "act_steps_total", "solved_at_attempt", "selected_by", "budget"]


def valid_sudoku6(puzzle: str, answer: str) -> bool:
    """An independent rule check (not the task's): digits 1-6, every given kept, each row,
    column and 2x3 box holding 1-6 once."""
    if len(answer) != 36 or any(ch not in "123456" for ch in answer):
        return False
    if any(p not in ".0" and p != a for p, a in zip(puzzle, answer)):
        return False
    cells = [[int(answer[r * 6 + c]) for c in range(6)] for r in range(6)]
    units = [row for row in cells] + [[cells[r][c] for r in range(6)] for c in range(6)]
    units += [[cells[r][c] for r in range(br, br + 2) for c in range(bc, bc + 3)] for br in (0, 2, 4) for bc in (0, 3)]
    return all(sorted(u) == [1, 2, 3, 4, 5, 6] for u in units)


def solve(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/v1/solve", json=body)


def test_budget_solves_what_the_plain_run_gets_wrong(client):
    plain = solve(client, puzzle=HARD).json()
    assert plain["verified"] is False and not valid_sudoku6(HARD, plain["answer"])
    scaled = solve(client, puzzle=HARD, budget=MAX_BUDGET)
    assert scaled.status_code == 200, scaled.text
    a = scaled.json()
    assert a["verified"] is True and valid_sudoku6(HARD, a["answer"]) and a["answer"] == HARD_SOLUTION
    assert a["attempts"] > 1 and a["solved_at_attempt"] == a["attempts"] > 1
    assert a["selected_by"] == "verified" and a["budget"] == MAX_BUDGET
    assert a["steps"] <= a["act_steps_total"] <= MAX_BUDGET
    assert list(a) == PLAIN_KEYS[:5] + COST_KEYS + PLAIN_KEYS[5:]  # the cost beside the answer


def test_the_answer_is_the_solvers(client):
    """The server's attempts are ScaledRunner's: the same answer and cost as Solver(scaling="verify")."""
    from hrm_eval.inference.solve import Solver
    from tests.conftest import ROOT

    solver = Solver(ROOT / "checkpoints" / "sudoku6-hard-hrm", "sudoku6", dtype="float32", scaling="verify", budget=64)
    for puzzle in (HARD, HARDER):
        want = solver.solve(puzzle)
        got = solve(client, puzzle=puzzle, budget=64).json()
        assert (got["answer"], got["attempts"], got["act_steps_total"]) == (
            want.answer,
            want.attempts,
            want.act_steps_total,
        )
        assert (got["solved_at_attempt"], got["selected_by"], got["steps"]) == (
            want.solved_at_attempt,
            want.selected_by,
            want.steps,
        )


def test_plain_requests_are_unchanged(client):
    """Without a budget (and with budget 0) the answer has exactly today's fields and values; a
    stream's steps carry no attempt."""
    plain = solve(client, puzzle=HARD).json()
    zero = solve(client, puzzle=HARD, budget=0).json()
    assert list(plain) == list(zero) == PLAIN_KEYS
    timing = ("latency_ms", "queue_ms")
    assert {k: v for k, v in plain.items() if k not in timing} == {k: v for k, v in zero.items() if k not in timing}
    assert plain["steps"] == 8 and plain["q_halt_probability"] < 0.5  # it stopped at the limit, unsure
    events = read_events(client.post("/v1/solve/stream", json={"puzzle": ISSUE_PUZZLE}))
    assert all("attempt" not in d for k, d in events if k == "step")
    assert list(events[-1][1]) == PLAIN_KEYS


@pytest.mark.parametrize(
    "path,body,message",
    [
        ("/v1/solve", {"puzzle": HARD, "budget": 65}, "budget: 65 ACT steps is over this server's maximum of 64"),
        ("/v1/solve", {"puzzle": HARD, "budget": 10**30}, "budget: 1000000000000000000000000000000 ACT steps"),
        ("/v1/solve", {"puzzle": HARD, "budget": -1}, "budget: Input should be greater than or equal to 0"),
        ("/v1/solve", {"puzzle": HARD, "budget": "lots"}, "budget: Input should be a valid integer"),
        ("/v1/solve/stream", {"puzzle": HARD, "budget": 100}, "budget: 100 ACT steps is over"),
        ("/v1/solve/batch", {"puzzles": [{"puzzle": HARD}, {"puzzle": HARD, "budget": 99}]}, "puzzles[1].budget: 99"),
        ("/v1/solve/batch", {"puzzles": [{"puzzle": HARD}], "budget": 99}, "budget: 99 ACT steps is over"),
    ],
)
def test_over_the_limit_is_422_json(client, path, body, message):
    r = client.post(path, json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json", r.text
    assert r.json()["status"] == 422 and r.json()["error"].startswith(message), r.json()


def test_over_the_limit_get_stream_422(client):
    r = client.get("/v1/solve/stream", params={"puzzle": HARD, "budget": 65})
    assert r.status_code == 422 and r.json()["error"].startswith("budget: 65 ACT steps is over"), r.text
    assert client.get("/v1/model").json()["limits"]["max_budget"] == MAX_BUDGET


def test_model_reports_the_scaling_settings(client):
    from hrm_eval.inference.scaling import ScalingPolicy

    scaling = client.get("/v1/model").json()["scaling"]
    assert scaling == {
        "default": "off",
        "budget": None,
        "max_budget": MAX_BUDGET,
        "attempt_steps": ScalingPolicy("verify").resolve(8, 8).attempt_steps,  # as evaluate and solve
        "views": 8,
        "noise": 0.0,
        "seed": 0,
    }


def test_batch_with_mixed_budgets(client):
    """Per-puzzle budgets, the batch's budget for the rest, 0 for none: answers in order, each
    with the cost of its own budget, and the plain ones as a plain request gets them."""
    body = {
        "puzzles": [
            {"puzzle": HARD, "budget": 64},
            {"puzzle": HARD, "budget": 0},
            {"puzzle": ISSUE_PUZZLE, "budget": 16},
            {"puzzle": HARDER},
            {"puzzle": ISSUE_PUZZLE, "budget": 0},
        ],
        "budget": 64,
    }
    r = client.post("/v1/solve/batch", json=body)
    assert r.status_code == 200, r.text
    hard, plain, easy, harder, easy_plain = r.json()["answers"]
    assert hard["verified"] and hard["attempts"] > 1 and hard["budget"] == 64
    assert not plain["verified"] and "attempts" not in plain
    assert plain["answer"] == solve(client, puzzle=HARD).json()["answer"]  # sharing steps changed nothing
    assert easy["answer"] == ISSUE_ANSWER and easy["budget"] == 16
    assert easy["attempts"] == easy["solved_at_attempt"] == 1 and easy["act_steps_total"] == easy["steps"]
    assert harder["verified"] and harder["budget"] == 64 and harder["solved_at_attempt"] > 1
    assert valid_sudoku6(HARDER, harder["answer"])
    assert easy_plain["answer"] == ISSUE_ANSWER and list(easy_plain) == PLAIN_KEYS


def test_small_budget_cuts_the_thinking(client):
    """A budget smaller than the halting limit: one attempt of at most that many steps."""
    a = solve(client, puzzle=HARD, budget=3).json()
    assert a["attempts"] == 1 and a["act_steps_total"] == a["steps"] <= 3 and a["selected_by"] == "q"
    assert "solved_at_attempt" not in a and a["verified"] is False


def test_impossible_puzzle_does_not_spend_the_budget(client):
    """Givens that break the rules (a 5 twice in row 1): no attempt could ever pass the rule
    check, so the puzzle gets one attempt, not 64 ACT steps of retries."""
    impossible = ISSUE_PUZZLE[:3] + "5" + ISSUE_PUZZLE[4:]
    a = solve(client, puzzle=impossible, budget=64).json()
    assert a["verified"] is False and a["attempts"] == 1 and a["act_steps_total"] == a["steps"] <= 8
    assert a["budget"] == a["act_steps_total"] and "solved_at_attempt" not in a  # the budget it was allowed


def test_stream_with_budget(client):
    """Every ACT step of every attempt, numbered over all of them, its answer in the puzzle's own
    frame (the last one is the answer), then the final event with the cost."""
    r = client.post("/v1/solve/stream", json={"puzzle": HARD, "budget": 64})
    events = read_events(r)
    final = events[-1][1]
    steps = [d for k, d in events if k == "step"]
    assert [k for k, _ in events] == ["puzzle"] + ["step"] * final["act_steps_total"] + ["final"]
    assert [s["step"] for s in steps] == list(range(1, final["act_steps_total"] + 1))
    attempts = [s["attempt"] for s in steps]
    assert attempts[0] == 1 and attempts == sorted(attempts) and attempts[-1] == final["attempts"] > 1
    assert attempts.count(final["attempts"]) == final["steps"]  # the chosen attempt's own steps
    assert steps[-1]["answer"] == final["answer"] == HARD_SOLUTION
    # the answers of a later attempt keep the puzzle's givens where the view put them back
    assert sum(a == p for a, p in zip(steps[-1]["answer"], HARD) if p != ".") == 36 - HARD.count(".")
    assert final["verified"] and final["solved_at_attempt"] == final["attempts"]
    r = client.get("/v1/solve/stream", params={"puzzle": HARD, "budget": 64})
    assert read_events(r)[-1][1]["answer"] == HARD_SOLUTION


def test_with_steps_over_all_attempts(client):
    a = solve(client, puzzle=HARD, budget=64, return_steps=True).json()
    assert [s["step"] for s in a["by_step"]] == list(range(1, a["act_steps_total"] + 1))
    assert a["by_step"][-1]["attempt"] == a["attempts"] and a["by_step"][-1]["answer"] == a["answer"]


def test_a_cancelled_scaled_request_leaves_nothing_queued(client, server):
    """A stream with a budget whose client goes away during its 2nd attempt: the attempt leaves
    the engine and its retries are dropped (nothing pending, nothing computing), counted cancelled."""
    wait_idle(client)
    full = solve(client, puzzle=HARDEST, budget=64).json()
    assert full["attempts"] >= 4 and full["verified"]
    before = stats(client)["engine"]["act_steps_computed"]
    cancelled = _metric(client, "hrm_serve_puzzles_cancelled_total")
    with (
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c,
        c.stream("POST", "/v1/solve/stream", json={"puzzle": HARDEST, "budget": 64}) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:]).get("attempt") == 2:
                break  # leave: the connection closes with the stream half read
    deadline = time.monotonic() + 30
    while stats(client)["queue"] != {"waiting": 0, "in_engine": 0, "pending": 0, "max_queue": 64}:
        assert time.monotonic() < deadline, stats(client)["queue"]
        time.sleep(0.05)
    assert _metric(client, "hrm_serve_puzzles_cancelled_total") == cancelled + 1
    spent = stats(client)["engine"]["act_steps_computed"] - before
    time.sleep(0.5)
    assert stats(client)["engine"]["act_steps_computed"] - before == spent  # nothing of it computes any more
    assert spent < full["act_steps_total"]  # what the whole run takes


def test_metrics_count_attempts_and_retries(client):
    before = _metric(client, "hrm_serve_puzzles_solved_by_retry_total")
    count = _metric(client, "hrm_serve_attempts_count")
    a = solve(client, puzzle=HARD, budget=64).json()
    assert _metric(client, "hrm_serve_puzzles_solved_by_retry_total") == before + 1
    assert _metric(client, "hrm_serve_attempts_count") == count + 1
    total = _metric(client, "hrm_serve_attempts_sum")
    assert total >= a["attempts"]
    solve(client, puzzle=ISSUE_PUZZLE, budget=64)  # solved at attempt 1: not a retry
    assert _metric(client, "hrm_serve_puzzles_solved_by_retry_total") == before + 1


def _metric(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
