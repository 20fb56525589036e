"""`python deploy.py --mode ensemble` and `--mode compare` as real subprocesses."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SUDOKU_BUILT, run_cli


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


@pytest.mark.slow
def test_ensemble_and_compare_commands(fixture_run, broken_run, tmp_path):
    ckpts = [str(fixture_run / f"step_{s}") for s in (1000, 2000, 3000)]
    out = tmp_path / "ens"
    cache = ["--cache-dir", str(tmp_path / "cache")]  # shared by these commands, not outputs/cache in the checkout
    common = ["--data", str(SUDOKU_BUILT), "--limit", "8", "--device", "cpu", "--no-progress", "--output", str(out)]
    common += cache
    proc = run_cli("--mode", "ensemble", "--checkpoints", *ckpts, "--strategy", "vote", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ensemble (vote)" in proc.stdout and "oracle (any member)" in proc.stdout and "step_2000" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["strategy"]["name"] == "vote" and len(results["members"]) == 3

    proc = run_cli("--mode", "ensemble", "--checkpoints", *ckpts, "--strategy", "stacking", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("predictions from cache") == 3  # the members did not run again
    assert (out / "stacker.json").is_file() and "stacker:" in proc.stdout

    # compare after ensemble on the same checkpoints and data: one shared cache, no model runs
    proc = run_cli(
        "--mode",
        "compare",
        "--checkpoints",
        *ckpts,
        "--data",
        str(SUDOKU_BUILT),
        "--limit",
        "8",
        "--device",
        "cpu",
        "--no-progress",
        "--no-plots",
        "--output",
        str(tmp_path / "cmp_same"),
        *cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("predictions from cache") == 3
    compared = json.loads((tmp_path / "cmp_same" / "checkpoint_comparison.json").read_text())
    assert [r["cache"] for r in compared["checkpoints"]] == ["hit"] * 3

    report = tmp_path / "cmp"
    proc = run_cli(
        "--mode",
        "compare",
        "--run",
        str(broken_run),
        "--data",
        str(SUDOKU_BUILT),
        "--limit",
        "8",
        "--device",
        "cpu",
        "--no-progress",
        "--output",
        str(report),
        *cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "recommendation: step_" in proc.stdout and "NaN/Inf" in proc.stdout and "did not move" in proc.stdout
    assert (report / "CHECKPOINT_EVALUATION_REPORT.md").is_file() and (report / "checkpoint_comparison.json").is_file()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--weights", "1", "2", "3"], ("--weights: 3 values for 2 members",)),
        (["--weights", "one", "two"], ("'one' is not a number",)),
        (["--tta", "0"], ("--tta must be at least 1",)),
        (["--strategy", "vote", "--stacker", "s.json"], ("applies to --strategy stacking",)),
    ],
)
def test_ensemble_mistakes_are_one_line_errors(args, needles, fixture_run, tmp_path):
    ckpts = [str(fixture_run / "step_1000"), str(fixture_run / "step_2000")]
    proc = run_cli(
        "--mode",
        "ensemble",
        "--checkpoints",
        *ckpts,
        "--data",
        str(SUDOKU_BUILT),
        "--limit",
        "2",
        "--device",
        "cpu",
        "--no-progress",
        "--output",
        str(tmp_path),
        *args,
    )
    one_line_error(proc, *needles)


def test_missing_member_is_a_one_line_error(tmp_path):
    proc = run_cli(
        "--mode",
        "ensemble",
        "--checkpoints",
        str(tmp_path / "nope"),
        "--data",
        str(SUDOKU_BUILT),
        "--output",
        str(tmp_path),
    )
    one_line_error(proc, "checkpoint not found", "nope")
