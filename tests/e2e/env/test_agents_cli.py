"""The agents through real processes: `python deploy.py --mode play` and
examples/env_quickstart.py (the in-process agent tests: tests/unit/env/test_agents.py)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, run_cli

DATA = ROOT / "checkpoints" / "sudoku6-hard-hrm" / "data"  # the default bundled model's test split


@pytest.mark.slow
def test_mode_play_prints_solved_rate_mean_moves_and_mean_reward():
    proc = run_cli(
        "--mode",
        "play",
        "--env",
        "hrm_eval/Sudoku6-v0",
        "--agent",
        "model",
        "--episodes",
        "5",
        "--data",
        str(DATA),
        "--seed",
        "0",
    )
    assert proc.returncode == 0, proc.stderr
    assert "solved rate" in proc.stdout and "mean moves" in proc.stdout and "mean reward" in proc.stdout
    think = run_cli("--mode", "play", "--env", "hrm_eval/Think-v0", "--agent", "qhead", "--episodes", "5")
    assert think.returncode == 0, think.stderr
    bad = run_cli("--mode", "play", "--env", "hrm_eval/Think-v0", "--agent", "model")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "agent" in bad.stderr


@pytest.mark.slow
def test_the_quickstart_example_runs_and_shows_the_trade_off():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "env_quickstart.py"), "--puzzles", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "mean steps" in line and "accuracy" in line]
    assert len(lines) == 5 and lines[0].lstrip().startswith("Q head")
    steps = [float(line.split("mean steps")[1].split()[0]) for line in lines[1:]]
    assert steps == sorted(steps)  # a higher threshold never halts sooner
