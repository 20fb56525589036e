"""Test-time augmentation as an ensemble of views.

A view is a validity-preserving transform of a puzzle: a permutation of the cells and a
permutation of the token values (Sudoku: digit relabelling, bands, stacks, transpose; maze:
the dihedral group). The model answers the transformed puzzle; its logits are mapped back to
the original frame before any voting, so every view votes on the same board.

Convention (as the task builders): view[c] = token_map[original[cell_map[c]]].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.models.losses import IGNORE_LABEL_ID
from hrm_eval.utils.errors import HRMEvalError


@dataclass(frozen=True)
class View:
    name: str
    token_map: torch.Tensor  # [vocab] long: view token of each original token
    cell_map: torch.Tensor   # [L] long: original cell shown at each view cell

    @property
    def is_identity(self) -> bool:
        return bool(torch.equal(self.token_map, torch.arange(len(self.token_map)))
                    and torch.equal(self.cell_map, torch.arange(len(self.cell_map))))

    @property
    def inverse_cells(self) -> torch.Tensor:
        return torch.argsort(self.cell_map)

    @property
    def inverse_tokens(self) -> torch.Tensor:
        return torch.argsort(self.token_map)


def identity_view(seq_len: int, vocab_size: int) -> View:
    return View("identity", torch.arange(vocab_size), torch.arange(seq_len))


def make_views(task: Optional[PuzzleTask], num_views: int, *, seq_len: int, vocab_size: int,
               seed: int = 0) -> List[View]:
    """`num_views` views (identity first) from `PuzzleTask.tta_views`, checked to be permutations
    and turned into tensors. 1 needs no task."""
    if num_views < 1:
        raise HRMEvalError(f"--tta must be at least 1 (1 = the puzzle as given), got {num_views}")
    if num_views == 1:
        return [identity_view(seq_len, vocab_size)]
    if task is None:
        raise HRMEvalError("--tta needs a known task (give --task sudoku|sudoku4|sudoku6|maze)")
    raw = task.tta_views(num_views, seq_len=seq_len, seed=seed)  # a task without views says why
    views = []
    for i, (token_map, cell_map) in enumerate(raw):
        tm = torch.as_tensor(np.asarray(token_map), dtype=torch.long)
        cm = torch.as_tensor(np.asarray(cell_map), dtype=torch.long)
        if len(tm) != vocab_size or not torch.equal(torch.sort(tm).values, torch.arange(vocab_size)):
            raise HRMEvalError(f"{task.name}: view {i} does not permute the {vocab_size}-token vocabulary")
        if len(cm) != seq_len or not torch.equal(torch.sort(cm).values, torch.arange(seq_len)):
            raise HRMEvalError(f"{task.name}: view {i} does not permute the {seq_len} cells")
        views.append(View("identity" if i == 0 else f"{task.name}_view{i}", tm, cm))
    if not views[0].is_identity:
        raise HRMEvalError(f"{task.name}: the first test-time view must be the identity")
    return views


def views_digest(views: List[View]) -> str:
    """A short hash of the views' maps (part of the prediction cache key)."""
    h = hashlib.sha256()
    for v in views:
        h.update(v.token_map.numpy().astype(np.int64).tobytes())
        h.update(v.cell_map.numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def to_view(tokens: torch.Tensor, view: View) -> torch.Tensor:
    """Token rows [B, L] (inputs or labels; -100 stays -100) in the view's frame."""
    moved = tokens[:, view.cell_map]
    ignored = moved == IGNORE_LABEL_ID
    mapped = view.token_map.to(tokens.device)[torch.where(ignored, 0, moved).long()].to(tokens.dtype)
    return torch.where(ignored, moved, mapped)


def tokens_from_view(tokens: torch.Tensor, view: View) -> torch.Tensor:
    """Inverse of `to_view` for token rows [B, L]: the original frame."""
    back = tokens[:, view.inverse_cells]
    ignored = back == IGNORE_LABEL_ID
    mapped = view.inverse_tokens.to(tokens.device)[torch.where(ignored, 0, back).long()].to(tokens.dtype)
    return torch.where(ignored, back, mapped)


def logits_from_view(logits: torch.Tensor, view: View) -> torch.Tensor:
    """Logits [B, L, V] over the view's cells and tokens -> the original frame:
    original[j, s] = view_logits[inverse_cell[j], token_map[s]]."""
    return logits[:, view.inverse_cells][:, :, view.token_map]
