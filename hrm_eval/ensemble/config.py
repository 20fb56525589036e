"""The settings of `--mode ensemble` and `--mode compare` (both run several checkpoints through
the shared member cache, `MembersSettings`). The Python API's `EnsembleSettings`
(`hrm_eval.ensemble.settings`) stays apart: it checks strategies and weights with torch code,
and the command line reads these models before torch is imported."""

from __future__ import annotations

from pathlib import Path
from typing import List, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from hrm_eval.inference.config import ModelFlags
from hrm_eval.utils import guarded, limits
from hrm_eval.utils.config import RunSettings
from hrm_eval.utils.errors import HRMEvalError


class MembersSettings(RunSettings):
    """Ensemble and compare: which checkpoints, on which data, through which member cache."""

    checkpoints: Optional[List[str]] = None  # checkpoint files (a run directory means its newest step)
    run: Optional[str] = None  # every step_<N> of this training run directory
    data_path: Optional[str] = None  # default: the run's training data (its test split)
    # One member-prediction cache for ensemble and compare (entries are keyed by checkpoint hash,
    # data fingerprint and settings), so each run's fresh output folder still reuses it.
    cache_dir: str = "outputs/cache"

    @field_validator("cache_dir")
    @classmethod
    def _cache_is_a_folder(cls, v: str) -> str:
        if Path(v).exists() and not Path(v).is_dir():  # an HRMEvalError passes through pydantic as it is
            raise HRMEvalError(
                f"--cache-dir {v} is a {guarded.path_kind(Path(v).stat().st_mode)}, expected a directory"
            )
        return v


class EnsembleConfig(MembersSettings, ModelFlags):
    strategy: Literal["average", "vote", "q_vote", "stacking"] = "average"
    weights: Union[Literal["uniform", "learned"], List[float], None] = None
    # tta, calibration_fraction and calibration_limit are checked by evaluate_ensemble itself
    # (one place, for the CLI and the Python API alike).
    tta: int = Field(1, le=limits.MAX_VIEWS)  # the lower bound: evaluate_ensemble (make_views)
    calibration_data: Optional[str] = None
    calibration_split: Optional[str] = None  # default: the split
    calibration_fraction: float = 0.2
    calibration_limit: Optional[int] = None
    stacker: Optional[str] = None
    seed: int = 0

    @model_validator(mode="after")
    def _stacker_is_a_file(self) -> "EnsembleConfig":
        # checked now, not after every member has been evaluated (a --stacker without --strategy
        # stacking is evaluate_ensemble's one line)
        if self.stacker is not None and self.strategy == "stacking":
            guarded.expect_file(self.stacker, "--stacker")
        return self


class CompareConfig(MembersSettings):
    plots: bool = True
