"""The engine over a live source (a server's queue): `None` from the source means "nothing right
now", not the end; `on_step` sees every ACT step as it is computed. A plain dataset run is
unchanged (tests/inference/test_engine.py)."""

from __future__ import annotations

import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.inference import ACTEngine, HaltingPolicy, PuzzleChunk
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
N = 12


@pytest.fixture(scope="module")
def bundled():
    data = PuzzleDataset(BUNDLED / "data", split="test")
    model = load_checkpoint(BUNDLED / "step_1875", dataset=data.metadata).model  # halts at 1..4 steps
    batch = next(data.iter_batches(N))
    return model, batch.inputs, batch.puzzle_identifiers


def one(i, inputs, ids):
    return PuzzleChunk(torch.tensor([i]), inputs[i : i + 1], ids[i : i + 1])


def collect(engine, source):
    out = {}
    for fin in engine.run(source):
        for j, i in enumerate(fin.index.tolist()):
            out[i] = (fin.preds[j], int(fin.steps[j]))
    return out


def test_none_means_nothing_now_not_the_end(bundled):
    """Puzzles trickling in with idle gaps (None) all finish, with what run_all gives them."""
    model, inputs, ids = bundled
    engine = ACTEngine(model, slots=4, halting=HaltingPolicy("adaptive"))
    reference = engine.run_all(inputs, ids)
    polls = []

    def live():
        yield None  # idle before anything arrived: the engine must ask again, not stop
        for i in range(N):
            yield one(i, inputs, ids)
            for _ in range(i % 3):  # between arrivals the engine steps what it has
                polls.append(i)
                yield None

    got = collect(ACTEngine(model, slots=4, halting=HaltingPolicy("adaptive")), live())
    assert sorted(got) == list(range(N))
    for i in range(N):
        assert torch.equal(got[i][0], reference.preds[i])
        assert got[i][1] == int(reference.steps[i])
    assert len(polls) == sum(i % 3 for i in range(N))  # every None was consumed: nothing was skipped


def test_source_that_only_says_nothing_ends_when_it_ends(bundled):
    model, _, _ = bundled
    engine = ACTEngine(model, slots=2)
    assert collect(engine, iter([None, None, None])) == {}
    assert engine.steps_run == 0


def test_on_step_sees_every_step_of_every_row(bundled):
    """Each row's steps arrive as 1, 2, ..., its halting step; the answers equal the engine's
    own trace (preds_by_step) and the last one the finished answer."""
    model, inputs, ids = bundled
    seen = {}

    def on_step(rows):
        assert rows.preds.shape == (len(rows.index), inputs.shape[1])
        for j, i in enumerate(rows.index.tolist()):
            seen.setdefault(i, []).append((int(rows.steps[j]), rows.preds[j].clone(), float(rows.q_halt_logits[j])))

    engine = ACTEngine(model, slots=5, halting=HaltingPolicy("adaptive"), trace_preds=True, on_step=on_step)
    finished = {}
    for fin in engine.run(one(i, inputs, ids) for i in range(N)):
        for j, i in enumerate(fin.index.tolist()):
            finished[i] = (fin.preds[j], int(fin.steps[j]), fin.preds_by_step[j], fin.q_halt_by_step[j])
    assert sorted(seen) == list(range(N))
    assert sum(len(v) for v in seen.values()) == engine.rows_computed
    for i, events in seen.items():
        preds, steps, by_step, q_by_step = finished[i]
        assert [s for s, _, _ in events] == list(range(1, steps + 1))
        for t, (_, p, q) in enumerate(events):
            assert torch.equal(p.to(by_step.dtype), by_step[t])
            assert q == float(q_by_step[t])
        assert torch.equal(events[-1][1], preds)
