"""int8 weights: the measured cost (and the refusal above the limit) on a hand-computed case.
(The export command writing the int8 graph: tests/e2e/export/test_int8_export_cli.py; evaluate
--quantize int8 on 200 puzzles, within the 1-point limit: tests/acceptance/test_bundled_model_int8.py.)"""

from __future__ import annotations

import pytest
import torch

from hrm_eval.export.quantize import compare_outputs
from hrm_eval.inference.runner import FinishedRows
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
LIMIT = 200


def test_cost_by_hand():
    """3 puzzles of 2 scored tokens: int8 changes one token of puzzle 2 (a wrong answer) and one
    token of puzzle 0 (another right answer is impossible, so fp32's right answer turns wrong)."""
    labels = torch.tensor([[1, 2, -100], [3, 4, -100], [5, 6, 7]])
    fp32 = torch.tensor([[1, 2, 0], [3, 4, 0], [5, 0, 7]])
    int8 = torch.tensor([[1, 0, 0], [3, 4, 9], [5, 1, 7]])
    cost = compare_outputs(_rows(fp32), _rows(int8), labels)
    assert cost.exact_accuracy_fp32 == pytest.approx(2 / 3) and cost.exact_accuracy_int8 == pytest.approx(1 / 3)
    assert cost.token_accuracy_fp32 == pytest.approx(6 / 7) and cost.token_accuracy_int8 == pytest.approx(5 / 7)
    assert cost.argmax_agreement == pytest.approx(5 / 7)  # position 2 of rows 0-1 is not scored
    assert cost.answer_agreement == pytest.approx(1 / 3)
    assert cost.exact_drop_points == pytest.approx(100 / 3) and not cost.acceptable


def _rows(preds: torch.Tensor) -> FinishedRows:
    """FinishedRows whose argmax answers are `preds` [n, L] (vocabulary of 10)."""
    n = len(preds)
    logits = torch.nn.functional.one_hot(preds, 10).float()
    zeros = torch.zeros(n)
    return FinishedRows(
        torch.arange(n), logits, zeros, zeros, torch.ones(n, dtype=torch.int32), zeros[:, None], zeros[:, None]
    )
