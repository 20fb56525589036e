"""The bridge between HTTP requests and the ACT engine: requests from many clients share the
engine's slots (dynamic batching). The engine schedules (its slots, its queue); this only hands
puzzles over and answers back.

One engine thread runs `ACTEngine.run` over a *live* source: the queue of submitted puzzles.

    HTTP handlers (event loop) --submit--> waiting [deque] --source--> engine slots [max_batch]
          ^                                                                 |
          +---- futures / step events (call_soon_threadsafe) <-- halted rows / on_step

The source never blocks while puzzles are in flight: it hands over what is queued and says
"nothing right now" otherwise, so the engine keeps stepping and new puzzles join at the next
ACT step (continuous batching: a puzzle that halts frees its slot at once). When the engine is
idle the source waits for the first puzzle, then up to `batch_wait_s` for more to arrive
together (the bounded wait), so a burst starts as one batch instead of one puzzle and a tail.

A request that gives up (its client went away, its deadline passed) cancels its tickets: the
waiting ones leave the queue at once and the ones in the engine lose their slots before the
next engine step (`ServeEngine`), so abandoned work neither holds `max_queue` places nor
computes.

Test-time scaling (a request's `"budget"`, hrm_eval.serve.scaling): a scaled puzzle's attempts
go through the same engine, one after another, each taking a slot like any puzzle (its rows
think on until verified, `ServeEngine`); an attempt that needs a successor puts it in front of
the queue (`_retries`), so a puzzle in progress finishes before new ones start. Such a puzzle
counts once in `max_queue` from its first attempt to its answer; cancelling it drops the
attempt in flight and its pending retries alike.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hrm_eval.inference.engine import ACTEngine, StepRows
from hrm_eval.inference.runner import FinishedRows, PuzzleChunk
from hrm_eval.serve.metrics import Metrics
from hrm_eval.serve.model import EngineAnswer
from hrm_eval.serve.scaling import ScaledWork, verdicts

log = logging.getLogger("hrm_eval")
IDLE_POLL_S = 0.5  # an idle engine thread wakes this often to see whether the server is stopping


class _Stopping(Exception):
    """The server is shutting down: the live source ends."""


class QueueFull(Exception):
    """More puzzles than `max_queue` would be waiting or in flight."""


@dataclass(eq=False)
class Ticket:
    """One puzzle on its way through the engine. Created and awaited on the event loop;
    `solution` / `events` are fed from the engine thread through `loop.call_soon_threadsafe`."""

    tokens: np.ndarray  # [L] int32
    identifier: int
    deadline: float  # time.monotonic() after which nobody waits for it
    loop: asyncio.AbstractEventLoop
    want_steps: bool = False
    timeout_s: float = 0.0  # the time its request was given (for the 504 message)
    events: asyncio.Queue | None = None  # a stream's ("step", (n, preds, q_halt)), then ("final", EngineAnswer)
    future: asyncio.Future = field(init=False)
    submitted: float = field(default_factory=time.monotonic)
    started: float = 0.0  # when it took a slot
    by_step: list[tuple[np.ndarray, float]] = field(default_factory=list)  # engine thread only
    cancelled: bool = False  # its request gave up (deadline, client gone): skip it if not started
    scaled: ScaledWork | None = None  # test-time scaling: its attempts (None: one plain run)
    step_attempts: list[int] = field(default_factory=list)  # scaled: the attempt of each of by_step
    lane: Any = None  # the served model (app.Lane) whose engine it was queued on

    def __post_init__(self) -> None:
        self.future = self.loop.create_future()
        self.want_steps = self.want_steps or self.events is not None  # a stream is made of its steps


class ServeEngine(ACTEngine):
    """The ACT engine with two additions for serving.

    Cancellation: before every engine step it asks `evict` for the ids of puzzles nobody waits
    for any more and frees their slots (their rows are simply not computed again; a new puzzle
    may take the slot in the same refill).

    Scaled rows beside plain ones: `scaled_rows(ids)` says which of the rows just stepped are
    attempts of test-time scaling ([n] bool; None: none are). Those go on thinking where the
    policy would stop them until `check_rows(ids, inputs, answers, q_halt)` accepts their answer
    or they reach their own step limit (the engine's verifier rule, per row); every other row
    halts exactly as in a plain engine. With no scaled row in a step, the step is the plain
    engine's own. Build it with `max_row_steps` (an attempt's most steps) for scaled rows, and
    without a `verifier`: only attempts are checked, by `check_rows`."""

    evict: Callable[[], list[int]] | None = None
    scaled_rows: Callable[[torch.Tensor], torch.Tensor | None] | None = None
    check_rows: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def _refill(self, state: Any, queue: Any) -> None:
        gone = self.evict() if self.evict is not None else []
        if gone:
            drop = torch.isin(state.index, torch.tensor(gone, dtype=torch.int64, device=state.index.device))
            state.active &= ~drop
        super()._refill(state, queue)

    def _checked_rows(self, state: Any, active: torch.Tensor) -> torch.Tensor | bool | None:
        scaled = self.scaled_rows(state.index[active]) if self.scaled_rows is not None else None
        if scaled is None or self.check_rows is None:  # no attempt of test-time scaling in this step
            return super()._checked_rows(state, active)
        return scaled.to(active.device)

    def _check(self, state: Any, rows: torch.Tensor, preds: torch.Tensor, q_halt: torch.Tensor) -> torch.Tensor:
        assert self.check_rows is not None  # _checked_rows names rows only with check_rows (no verifier here)
        return self.check_rows(state.index[rows], state.inputs[rows], preds, q_halt)


class EngineBridge:
    """Between the event loop and the engine: owns the engine thread. `submit` is called from
    the event loop; everything else that touches the engine runs on the engine thread."""

    def __init__(
        self,
        engine: ACTEngine,
        *,
        max_queue: int,
        batch_wait_s: float,
        threads: int,
        metrics: Metrics | None = None,
    ):
        self.engine = engine
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self.threads = threads
        self.metrics = metrics
        engine.on_step = self._on_step
        if isinstance(engine, ServeEngine):
            engine.evict = self._evictions
            engine.scaled_rows = self._scaled_mask
            engine.check_rows = self._check_rows
        self.confidence = 0.5  # tasks without rules: sigmoid(q_halt) a scaled answer needs
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._pending = 0  # waiting + in the engine (guarded by _cond)
        self._in_engine: dict[int, Ticket] = {}  # engine row id -> its ticket (engine thread only)
        self._scaled: set = set()  # engine row ids of scaled attempts (engine thread only)
        self._retries: deque[Ticket] = deque()  # scaled puzzles waiting for their next attempt (engine thread)
        self._watched = 0  # tickets in the engine that want their steps (engine thread only)
        self._ids = itertools.count()
        self._stopping = False
        self._cancelled_in_engine = False  # a cancel() touched tickets that may be in the engine
        self._in_engine_count = 0  # len(_in_engine), readable from the event loop (guarded by _cond)
        self.error: BaseException | None = None  # set when the engine thread died
        self.puzzles_done = 0
        self._thread = threading.Thread(target=self._main, name="hrm-engine", daemon=True)

    # ---- the event loop's side -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def submit(self, tickets: list[Ticket]) -> None:
        """Queue all of them or none (QueueFull)."""
        if not self.alive:
            raise RuntimeError(f"the engine stopped: {self.error!r}")
        with self._cond:
            if self._pending + len(tickets) > self.max_queue:
                raise QueueFull(f"{self._pending} puzzles queued or in flight (max_queue {self.max_queue})")
            self._pending += len(tickets)
            self._waiting.extend(tickets)
            self._cond.notify()

    def cancel(self, tickets: list[Ticket]) -> int:
        """Their requests gave up (deadline, client gone, drain): the ones still waiting leave the
        queue now, so their places are free for the next request; the ones in the engine lose their
        slots before its next step. Returns how many were still unanswered (counted as cancelled)."""
        live = [t for t in tickets if not t.cancelled and not t.future.done()]
        with self._cond:
            for t in tickets:
                t.cancelled = True
            gone = {id(t) for t in live}
            kept = [t for t in self._waiting if id(t) not in gone]
            self._pending -= len(self._waiting) - len(kept)
            self._waiting.clear()
            self._waiting.extend(kept)
            self._cancelled_in_engine = self._cancelled_in_engine or bool(live)
        if live and self.metrics is not None:
            self.metrics.cancelled.inc(len(live))
        return len(live)

    def queue_state(self) -> dict[str, int]:
        with self._cond:
            return {
                "waiting": len(self._waiting),
                "in_engine": self._in_engine_count,
                "pending": self._pending,
                "max_queue": self.max_queue,
            }

    # ---- the engine thread ------------------------------------------------------------------
    def _main(self) -> None:
        torch.set_num_threads(self.threads)
        try:
            for finished in self.engine.run(self._source()):
                self._finish(finished)
        except BaseException as e:  # noqa: BLE001 - every waiting request must hear about it
            self.error = e
            log.exception("the engine thread stopped")
            self._fail_all(e)

    def _next_ticket(self, gather_until: float | None) -> Ticket | None:
        """The next live ticket; None for "nothing right now". Blocks only when the engine is
        idle (until a puzzle comes) or while gathering a batch (until `gather_until`)."""
        with self._cond:
            while not self._stopping:
                while self._waiting:
                    t = self._waiting.popleft()
                    if not t.cancelled and time.monotonic() < t.deadline:
                        return t
                    self._pending -= 1  # its request already answered 504 / went away
                now = time.monotonic()
                if gather_until is not None and now < gather_until:
                    self._cond.wait(gather_until - now)
                elif self._in_engine or gather_until is not None:
                    return None
                else:
                    self._cond.wait(IDLE_POLL_S)
            raise _Stopping

    def _source(self) -> Iterator[PuzzleChunk | None]:
        gather_until: float | None = None
        while True:
            if self._retries:  # a scaled puzzle's next attempt first: it finishes before new ones start
                retry = self._retries.popleft()
                if retry.cancelled:
                    self._leave(retry)
                else:
                    yield self._chunk(retry)
                continue
            try:
                t = self._next_ticket(gather_until)
            except _Stopping:
                return
            if t is None:
                gather_until = None
                yield None
                continue
            if not self._in_engine:  # the first puzzle of a batch: wait briefly for its company
                gather_until = time.monotonic() + self.batch_wait_s
            t.started = time.monotonic()
            with self._cond:
                self._in_engine_count += 1
            self._watched += t.want_steps
            yield self._chunk(t)

    def _chunk(self, t: Ticket) -> PuzzleChunk:
        """The engine row of a ticket: the puzzle, or a scaled puzzle's current attempt (in its
        view, with its step limit and noise seed)."""
        idx = next(self._ids)
        self._in_engine[idx] = t
        tokens = torch.from_numpy(t.tokens).view(1, -1)
        ident = torch.tensor([t.identifier], dtype=torch.int32)
        if t.scaled is None:
            return PuzzleChunk(torch.tensor([idx], dtype=torch.int64), tokens, ident)
        self._scaled.add(idx)
        work = t.scaled
        return PuzzleChunk(
            torch.tensor([idx], dtype=torch.int64),
            work.inputs(tokens),
            ident,
            step_limit=torch.tensor([work.step_limit]),
            noise_seed=torch.tensor([work.noise_seed], dtype=torch.int64),
        )

    def _leave(self, t: Ticket) -> None:
        """A cancelled scaled puzzle between attempts: its retry is dropped, its place freed."""
        with self._cond:
            self._pending -= 1
            self._in_engine_count -= 1
        self._watched -= t.want_steps

    def _scaled_mask(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Engine thread: which of these engine rows are scaled attempts (None: none are)."""
        if not self._scaled:
            return None
        return torch.tensor([i in self._scaled for i in ids.tolist()], dtype=torch.bool)

    def _check_rows(self, ids: torch.Tensor, inputs: torch.Tensor, preds: torch.Tensor, q_halt: torch.Tensor):
        """Engine thread: the rule check of scaled attempts' answers, each by its puzzle's task."""
        tasks = []
        for i in ids.tolist():
            work = self._in_engine[i].scaled
            tasks.append(work.task if work is not None else None)
        return verdicts(tasks, inputs, preds, q_halt, self.confidence)

    def _evictions(self) -> list[int]:
        """Engine thread, before each step: the ids of cancelled puzzles in the engine, which
        leave it now (their requests were answered 504 or went away)."""
        with self._cond:
            if not self._cancelled_in_engine:
                return []
            self._cancelled_in_engine = False
            gone = [idx for idx, t in self._in_engine.items() if t.cancelled]
            self._pending -= len(gone)
            self._in_engine_count -= len(gone)
        for idx in gone:
            self._watched -= self._in_engine.pop(idx).want_steps
            self._scaled.discard(idx)
        return gone

    def _on_step(self, rows: StepRows) -> None:
        if self.metrics is not None:
            self.metrics.batch.observe(len(rows.index))
        if not self._watched:
            return
        for i, idx in enumerate(rows.index.tolist()):
            t = self._in_engine.get(idx)
            if t is None or not t.want_steps:
                continue
            preds = rows.preds[i]
            if t.scaled is not None:  # a later attempt's answer in the puzzle's own frame
                assert t.scaled.current is not None
                preds = t.scaled.to_original(preds)
                t.step_attempts.append(t.scaled.current.number)
            step = (preds.numpy().astype(np.int32), float(rows.q_halt_logits[i]))
            t.by_step.append(step)  # over all attempts: its length is the steps spent so far
            if t.events is not None:
                event = (len(t.by_step), *step) if t.scaled is None else (len(t.by_step), *step, t.step_attempts[-1])
                t.loop.call_soon_threadsafe(t.events.put_nowait, ("step", event))

    def _finish(self, finished: FinishedRows) -> None:
        preds = finished.preds.numpy().astype(np.int32)  # [n, L]
        done: dict[asyncio.AbstractEventLoop, list[tuple[Ticket, EngineAnswer]]] = {}
        plain_steps: list[int] = []
        for i, idx in enumerate(finished.index.tolist()):
            t = self._in_engine.pop(idx)
            if t.scaled is None:
                sol = EngineAnswer(preds[i], int(finished.steps[i]), float(finished.q_halt_logits[i]), t.by_step)
                plain_steps.append(sol.steps)
            else:
                self._scaled.discard(idx)
                work = t.scaled
                if not work.record(finished, i) and not t.cancelled and work.next_attempt():
                    self._retries.append(t)  # not answered yet: its next attempt goes first
                    continue
                pick, cost = work.decide()
                assert pick.preds is not None
                sol = EngineAnswer(pick.preds, pick.steps, pick.q_halt_logit, t.by_step, cost, t.step_attempts)
                if self.metrics is not None:
                    self.metrics.scaled(cost["attempts"], cost["act_steps_total"], cost["solved_at_attempt"])
            self._watched -= t.want_steps
            done.setdefault(t.loop, []).append((t, sol))
        n = sum(len(pairs) for pairs in done.values())
        with self._cond:
            self._pending -= n
            self._in_engine_count -= n
        self.puzzles_done += n
        if self.metrics is not None:
            for steps in plain_steps:
                self.metrics.act_steps.observe(steps)
        for loop, pairs in done.items():  # one wake-up of the event loop per engine step
            loop.call_soon_threadsafe(_deliver, pairs)

    def _fail_all(self, e: BaseException) -> None:
        with self._cond:
            tickets = list({id(t): t for t in [*self._waiting, *self._in_engine.values(), *self._retries]}.values())
            self._waiting.clear()
            self._pending = 0
            self._in_engine_count = 0
        for t in tickets:
            t.loop.call_soon_threadsafe(_fail, t, e)

    def stats(self) -> dict[str, Any]:
        s = self.engine.stats()
        s["mean_batch"] = s["act_steps_computed"] / s["engine_steps"] if s["engine_steps"] else 0.0
        return s


def _deliver(pairs: list[tuple[Ticket, EngineAnswer]]) -> None:
    for t, sol in pairs:
        if not t.future.done():
            t.future.set_result(sol)
        if t.events is not None:
            t.events.put_nowait(("final", sol))


def _fail(t: Ticket, e: BaseException) -> None:
    if not t.future.done():
        t.future.set_exception(RuntimeError(f"the engine stopped: {e!r}"))
    if t.events is not None:
        t.events.put_nowait(("error", str(e)))
