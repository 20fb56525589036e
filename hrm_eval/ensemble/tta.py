"""Test-time augmentation as an ensemble of views.

A view is a validity-preserving transform of a puzzle: a permutation of the cells and a
permutation of the token values (Sudoku: digit relabelling, bands, stacks, transpose; maze:
the dihedral group). The model answers the transformed puzzle; its logits are mapped back to
the original frame before any voting, so every view votes on the same board.

The view primitives (mapping tokens and logits) live in `hrm_eval.inference.views`.
"""

from __future__ import annotations

import numpy as np
import torch

from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.inference.views import PuzzleView, identity_view
from hrm_eval.utils import limits
from hrm_eval.utils.errors import HRMEvalError

__all__ = ["make_views"]


def make_views(
    task: PuzzleTask | None, num_views: int, *, seq_len: int, vocab_size: int, seed: int = 0
) -> list[PuzzleView]:
    """`num_views` views (identity first) from `PuzzleTask.tta_views`, checked to be permutations
    and turned into tensors. 1 needs no task."""
    if num_views < 1:
        raise HRMEvalError(f"--tta must be at least 1 (1 = the puzzle as given), got {num_views}")
    if num_views > limits.MAX_VIEWS:
        raise HRMEvalError(f"--tta must be at most {limits.MAX_VIEWS} views, got {num_views}")
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
        views.append(PuzzleView("identity" if i == 0 else f"{task.name}_view{i}", tm, cm))
    if not views[0].is_identity:
        raise HRMEvalError(f"{task.name}: the first test-time view must be the identity")
    return views
