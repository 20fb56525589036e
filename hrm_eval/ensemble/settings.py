"""`EnsembleSettings`: how an ensemble is evaluated (everything but which checkpoints and data),
one object the CLI can build from its config model and the stages read from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hrm_eval.ensemble.strategies import STRATEGIES, check_weights
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.errors import HRMEvalError

PathLike = str | Path
Weights = str | Sequence[float] | None


@dataclass(frozen=True)
class EnsembleSettings:
    run: PathLike | None = None  # every step_<N> of this run (instead of checkpoints)
    strategy: str = "average"  # one of STRATEGIES
    weights: Weights = None  # numbers, 'uniform' or 'learned'; None: learned for average
    output_dir: PathLike | None = None  # results.json (+ stacker.json); None: nothing written
    split: str = "test"
    task: str | None = None  # None: detected from the data
    device: str = "auto"
    dtype: str | None = None  # requested forward dtype; None: each checkpoint's own
    batch_size: int = DEFAULT_BATCH_SIZE  # one default for the CLI and the API
    limit: int | None = None  # first N puzzles
    tta: int = 1  # test-time views per puzzle (1: the puzzle as given)
    calibration_data: PathLike | None = None
    calibration_split: str | None = None  # None: `split`
    calibration_fraction: float = 0.2  # held out of the data when no calibration_data
    calibration_limit: int | None = None
    stacker: PathLike | None = None  # a fitted stacker.json to reuse
    seed: int = 0
    cache_dir: PathLike | None = None  # None: the shared default_cache_dir()
    arch_overrides: dict[str, Any] | None = None
    model_config: dict[str, Any] | None = None
    progress: bool = True

    @classmethod
    def build(cls, settings: EnsembleSettings | None = None, **options: Any) -> EnsembleSettings:
        """`settings` (or the defaults) with `options` replacing fields; checked."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown ensemble settings: {', '.join(unknown)}")
        base = {f.name: getattr(settings, f.name) for f in fields(cls)} if settings is not None else {}
        built = cls(**{**base, **options})
        built.check()
        return built

    def check(self) -> None:
        """The mistakes that need no data to see, as one-line errors."""
        if self.strategy not in STRATEGIES:
            raise HRMEvalError(f"unknown strategy '{self.strategy}' (choose {', '.join(STRATEGIES)})")
        if self.batch_size < 1:
            raise HRMEvalError(f"batch size must be at least 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise HRMEvalError(f"--limit must be at least 1, got {self.limit}")
        if self.stacker is not None and self.strategy != "stacking":
            raise HRMEvalError(f"--stacker applies to --strategy stacking, not {self.strategy}")
        if self.strategy == "stacking" and self.weights is not None:
            raise HRMEvalError("--weights does not apply to --strategy stacking (the meta-learner weighs the members)")

    def weight_mode(self, num_members: int) -> str:
        """'given', 'uniform' or 'learned' (on the calibration split)."""
        if self.weights is None:
            return "learned" if self.strategy == "average" and num_members > 1 else "uniform"
        if isinstance(self.weights, str):
            if self.weights not in ("uniform", "learned"):
                raise HRMEvalError(f"--weights: expected numbers, 'uniform' or 'learned', got '{self.weights}'")
            return "uniform" if num_members == 1 else self.weights
        return "given"

    def given_weights(self, num_members: int) -> list[float]:
        """--weights' numbers, checked against the members and normalised (weight mode 'given')."""
        if self.weights is None or isinstance(self.weights, str):
            raise ValueError(f"--weights {self.weights!r} gives no numbers")
        return check_weights(self.weights, num_members)

    def check_against_members(self, num_members: int) -> None:
        """The mistakes that need the number of members, seen before any member runs."""
        mode = self.weight_mode(num_members)
        if mode == "given":
            self.given_weights(num_members)
        if self.calibration_data is not None and not self.learns(num_members):
            raise HRMEvalError(
                "--calibration-data is used only to fit --strategy stacking or to learn --weights; "
                f"--strategy {self.strategy} with {mode} weights learns nothing"
            )

    def learns(self, num_members: int) -> bool:
        """Whether anything is fitted on a calibration split (stacking without a saved stacker,
        or learned weights)."""
        return (self.strategy == "stacking" and self.stacker is None) or self.weight_mode(num_members) == "learned"
