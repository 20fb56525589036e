"""The settings of `--mode ensemble` and `--mode compare` (both run several checkpoints through
the shared member cache, `MembersSettings`). The Python API's `EnsembleSettings`
(`hrm_eval.ensemble.settings`) stays apart: it checks strategies and weights with torch code,
and the command line reads these models before torch is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from hrm_eval.inference.config import ModelFlags
from hrm_eval.utils import guarded, limits
from hrm_eval.utils.config import RunSettings, setting
from hrm_eval.utils.errors import HRMEvalError


class MembersSettings(RunSettings):
    """Ensemble and compare: which checkpoints, on which data, through which member cache."""

    checkpoints: list[str] | None = setting(  # checkpoint files (a run directory means its newest step)
        None,
        nargs="+",
        metavar="PATH",
        help="checkpoint files (a run directory means its newest step); default: the bundled run",
    )
    run: str | None = setting(  # every step_<N> of this training run directory
        None,
        aliases=("--run-dir",),  # the spelling to use under torchrun, whose own parser takes --run for its --run-path
        help="every step_<N> of this training run directory",
    )
    data_path: str | None = setting(  # default: the run's training data (its test split)
        None, flag="--data", help="dataset (default: the run's training data, its test split)"
    )
    # One member-prediction cache for ensemble and compare (entries are keyed by checkpoint hash,
    # data fingerprint and settings), so each run's fresh output folder still reuses it.
    # None: the API's default too (hrm_eval.members.predictions.default_cache_dir), outside any checkout
    cache_dir: str | None = setting(
        None,
        help="member prediction cache, shared by ensemble and compare (default: $HRM_EVAL_CACHE_DIR, else "
        "$XDG_CACHE_HOME/hrm-eval/predictions, else ~/.cache/hrm-eval/predictions)",
    )

    @field_validator("cache_dir")
    @classmethod
    def _cache_is_a_folder(cls, v: str | None) -> str | None:
        if (
            v is not None and Path(v).exists() and not Path(v).is_dir()
        ):  # an HRMEvalError passes through pydantic as it is
            raise HRMEvalError(
                f"--cache-dir {v} is a {guarded.path_kind(Path(v).stat().st_mode)}, expected a directory"
            )
        return v


class EnsembleConfig(MembersSettings, ModelFlags):
    strategy: Literal["average", "vote", "q_vote", "stacking"] = setting("average", help="how members are combined")
    weights: Literal["uniform", "learned"] | list[float] | None = setting(
        None,
        action="weights",
        metavar="W",
        help="one weight per checkpoint, or 'uniform' / 'learned' (average default: learned from "
        "validation accuracy on the calibration split)",
    )
    # tta's lower bound and calibration_fraction are checked by evaluate_ensemble itself
    # (make_views, the calibration split: one place for the CLI and the Python API alike).
    tta: int = setting(  # the lower bound: evaluate_ensemble (make_views)
        1,
        le=limits.MAX_VIEWS,
        metavar="N",
        help="N test-time views per puzzle, the puzzle itself first (sudoku relabelling and symmetries, "
        "maze dihedral transforms)",
    )
    calibration_data: str | None = setting(None, help="puzzles to fit stacking / learn weights on (never scored)")
    calibration_split: str | None = setting(None, help="split of --calibration-data (default: --split)")
    calibration_fraction: float = setting(
        0.2, help="without --calibration-data, this seeded fraction of --data is held out"
    )
    calibration_limit: int | None = setting(None, help="use only the first N calibration puzzles")
    stacker: str | None = setting(None, help="reuse a fitted stacker.json instead of fitting one")
    seed: int = setting(0)

    @model_validator(mode="after")
    def _stacker_is_a_file(self) -> EnsembleConfig:
        # checked now, not after every member has been evaluated (a --stacker without --strategy
        # stacking is evaluate_ensemble's one line)
        if self.stacker is not None and self.strategy == "stacking":
            guarded.expect_file(self.stacker, "--stacker")
        return self


class CompareConfig(MembersSettings):
    plots: bool = setting(True, flag="--no-plots", help="do not draw the PNG plots")
