"""Build a public-format dataset directory from raw puzzles, for any registered task."""

from __future__ import annotations

import os
from typing import Optional

from hrm_eval.data.tasks import get_task


def build_dataset(
    task: str,
    source: str,
    output: str,
    *,
    num_aug: Optional[int] = None,
    subsample_size: Optional[int] = None,
    min_difficulty: Optional[int] = None,
    seed: int = 0,
) -> dict:
    """Build `output` from `source` (a folder of train.csv/test.csv or a hub dataset name) with the
    builder of `task` (e.g. "sudoku", "sudoku4", "sudoku6", "maze", "arc").

    Returns the task's summary. Raises HRMEvalError for an unknown task or a bad source; the
    build is atomic, so on error nothing is left at `output`."""
    return get_task(task).build(
        os.fspath(source),
        os.fspath(output),
        num_aug=num_aug,
        subsample_size=subsample_size,
        min_difficulty=min_difficulty,
        seed=seed,
    )
