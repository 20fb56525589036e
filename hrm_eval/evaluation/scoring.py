"""Which rows count and how each one is scored: the one policy behind `evaluate`, the
ensemble (its members and its combined answer), `compare` and the trainer's logged metrics.

A row counts (is *valid*) when it halted and has at least one scored label, as in the public
loss head. Per row: exact (every scored label right), token accuracy, the loss head's values
(`hrm_eval.models.losses.row_metrics`), the argmax answer and, with a task, whether the task's
own rules accept the answer (`verified`; False on rows that do not count).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.models.losses import row_metrics


def valid_rows(rows: dict[str, torch.Tensor], halted: torch.Tensor) -> torch.Tensor:
    """[B] bool: the rows every metric is summed over (halted, at least one scored label)."""
    return halted & (rows["num_labels"] > 0)


@dataclass
class RowScores:
    rows: dict[str, torch.Tensor]  # row_metrics: per-row values [B]
    valid: torch.Tensor  # [B] bool
    answers: torch.Tensor  # [B, L] argmax answer
    verified: torch.Tensor | None  # [B] bool; None without a task

    @property
    def exact(self) -> torch.Tensor:
        """[B] bool: exactly right and counted."""
        return self.rows["exact"] & self.valid


def score_rows(
    logits: torch.Tensor,
    labels: torch.Tensor,
    q_halt_logits: torch.Tensor,
    *,
    loss_type: str,
    halted: torch.Tensor,
    inputs: torch.Tensor | None = None,
    task: PuzzleTask | None = None,
) -> RowScores:
    """Score a batch of answers: `logits` [B, L, V] (or log-probabilities), `labels` [B, L]
    (-100 where not scored), `q_halt_logits` [B], `halted` [B]; `inputs` [B, L] with `task`."""
    rows = row_metrics(logits, labels, q_halt_logits, loss_type)
    valid = valid_rows(rows, halted)
    answers = logits.argmax(-1)
    verified = None
    if task is not None:
        if inputs is None:
            raise ValueError("score_rows: verifying answers needs the puzzles' inputs")
        # the task's verifier is a Python rule per puzzle: only rows that count are checked
        verified = torch.tensor(
            [
                bool(valid[i]) and bool(task.verify(inputs[i].numpy(), answers[i].numpy(), labels[i].numpy()))
                for i in range(len(labels))
            ],
            dtype=torch.bool,
        )
    return RowScores(rows, valid, answers, verified)
