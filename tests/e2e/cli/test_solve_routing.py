"""--mode solve without --checkpoint (issue 28): each puzzle goes to the bundled model of its size.
Real subprocesses: the bundled home as shipped (no 9x9 model yet), and a home with the 9x9 model
dropped in (the public-format 9x9 fixture as `sudoku9-hrm`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLASSIC_9X9, ROOT, home_with_9x9, one_line, run_cli, run_main
from tests.e2e.cli.test_ops_cli import one_line_error

PUZZLE_6X6 = "356.2..24.366..3422.36514312.556.4.."  # a bundled test puzzle
ANSWER_6X6 = "356124124536615342243651431265562413"


def solve_in(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HRM_EVAL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), "--mode", "solve", "--device", "cpu", *args],
        cwd=home,  # not the checkout: only the home's checkpoints/ are there
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def saved(out: Path) -> list:
    return [json.loads(line) for line in (out / "solutions.jsonl").read_text().splitlines()]


def one_line_error_in_process(capsys, *args: str, words=()) -> str:
    """`main([...])` in this process (the user mistakes; the subprocess path is checked once below)."""
    done = run_main(capsys, *args)
    return one_line(done.returncode, done.stderr, *words)


def test_without_a_9x9_model_an_81_cell_puzzle_is_one_line_naming_what_to_do(tmp_path, capsys):
    missing = ("no bundled model for 9x9 Sudoku (81 cells) yet", "sudoku9-hrm is not there", "pass --checkpoint")
    one_line_error(run_cli("--mode", "solve", "--puzzle", CLASSIC_9X9), *missing)  # the real command line
    solve = ("--mode", "solve")
    one_line_error_in_process(
        capsys, *solve, "--puzzle", PUZZLE_6X6, "--puzzle", CLASSIC_9X9, words=("puzzle 2: ", *missing)
    )
    one_line_error_in_process(capsys, *solve, "--puzzle", PUZZLE_6X6, "--task", "sudoku", words=missing)
    path = tmp_path / "nine.csv"
    path.write_text(f"source,question,answer,rating\nme,{CLASSIC_9X9},,\n")
    one_line_error_in_process(capsys, *solve, "--data", str(path), words=(f"{path}, first puzzle: ", *missing))
    one_line_error_in_process(
        capsys,
        *solve,
        "--puzzle",
        "1234",
        words=("fits none of the bundled models (6x6 Sudoku: 36 cells, 9x9 Sudoku: 81 cells)", "got 4"),
    )
    one_line_error_in_process(
        capsys, *solve, "--puzzle", "1234", "--task", "maze", words=("no bundled model for task maze",)
    )
    # with --checkpoint nothing is routed: the 6x6 model says, as before, that it cannot read 81 cells
    one_line_error_in_process(
        capsys,
        *solve,
        "--checkpoint",
        "sudoku6-hard-hrm",
        "--puzzle",
        CLASSIC_9X9,
        "--log-level",
        "ERROR",
        words=("not a puzzle this model can read: sudoku6: board text must have 36 characters, got 81",),
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return home_with_9x9(tmp_path_factory.mktemp("home"))


def test_a_dropped_in_9x9_model_answers_81_cells_and_the_6x6_default_36(home, tmp_path):
    routed = solve_in(home, "--puzzle", CLASSIC_9X9, "--puzzle", PUZZLE_6X6, "--output", str(tmp_path / "r"))
    assert routed.returncode == 0, routed.stderr
    nine, six = home / "checkpoints" / "sudoku9-hrm", home / "checkpoints" / "sudoku6-hard-hrm"
    assert f"solve with {nine / 'step_1000'} (step 1000)" in routed.stderr  # each model loaded once
    assert f"solve with {six / 'step_11250'} (step 11250)" in routed.stderr
    first, second = saved(tmp_path / "r")  # in the order given
    assert (first["task"], first["max_steps"]) == ("sudoku", 4)  # the 9x9 fixture: halt_max_steps 4
    assert (second["task"], second["max_steps"], second["answer"]) == ("sudoku6", 8, ANSWER_6X6)
    # the same answers as each model given by --checkpoint
    alone = solve_in(home, "--checkpoint", str(nine), "--puzzle", CLASSIC_9X9, "--output", str(tmp_path / "9"))
    assert alone.returncode == 0, alone.stderr
    assert saved(tmp_path / "9")[0]["tokens"] == first["tokens"]
    before = run_cli(
        "--mode", "solve", "--puzzle", PUZZLE_6X6, "--device", "cpu", "--output", str(tmp_path / "6")
    )  # the checkout as shipped: the 6x6 default
    assert before.returncode == 0, before.stderr
    assert {k: v for k, v in saved(tmp_path / "6")[0].items() if k != "seconds"} == {
        k: v for k, v in second.items() if k != "seconds"
    }
    # a file goes to the model of its first puzzle; --task picks the model too
    path = tmp_path / "nine.csv"
    path.write_text(f"source,question,answer,rating\nme,{CLASSIC_9X9},,\nme,{CLASSIC_9X9},,\n")
    by_file = solve_in(home, "--data", str(path))
    assert by_file.returncode == 0 and f"solve with {nine / 'step_1000'}" in by_file.stderr, by_file.stderr
    assert by_file.stdout.count("(sudoku)") == 2
    by_task = solve_in(home, "--task", "sudoku", "--puzzle", CLASSIC_9X9)
    assert by_task.returncode == 0 and f"solve with {nine / 'step_1000'}" in by_task.stderr, by_task.stderr
