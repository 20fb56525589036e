"""Generated raw-puzzle folders in the public CSV layout (source, question, answer, rating).

The generators belong to their tasks (`PuzzleTask.generate` / `puzzle_stream`: Sudoku 4/6/9,
mazes); this module writes a train/test pair of CSVs from one task's stream, with no question
twice, so that `build_dataset` can read them. Same seed, same bytes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from hrm_eval.data.csv_source import write_csv
from hrm_eval.data.tasks import get_task
from hrm_eval.data.tasks.base import Row
from hrm_eval.utils.errors import HRMEvalError

__all__ = ["generate_csvs"]


def generate_csvs(
    task: str,
    output_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
    size: int | None = None,
    min_blanks: int | None = None,
    max_blanks: int | None = None,
    loop_fraction: float | None = None,
) -> dict[str, str]:
    """Write `train.csv` and `test.csv` (no question in both, none twice) for `task`:
    "sudoku" (9x9), "sudoku4", "sudoku6" (a Sudoku task takes another side from `size`) or
    "maze" (side `size`, default 15). Returns {split: path}. Splits with 0 rows are not written."""
    options = {"min_blanks": min_blanks, "max_blanks": max_blanks, "loop_fraction": loop_fraction}
    stream = get_task(task).puzzle_stream(
        random.Random(seed), size=size, **{k: v for k, v in options.items() if v is not None}
    )
    if num_train < 0 or num_test < 0:
        raise HRMEvalError("num_train and num_test must be >= 0")

    wanted = num_train + num_test
    rows: list[Row] = []
    seen = set()
    tries = 0
    while len(rows) < wanted:
        tries += 1
        if tries > 20 * wanted + 100:
            raise HRMEvalError(
                f"only {len(rows)} distinct {task} puzzles found for {wanted} wanted; "
                f"ask for fewer or widen the blank range / grid size"
            )
        row = next(stream)
        if row[0] not in seen:
            seen.add(row[0])
            rows.append(row)

    out = Path(output_dir)
    written = {}
    for split, part in (("train", rows[:num_train]), ("test", rows[num_train:])):
        if part:
            write_csv(part, out / f"{split}.csv")
            written[split] = str(out / f"{split}.csv")
    return written
