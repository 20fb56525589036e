"""Q-head calibration on hand-computed cases, and on the bundled model's results.json."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hrm_eval.evaluation.q_reliability import (
    auroc,
    average_ranks,
    brier_score,
    calibration_analysis,
    calibration_report,
    equal_mass_bins,
    expected_calibration_error,
    reliability_table,
)

# Five puzzles: confidence and whether the answer was right.
CONF = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
RIGHT = np.array([True, True, False, True, False])


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_equal_mass_bins_sort_by_confidence_and_split_evenly():
    bins = equal_mass_bins(CONF, 2)
    # sorted: 0.2 (idx 4), 0.6 (3), 0.7 (2) | 0.8 (1), 0.9 (0); 5 = 3 + 2
    assert [b.tolist() for b in bins] == [[4, 3, 2], [1, 0]]
    assert [len(b) for b in equal_mass_bins(np.arange(10.0), 3)] == [4, 3, 3]
    assert len(equal_mass_bins(CONF, 10)) == 5  # never more bins than puzzles


def test_ece_brier_auroc_by_hand():
    # ECE, 2 bins: {0.2, 0.6, 0.7}: confidence 0.5, right 1/3, weight 3/5 -> 3/5 * 1/6 = 0.1
    #              {0.8, 0.9}:      confidence 0.85, right 1,  weight 2/5 -> 2/5 * 0.15 = 0.06
    assert expected_calibration_error(CONF, RIGHT, 2) == pytest.approx(0.16, rel=1e-12)
    # Brier: (0.1^2 + 0.2^2 + 0.7^2 + 0.4^2 + 0.2^2) / 5 = 0.74 / 5
    assert brier_score(CONF, RIGHT) == pytest.approx(0.148, rel=1e-12)
    # AUROC: right {0.9, 0.8, 0.6} against wrong {0.7, 0.2}: 5 of the 6 pairs ordered right
    assert auroc(CONF, RIGHT) == pytest.approx(5 / 6, rel=1e-12)
    table = reliability_table(CONF, RIGHT, 2)
    assert [r["count"] for r in table] == [3, 2]
    assert table[0]["confidence_low"] == 0.2 and table[0]["confidence_high"] == 0.7
    assert table[1]["gap"] == pytest.approx(0.15, rel=1e-12)


def test_auroc_ties_count_one_half():
    # ranks of [0.5, 0.5, 0.5, 0.9] are [2, 2, 2, 4]
    assert average_ranks(np.array([0.5, 0.5, 0.5, 0.9])).tolist() == [2.0, 2.0, 2.0, 4.0]
    assert average_ranks(np.array([3.0, 1.0, 2.0, 1.0])).tolist() == [4.0, 1.5, 3.0, 1.5]
    # right {0.5, 0.9} vs wrong {0.5, 0.5}: two ties (1/2 each) + two wins = 3 of 4
    assert auroc(np.array([0.5, 0.5, 0.5, 0.9]), np.array([True, False, False, True])) == 0.75
    # every score equal: no information, 0.5
    assert auroc(np.zeros(4), np.array([True, False, True, False])) == 0.5
    assert auroc(np.array([1.0, 2.0]), np.array([True, False])) == 0.0


def test_one_class_gives_null_auroc_with_the_reason():
    rep = calibration_report(np.array([2.0, 3.0]), np.array([True, True]))
    assert rep["auroc"] is None and rep["auroc_undefined"] == "all 2 answers right"
    rep = calibration_report(np.array([2.0]), np.array([False]))
    assert rep["auroc_undefined"] == "all 1 answers wrong"
    empty = calibration_report(np.zeros(0), np.zeros(0, bool))
    assert empty["count"] == 0 and empty["ece"] is None and empty["auroc_undefined"] == "no puzzles"


def test_report_reads_logits_as_sigmoid_confidence():
    rep = calibration_report(logit(CONF), RIGHT, num_bins=2)
    assert rep["ece"] == pytest.approx(0.16, rel=1e-9)
    assert rep["brier"] == pytest.approx(0.148, rel=1e-9)
    assert rep["auroc"] == pytest.approx(5 / 6, rel=1e-12)
    assert rep["mean_confidence"] == pytest.approx(0.64, rel=1e-9)
    assert rep["accuracy"] == 0.6 and rep["count"] == 5 and rep["correct"] == 3


def test_analysis_at_halt_and_by_step_use_the_steps_each_puzzle_ran():
    # puzzle 0 ran 2 steps, puzzle 1 stopped after 1 (NaN after it halted)
    arrays = {
        "q_halt": np.array([[-1.0, 2.0], [1.0, math.nan]], np.float32),
        "exact": np.array([[False, True], [False, False]]),
        "steps": np.array([2, 1]),
    }
    cal = calibration_analysis(arrays)
    # at halt: puzzle 0 at step 2 (q 2, right), puzzle 1 at step 1 (q 1, wrong)
    assert cal["at_halt"]["count"] == 2 and cal["at_halt"]["auroc"] == 1.0
    s = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-1.0))
    assert cal["at_halt"]["brier"] == pytest.approx(((1 - s[0]) ** 2 + s[1] ** 2) / 2, rel=1e-6)
    assert [b["step"] for b in cal["by_step"]] == [1, 2]
    assert [b["count"] for b in cal["by_step"]] == [2, 1]  # step 2: only puzzle 0 ran it
    assert cal["by_step"][0]["auroc_undefined"] == "all 2 answers wrong"
