"""Summing scored rows into the public evaluation metrics.

Public meaning: every metric is a sum over *valid* rows (`hrm_eval.evaluation.scoring`)
divided by `count`. The per-row definitions live in `hrm_eval.models.losses.row_metrics`.
One difference from the public script, on purpose: it pads the last batch and its padded rows
add BCE(q_halt, 1) to `q_halt_loss`; here padded rows count nowhere, so results do not depend
on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hrm_eval.evaluation.scoring import RowScores
from hrm_eval.evaluation.stats import wilson_interval

PUBLIC_METRICS = ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss")


class MetricSums:
    """Running sums of the public metrics (float64, on the CPU), and of verified answers when
    a task verifies them."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {"count": 0.0, **{k: 0.0 for k in PUBLIC_METRICS}}
        self.verified: int | None = None

    def add(self, scores: RowScores, steps: torch.Tensor) -> torch.Tensor:
        """Add one batch of scored rows; returns the valid-row mask [B]."""
        rows, valid = scores.rows, scores.valid
        v = valid.double()
        self.sums["count"] += float(v.sum())
        self.sums["accuracy"] += float((rows["token_accuracy"].double() * v).sum())
        self.sums["exact_accuracy"] += float((rows["exact"].double() * v).sum())
        self.sums["q_halt_accuracy"] += float((rows["q_halt_correct"].double() * v).sum())
        self.sums["steps"] += float((steps.double() * v).sum())
        self.sums["lm_loss"] += float((rows["lm_loss"].double() * v).sum())
        self.sums["q_halt_loss"] += float((rows["q_halt_loss"].double() * v).sum())
        if scores.verified is not None:
            self.verified = (self.verified or 0) + int(scores.verified.sum())
        return valid

    def merge(self, other: MetricSums) -> None:
        for k, v in other.sums.items():
            self.sums[k] += v
        if other.verified is not None:
            self.verified = (self.verified or 0) + other.verified

    @property
    def count(self) -> int:
        return int(self.sums["count"])

    def reduced(self) -> dict[str, float]:
        """Each public metric divided by count (NaN-free: 0.0 when nothing was counted)."""
        count = self.sums["count"]
        return {k: (self.sums[k] / count if count else 0.0) for k in PUBLIC_METRICS}

    def verified_rate(self) -> float:
        """Share of the counted rows whose answer the task's rules accept."""
        return (self.verified or 0) / self.count if self.count else 0.0

    def rate_intervals(self, *, verified: bool) -> dict[str, list[float]]:
        """Wilson 95% intervals of the rates (successes are whole puzzles: the sums are counts)."""
        n = self.count
        out = {f"{k}_ci95": wilson_interval(round(self.sums[k]), n) for k in ("exact_accuracy", "q_halt_accuracy")}
        if verified:
            out["verified_solve_rate_ci95"] = wilson_interval(self.verified or 0, n)
        return out

    def summary(self, *, verified: bool) -> dict[str, Any]:
        """The public metrics, `total_puzzles` and, when a task verifies answers, `verified_solve_rate`;
        each rate with its Wilson interval (`*_ci95`)."""
        out: dict[str, Any] = dict(self.reduced())
        out["total_puzzles"] = self.count
        if verified:
            out["verified_solve_rate"] = self.verified_rate()
        out.update(self.rate_intervals(verified=verified))
        return out


# ---- step efficiency ---------------------------------------------------------------------------
STEP_EFFICIENCY_DEFINITION = (
    "first_correct_step: the first ACT step after which the answer was exactly right and stayed right "
    "through the last step run (solved puzzles only). step_efficiency = first_correct_step / steps used, "
    "per solved puzzle; the aggregate is its mean over solved puzzles (1.0: halted as soon as the answer "
    "was final; 0.25: ran four times the steps needed). Null when no puzzle was solved."
)


def first_correct_step(exact_by_step: Sequence[bool]) -> int | None:
    """1-based first step from which every step run has the exact answer; None when the last
    step run is wrong (the puzzle is not solved). [F, T, T] -> 2; [T, F, T] -> 3; [T, F] -> None."""
    exact = [bool(x) for x in exact_by_step]
    if not exact or not exact[-1]:
        return None
    t = len(exact)
    while t > 1 and exact[t - 2]:
        t -= 1
    return t


def step_efficiency_summary(first_correct: np.ndarray, steps: np.ndarray) -> dict[str, Any]:
    """Aggregate over solved puzzles: `first_correct` [N] (0 where not solved), `steps` [N] used."""
    solved = first_correct > 0
    if not solved.any():
        return {"step_efficiency": None, "mean_first_correct_step": None, "mean_steps_solved": None}
    fc, st = first_correct[solved].astype(np.float64), steps[solved].astype(np.float64)
    return {
        "step_efficiency": float((fc / st).mean()),
        "mean_first_correct_step": float(fc.mean()),
        "mean_steps_solved": float(st.mean()),
    }
