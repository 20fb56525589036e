"""Build a public-format dataset directory from raw puzzles, for any registered task."""

from __future__ import annotations

import os
from typing import Any

from hrm_eval.data.tasks import get_task


def build_dataset(task: str, source: str | os.PathLike, output: str | os.PathLike, **options: Any) -> dict:
    """Build `output` from `source` (a folder of train.csv/test.csv or a hub dataset name) with the
    builder of `task` (e.g. "sudoku", "sudoku4", "sudoku6", "maze", "arc"). `options`: PuzzleTask.build's
    (num_aug, subsample_size, min_difficulty, seed).

    Returns the task's summary. Raises HRMEvalError for an unknown task or a bad source; the
    build is atomic, so on error nothing is left at `output`."""
    return get_task(task).build(os.fspath(source), os.fspath(output), **options)
