"""Scaled puzzles in the batching scheduler, in process, on the default model: their attempts share
the one engine with plain puzzles (which are answered as if alone), they get ScaledRunner's
answers, and cancelling one drops its attempt in flight and its pending retries."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks import get_task
from hrm_eval.inference import ACTEngine, HaltingPolicy
from hrm_eval.inference.scaling import ScaledRunner, ScalingPolicy
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.serve.bridge import EngineBridge, ServeEngine, Ticket
from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.scaling import ServeScaling
from tests.conftest import ROOT
from tests.e2e.serve.conftest import ISSUE_PUZZLE
from tests.e2e.serve.test_scaling import HARD, HARDER

RUN = ROOT / "checkpoints" / "sudoku6-hard-hrm"
SUDOKU6 = get_task("sudoku6")
EMPTY = {"waiting": 0, "in_engine": 0, "pending": 0, "max_queue": 64}


@pytest.fixture(scope="module")
def model():
    data = PuzzleDataset(RUN / "data", split="test")
    return load_checkpoint(RUN / "step_11250", dataset=data.metadata, dtype="float32").model


def start(model, slots=8):
    scaling = ServeScaling.from_config(ServeConfig(), model.config.halt_max_steps, model.config.halt_max_steps)
    engine = ServeEngine(model, slots=slots, halting=HaltingPolicy("adaptive"), max_row_steps=scaling.row_steps)
    s = EngineBridge(engine, max_queue=64, batch_wait_s=0.2, threads=1)
    s.start()
    return s, scaling


def ticket(scaling, puzzle, budget=None, key=0, **kw):
    tokens = SUDOKU6.encode_puzzle(puzzle).astype(np.int32)
    t = Ticket(tokens, 0, time.monotonic() + 120, asyncio.get_running_loop(), **kw)
    if budget is not None:
        t.scaled = scaling.work(SUDOKU6, tokens, budget, key, 36, 8)
        t.scaled.next_attempt()
    return t


def tokens(puzzles):
    return torch.from_numpy(np.stack([SUDOKU6.encode_puzzle(p) for p in puzzles])).long()


def test_scaled_and_plain_puzzles_share_the_engine(model):
    """Two scaled and two plain puzzles submitted together: the plain ones get exactly what a plain
    engine gives them, the scaled ones what ScaledRunner gives (answer, attempts, cost), and the
    engine computed every ACT step once, several puzzles per engine step."""
    s, scaling = start(model)
    puzzles = [HARD, ISSUE_PUZZLE, HARDER, HARD]
    budgets = [64, None, 64, None]

    async def go():
        ts = [ticket(scaling, p, b, key=i) for i, (p, b) in enumerate(zip(puzzles, budgets))]
        s.submit(ts)
        return await asyncio.gather(*(t.future for t in ts))

    try:
        sols = asyncio.run(go())
    finally:
        s.stop()
    plain = ACTEngine(model, slots=8, halting=HaltingPolicy("adaptive")).run_all(
        tokens(puzzles), torch.zeros(4, dtype=torch.long)
    )
    runner = ScaledRunner(
        model, SUDOKU6, ScalingPolicy("verify", budget=64), slots=8, halting=HaltingPolicy("adaptive")
    )
    scaled = runner.run_all(tokens(puzzles), torch.zeros(4, dtype=torch.long))
    for i, sol in enumerate(sols):
        if budgets[i] is None:
            assert sol.scaling is None and sol.steps == int(plain.steps[i])
            assert np.array_equal(sol.preds, plain.preds[i].numpy())
        else:
            assert np.array_equal(sol.preds, scaled.preds[i].numpy())
            assert sol.steps == int(scaled.steps[i])
            assert sol.scaling["attempts"] == int(scaled.attempts[i]) > 1
            assert sol.scaling["act_steps_total"] == int(scaled.act_steps_total[i])
            assert sol.scaling["solved_at_attempt"] == int(scaled.solved_at_attempt[i])
            assert sol.scaling["selected_by"] == scaled.selected_by[i] == "verified"
    cost = sum(sol.scaling["act_steps_total"] if sol.scaling else sol.steps for sol in sols)
    assert s.engine.rows_computed == cost  # every step of every attempt, nothing twice
    assert s.engine.steps_run < cost and s.stats()["mean_batch"] > 1  # computed together
    assert s.queue_state() == EMPTY and not s._retries and not s._scaled


def test_cancelling_during_a_retry_stops_it(model):
    """A scaled puzzle is cancelled as its 2nd attempt's first step is reported: that attempt is
    not computed again, no later attempt starts, it is never answered and nothing stays queued;
    a plain puzzle beside it is answered as usual."""
    s, scaling = start(model)
    report = s.engine.on_step
    seen = []

    async def go():
        scaled = ticket(scaling, HARDER, 64, want_steps=True)
        plain = ticket(scaling, HARD)

        def on_step(rows):  # the engine thread
            report(rows)
            seen.append(len(rows.index))
            if scaled.step_attempts and scaled.step_attempts[-1] == 2 and not scaled.cancelled:
                s.cancel([scaled])
                seen.append("cancelled")

        s.engine.on_step = on_step
        s.submit([scaled, plain])
        await plain.future
        for _ in range(100):  # the engine goes idle once the cancelled attempt has left
            if s.queue_state() == EMPTY:
                break
            await asyncio.sleep(0.05)
        return scaled

    try:
        scaled = asyncio.run(go())
    finally:
        s.stop()
    assert not scaled.future.done()
    assert s.queue_state() == EMPTY and not s._retries and not s._scaled and not s._in_engine
    after = seen[seen.index("cancelled") + 1 :]
    assert all(n == 1 for n in after)  # only the plain puzzle computed after the cancel (if still running)
    assert (
        scaled.step_attempts[-1] == 2 and len(scaled.by_step) == scaling.attempt_steps + 1
    )  # all of attempt 1, then 1


def test_cancelling_between_attempts_drops_the_retry(model):
    """Cancelled right after its 1st attempt finished (its retry queued): the retry is dropped
    before it takes a slot, and the place in the queue is free at once."""
    s, scaling = start(model)
    finish = s._finish
    state = {}

    async def go():
        t = ticket(scaling, HARD, 64)

        def finishing(rows):  # the engine thread
            finish(rows)
            if s._retries and "rows" not in state:
                s.cancel([t])
                state["rows"] = s.engine.rows_computed

        s._finish = finishing  # type: ignore[method-assign]
        s.submit([t])
        for _ in range(200):
            if "rows" in state and s.queue_state() == EMPTY:
                break
            await asyncio.sleep(0.05)
        return t

    try:
        t = asyncio.run(go())
    finally:
        s.stop()
    # attempt 1 only (all its steps, unverified), no retry ran
    assert state["rows"] == s.engine.rows_computed == scaling.attempt_steps
    assert not t.future.done() and s.queue_state() == EMPTY and not s._retries


def test_server_defaults_and_bounds():
    """--scaling / --budget give a request without "budget" its budget; --max-budget bounds every
    request's (default 8 x halt_max_steps); 0 always means no scaling."""
    from hrm_eval.utils.errors import HRMEvalError

    attempt = ScalingPolicy("verify").resolve(8, 8).attempt_steps  # an attempt's length in evaluate and solve
    off = ServeScaling.from_config(ServeConfig(), 8, 8)
    assert (off.default_budget, off.max_budget, off.attempt_steps) == (None, 64, attempt)
    assert off.budget(None) is None and off.budget(0) is None and off.budget(64) == 64
    with pytest.raises(ValueError, match="65 ACT steps is over this server's maximum of 64"):
        off.budget(65)
    on = ServeScaling.from_config(ServeConfig(scaling="verify"), 8, 8)
    assert on.budget(None) == 32 and on.budget(0) is None and on.describe()["default"] == "verify"
    small = ServeScaling.from_config(ServeConfig(scaling="verify", max_budget=6), 8, 8)
    assert (small.default_budget, small.attempt_steps) == (6, 6)  # both within the bound
    assert ServeScaling.from_config(ServeConfig(attempt_steps=20), 8, 8).attempt_steps == 20
    with pytest.raises(HRMEvalError, match="--budget 100 exceeds --max-budget 64"):
        ServeScaling.from_config(ServeConfig(scaling="verify", budget=100), 8, 8)


def test_attempt_length_follows_scaling_policy():
    """As ScaledRunner: on a task with views an attempt is ScalingPolicy's length; without views
    (no task here; ARC) the one attempt may spend the whole budget; an impossible puzzle (givens
    that break the rules) gets one attempt of that length, whatever its budget."""
    scaling = ServeScaling.from_config(ServeConfig(), 8, 8)
    puzzle = SUDOKU6.encode_puzzle(HARD)
    with_views = scaling.work(SUDOKU6, puzzle, 40, 0, 36, 8)
    assert (
        len(with_views.views) == 8 and with_views.attempt_steps == ScalingPolicy("verify").resolve(8, 8).attempt_steps
    )
    without = scaling.work(None, puzzle, 40, 0, 36, 8)
    assert len(without.views) == 1 and without.attempt_steps == without.budget == 40
    impossible = SUDOKU6.encode_puzzle(ISSUE_PUZZLE[:3] + "5" + ISSUE_PUZZLE[4:])
    hopeless = scaling.work(SUDOKU6, impossible, 40, 0, 36, 8)
    assert len(hopeless.views) == 1 and hopeless.budget == hopeless.attempt_steps == with_views.attempt_steps
