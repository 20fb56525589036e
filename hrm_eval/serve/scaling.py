"""Test-time scaling in the server (issue 22; the method: hrm_eval.inference.scaling).

A request with `"budget": N` (or any request, when the server runs with `--scaling verify`) is
solved the way `ScaledRunner` solves a puzzle: attempt 1 is the puzzle as given, thinking on past
the halting policy until its answer passes the task's rule check or the attempt's step limit;
then attempts on the task's validity-preserving views, until one passes, the views run out or
the N ACT steps are spent; the verified answer, else the vote, is the answer.

Why not `ScaledRunner` itself: it owns an engine, and a server has one engine whose slots every
request shares. Here the engine bridge drives the attempts through that one engine (`ServeEngine`
lets the rows of scaled attempts think on until verified while plain rows halt exactly as
before), so a scaled request's attempts share engine steps with plain requests (continuous
batching), and cancelling its request drops the attempt in flight and every pending retry.
The pieces that decide what an answer is are ScaledRunner's own (the views, the attempts' step
limits, the noise seeds, `choose`), so a request gets what `Solver(scaling="verify")` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.inference.runner import FinishedRows
from hrm_eval.inference.scaling import ScalingPolicy, _Attempt, choose
from hrm_eval.inference.views import PuzzleView, identity_view, logits_from_view, to_view, tokens_from_view
from hrm_eval.utils.errors import HRMEvalError

DEFAULT_MAX_BUDGET_X = 8  # --max-budget default: this many times halt_max_steps


@dataclass
class ServedAttempt(_Attempt):
    """An attempt of a served puzzle: ScaledRunner's record, plus its answer in the original frame."""

    preds: np.ndarray | None = None  # [L] int32, the original frame
    q_halt_logit: float = 0.0


@dataclass(frozen=True)
class ServeScaling:
    """The server's scaling settings, resolved for its model."""

    default_budget: int | None  # what a request without "budget" gets; None: no scaling
    max_budget: int  # the most a request may ask for
    attempt_steps: int  # the most steps of one attempt on a task with views (ScalingPolicy's default)
    views: int
    noise: float
    seed: int
    confidence: float = 0.5  # tasks without rules: sigmoid(q_halt) an answer needs
    asked_attempt_steps: int | None = None  # --attempt-steps as given
    halt_max_steps: int = 0
    halting_limit: int = 0
    _views: dict[str, list[PuzzleView]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, cfg: Any, halt_max_steps: int, halting_limit: int) -> ServeScaling:
        policy = ScalingPolicy.from_settings(cfg)  # one-line errors for bad flags
        max_budget = cfg.max_budget if cfg.max_budget is not None else DEFAULT_MAX_BUDGET_X * halt_max_steps
        default = None
        if policy.enabled:  # ScalingPolicy's defaults, as evaluate and solve resolve them
            default = policy.resolve(halt_max_steps, halting_limit).budget
            if cfg.budget is None:
                default = min(default, max_budget)
            elif default > max_budget:
                raise HRMEvalError(f"--budget {default} exceeds --max-budget {max_budget}")
        widest = ScalingPolicy("verify", budget=max_budget, attempt_steps=cfg.attempt_steps)
        attempt = widest.resolve(halt_max_steps, halting_limit).attempt_steps  # within any request's budget
        return cls(
            default,
            max_budget,
            attempt,
            cfg.views,
            cfg.noise,
            cfg.seed,
            policy.confidence,
            cfg.attempt_steps,
            halt_max_steps,
            halting_limit,
        )

    @property
    def row_steps(self) -> int:
        """The most steps any attempt may run (the engine's max_row_steps): a task without views
        spends a whole budget in its one attempt."""
        return self.max_budget

    def budget(self, requested: int | None) -> int | None:
        """The ACT steps a request may spend (None: solved without scaling), or ValueError."""
        if requested is None:
            return self.default_budget
        if requested == 0:
            return None
        if requested > self.max_budget:
            raise ValueError(f"{requested} ACT steps is over this server's maximum of {self.max_budget} (--max-budget)")
        return requested

    def describe(self) -> dict[str, Any]:
        return {
            "default": "verify" if self.default_budget is not None else "off",
            "budget": self.default_budget,
            "max_budget": self.max_budget,
            "attempt_steps": self.attempt_steps,
            "views": self.views,
            "noise": self.noise,
            "seed": self.seed,
        }

    def views_of(self, task: PuzzleTask | None, seq_len: int, vocab_size: int) -> list[PuzzleView]:
        """The task's views, identity first (ScaledRunner._make_views); the identity only for a
        task without views (ARC) or none."""
        name = task.name if task is not None else ""
        if name not in self._views:
            views = [identity_view(seq_len, vocab_size)]
            if task is not None and self.views > 1:
                try:
                    raw = task.tta_views(self.views, seq_len=seq_len, seed=self.seed)
                    views = [
                        PuzzleView(
                            "identity" if i == 0 else f"view{i}", torch.as_tensor(t).long(), torch.as_tensor(c).long()
                        )
                        for i, (t, c) in enumerate(raw)
                    ]
                except HRMEvalError:
                    pass
            self._views[name] = views
        return self._views[name]

    def work(
        self, task: PuzzleTask | None, tokens: np.ndarray, budget: int, key: int, seq_len: int, vocab_size: int
    ) -> ScaledWork:
        """A puzzle's attempts. One whose givens already break the task's rules (two 5s given in a
        row) has no answer any attempt could verify: it gets one attempt, not the whole budget."""
        views = self.views_of(task, seq_len, vocab_size)
        if task is not None and task.givens_conflict(np.asarray(tokens)) is not None:
            budget = min(budget, self.attempt_steps)
            return ScaledWork(self, task, views[:1], budget, key, budget)
        # ScalingPolicy's attempt length for this budget; without views (ARC) the whole budget
        policy = ScalingPolicy("verify", budget=budget, attempt_steps=self.asked_attempt_steps)
        attempt = policy.resolve(self.halt_max_steps, self.halting_limit, has_views=len(views) > 1).attempt_steps
        return ScaledWork(self, task, views, budget, key, attempt)


@dataclass(eq=False)
class ScaledWork:
    """One puzzle's attempts (engine thread, except `start` on the event loop)."""

    settings: ServeScaling
    task: PuzzleTask | None
    views: list[PuzzleView]
    budget: int
    key: int  # the puzzle's number for the noise seeds
    attempt_steps: int  # the most steps of one attempt
    used: int = 0  # ACT steps over the attempts so far
    attempts: list[ServedAttempt] = field(default_factory=list)
    current: ServedAttempt | None = None

    def next_attempt(self) -> bool:
        """Plan the next attempt; False when the views or the budget are used up."""
        number = len(self.attempts) + 1
        if number > len(self.views) or self.used >= self.budget:
            return False
        self.current = ServedAttempt(self.key, number, self.views[number - 1], self.used)
        return True

    @property
    def step_limit(self) -> int:
        return min(self.attempt_steps, self.budget - self.used)

    @property
    def noise_seed(self) -> int:
        """ScaledRunner._noise_seed: -1 (no noise) for the first attempt."""
        assert self.current is not None
        if self.current.number == 1 or self.settings.noise == 0:
            return -1
        return (self.settings.seed * 1_000_003 + self.key * 1009 + self.current.number) % (2**62)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """[1, L] the puzzle in the current attempt's view."""
        assert self.current is not None
        return to_view(tokens, self.current.view)

    def to_original(self, preds: torch.Tensor) -> torch.Tensor:
        """[L] an answer of the current attempt, in the puzzle's own frame."""
        assert self.current is not None
        return tokens_from_view(preds[None].long(), self.current.view)[0]

    def record(self, fin: FinishedRows, j: int) -> bool:
        """The current attempt finished as row j of `fin`; True when it was verified."""
        a = self.current
        assert a is not None
        logits = logits_from_view(fin.logits[j : j + 1], a.view)
        preds = logits.argmax(-1)[0].to(torch.int64)
        a.steps = int(fin.steps[j])
        a.verified = fin.reason(j) == "verified"  # else it ran out of steps: the next attempt, if any
        a.q_halt_logit = float(fin.q_halt_logits[j])
        a.q_halt_probability = float(torch.sigmoid(fin.q_halt_logits[j].float()))
        a.answer = preds.numpy().tobytes()
        a.preds = preds.numpy().astype(np.int32)
        self.used += a.steps
        self.attempts.append(a)
        self.current = None
        return a.verified

    def decide(self) -> tuple[ServedAttempt, dict[str, Any]]:
        """The chosen attempt and the response's scaling fields."""
        pick, how = choose(self.attempts, self.task is not None and self.task.checks_rules)  # type: ignore[arg-type]
        assert isinstance(pick, ServedAttempt)
        cost = {
            "attempts": len(self.attempts),
            "act_steps_total": self.used,
            # the attempt whose answer was accepted (by the rule check; without rules: by confidence)
            "solved_at_attempt": pick.number if pick.verified else None,
            "selected_by": how,
            "budget": self.budget,
        }
        return pick, cost


def verdicts(
    tasks: Sequence[PuzzleTask | None],
    inputs: torch.Tensor,
    preds: torch.Tensor,
    q_halt: torch.Tensor,
    confidence: float,
) -> torch.Tensor:
    """[n] bool: each row's answer accepted by its own task's rule check (rows in any view's
    frame: views preserve validity), or, without rules, sigmoid(q_halt) >= confidence
    (hrm_eval.inference.scaling.rule_verifier, per row)."""
    out = torch.sigmoid(q_halt.float().cpu()) >= confidence
    groups: dict[str, list[int]] = {}
    by_name: dict[str, PuzzleTask] = {}
    for i, task in enumerate(tasks):
        if task is not None and task.checks_rules:
            groups.setdefault(task.name, []).append(i)
            by_name[task.name] = task
    if groups:
        x, y = inputs.cpu().numpy(), preds.cpu().numpy()
        for name, rows in groups.items():
            ok = by_name[name].verify_many(x[rows], y[rows])
            out[rows] = torch.from_numpy(np.asarray(ok, dtype=bool))
    return out
