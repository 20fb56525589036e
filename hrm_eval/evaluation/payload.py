"""The shard codec: one finished puzzle as a payload of plain tensors and numbers, and back.

Rows travel as payloads when they leave the process that computed them: to the resume log
(hrm_eval.evaluation.resume, `torch.save` read back with weights_only=True) and from the
other ranks of a torchrun evaluation to rank 0. `from_payload(to_payload(...))` is a row the
accumulator consumes exactly as the one the engine handed out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleBatch
from hrm_eval.evaluation.accumulator import ScoredRow
from hrm_eval.evaluation.scoring import RowScores
from hrm_eval.inference.runner import FinishedRows
from hrm_eval.inference.scaling import ScaledRows

SCALING_FIELDS = ("attempts", "act_steps_total", "solved_at_attempt", "verified_at_step")

Payload = dict[str, Any]  # one finished puzzle as plain tensors / numbers (torch.save, weights_only)


# Every field `to_payload` writes: a logged row missing one is not used by --resume.
ROW_FIELDS = frozenset(
    [
        "position",
        "batch",
        "set_name",
        "example_index",
        "puzzle_index",
        "inputs",
        "labels",
        "puzzle_identifier",
        "scores",
        "valid",
        "answers",
        "verified",
        "finished",
        "logits",
        "scaling",
    ]
)


def to_payload(position: int, batch: int, row: ScoredRow, keep_logits: bool) -> Payload:
    """One finished row, self-contained (copies, not views: a saved view would drag its whole
    batch along). The logits ([L, V] per row) are kept only when predictions are saved: every
    other field `Accumulator._consume` reads of a row is here."""
    pb, j, fin, k, s = row.batch, row.j, row.fin, row.k, row.scores
    finished = {
        name: None if getattr(fin, name) is None else getattr(fin, name)[k].clone()
        for name in FinishedRows.__dataclass_fields__
        if name not in ("index", "logits")
    }
    return {
        "position": position,
        "batch": batch,
        "set_name": pb.set_name,
        "example_index": int(pb.example_index[j]),
        "puzzle_index": int(pb.puzzle_index[j]),
        "inputs": pb.inputs[j].clone(),
        "labels": pb.labels[j].clone(),
        "puzzle_identifier": pb.puzzle_identifiers[j].clone(),
        "scores": {name: v[0].clone() for name, v in s.rows.items()},
        "valid": s.valid[0].clone(),
        "answers": s.answers[0].clone(),
        "verified": None if s.verified is None else s.verified[0].clone(),
        "finished": finished,
        "logits": fin.logits[k].clone() if keep_logits else None,
        "scaling": _scaling_payload(fin, k),
    }


def _scaling_payload(fin: FinishedRows, k: int) -> dict[str, Any] | None:
    """A scaled row's cost as numbers and its `selected_by` word (None for a plain row)."""
    if not isinstance(fin, ScaledRows):
        return None
    out: dict[str, Any] = {name: int(getattr(fin, name)[k]) for name in SCALING_FIELDS}
    out["selected_by"] = fin.selected_by[k]
    return out


def from_payload(p: Payload) -> tuple[int, ScoredRow]:
    """A payload as the one-row `ScoredRow` the accumulator takes (batch of one, j = k = 0)."""
    batch = PuzzleBatch(
        set_name=p["set_name"],
        example_index=np.array([p["example_index"]]),
        puzzle_index=np.array([p["puzzle_index"]]),
        inputs=p["inputs"][None],
        labels=p["labels"][None],
        puzzle_identifiers=p["puzzle_identifier"].reshape(1),
    )
    scores = RowScores(
        {name: v.reshape(1) for name, v in p["scores"].items()},
        p["valid"].reshape(1),
        p["answers"][None],
        None if p["verified"] is None else p["verified"].reshape(1),
    )
    fields = {name: None if v is None else v[None] for name, v in p["finished"].items()}
    logits = p["logits"][None] if p["logits"] is not None else torch.empty(1, 0)
    fin = FinishedRows(index=torch.tensor([p["position"]]), logits=logits, **fields)  # type: ignore[arg-type]
    scaling = p.get("scaling")
    if scaling is not None:
        cost = {name: torch.tensor([scaling[name]], dtype=torch.int32) for name in SCALING_FIELDS}
        fin = ScaledRows(**vars(fin), **cost, selected_by=[scaling["selected_by"]])
    return int(p["position"]), ScoredRow(batch, 0, scores, fin, 0)
