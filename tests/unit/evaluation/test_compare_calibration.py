"""--mode compare reports each checkpoint's Q-head calibration, and its summary table as CSV."""

from __future__ import annotations

import pandas as pd
import pytest

from hrm_eval.compare import CSV_FILE, REPORT_FILE, compare_checkpoints, comparison_frame
from hrm_eval.evaluation.q_reliability import calibration_report
from hrm_eval.evaluation.run import simple_evaluate
from tests.conftest import ROOT

RUN = ROOT / "checkpoints" / "sudoku6-hrm"


def test_compare_calibration_matches_evaluate(tmp_path):
    report = compare_checkpoints(
        [RUN / "step_625", RUN / "step_3750"],
        data=RUN / "data",
        output_dir=tmp_path / "out",
        limit=24,
        device="cpu",
        cache_dir=tmp_path / "cache",
        plots=False,
        progress=False,
    )
    last = report["checkpoints"][-1]["calibration"]
    # evaluate's fixed run on the same puzzles: the Q head after the last step, the same numbers
    ev = simple_evaluate(RUN / "step_3750", RUN / "data", limit=24, progress=False, dtype=None)
    records = ev["per_puzzle_metrics"]
    want = ev["q_value_analysis"]["calibration"]["at_halt"]
    assert last["count"] == want["count"] == 24 and last["correct"] == want["correct"]
    for key in ("ece", "brier", "mean_confidence"):
        assert last[key] == pytest.approx(want[key], rel=1e-5)
    again = calibration_report([r["q_halt_logit"] for r in records], [r["solved"] for r in records])
    assert last["brier"] == pytest.approx(again["brier"], rel=1e-5)
    text = (tmp_path / "out" / REPORT_FILE).read_text()
    assert "## Q-head calibration" in text and "| step_625 |" in text
    table = pd.read_csv(tmp_path / "out" / CSV_FILE)
    assert table["checkpoint"].tolist() == ["step_625", "step_3750"]
    assert table["q_halt_brier"].tolist() == pytest.approx([c["calibration"]["brier"] for c in report["checkpoints"]])
    assert comparison_frame(report)["exact_accuracy"].tolist() == table["exact_accuracy"].tolist()
    lo_hi = [c["metrics"]["exact_accuracy_ci95"] for c in report["checkpoints"]]
    assert [list(x) for x in zip(table["exact_accuracy_ci95_lo"], table["exact_accuracy_ci95_hi"])] == lo_hi
