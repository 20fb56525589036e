"""The settings of running a model: how a mode reads its checkpoint (`ModelFlags`, shared by
every mode that loads one) and `--mode solve`."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from hrm_eval.inference.halting import ADAPTIVE, HaltingMode, modes_help
from hrm_eval.utils import limits
from hrm_eval.utils.config import DTYPE_HELP, ConfigModel, Dtype, LogSettings, ScalingSettings, setting


class ModelFlags(ConfigModel):
    """How a mode that loads a checkpoint reads it: an architecture YAML for a checkpoint without
    all_config.yaml (--model-config) and single architecture fields (--arch KEY=VALUE)."""

    model_config_path: str | None = setting(
        None, flag="--model-config", help="architecture YAML for a checkpoint without all_config.yaml"
    )
    arch_overrides: dict[str, Any] = setting(
        flag="--arch",
        action="key_value",
        metavar="KEY=VALUE",
        help="override one architecture field (repeatable), e.g. --arch num_heads=8",
        default_factory=dict,
    )

    @field_validator("arch_overrides")
    @classmethod
    def _known_arch_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v:  # the model's field names live with the model
            from hrm_eval.models.config import check_arch_names  # why: models import torch; the CLI validates first

            check_arch_names(v)  # an HRMEvalError passes through pydantic as it is: one line, naming --arch
        return v


class SolveConfig(LogSettings, ModelFlags, ScalingSettings):
    """`--mode solve`: puzzles without answers -> the model's answers."""

    checkpoint: str | None = setting(  # default: the bundled run (its newest step)
        None, help="step_<N> file or name, published `checkpoint` file, or run directory (default: bundled)"
    )
    puzzle: list[str] = setting(  # puzzles in their natural form, one per --puzzle
        action="append",
        metavar="PUZZLE",
        help="a puzzle in its natural form, e.g. Sudoku text with . for blanks (repeatable)",
        default_factory=list,
    )
    data_path: str | None = setting(
        None, flag="--data", help=".csv (answer column may be empty) or .jsonl (target_sequence optional)"
    )
    task: str | None = setting(  # detected from the model's vocabulary and the puzzle when absent
        None, help="puzzle task (sudoku, sudoku4, sudoku6, maze, arc); detected when absent"
    )
    halting: HaltingMode = setting(ADAPTIVE, help=modes_help())  # choices from the Literal: no sweep here
    halt_threshold: float = setting(0.5, gt=0, lt=1, help="threshold halting: stop when sigmoid(q_halt) >= P")
    min_steps: int = setting(1, ge=1, le=limits.MAX_STEPS, help="adaptive / threshold: never stop before this step")
    max_steps: int | None = setting(
        None, ge=1, le=limits.MAX_STEPS, help="stop at this step at the latest (default halt_max_steps)"
    )
    show_steps: bool = setting(False, help="also show the answer after each ACT step")
    limit: int | None = setting(None, ge=1, le=limits.MAX_LIMIT, help="solve only the first N puzzles of --data")
    output_dir: str | None = setting(None, flag="--output", help="also write solutions.jsonl into this directory")
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N | mps")
    dtype: Dtype | None = setting(None, help=DTYPE_HELP)
