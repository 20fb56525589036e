"""The settings of `--mode build-data` and `--mode generate`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hrm_eval.utils import limits
from hrm_eval.utils.config import LogSettings
from hrm_eval.utils.errors import HRMEvalError


class BuildDataConfig(LogSettings):
    task: str
    source: str  # folder of raw CSVs / ARC JSON, hub name, or arc-agi-1|arc-agi-2
    output_dir: str
    num_aug: int | None = Field(None, ge=0)
    subsample_size: int | None = Field(None, ge=1)
    min_difficulty: int | None = None
    seed: int = 0


class GenerateConfig(LogSettings):
    task: str
    output_dir: str
    num_train: int = Field(0, ge=0, le=limits.MAX_LIMIT)
    num_test: int = Field(0, ge=0, le=limits.MAX_LIMIT)
    seed: int = 0
    size: int | None = Field(None, ge=1)  # board size (sudoku 4/6/9) or maze side
    min_blanks: int | None = Field(None, ge=0)
    max_blanks: int | None = Field(None, ge=0)

    def model_post_init(self, __context: Any) -> None:
        if self.num_train + self.num_test <= 0:
            raise HRMEvalError("--mode generate: give --num-train N and/or --num-test N (both are 0)")
