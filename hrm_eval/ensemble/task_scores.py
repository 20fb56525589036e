"""The task's own scores for an ensemble (ARC: pass@k over augmentations), through the task's
scorer hook (`PuzzleTask.scorer`), so the ensemble never asks which task it is.

Each member is scored alone, then the ensemble. Pass@k needs the answers of every augmented
copy of a test puzzle pooled before ranking, so the voting strategies pool every member's
answer with its weight (vote: ranked by votes, q_vote: by summed sigmoid(q_halt)); the other
strategies pool the per-row ensemble answer over the augmentations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hrm_eval.data.tasks.base import TaskScorer
from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.members.predictions import Scored
from hrm_eval.utils.errors import HRMEvalError

VOTING = ("vote", "q_vote")


def ensemble_task_scores(
    ctx: EnsembleContext,
    scored_idx: np.ndarray,
    strategy: str,
    ens: Scored | None,
    member_weights: Sequence[float],
    member_rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """{task name: the ensemble's task scores}, or {} for a task whose exact accuracy is all
    there is. Each member's own task scores go into its row of `member_rows`."""
    task = ctx.task
    if task is None or not task.needs_answers:
        return {}
    rows = ctx.rows.subset(scored_idx)
    idx = torch.as_tensor(scored_idx, dtype=torch.long)

    def new_scorer(rank_by_q: bool = False) -> TaskScorer:
        # seen_tasks_only: a held-out calibration task or a --limit must not count as a failure
        scorer = task.scorer(ctx.dataset, rank_by_q=rank_by_q, seen_tasks_only=True) if ctx.dataset else None
        if scorer is None:
            raise HRMEvalError(f"{task.name} scoring needs the dataset directory (identifiers.json and the test split)")
        return scorer

    def add_member(scorer: TaskScorer, m: int, weight: float) -> None:
        p = ctx.preds[m]
        scorer.add(
            rows.puzzle_identifiers, rows.inputs, p["logits"][0, idx].argmax(-1), p["q_halt"][0, idx], weight=weight
        )

    for m, rec in enumerate(member_rows):
        alone = new_scorer()
        add_member(alone, m, 1.0)
        rec[task.name] = alone.summary(alone.finish())
    pooled = new_scorer(rank_by_q=strategy == "q_vote")
    if strategy in VOTING:
        for m in range(len(member_rows)):
            add_member(pooled, m, member_weights[m])
        rule = "every member's answer on every augmented puzzle pooled, then ranked"
    else:
        assert ens is not None  # the non-voting strategies have per-row ensemble answers
        pooled.add(rows.puzzle_identifiers, rows.inputs, ens.answers, ens.q.float())
        rule = f"the {strategy} answer of each augmented puzzle pooled over the augmentations, then ranked"
    return {task.name: {"rule": rule, **pooled.summary(pooled.finish())}}
