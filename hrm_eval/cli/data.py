"""Modes that make datasets: build-data (public layout from raw files) and generate (raw CSVs)."""

from __future__ import annotations

from hrm_eval.cli.base import Invocation, Mode
from hrm_eval.data.build import build_dataset
from hrm_eval.data.config import BuildDataConfig, GenerateConfig
from hrm_eval.data.generate import generate_csvs


def run_build(inv: Invocation) -> int:
    cfg = inv.output_config(BuildDataConfig)
    options = cfg.model_dump(include={"num_aug", "subsample_size", "min_difficulty", "seed"})
    summary = build_dataset(cfg.task, cfg.source, cfg.output_dir, **options)
    print(f"built {cfg.task} dataset in {cfg.output_dir}: {summary}")
    return 0


def run_generate(inv: Invocation) -> int:
    cfg = inv.output_config(GenerateConfig)
    options = cfg.model_dump(include={"num_train", "num_test", "seed", "size", "min_blanks", "max_blanks"})
    written = generate_csvs(cfg.task, cfg.output_dir, **options)
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


BUILD_DATA = Mode("build-data", "Build a dataset in the public layout from raw puzzles.", run_build, BuildDataConfig)
GENERATE = Mode(
    "generate", "Generate raw puzzle CSVs (Sudoku, maze) with verified solutions.", run_generate, GenerateConfig
)
