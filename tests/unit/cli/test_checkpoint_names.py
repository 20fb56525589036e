"""Checkpoints given by name: the lookup (hrm_eval.resources) and the command line's one-line
errors for an ambiguous or missing name, and solve without puzzles, run as `main([...])` in this
process (the real command lines are in tests/e2e/cli/test_ops_cli.py)."""

from __future__ import annotations

import pytest

from hrm_eval.resources import find_checkpoint
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT, one_line, run_main

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
HARD = ROOT / "checkpoints" / "sudoku6-hard-hrm"


def test_a_name_in_the_configured_directory_wins():
    assert find_checkpoint("step_3750", [BUNDLED]) == BUNDLED / "step_3750"
    assert find_checkpoint("step_3750", [HARD]) == HARD / "step_3750"
    assert find_checkpoint("step_7500").resolve() == (HARD / "step_7500").resolve()  # only one run has it
    assert find_checkpoint("sudoku6-hrm").resolve() == BUNDLED.resolve()  # a run directory by its name


def test_ambiguous_and_missing_names_list_the_candidates():
    with pytest.raises(HRMEvalError, match="checkpoint name step_3750 is ambiguous") as e:
        find_checkpoint("step_3750")
    assert "sudoku6-hard-hrm/step_3750" in str(e.value) and "sudoku6-hrm/step_3750" in str(e.value)
    with pytest.raises(HRMEvalError, match="checkpoint not found: step_9") as e:
        find_checkpoint("step_9")
    for name in ("sudoku6-hrm/step_625", "sudoku6-hrm/step_1875", "sudoku6-hard-hrm/step_7500"):
        assert name in str(e.value)


def test_cli_names_ambiguous_checkpoint_in_one_line(capsys):
    done = run_main(capsys, "--mode", "inspect", "--checkpoint", "step_3750", cwd=ROOT)
    line = one_line(done.returncode, done.stderr, "ambiguous")
    assert "sudoku6-hard-hrm/step_3750" in line and "sudoku6-hrm/step_3750" in line


def test_solve_needs_puzzles_one_way(capsys):
    done = run_main(capsys, "--mode", "solve", cwd=ROOT)
    one_line(done.returncode, done.stderr, "give --puzzle TEXT (repeatable) or --data FILE")
