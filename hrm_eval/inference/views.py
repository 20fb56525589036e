"""A view of a puzzle: a validity-preserving transform (a permutation of the cells and a
permutation of the token values), and how tokens and logits move into and out of it.

Predictions are always mapped back to the original frame, so every view answers the same
board (test-time augmentation in `hrm_eval.ensemble.tta`, the attempts of test-time scaling in
`hrm_eval.inference.scaling`; the identity view is a plain run).

Convention (as the task builders): view[c] = token_map[original[cell_map[c]]].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from hrm_eval.models.losses import IGNORE_LABEL_ID


@dataclass(frozen=True)
class PuzzleView:
    """One validity-preserving transform of a puzzle (the identity: a plain run)."""

    name: str
    token_map: torch.Tensor  # [vocab] long: view token of each original token
    cell_map: torch.Tensor  # [L] long: original cell shown at each view cell

    @property
    def is_identity(self) -> bool:
        return bool(
            torch.equal(self.token_map, torch.arange(len(self.token_map)))
            and torch.equal(self.cell_map, torch.arange(len(self.cell_map)))
        )

    @property
    def inverse_cells(self) -> torch.Tensor:
        return torch.argsort(self.cell_map)

    @property
    def inverse_tokens(self) -> torch.Tensor:
        return torch.argsort(self.token_map)


def identity_view(seq_len: int, vocab_size: int) -> PuzzleView:
    return PuzzleView("identity", torch.arange(vocab_size), torch.arange(seq_len))


def views_digest(views: list[PuzzleView]) -> str:
    """A short hash of the views' maps (part of the prediction cache key)."""
    h = hashlib.sha256()
    for v in views:
        h.update(v.token_map.numpy().astype(np.int64).tobytes())
        h.update(v.cell_map.numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def to_view(tokens: torch.Tensor, view: PuzzleView) -> torch.Tensor:
    """Token rows [B, L] (inputs or labels; -100 stays -100) in the view's frame."""
    moved = tokens[:, view.cell_map]
    ignored = moved == IGNORE_LABEL_ID
    mapped = view.token_map.to(tokens.device)[torch.where(ignored, 0, moved).long()].to(tokens.dtype)
    return torch.where(ignored, moved, mapped)


def tokens_from_view(tokens: torch.Tensor, view: PuzzleView) -> torch.Tensor:
    """Inverse of `to_view` for token rows [B, L]: the original frame."""
    back = tokens[:, view.inverse_cells]
    ignored = back == IGNORE_LABEL_ID
    mapped = view.inverse_tokens.to(tokens.device)[torch.where(ignored, 0, back).long()].to(tokens.dtype)
    return torch.where(ignored, back, mapped)


def logits_from_view(logits: torch.Tensor, view: PuzzleView) -> torch.Tensor:
    """Logits [B, L, V] over the view's cells and tokens -> the original frame:
    original[j, s] = view_logits[inverse_cell[j], token_map[s]]."""
    return logits[:, view.inverse_cells][:, :, view.token_map]
