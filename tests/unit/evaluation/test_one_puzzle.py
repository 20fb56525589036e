"""The one-puzzle path a service calls: text -> `task.encode_puzzle` -> the bundled model ->
`task.decode_answer` -> text, checked against the bundled CSV's answers and the Sudoku rules."""

from __future__ import annotations

import csv

import numpy as np
import torch

from hrm_eval.data.tasks import get_task
from hrm_eval.inference.engine import ACTEngine
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


def test_bundled_model_answers_questions_given_as_text():
    task = get_task("sudoku6")
    with open(BUNDLED / "raw" / "test.csv", newline="") as f:
        rows = [(q, a) for _, q, a, _ in list(csv.reader(f))[1:17]]
    # a raw puzzle carries no dataset: the task's layout gives the sequence length
    loaded = load_checkpoint(BUNDLED, device="cpu", dtype="float32", overrides={"seq_len": task.seq_len})
    inputs = torch.as_tensor(np.stack([task.encode_puzzle(q) for q, _ in rows]), dtype=torch.long)  # [16, 36]
    preds = ACTEngine(loaded.model).run_all(inputs, torch.zeros(len(rows), dtype=torch.long)).preds  # [16, 36]

    answers = [task.decode_answer(p) for p in preds]
    assert all(isinstance(a, str) and len(a) == 36 for a in answers)
    solved = [a == want for a, (_, want) in zip(answers, rows)]
    # the bundled model solves ~99% of this split; its answers are the CSV's unique solutions
    assert sum(solved) >= 14
    for ok, p, x in zip(solved, preds, inputs):
        # a right answer is valid by the rules and the rules accept nothing else (unique solutions)
        assert task.verify(x.numpy(), p.numpy()) == ok
