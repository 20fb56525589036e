"""Step efficiency: hand-computed cases, and the bundled model under fixed and adaptive halting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrm_eval.evaluation.metrics import first_correct_step, step_efficiency_summary
from hrm_eval.evaluation.run import simple_evaluate
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hard-hrm"


@pytest.mark.parametrize(
    "exact, first",
    [
        ([True], 1),
        ([True, True, True, True], 1),
        ([False, True, True], 2),
        ([True, False, True], 3),  # right, lost, right again: right for good only from step 3
        ([False, False, False, True], 4),
        ([True, False], None),  # wrong at the end: not solved
        ([], None),
    ],
)
def test_first_correct_step(exact, first):
    assert first_correct_step(exact) == first


def test_summary_is_over_solved_puzzles_only():
    # solved: first right at 2 of 4 steps (0.5) and at 1 of 2 (0.5); puzzle 2 unsolved (0)
    s = step_efficiency_summary(np.array([2, 0, 1]), np.array([4, 3, 2]))
    assert s == {"step_efficiency": 0.5, "mean_first_correct_step": 1.5, "mean_steps_solved": 3.0}
    s = step_efficiency_summary(np.array([1, 3]), np.array([4, 4]))
    assert s["step_efficiency"] == pytest.approx((1 / 4 + 3 / 4) / 2, rel=1e-12)
    assert step_efficiency_summary(np.zeros(3, np.int32), np.full(3, 4))["step_efficiency"] is None


@pytest.mark.slow
def test_bundled_model_fixed_against_adaptive(tmp_path):
    """Adaptive halting stops nearer the step the answer became right: higher efficiency."""
    runs = {}
    for halting in ("fixed", "adaptive"):
        out = tmp_path / halting
        simple_evaluate(
            BUNDLED, BUNDLED / "heldout", output_dir=out, limit=48, halting=halting, progress=False, batch_size=48
        )
        runs[halting] = json.loads((out / "results.json").read_text())
    for res in runs.values():
        recs, agg = res["per_puzzle_metrics"], res["aggregate_metrics"]
        assert "first_correct_step" in res["metric_definitions"]["step_efficiency"]
        solved = [r for r in recs if r["solved"]]
        assert solved and len(solved) < len(recs)  # the hard model: some puzzles fail
        for r in recs:
            assert r["first_correct_step"] == first_correct_step(r["solved_by_step"])
            if r["solved"]:
                assert 1 <= r["first_correct_step"] <= r["num_steps"]
                assert r["step_efficiency"] == pytest.approx(r["first_correct_step"] / r["num_steps"], rel=1e-12)
            else:
                assert r["first_correct_step"] is None and r["step_efficiency"] is None
        mean = np.mean([r["step_efficiency"] for r in solved])
        assert agg["step_efficiency"] == pytest.approx(mean, rel=1e-9)
        assert agg["mean_first_correct_step"] == pytest.approx(np.mean([r["first_correct_step"] for r in solved]))
    assert all(r["num_steps"] == 8 for r in runs["fixed"]["per_puzzle_metrics"])
    efficiency = {h: r["aggregate_metrics"]["step_efficiency"] for h, r in runs.items()}
    assert efficiency["adaptive"] > efficiency["fixed"]
    # fixed: every solved puzzle's efficiency is first_correct_step / 8
    fixed = runs["fixed"]["aggregate_metrics"]
    assert fixed["step_efficiency"] == pytest.approx(fixed["mean_first_correct_step"] / 8, rel=1e-9)
    # the calibration at halt, in a fixed run, is the calibration after the last step
    cal = runs["fixed"]["q_value_analysis"]["calibration"]
    assert len(cal["by_step"]) == 8
    for key in ("ece", "brier", "auroc", "count", "correct"):
        assert cal["at_halt"][key] == cal["by_step"][-1][key]
    assert cal["at_halt"]["accuracy"] == pytest.approx(fixed["exact_accuracy"], rel=1e-12)
    table = cal["at_halt"]["reliability"]
    assert sum(b["count"] for b in table) == 48
    ece = sum(b["count"] / 48 * abs(b["gap"]) for b in table)
    assert cal["at_halt"]["ece"] == pytest.approx(ece, rel=1e-9)
    assert (tmp_path / "fixed" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cal["plot"].endswith("reliability.png")
