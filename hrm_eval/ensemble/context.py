"""`EnsembleContext`: what the members predicted on one set of rows, and scoring a strategy's
combined answers on it exactly as `evaluate` scores a single model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.ensemble.strategies import Combined, Voters
from hrm_eval.evaluation.distributed import DistContext
from hrm_eval.evaluation.metrics import MetricSums
from hrm_eval.evaluation.scoring import score_rows
from hrm_eval.inference.views import PuzzleView
from hrm_eval.members.predictions import CHUNK, Member, Predictions, PuzzleRows, Scored, log_probs, score_member

ENSEMBLE_LOSS = "softmax_cross_entropy"  # the ensemble's output is already normalised log-probabilities


@dataclass
class EnsembleContext:
    """The members, what each predicted on `rows` in every view [V, N, ...], and the task that
    verifies answers. One for the scored data, one for separate calibration data."""

    members: list[Member]
    preds: list[Predictions]
    rows: PuzzleRows
    task: PuzzleTask | None
    dataset: PuzzleDataset | None = None
    views: Sequence[PuzzleView] = ()
    device: str | torch.device = "cpu"
    cache_dir: Path | None = None
    cache_info: list[dict[str, Any]] = field(default_factory=list)  # per member: cache hit/miss and file
    dist: DistContext = field(default_factory=DistContext)  # torchrun: rank 0 holds `preds`, the others run shares

    def opened_dataset(self) -> PuzzleDataset:
        """The dataset the rows came from (present wherever the ensemble opened the data itself)."""
        if self.dataset is None:
            raise ValueError("this ensemble context was built from rows without their dataset")
        return self.dataset

    @property
    def num_views(self) -> int:
        return self.preds[0]["logits"].shape[0]

    @property
    def num_members(self) -> int:
        return len(self.members)

    def voters(
        self,
        idx: torch.Tensor,
        member_weights: Sequence[float],
        view_ids: Sequence[int],
        members: Sequence[int] | None = None,
    ) -> Voters:
        """One voter per (member, view) on rows `idx`; a member's weight is shared by its views."""
        members = list(range(len(self.members))) if members is None else list(members)
        logp, q, steps, halted, weight, owner = [], [], [], [], [], []
        for j, m in enumerate(members):
            p = self.preds[m]
            for v in view_ids:
                logp.append(log_probs(p["logits"][v, idx], self.members[m].config.loss_type))
                q.append(p["q_halt"][v, idx].double())
                steps.append(p["steps"][v, idx].double())
                halted.append(p["halted"][v, idx])
                weight.append(member_weights[m] / len(view_ids))
                owner.append(j)
        w = torch.tensor(weight, dtype=torch.float64)
        return Voters(
            torch.stack(logp),
            torch.stack(q),
            torch.stack(steps),
            torch.stack(halted),
            w / w.sum(),
            torch.tensor(owner),
            len(members),
        )

    def score(
        self,
        index: np.ndarray,
        combine: Callable[[Voters], Combined],
        member_weights: Sequence[float],
        view_ids: Sequence[int],
        members: Sequence[int] | None = None,
    ) -> Scored:
        """The combined answers on rows `index`, scored by the shared row policy."""
        sums, parts = MetricSums(), []
        for start in range(0, len(index), CHUNK):
            idx = torch.as_tensor(index[start : start + CHUNK], dtype=torch.long)
            comb = combine(self.voters(idx, member_weights, view_ids, members))
            s = score_rows(
                comb.logp,
                self.rows.labels[idx],
                comb.q,
                loss_type=ENSEMBLE_LOSS,
                halted=comb.halted,
                inputs=self.rows.inputs[idx],
                task=self.task,
            )
            sums.add(s, comb.steps)
            parts.append((s.exact, s.answers, comb.q, comb.support, comb.num_candidates))
        return Scored(sums.summary(verified=self.task is not None), *[torch.cat(x) for x in zip(*parts)])

    def member_scored(self, m: int, index: np.ndarray, view: int = 0) -> Scored:
        """One member in one view, scored exactly as `evaluate` scores it (its own loss)."""
        return score_member(
            self.preds[m], self.rows, index, loss_type=self.members[m].config.loss_type, task=self.task, view=view
        )
