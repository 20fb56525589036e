"""The batching scheduler in process, on the bundled model: requests that arrive together share
engine steps, and a request that arrives while others run joins them at the next ACT step."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.inference import ACTEngine, HaltingPolicy
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.serve.bridge import EngineBridge, QueueFull, ServeEngine, Ticket
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.fixture(scope="module")
def bundled():
    data = PuzzleDataset(BUNDLED / "data", split="test")
    loaded = load_checkpoint(BUNDLED / "step_3750", dataset=data.metadata)
    inputs = np.asarray(data.sets["all"]["inputs"][:16], dtype=np.int32)
    labels = np.asarray(data.sets["all"]["labels"][:16], dtype=np.int32)
    return loaded.model, inputs, labels


def scheduler(model, slots, halting="fixed", max_queue=64, wait_s=0.2):
    engine = ServeEngine(model, slots=slots, halting=HaltingPolicy(halting))
    s = EngineBridge(engine, max_queue=max_queue, batch_wait_s=wait_s, threads=1)
    s.start()
    return s


def tickets(inputs, **kw):
    loop = asyncio.get_running_loop()
    return [Ticket(x, 0, time.monotonic() + 120, loop, **kw) for x in inputs]


def test_requests_arriving_together_share_engine_steps(bundled):
    """8 puzzles submitted together with 8 slots and fixed halting: 4 engine steps in all (one
    batch), not 32; the answers are the engine's own for each puzzle."""
    model, inputs, labels = bundled
    s = scheduler(model, slots=8)

    async def go():
        ts = tickets(inputs[:8])
        s.submit(ts)
        return await asyncio.gather(*(t.future for t in ts))

    try:
        sols = asyncio.run(go())
    finally:
        s.stop()
    assert s.engine.steps_run == 4 and s.engine.rows_computed == 32
    assert s.stats()["mean_batch"] == 8.0
    assert [sol.steps for sol in sols] == [4] * 8
    reference = ACTEngine(model, slots=8).run_all(*_tensors(inputs[:8]))
    for i, sol in enumerate(sols):  # each answer went back to its own request
        assert np.array_equal(sol.preds, reference.preds[i].numpy())
    assert sum(np.array_equal(sol.preds, labels[i]) for i, sol in enumerate(sols)) >= 7


def _tensors(inputs):
    import torch

    return torch.from_numpy(inputs), torch.zeros(len(inputs), dtype=torch.int32)


def test_a_late_request_joins_the_running_batch(bundled):
    """B is submitted when A's first ACT step is reported: it runs beside A rather than after it,
    so both finish in fewer engine steps than one after the other (4 + 4)."""
    model, inputs, _ = bundled
    s = scheduler(model, slots=4, wait_s=0.0)

    async def go():
        (a,) = tickets(inputs[:1], events=asyncio.Queue())
        s.submit([a])
        kind, (n, _, _) = await a.events.get()
        assert (kind, n) == ("step", 1)
        (b,) = tickets(inputs[1:2])
        s.submit([b])
        return await a.future, await b.future

    try:
        sol_a, sol_b = asyncio.run(go())
    finally:
        s.stop()
    assert sol_a.steps == sol_b.steps == 4
    assert [p for p, _ in sol_a.by_step][-1].tolist() == sol_a.preds.tolist()
    assert s.engine.steps_run < 8  # B shared some of A's engine steps
    assert s.engine.rows_computed == 8


def test_queue_full_is_all_or_nothing(bundled):
    model, inputs, _ = bundled
    s = scheduler(model, slots=2, max_queue=3)

    async def go():
        with pytest.raises(QueueFull):
            s.submit(tickets(inputs[:4]))
        assert s.queue_state()["pending"] == 0  # nothing of the refused request was queued
        ts = tickets(inputs[:3])
        s.submit(ts)
        return await asyncio.gather(*(t.future for t in ts))

    try:
        assert len(asyncio.run(go())) == 3
    finally:
        s.stop()
    assert s.queue_state()["pending"] == 0


def test_a_request_that_gave_up_frees_its_queue_places_at_once(bundled):
    """max_queue 16 and 1 slot: 16 puzzles queued, the request gives up (its deadline); the 15
    still waiting leave the queue at once (the one in the engine finishes its step), so a new
    request fits immediately instead of meeting QueueFull, and it is answered."""
    model, inputs, _ = bundled
    s = scheduler(model, slots=1, max_queue=16, wait_s=0.0)

    async def go():
        first = tickets(inputs[:16])
        s.submit(first)
        with pytest.raises(QueueFull):
            s.submit(tickets(inputs[:1]))
        s.cancel(first)
        assert s.queue_state()["pending"] <= 1  # at most the puzzle already in the engine
        late = tickets(inputs[:15])
        s.submit(late)  # fits now
        return await asyncio.gather(*(t.future for t in late))

    try:
        sols = asyncio.run(go())
    finally:
        s.stop()
    assert len(sols) == 15 and all(sol.steps == 4 for sol in sols)


def test_cancelled_puzzles_leave_the_engine_before_its_next_step(bundled):
    """8 puzzles in 8 slots, fixed halting (4 ACT steps each); 4 are cancelled as the first step
    is reported: they are not computed again, so the engine computes 8 + 3 x 4 = 20 rows, not 32,
    the other 4 get the same answers as without the cancellation, and the queue is empty."""
    model, inputs, _ = bundled
    s = scheduler(model, slots=8)
    report = s.engine.on_step

    async def go():
        ts = tickets(inputs[:8])

        def on_step(rows):  # the engine thread, right after step 1
            report(rows)
            if s.engine.steps_run == 1:
                s.cancel(ts[:4])

        s.engine.on_step = on_step
        s.submit(ts)
        return ts, await asyncio.gather(*(t.future for t in ts[4:]))

    try:
        ts, sols = asyncio.run(go())
    finally:
        s.stop()
    assert s.engine.rows_computed == 8 + 3 * 4 and s.engine.steps_run == 4
    assert not any(t.future.done() for t in ts[:4])  # nobody waits for them: never answered
    reference = ACTEngine(model, slots=8).run_all(*_tensors(inputs[:8]))
    for i, sol in enumerate(sols, start=4):
        assert np.array_equal(sol.preds, reference.preds[i].numpy())
    assert s.queue_state() == {"waiting": 0, "in_engine": 0, "pending": 0, "max_queue": 64}
