"""The command line around an evaluation: --log-file (JSON lines), --wandb (an offline W&B
run), a checkpoint given by name, and --mode solve for puzzles without answers. Real
subprocesses on the bundled model (the name lookup and the user mistakes that need no process:
tests/unit/cli/test_checkpoint_names.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
HARD = ROOT / "checkpoints" / "sudoku6-hard-hrm"


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def same_file(given: str, path: Path) -> bool:
    return Path(ROOT, given).resolve() == path.resolve()  # as the CLI (run from ROOT) names it


def raw_rows(n: int):
    with open(BUNDLED / "raw" / "test.csv", newline="") as f:
        return [(q, a) for _, q, a, _ in list(csv.reader(f))[1 : n + 1]]


# ---- one evaluation with --log-file and --wandb --------------------------------------------------
@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # offline by default, into --output
    env["WANDB_SILENT"] = "true"
    args = ["--mode", "evaluate", "--checkpoint", "step_625", "--limit", "8", "--no-progress"]
    args += ["--output", str(root / "out"), "--log-file", str(root / "log.jsonl"), "--wandb"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]
    return proc, lines, json.loads((root / "out" / "results.json").read_text()), root / "out"


@pytest.mark.slow
def test_the_json_log_holds_the_key_events(evaluation):
    _, lines, results, _ = evaluation
    assert {line["mode"] for line in lines} == {"evaluate"}
    events = {}
    for line in lines:
        events.setdefault(line.get("event"), []).append(line)
    (start,) = events["start"]
    assert same_file(start["config"]["checkpoint"], BUNDLED / "step_625") and start["config"]["limit"] == 8
    (ckpt,) = events["checkpoint"]
    assert ckpt["checkpoint_sha256"] == hashlib.sha256((BUNDLED / "step_625").read_bytes()).hexdigest()
    assert (ckpt["step"], ckpt["puzzles_total"]) == (625, 8)
    last = events["progress"][-1]
    assert (last["puzzles_done"], last["puzzles_total"]) == (8, 8)
    (metrics,) = events["metrics"]
    assert metrics["metrics"] == results["aggregate_metrics"]
    assert metrics["checkpoint_sha256"] == ckpt["checkpoint_sha256"]
    assert [line["event"] for line in lines][:2] == ["start", "checkpoint"] and "wandb" in events


@pytest.mark.slow
def test_the_console_stays_readable(evaluation):
    proc, _, results, _ = evaluation
    err = proc.stderr.strip().splitlines()
    assert err and all(line.split(" ", 1)[0] in ("INFO", "WARNING") for line in err), proc.stderr
    exact = results["aggregate_metrics"]["exact_accuracy"]
    assert any(line.startswith(f"INFO metrics: exact_accuracy {exact:.4f}, accuracy ") for line in err)
    assert not any(line.lstrip().startswith("{") for line in err)  # JSON goes to the file only
    assert "8/8 puzzles" in proc.stderr  # no bar (--no-progress): the counts show on the console


@pytest.mark.slow
def test_the_wandb_run_holds_metrics_and_the_per_puzzle_table(evaluation):
    from tests.unit.utils import wandb_files

    _, _, results, out = evaluation
    (run_dir,) = wandb_files.run_dirs(out)
    assert run_dir.name.startswith("offline-run-")
    logged = {k: v for row in wandb_files.history(run_dir) for k, v in row.items()}
    assert logged["aggregate_metrics/exact_accuracy"] == results["aggregate_metrics"]["exact_accuracy"]
    assert same_file(wandb_files.config(run_dir)["checkpoint"], BUNDLED / "step_625")
    (table,) = wandb_files.media(run_dir, "table")
    assert len(json.loads(table.read_text())["data"]) == 8


# ---- --mode solve --------------------------------------------------------------------------------
def test_solve_prints_the_grid_rules_steps_and_confidence():
    question, answer = raw_rows(1)[0]
    proc = run_cli("--mode", "solve", "--puzzle", question, "--show-steps", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    rows = [answer[r * 6 : (r + 1) * 6] for r in range(6)]
    assert out[0] == "puzzle 1 (sudoku6)" and [line.strip() for line in out[1:7]] == rows
    assert out[7] == "valid by the rules: yes"
    # the default model (sudoku6-hard-hrm) has 8 ACT steps
    assert out[8].startswith("steps: ") and "of 8 (adaptive halting); halting confidence sigmoid(q_halt) 0." in out[8]
    assert sum(line.startswith("after step ") for line in out) == int(out[8].split()[1])


def test_solve_takes_a_csv_without_answers_that_evaluate_refuses(tmp_path):
    rows = raw_rows(2)
    path = tmp_path / "unsolved.csv"
    path.write_text(f"source,question,answer,rating\nme,{rows[0][0]},,\nme,{rows[1][0]},,\n")
    proc = run_cli("--mode", "solve", "--data", str(path), "--output", str(tmp_path / "out"), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "puzzle unsolved:2 (sudoku6)" in proc.stdout
    assert "valid by the rules: 2 of 2 (95% interval of the rate 0.342-1.000)" in proc.stdout  # Wilson, 2 of 2
    saved = [json.loads(line) for line in (tmp_path / "out" / "solutions.jsonl").read_text().splitlines()]
    assert [s["answer"] for s in saved] == [a for _, a in rows] and all(s["verified"] for s in saved)

    one_line_error(
        run_cli("--mode", "evaluate", "--data", str(path), "--task", "sudoku6", cwd=tmp_path),  # outputs/ not here
        f"{path}, row 2: no answer",
        "--mode solve takes puzzles without answers",
    )
