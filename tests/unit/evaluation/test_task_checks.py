"""New-user mistakes around tasks, through the CLI's main() in this process and the bundled checkpoint: a `--task`
that does not fit the data, and `--mode score` on data that is not ARC. Each is one line on
stderr, exit status 2, and nothing written."""

from __future__ import annotations

import pytest

from hrm_eval.data.generate import generate_csvs
from tests.conftest import ROOT, run_main

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
BUNDLED_DATA = BUNDLED / "data"  # 6x6 Sudoku: vocab_size 8, seq_len 36


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr
    return lines[0]


def _evaluate(capsys, *args: str):
    return run_main(
        capsys, "--mode", "evaluate", "--checkpoint", str(BUNDLED), "--device", "cpu", "--no-progress", *args
    )


def test_9x9_task_on_6x6_data_names_both_layouts(tmp_path, capsys):
    proc = _evaluate(
        capsys, "--data", str(BUNDLED_DATA), "--task", "sudoku", "--limit", "4", "--output", str(tmp_path / "out")
    )
    line = _one_line_error(proc)
    assert "task sudoku (vocab_size 11, seq_len 81)" in line
    assert "(vocab_size 8, seq_len 36)" in line and str(BUNDLED_DATA) in line
    assert not (tmp_path / "out").exists()


def test_maze_task_on_a_maze_csv_with_the_6x6_model_is_refused(tmp_path, capsys):
    # a 16x16 maze CSV (256 tokens) read with the 6x6 Sudoku checkpoint's vocabulary (8 tokens)
    csv = generate_csvs("maze", tmp_path / "maze16", num_train=0, num_test=2, seed=0, size=16)["test"]
    proc = _evaluate(capsys, "--data", csv, "--task", "maze", "--output", str(tmp_path / "out"))
    line = _one_line_error(proc)
    assert "task maze (vocab_size 6, seq_len n*n)" in line and "(vocab_size 8, seq_len 256)" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task", [None, "sudoku6"])
def test_the_right_task_or_none_still_evaluates(tmp_path, capsys, task):
    extra = ["--task", task] if task else []
    proc = _evaluate(capsys, "--data", str(BUNDLED_DATA), "--limit", "4", "--output", str(tmp_path / "out"), *extra)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "results.json").is_file()


def test_score_on_sudoku_predictions_says_it_needs_arc_data(tmp_path, capsys):
    preds = tmp_path / "preds"
    proc = _evaluate(capsys, "--data", str(BUNDLED_DATA), "--limit", "4", "--save-predictions", "--output", str(preds))
    assert proc.returncode == 0, proc.stderr
    [saved] = preds.glob("step_*_all_preds.0")
    prefix = str(saved)[: -len("_all_preds.0")]
    proc = run_main(
        capsys,
        "--mode",
        "score",
        "--data",
        str(BUNDLED_DATA),
        "--predictions",
        prefix,
        "--output",
        str(tmp_path / "scores"),
    )
    line = _one_line_error(proc)
    assert line.startswith("error: score needs ARC data (vocab_size 12, seq_len 900)")
    assert "vocab_size 8, seq_len 36" in line and "dataset.json" in line
    assert not (tmp_path / "scores").exists()
