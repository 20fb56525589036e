"""Test-time scaling: more thinking where it pays, the task's rule check deciding.

A puzzle's first attempt is what a plain run does (the puzzle as given, the configured halting).
When its answer fails the task's rule check (a task without rules, such as ARC: when the Q head's
confidence is below `confidence`), the puzzle thinks more, cheapest first:

    attempt 1: the puzzle as given; where the policy would stop an unverified answer, the carry
               goes on until the answer passes the check or the attempt's step limit
    attempt k: a validity-preserving view of the puzzle (Sudoku: digit relabelling, bands,
               stacks, transpose; maze: the dihedral group), from a fresh (optionally noisy)
               carry, the same way; its answer mapped back to the original frame
    ...        until an answer passes the check, the views run out or the budget is spent

and the chosen answer is the verified one, else the most common answer over the attempts, ties
broken by the Q head's confidence. The rule check never sees a label.

Attempts share the engine's slots with every other puzzle (continuous batching): an attempt that
needs a successor puts it at the front of the queue, and a puzzle solved at once costs what it
costs without scaling. The budget counts every ACT step of every attempt; an attempt may run
`attempt_steps` (default the halting policy's limit), the last one what is left.

Attempts are ordered and each one's steps do not depend on the budget, so a run with a smaller
budget is a prefix of this one: `frontier` reads the accuracy/compute curve of every smaller
budget off one run.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy, StepRows, Verifier
from hrm_eval.inference.runner import FinishedRows, PuzzleChunk, slot_chunks
from hrm_eval.inference.views import PuzzleView, identity_view, logits_from_view, to_view, tokens_from_view
from hrm_eval.models.act import ACTModel
from hrm_eval.utils.errors import HRMEvalError

ScalingMode = Literal["off", "verify"]
SCALING_MODES = ("off", "verify")
SELECTED_BY = ("verified", "vote", "q")  # how a scaled answer was chosen (per-puzzle records)


@dataclass(frozen=True)
class ScalingPolicy:
    """How much more a puzzle may think, and how. `mode` off: one attempt, as without scaling."""

    mode: ScalingMode = "off"
    budget: int | None = None  # most ACT steps a puzzle may use over all attempts (None: 4 x halt_max_steps)
    views: int = 8  # most attempts; each after the first on its own view of the puzzle
    # most steps of one attempt (None: the halting policy's limit). Thinking on past it pays less
    # than a fresh view: on the default model's held-out set, attempts of 8 steps reach 0.9995 at
    # 4.15 ACT steps per puzzle, attempts of 16 0.9975 at 4.51 (budget 64, README: Thinking longer)
    attempt_steps: int | None = None
    noise: float = 0.0  # std of Gaussian noise on the initial carry of attempts after the first
    seed: int = 0  # views and noise are drawn from it
    confidence: float = 0.5  # tasks without rules: sigmoid(q_halt) an answer needs to be accepted

    def __post_init__(self) -> None:
        if self.mode not in SCALING_MODES:
            raise ValueError(f"scaling must be one of {', '.join(SCALING_MODES)}, got {self.mode!r}")
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"budget must be >= 1 ACT step, got {self.budget}")
        if self.views < 1:
            raise ValueError(f"views must be >= 1 (1: the puzzle as given only), got {self.views}")
        if self.attempt_steps is not None and self.attempt_steps < 1:
            raise ValueError(f"attempt_steps must be >= 1, got {self.attempt_steps}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @classmethod
    def checked(cls, mode: str = "off", **fields: Any) -> ScalingPolicy:
        """The policy, or a one-line HRMEvalError naming what is wrong (for flags and configs)."""
        try:
            return cls(mode, **fields)  # type: ignore[arg-type]
        except ValueError as e:
            raise HRMEvalError(f"--scaling: {e}") from None

    @classmethod
    def from_settings(cls, settings: Any) -> ScalingPolicy:
        """From a config with the ScalingSettings fields (EvalConfig, SolveConfig, ...)."""
        fields = ("budget", "views", "attempt_steps", "noise", "seed")
        return cls.checked(settings.scaling, **{name: getattr(settings, name) for name in fields})

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def resolve(self, halt_max_steps: int, halting_limit: int, *, has_views: bool = True) -> ResolvedScaling:
        """Budget and attempt length for one model and halting policy. Without views (ARC: its
        augmentations are puzzles of the dataset, voted over by its scorer) the one attempt may
        think on for the whole budget."""
        budget = self.budget if self.budget is not None else 4 * halt_max_steps
        default = halting_limit if has_views else budget
        attempt = self.attempt_steps if self.attempt_steps is not None else default
        return ResolvedScaling(self, budget, min(attempt, budget))


@dataclass(frozen=True)
class ResolvedScaling:
    """A policy with its defaults worked out for one model and halting policy."""

    policy: ScalingPolicy
    budget: int
    attempt_steps: int

    def describe(self) -> dict[str, Any]:
        p = self.policy
        out: dict[str, Any] = {"mode": p.mode, "budget": self.budget, "attempt_steps": self.attempt_steps}
        out.update(views=p.views, noise=p.noise, seed=p.seed)
        return out


@dataclass
class ScaledRows(FinishedRows):
    """FinishedRows of whole puzzles (the chosen attempt's outputs, in the original frame) with
    what the scaling cost: `steps` are the chosen attempt's steps, `act_steps_total` all of them."""

    attempts: torch.Tensor | None = None  # [n] int32 attempts run
    act_steps_total: torch.Tensor | None = None  # [n] int32 ACT steps over all attempts
    solved_at_attempt: torch.Tensor | None = None  # [n] int32, 1-based attempt that verified; 0: none
    verified_at_step: torch.Tensor | None = None  # [n] int32 steps spent when verified (all attempts); 0: never
    selected_by: list[str] = field(default_factory=list)  # per row: verified / vote / q


@dataclass
class _Attempt:
    puzzle: int  # the caller's index of the puzzle
    number: int  # 1-based
    view: PuzzleView
    spent_before: int  # the puzzle's steps over its earlier attempts
    steps: int = 0
    verified: bool = False
    q_halt_probability: float = 0.0
    answer: bytes | None = None  # tokens in the original frame, as bytes (a vote key)
    outputs: FinishedRows | None = None  # this attempt's row, mapped back to the original frame


@dataclass
class _Puzzle:
    index: int
    inputs: torch.Tensor  # [L] original frame
    identifier: torch.Tensor  # [] int
    labels: torch.Tensor | None  # [L]
    used: int = 0
    attempts: list[_Attempt] = field(default_factory=list)


def rule_verifier(task: PuzzleTask, confidence: float) -> Verifier:
    """The engine's verifier for `task`: its rule check on answer rows ([n, L] each, any frame a
    view makes: views preserve validity), or, for a task without rules, sigmoid(q_halt) >= confidence."""
    if not task.checks_rules:
        return lambda inputs, preds, q_halt: torch.sigmoid(q_halt.float()) >= confidence

    def check(inputs: torch.Tensor, preds: torch.Tensor, q_halt: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(task.verify_many(inputs.cpu().numpy(), preds.cpu().numpy()))

    return check


class ScaledRunner:
    """The ACT engine with test-time scaling: `run(chunks)` yields ScaledRows of whole puzzles,
    in the order they are decided. `task` gives the rule check and the views; `engine_options`
    go to the ACTEngine as they are (slots, device, trace_preds, cast_weights)."""

    def __init__(
        self,
        model: ACTModel,
        task: PuzzleTask,
        scaling: ScalingPolicy,
        *,
        halting: HaltingPolicy | None = None,
        on_step: Callable[[StepRows], None] | None = None,
        seq_len: int | None = None,
        **engine_options: Any,
    ):
        if not scaling.enabled:
            raise ValueError("ScaledRunner needs a scaling mode other than off (use ACTEngine)")
        halting = halting or HaltingPolicy()
        limit = halting.step_limit(model.config.halt_max_steps)
        self.task = task
        self.config = model.config
        self._views = self._make_views(seq_len or model.config.seq_len, scaling)
        self.scaling = scaling.resolve(model.config.halt_max_steps, limit, has_views=len(self._views) > 1)
        self.engine = ACTEngine(
            model,
            halting=halting,
            on_step=self._step_seen if on_step is not None else None,
            verifier=rule_verifier(task, scaling.confidence),
            max_row_steps=self.scaling.attempt_steps,
            init_noise=scaling.noise,
            **engine_options,
        )
        self.budget = self.scaling.budget  # the most steps a puzzle may use over all its attempts
        self.limit = self.engine.trace_steps  # the most steps one attempt runs: the per-step traces' length
        self._on_step = on_step
        self._attempts: dict[int, _Attempt] = {}  # engine row id -> attempt in flight
        self._ids = itertools.count()
        self.attempts_run = 0

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def slots(self) -> int:
        return self.engine.slots

    def _make_views(self, seq_len: int, policy: ScalingPolicy) -> list[PuzzleView]:
        """Identity first, then the task's views; a task without views (ARC) has the identity only."""
        vocab = self.config.vocab_size
        if policy.views == 1:
            return [identity_view(seq_len, vocab)]
        try:
            raw = self.task.tta_views(policy.views, seq_len=seq_len, seed=policy.seed)
        except HRMEvalError:
            return [identity_view(seq_len, vocab)]
        return [
            PuzzleView("identity" if i == 0 else f"view{i}", torch.as_tensor(tm).long(), torch.as_tensor(cm).long())
            for i, (tm, cm) in enumerate(raw)
        ]

    # ---- the loop -------------------------------------------------------------------------
    def run(self, source: Iterable[PuzzleChunk | None]) -> Iterator[ScaledRows]:
        puzzles: dict[int, _Puzzle] = {}
        retries: deque[PuzzleChunk] = deque()
        for finished in self.engine.run(self._feed(source, puzzles, retries)):
            decided: list[_Puzzle] = []
            for j in range(len(finished)):
                attempt = self._attempts.pop(int(finished.index[j]))
                puzzle = puzzles[attempt.puzzle]
                self._record(attempt, puzzle, finished, j)
                nxt = None if attempt.verified else self._next_attempt(puzzle)
                if nxt is None:
                    decided.append(puzzles.pop(attempt.puzzle))
                else:
                    retries.append(nxt)
            if decided:
                yield self._decide(decided)

    def _feed(
        self, source: Iterable[PuzzleChunk | None], puzzles: dict[int, _Puzzle], retries: deque[PuzzleChunk]
    ) -> Iterator[PuzzleChunk | None]:
        """The engine's source: retries first (a puzzle in progress finishes before new ones
        start), then the caller's puzzles as first attempts; while attempts are in flight and
        nothing waits, 'nothing right now' (None) instead of the end."""
        upstream = iter(source)
        ended = False
        while True:
            if retries:
                yield retries.popleft()
            elif not ended:
                chunk = next(upstream, _END)
                if chunk is _END:
                    ended = True
                elif chunk is None:
                    yield None
                else:
                    yield self._first_attempts(chunk, puzzles)
            elif puzzles:
                yield None  # attempts in flight may still ask for successors
            else:
                return

    def _first_attempts(self, chunk: PuzzleChunk, puzzles: dict[int, _Puzzle]) -> PuzzleChunk:
        rows = []
        for j, idx in enumerate(chunk.index.tolist()):
            labels = None if chunk.labels is None else chunk.labels[j]
            puzzle = _Puzzle(int(idx), chunk.inputs[j], chunk.puzzle_identifiers[j], labels)
            puzzles[puzzle.index] = puzzle
            rows.append(self._attempt(puzzle, 1))
        return self._chunk(rows, puzzles)

    def _attempt(self, puzzle: _Puzzle, number: int) -> int:
        row = next(self._ids)
        self._attempts[row] = _Attempt(puzzle.index, number, self._views[number - 1], puzzle.used)
        self.attempts_run += 1
        return row

    def _next_attempt(self, puzzle: _Puzzle) -> PuzzleChunk | None:
        number = len(puzzle.attempts) + 1
        if number > len(self._views) or puzzle.used >= self.scaling.budget:
            return None
        return self._chunk([self._attempt(puzzle, number)], {puzzle.index: puzzle})

    def _chunk(self, rows: list[int], puzzles: dict[int, _Puzzle]) -> PuzzleChunk:
        """Engine rows for these attempts: the puzzle in the attempt's view, its share of the budget."""
        parts: dict[str, list[torch.Tensor]] = {"inputs": [], "ids": [], "labels": [], "limit": [], "seed": []}
        for row in rows:
            a = self._attempts[row]
            p = puzzles[a.puzzle]
            parts["inputs"].append(to_view(p.inputs[None], a.view)[0])
            parts["ids"].append(p.identifier)
            if p.labels is not None:
                parts["labels"].append(to_view(p.labels[None], a.view)[0])
            parts["limit"].append(torch.tensor(min(self.scaling.attempt_steps, self.scaling.budget - p.used)))
            parts["seed"].append(torch.tensor(self._noise_seed(p.index, a.number)))
        return PuzzleChunk(
            torch.tensor(rows, dtype=torch.int64),
            torch.stack(parts["inputs"]),
            torch.stack(parts["ids"]),
            torch.stack(parts["labels"]) if len(parts["labels"]) == len(rows) else None,
            step_limit=torch.stack(parts["limit"]),
            noise_seed=torch.stack(parts["seed"]),
        )

    def _noise_seed(self, puzzle: int, number: int) -> int:
        """-1 (no noise) for first attempts; otherwise a seed of (seed, puzzle, attempt)."""
        if number == 1 or self.scaling.policy.noise == 0:
            return -1
        return (self.scaling.policy.seed * 1_000_003 + puzzle * 1009 + number) % (2**62)

    def _record(self, attempt: _Attempt, puzzle: _Puzzle, fin: FinishedRows, j: int) -> None:
        """One finished attempt, mapped back to the original frame."""
        v = attempt.view
        logits = logits_from_view(fin.logits[j : j + 1], v)
        preds_by_step = None
        if fin.preds_by_step is not None:
            preds_by_step = tokens_from_view(fin.preds_by_step[j].long(), v)[None].to(fin.preds_by_step.dtype)
        attempt.outputs = FinishedRows(
            index=torch.tensor([puzzle.index]),
            logits=logits,
            q_halt_logits=fin.q_halt_logits[j : j + 1],
            q_continue_logits=fin.q_continue_logits[j : j + 1],
            steps=fin.steps[j : j + 1],
            q_halt_by_step=fin.q_halt_by_step[j : j + 1],
            q_continue_by_step=fin.q_continue_by_step[j : j + 1],
            exact_by_step=None if fin.exact_by_step is None else fin.exact_by_step[j : j + 1],
            preds_by_step=preds_by_step,
            verified=fin.verified[j : j + 1] if fin.verified is not None else None,
            stop_reason=fin.stop_reason[j : j + 1] if fin.stop_reason is not None else None,
        )
        attempt.steps = int(fin.steps[j])
        attempt.verified = fin.reason(j) == "verified"  # else it ran out of steps: the next attempt
        attempt.q_halt_probability = float(torch.sigmoid(fin.q_halt_logits[j].float()))
        attempt.answer = logits.argmax(-1)[0].to(torch.int64).numpy().tobytes()
        puzzle.used += attempt.steps
        puzzle.attempts.append(attempt)

    def _decide(self, puzzles: list[_Puzzle]) -> ScaledRows:
        chosen, how, solved_at, verified_at = [], [], [], []
        for p in puzzles:
            pick, by = choose(p.attempts, self.task.checks_rules)
            chosen.append(pick.outputs)
            how.append(by)
            accepted = pick.verified  # by the rule check (a task without rules: by confidence)
            solved_at.append(pick.number if accepted else 0)
            verified_at.append(pick.spent_before + pick.steps if accepted else 0)
        rows = {name: _cat([getattr(c, name) for c in chosen]) for name in FinishedRows.__dataclass_fields__}
        return ScaledRows(
            **rows,  # type: ignore[arg-type]
            attempts=torch.tensor([len(p.attempts) for p in puzzles], dtype=torch.int32),
            act_steps_total=torch.tensor([p.used for p in puzzles], dtype=torch.int32),
            solved_at_attempt=torch.tensor(solved_at, dtype=torch.int32),
            verified_at_step=torch.tensor(verified_at, dtype=torch.int32),
            selected_by=how,
        )

    def _step_seen(self, rows: StepRows) -> None:
        """on_step in the caller's terms: the puzzle's index, the answer in its original frame,
        and the steps the puzzle has spent over all its attempts so far."""
        assert self._on_step is not None
        index, steps, preds = [], [], []
        for j, row in enumerate(rows.index.tolist()):
            a = self._attempts[row]
            index.append(a.puzzle)
            steps.append(int(rows.steps[j]) + a.spent_before)
            preds.append(tokens_from_view(rows.preds[j : j + 1].long(), a.view)[0])
        self._on_step(
            StepRows(
                torch.tensor(index, dtype=torch.int64),
                torch.tensor(steps, dtype=torch.int32),
                torch.stack(preds),
                rows.q_halt_logits,
                rows.q_continue_logits,
            )
        )

    # ---- helpers for callers ----------------------------------------------------------------
    def run_all(
        self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: torch.Tensor | None = None
    ) -> ScaledRows:
        """Every row of `inputs` [n, L] to a decision; results in input order."""
        if len(inputs) == 0:
            raise ValueError("run_all needs at least one puzzle")
        parts = list(self.run(slot_chunks(self.slots, inputs, puzzle_identifiers, labels)))
        order = torch.cat([p.index for p in parts]).argsort()
        names = [n for n in ScaledRows.__dataclass_fields__ if n != "selected_by"]
        rows = {name: _cat([getattr(p, name) for p in parts]) for name in names}
        out = ScaledRows(**{k: (v[order] if v is not None else None) for k, v in rows.items()})  # type: ignore[arg-type]
        how = [b for p in parts for b in p.selected_by]
        out.selected_by = [how[i] for i in order.tolist()]
        return out

    def stats(self) -> dict[str, Any]:
        return {**self.engine.stats(), "attempts": self.attempts_run, "scaling": self.scaling.describe()}


def choose(attempts: list[_Attempt], checks_rules: bool = True) -> tuple[_Attempt, str]:
    """The verified attempt (the first; there is at most one, since a puzzle stops there; for a
    task without rules, the one the Q head was confident enough in: 'q'), else the answer most
    attempts gave, ties and the answer's representative by the highest Q-head confidence
    ('vote'); a single attempt is chosen by 'q'."""
    for a in attempts:
        if a.verified:
            return a, "verified" if checks_rules else "q"
    if len(attempts) == 1:
        return attempts[0], "q"
    votes = Counter(a.answer for a in attempts)
    best_q: dict[bytes | None, float] = {}
    for a in attempts:
        best_q[a.answer] = max(best_q.get(a.answer, 0.0), a.q_halt_probability)
    answer = max(votes, key=lambda k: (votes[k], best_q[k]))
    pick = max((a for a in attempts if a.answer == answer), key=lambda a: a.q_halt_probability)
    return pick, "vote"


def _cat(values: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if values[0] is None else torch.cat(values)  # type: ignore[arg-type]


_END: Any = object()


# ---- the accuracy / compute frontier ------------------------------------------------------------
def frontier(
    act_steps_total: np.ndarray, verified_at_step: np.ndarray, exact: np.ndarray, budget: int, points: int = 16
) -> list[dict[str, float]]:
    """Exact accuracy against mean ACT steps per puzzle for budgets up to `budget`, from one run.

    A run with budget b' is this run cut at b' steps per puzzle: a puzzle verified within b' steps
    is solved as here; one that is not is unverified, and an answer that breaks the rules is never
    the (valid) label, so it is not exact; its cost is min(its steps here, b'). Exact for tasks
    whose rule check decides validity (Sudoku, maze) up to float rounding of batch composition."""
    total = np.asarray(act_steps_total, dtype=np.int64)
    at = np.asarray(verified_at_step, dtype=np.int64)
    ok = np.asarray(exact, dtype=bool) & (at > 0)
    budgets = sorted({int(b) for b in np.unique(np.linspace(1, budget, num=min(points, budget)).round())} | {budget})
    out = []
    for b in budgets:
        solved = ok & (at <= b)
        out.append(
            {"budget": b, "exact_accuracy": float(solved.mean()), "mean_act_steps": float(np.minimum(total, b).mean())}
        )
    return out


def scaling_summary(
    exact: np.ndarray,
    verified: np.ndarray,
    act_steps_total: np.ndarray,
    attempts: np.ndarray,
    verified_at_step: np.ndarray,
    budget: int,
    difficulty: np.ndarray | None = None,
    difficulty_name: str | None = None,
    checks_rules: bool = True,
) -> dict[str, Any]:
    """results.json's `test_time_scaling`: what scaling bought and what it cost, overall, by
    difficulty, and the frontier of every smaller budget (tasks with a rule check only: without
    one an unaccepted answer may still be the label, and a cut run's vote is not known)."""

    accepted = "verified_rate" if checks_rules else "accepted_rate"  # no rules: sigmoid(q_halt) >= confidence

    def block(rows: np.ndarray) -> dict[str, Any]:
        return {
            "puzzles": int(rows.sum()),
            "exact_accuracy": float(exact[rows].mean()),
            accepted: float(verified[rows].mean()),
            "mean_act_steps": float(act_steps_total[rows].mean()),
            "mean_attempts": float(attempts[rows].mean()),
        }

    everyone = np.ones(len(exact), dtype=bool)
    out: dict[str, Any] = block(everyone) if len(exact) else {"puzzles": 0}
    if difficulty is not None and difficulty_name is not None and len(exact):
        out["by_difficulty"] = {
            "measure": difficulty_name,
            "rows": [{difficulty_name: int(d), **block(difficulty == d)} for d in np.unique(difficulty)],
        }
    if checks_rules and len(exact):
        out["frontier"] = frontier(act_steps_total, verified_at_step, exact, budget)
    return out
