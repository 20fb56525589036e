"""Loading ensemble members against the data (they must share one task layout).

Running them and caching what they predicted is `hrm_eval.members.predictions`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.members.predictions import Member, checkpoint_layout, member_names
from hrm_eval.models.checkpoint import load_checkpoint, resolve_checkpoint_path
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")


def load_members(
    checkpoints: Sequence[str | Path],
    dataset: PuzzleDataset,
    *,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    overrides: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
) -> list[Member]:
    """Load every member against the dataset; members must agree on the task layout.

    First the members are compared with each other (vocabulary, puzzle identifiers, stated
    sequence length), so a mismatch names the member that differs from member 1; then each is
    checked against the dataset's metadata."""
    if not checkpoints:
        raise HRMEvalError("an ensemble needs at least one checkpoint")
    paths = [resolve_checkpoint_path(c) for c in checkpoints]
    layouts = [checkpoint_layout(p) for p in paths]
    first = layouts[0]
    for i, lay in enumerate(layouts[1:], start=2):
        for key, what in (
            ("vocab_size", "a vocabulary of {} tokens"),
            ("seq_len", "sequences of {} tokens"),
            ("num_puzzle_identifiers", "{} puzzle identifiers (puzzle_emb rows)"),
        ):
            a, b = first.get(key), lay.get(key)
            if a is not None and b is not None and a != b:
                raise HRMEvalError(
                    f"ensemble members disagree on {key}: member {i} ({paths[i - 1]}) has "
                    f"{what.format(b)}, member 1 ({paths[0]}) has {what.format(a)}"
                )
    names = member_names(paths)
    members = []
    for i, (path, name) in enumerate(zip(paths, names), start=1):
        try:
            loaded = load_checkpoint(
                path,
                dataset=dataset.metadata,
                overrides=overrides,
                model_config=model_config,
                device=device,
                dtype=dtype,
            )
        except HRMEvalError as e:
            raise HRMEvalError(f"member {i} ({path}): {e}") from e
        members.append(Member(name, loaded))
    data_paths = {i: lay.get("data_path") for i, lay in enumerate(layouts, start=1) if lay.get("data_path")}
    if len(set(data_paths.values())) > 1:
        note = (
            "members were trained on different data paths ("
            + ", ".join(f"member {i}: {p}" for i, p in data_paths.items())
            + ")"
        )
        for m in members:
            m.warnings.append(note)
        log.warning(note)
    return members
