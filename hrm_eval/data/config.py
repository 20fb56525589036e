"""The settings of `--mode build-data` and `--mode generate`: every field is also a flag (`setting`)."""

from __future__ import annotations

from typing import Any

from hrm_eval.utils import limits
from hrm_eval.utils.config import LogSettings, setting
from hrm_eval.utils.errors import HRMEvalError


class BuildDataConfig(LogSettings):
    task: str = setting(help="puzzle task (sudoku, sudoku4, sudoku6, maze, arc)")
    source: str = setting(help="folder of raw CSVs / ARC JSON, hub name, or arc-agi-1|arc-agi-2")
    output_dir: str = setting(flag="--output", help="dataset directory to write")
    num_aug: int | None = setting(None, ge=0, help="augmented copies of each training puzzle")
    subsample_size: int | None = setting(None, ge=1, help="keep only N training puzzles")
    min_difficulty: int | None = setting(None)
    seed: int = setting(0)


class GenerateConfig(LogSettings):
    task: str = setting(help="sudoku4, sudoku6, sudoku or maze")
    output_dir: str = setting(flag="--output", help="folder for train.csv / test.csv")
    num_train: int = setting(0, ge=0, le=limits.MAX_LIMIT, help="puzzles in train.csv")
    num_test: int = setting(0, ge=0, le=limits.MAX_LIMIT, help="puzzles in test.csv")
    seed: int = setting(0)
    size: int | None = setting(None, ge=1, help="board size (sudoku 4/6/9) or maze side")
    min_blanks: int | None = setting(None, ge=0)
    max_blanks: int | None = setting(None, ge=0)

    def model_post_init(self, __context: Any) -> None:
        if self.num_train + self.num_test <= 0:
            raise HRMEvalError("--mode generate: give --num-train N and/or --num-test N (both are 0)")
