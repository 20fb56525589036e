"""Serving several models, one per task (issue 28): a real server over a data home with the 9x9
model dropped in (`sudoku9-hrm`: the public-format 9x9 fixture, real though untrained), started
without --checkpoint as a user would. Which model answered is the response's `model`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import CLASSIC_9X9, ROOT, home_with_9x9, run_cli
from tests.e2e.serve.conftest import ISSUE_ANSWER, ISSUE_PUZZLE, Server

SIX = "sudoku6-hard-hrm/step_11250"
NINE = "sudoku9-hrm/step_1000"


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Iterator[httpx.Client]:
    home = home_with_9x9(tmp_path_factory.mktemp("home"))
    s = Server(["--dtype", "float32", "--max-batch", "8"], home / "server.log", env={"HRM_EVAL_HOME": str(home)})
    first_line = s.log.read_text().splitlines()[0]
    assert SIX in first_line and NINE in first_line, first_line  # both models named where it says the URL
    with httpx.Client(base_url=s.url, timeout=120) as c:
        yield c
    assert s.stop() == 0, s.log.read_text()
    assert "Traceback" not in s.log.read_text(), s.log.read_text()


def test_each_puzzle_is_answered_by_the_model_of_its_size(two, server, client):
    nine = two.post("/v1/solve", json={"puzzle": CLASSIC_9X9})
    assert nine.status_code == 200, nine.text
    assert (nine.json()["model"], nine.json()["task"], len(nine.json()["answer"])) == (NINE, "sudoku", 81)
    six = two.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE}).json()
    assert (six["model"], six["answer"], six["verified"]) == (SIX, ISSUE_ANSWER, True)
    # exactly what the one-model server (the bundled default) answers
    alone = client.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE}).json()
    drop = ("latency_ms", "queue_ms")
    assert {k: v for k, v in six.items() if k not in drop} == {k: v for k, v in alone.items() if k not in drop}
    # token ids go by their length; a batch may mix sizes, answered in order by each model
    tokens = two.post("/v1/solve", json={"tokens": [1] * 81}).json()
    assert tokens["model"] == NINE and len(tokens["tokens"]) == 81
    batch = two.post("/v1/solve/batch", json={"puzzles": [{"puzzle": CLASSIC_9X9}, {"puzzle": ISSUE_PUZZLE}]})
    assert [a["model"] for a in batch.json()["answers"]] == [NINE, SIX], batch.text
    assert batch.json()["answers"][0]["answer"] == nine.json()["answer"]


def test_the_stream_routes_too_and_a_named_task_wins(two):
    with two.stream("GET", "/v1/solve/stream", params={"puzzle": CLASSIC_9X9}) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    final = json.loads(events[-1][6:])
    assert final["model"] == NINE and final["task"] == "sudoku"
    named = two.post("/v1/solve/stream", json={"puzzle": ISSUE_PUZZLE, "task": "sudoku6"})
    assert json.loads(named.text.strip().split("data: ")[-1])["model"] == SIX
    # a named task goes to its model even where the puzzle is another size: that model says why
    wrong = two.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE, "task": "sudoku"})
    assert wrong.status_code == 422 and "81 characters, got 36" in wrong.json()["error"]


def test_a_puzzle_no_model_fits_is_422_naming_the_sizes(two):
    r = two.post("/v1/solve", json={"puzzle": "1234"})
    assert r.status_code == 422, r.text
    assert r.json() == {
        "error": "puzzle: fits none of the served models; sizes served: 36 cells (sudoku6), 81 cells (sudoku)",
        "status": 422,
    }
    batch = two.post("/v1/solve/batch", json={"puzzles": [{"puzzle": ISSUE_PUZZLE}, {"tokens": [1] * 50}]})
    assert batch.status_code == 422 and batch.json()["error"].startswith("puzzles[1].tokens: fits none")
    maze = two.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE, "task": "maze"})
    assert maze.json()["error"] == "task: maze is not served here (served: sudoku6, sudoku)"
    unknown = two.post("/v1/solve", json={"puzzle": ISSUE_PUZZLE, "task": "chess"})
    assert unknown.status_code == 422 and "unknown task 'chess'" in unknown.json()["error"]


def test_models_are_listed_each_with_its_engine_and_metrics(two):
    models = two.get("/v1/models").json()["models"]
    assert [(m["name"], m["task"], m["layout"]["seq_len"]) for m in models] == [
        (SIX, "sudoku6", 36),
        (NINE, "sudoku", 81),
    ]
    assert [m["halting"]["max_steps"] for m in models] == [8, 4]  # each model's own
    assert [m["scaling"]["max_budget"] for m in models] == [64, 32]  # 8 x its halt_max_steps
    first = two.get("/v1/model").json()  # one-model clients: the first model, every task
    assert first["name"] == SIX and [t["name"] for t in first["tasks"]] == ["sudoku6", "sudoku"]
    assert first["models"] == models
    text = two.get("/metrics").text
    infos = [line for line in text.splitlines() if line.startswith("hrm_serve_model_info{")]
    assert len(infos) == 2 and f'name="{SIX}"' in infos[0] and f'name="{NINE}"' in infos[1]
    assert "hrm_serve_slots 16.0" in text  # 8 slots each
    stats = two.get("/v1/stats").json()
    assert [m["name"] for m in stats["models"]] == [SIX, NINE]
    assert two.get("/health").json()["models"] == [SIX, NINE]
    random = two.get("/v1/puzzles/random", params={"task": "sudoku"}).json()
    assert random["task"] == "sudoku" and len(random["puzzle"]) == 81  # from the 9x9 run's data/


def test_two_checkpoints_of_one_task_is_one_line():
    proc = run_cli(
        "--mode",
        "serve",
        "--port",
        "0",
        "--checkpoint",
        "sudoku6-hard-hrm",
        "--checkpoint",
        str(ROOT / "checkpoints" / "sudoku6-hrm"),
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "are both sudoku6 models: serve one model per task" in lines[0], proc.stderr
