"""FinishedRows.stop_reason: why each row stopped, recorded by the engine where it decides
(the Q rule, the step limit, the verifier), so that no consumer works it out again."""

from __future__ import annotations

import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.inference import ACTEngine, HaltingPolicy
from hrm_eval.inference.halting import STOP_REASONS
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.fixture(scope="module")
def model_and_puzzles():
    data = PuzzleDataset(BUNDLED / "data", split="test")
    model = load_checkpoint(BUNDLED / "step_1875", dataset=data.metadata).model  # halts at 1..4 steps
    pb = next(data.iter_batches(24))
    return model, pb.inputs, pb.puzzle_identifiers


def reasons(fin):
    return [fin.reason(k) for k in range(len(fin))]


def test_fixed_rows_stop_at_the_step_limit(model_and_puzzles):
    model, inputs, ids = model_and_puzzles
    fin = ACTEngine(model, slots=8).run_all(inputs, ids)
    assert set(reasons(fin)) == {"step_limit"}


def test_adaptive_rows_stop_by_q_before_the_limit_and_at_it_otherwise(model_and_puzzles):
    model, inputs, ids = model_and_puzzles
    fin = ACTEngine(model, slots=8, halting=HaltingPolicy("adaptive")).run_all(inputs, ids)
    T = model.config.halt_max_steps
    for k, why in enumerate(reasons(fin)):
        assert why == ("q_halt" if int(fin.steps[k]) < T else "step_limit"), k
    assert "q_halt" in reasons(fin), "the test needs puzzles the Q rule stops early"


def test_verified_is_the_verifier_s_verdict(model_and_puzzles):
    model, inputs, ids = model_and_puzzles
    accept_odd = lambda x, preds, q: torch.tensor([bool(int(p.sum()) % 2) for p in preds])  # noqa: E731
    engine = ACTEngine(model, slots=8, halting=HaltingPolicy("adaptive"), verifier=accept_odd)
    fin = engine.run_all(inputs, ids)
    assert fin.verified is not None
    assert 0 < int(fin.verified.sum()) < len(fin.steps), "the test needs rows the verifier accepts and rejects"
    for k, why in enumerate(reasons(fin)):
        assert why in STOP_REASONS
        assert (why == "verified") == bool(fin.verified[k]), k
        if why != "verified":
            assert int(fin.steps[k]) == engine.limit, k
