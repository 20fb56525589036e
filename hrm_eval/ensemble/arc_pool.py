"""ARC pooling, the one place the ensemble treats ARC specially: pass@k needs the answers of
every augmented copy of a test puzzle pooled (mapped back to the original frame) before
ranking, so members are pooled with the augmentation votes instead of per row.

(To be replaced by the task's scoring hook: `ensemble_task_scores` is the only caller.)
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks.arc import parse_puzzle_name
from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.evaluation.arc_scoring import ArcTestSet, ArcVotePool
from hrm_eval.evaluation.predictions import PuzzleRows, Scored
from hrm_eval.utils.errors import HRMEvalError


class WeightedArcVotePool(ArcVotePool):
    """The ARC scorer's pool where a block of rows can count with a weight (a member's
    weight); `by_q` ranks by summed weight x sigmoid(q_halt) (q_vote)."""

    def __init__(self, data_dir, *, test_set=None, by_q: bool = False):
        super().__init__(data_dir, test_set=test_set)
        self.by_q = by_q

    def add_weighted(self, identifiers, inputs, preds, q_halt_logits, weight: float, where: str) -> None:
        main, self.votes = self.votes, {}
        try:
            self.add(identifiers, inputs, preds, q_halt_logits, where=where)
        finally:
            scratch, self.votes = self.votes, main
        for key, table in scratch.items():
            dest = main.setdefault(key, {})
            for h, (count, q_sum) in table.items():
                stats = dest.setdefault(h, [0, 0.0])
                stats[0] += weight * count
                stats[1] += weight * q_sum

    def ranked(self, task_id, index):
        pooled = [(h, _tidy(c), s / c if c else 0.0, s) for h, (c, s) in self.votes.get((task_id, index), {}).items()]
        if self.by_q:
            pooled.sort(key=lambda x: (round(x[3], 12), round(x[1], 12)), reverse=True)
        else:
            pooled.sort(key=lambda x: (round(x[1], 12), round(x[2], 12)), reverse=True)
        return [(h, c, q) for h, c, q, _ in pooled]


def _tidy(x: float) -> Union[int, float]:
    return int(round(x)) if abs(x - round(x)) < 1e-9 else float(x)


def _arc_test_set(dataset: PuzzleDataset, rows: PuzzleRows) -> ArcTestSet:
    """The ARC test set restricted to the tasks that have scored rows (a held-out calibration
    task or a --limit must not count as a failure)."""
    test_set = ArcTestSet(dataset.path)
    present = {
        parse_puzzle_name(test_set.identifiers[int(i)])[0] for i in rows.puzzle_identifiers.tolist() if int(i) != 0
    }
    test_set.task_ids = [t for t in test_set.task_ids if t in present]
    return test_set


def _arc_scores(pool: ArcVotePool) -> Dict[str, Any]:
    scores, _ = pool.result()
    return {"num_tasks": scores["num_tasks"], "strict": scores["strict"], "fractional": scores["fractional"]}


def arc_pooling(
    ctx: EnsembleContext,
    scored_idx: np.ndarray,
    strategy: str,
    ens: Optional[Scored],
    member_weights: Sequence[float],
    member_rows: List[Dict[str, Any]],
) -> Dict[str, Any]:
    """ARC pass@k: members' answers pooled with the augmentation votes before ranking (vote,
    q_vote), or the per-row ensemble answers pooled over the augmentations (average, stacking).
    Each member's own pass@k goes into its row of `member_rows`."""
    dataset = ctx.dataset
    if dataset is None or not dataset.path.is_dir():
        raise HRMEvalError("ARC scoring needs the dataset directory (identifiers.json and the test split)")
    scored_rows = ctx.rows.subset(scored_idx)
    test_set = _arc_test_set(dataset, scored_rows)
    idx = torch.as_tensor(scored_idx, dtype=torch.long)
    ids, inputs = scored_rows.puzzle_identifiers, scored_rows.inputs

    def add_member(pool: WeightedArcVotePool, m: int, weight: float) -> None:
        p = ctx.preds[m]
        pool.add_weighted(
            ids, inputs, p["logits"][0, idx].argmax(-1), p["q_halt"][0, idx], weight, where=member_rows[m]["name"]
        )

    for m, rec in enumerate(member_rows):
        pool = WeightedArcVotePool(dataset.path, test_set=test_set)
        add_member(pool, m, 1.0)
        rec["arc"] = _arc_scores(pool)
    pool = WeightedArcVotePool(dataset.path, test_set=test_set, by_q=strategy == "q_vote")
    out: Dict[str, Any] = {}
    if strategy in ("vote", "q_vote"):
        for m in range(len(member_rows)):
            add_member(pool, m, member_weights[m])
        out["rule"] = "every member's answer on every augmented puzzle pooled, then ranked"
    else:
        pool.add_weighted(ids, inputs, ens.answers, ens.q.float(), 1.0, where="ensemble")
        out["rule"] = f"the {strategy} answer of each augmented puzzle pooled over the augmentations, then ranked"
    out.update(_arc_scores(pool))
    return out
