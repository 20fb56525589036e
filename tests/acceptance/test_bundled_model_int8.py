"""The first bundled model (checkpoints/sudoku6-hrm) with int8 weights: evaluate --quantize int8
on 200 test puzzles reports the measured cost, within the 1-point limit, and the fp32 graph
solves what PyTorch solves. (Export's int8 graph and the cost on a hand-computed case:
tests/unit/export/test_int8.py.)"""

from __future__ import annotations

import pytest

from hrm_eval.evaluation.run import simple_evaluate
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
LIMIT = 200


def test_int8_evaluation_of_the_bundled_model_reports_its_cost():
    data = BUNDLED / "data"
    fp32 = simple_evaluate(BUNDLED, data, limit=LIMIT, batch_size=100, progress=False, threads=1)
    int8 = simple_evaluate(BUNDLED, data, limit=LIMIT, batch_size=100, progress=False, threads=1, quantize="int8")
    cost = int8["quantization"]
    assert int8["provenance"]["evaluation"]["backend"] == "onnxruntime"
    assert int8["provenance"]["evaluation"]["quantization"] == "int8"
    assert cost["puzzles"] == LIMIT
    # the fp32 graph solves the puzzles PyTorch solves; the int8 run is the evaluation itself
    assert cost["exact_accuracy_fp32"] == pytest.approx(fp32["aggregate_metrics"]["exact_accuracy"], abs=1 / LIMIT)
    assert cost["exact_accuracy_int8"] == pytest.approx(int8["aggregate_metrics"]["exact_accuracy"], abs=1e-9)
    assert cost["exact_drop_points"] <= 1.0 and cost["acceptable"]
    assert cost["argmax_agreement"] >= 0.99
    assert fp32["aggregate_metrics"]["exact_accuracy"] >= 0.95  # the model card's level on its test split
