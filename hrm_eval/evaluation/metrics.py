"""Summing the loss head's per-row values into the public evaluation metrics.

Public meaning: every metric is a sum over *valid* rows (halted, with at least one scored
label) divided by `count`. The per-row definitions live in `hrm_eval.models.losses.row_metrics`.
One difference from the public script, on purpose: it pads the last batch and its padded rows
add BCE(q_halt, 1) to `q_halt_loss`; here padded rows count nowhere, so results do not depend
on the batch size.
"""

from __future__ import annotations

from typing import Dict

import torch

PUBLIC_METRICS = ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss")


class MetricSums:
    """Running sums of the public metrics (float64, on the CPU)."""

    def __init__(self) -> None:
        self.sums: Dict[str, float] = {"count": 0.0, **{k: 0.0 for k in PUBLIC_METRICS}}

    def add(self, rows: Dict[str, torch.Tensor], steps: torch.Tensor, halted: torch.Tensor) -> torch.Tensor:
        """Add one batch; returns the valid-row mask [B]."""
        valid = halted & (rows["num_labels"] > 0)
        v = valid.double()
        self.sums["count"] += float(v.sum())
        self.sums["accuracy"] += float((rows["token_accuracy"].double() * v).sum())
        self.sums["exact_accuracy"] += float((rows["exact"].double() * v).sum())
        self.sums["q_halt_accuracy"] += float((rows["q_halt_correct"].double() * v).sum())
        self.sums["steps"] += float((steps.double() * v).sum())
        self.sums["lm_loss"] += float((rows["lm_loss"].double() * v).sum())
        self.sums["q_halt_loss"] += float((rows["q_halt_loss"].double() * v).sum())
        return valid

    def merge(self, other: "MetricSums") -> None:
        for k, v in other.sums.items():
            self.sums[k] += v

    @property
    def count(self) -> int:
        return int(self.sums["count"])

    def reduced(self) -> Dict[str, float]:
        """Each public metric divided by count (NaN-free: 0.0 when nothing was counted)."""
        count = self.sums["count"]
        return {k: (self.sums[k] / count if count else 0.0) for k in PUBLIC_METRICS}
