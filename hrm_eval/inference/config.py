"""The settings of running a model: how a mode reads its checkpoint (`ModelFlags`, shared by
every mode that loads one) and `--mode solve`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from hrm_eval.inference.halting import ADAPTIVE, HaltingMode
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

    checkpoint: str | None = None  # default: the bundled run (its newest step)
    puzzle: list[str] = Field(default_factory=list)  # puzzles in their natural form (repeatable flag)
    data_path: str | None = None  # a .csv (answer column may be empty) or .jsonl (target_sequence optional)
    task: str | None = None  # detected from the model's vocabulary and the puzzle when absent
    halting: HaltingMode = ADAPTIVE
    halt_threshold: float = Field(0.5, gt=0, lt=1)
    min_steps: int = Field(1, ge=1, le=limits.MAX_STEPS)
    max_steps: int | None = Field(None, ge=1, le=limits.MAX_STEPS)
    show_steps: bool = False  # also print the answer after each ACT step
    limit: int | None = Field(None, ge=1, le=limits.MAX_LIMIT)  # solve only the first N puzzles of the file
    output_dir: str | None = None  # also write solutions.jsonl there
    device: str = "auto"
    dtype: Dtype | None = setting(None, help=DTYPE_HELP)
