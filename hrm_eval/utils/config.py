"""The shared bases of the modes' config models: the settings every mode takes (logging), every
mode that runs a model and writes its results takes (`RunSettings`), and test-time scaling.

Each mode's own config model lives with its feature (`hrm_eval.evaluation.config`,
`hrm_eval.ensemble.config`, `hrm_eval.export.config`, `hrm_eval.inference.config`,
`hrm_eval.data.config`, `hrm_eval.training.config`, `hrm_eval.serve.config`);
`hrm_eval.config.load_config` reads a config file into one of them.

A mode's settings come in three layers, later ones winning: the model's defaults, the
mode's config file (`evaluate`: the bundled configs/eval_config.yaml unless --config names
another), the flags given on the command line.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from hrm_eval.utils import limits

# The batch size of every evaluation path (CLI, `simple_evaluate`, ensemble, compare): large
# enough that a CPU evaluation is not dominated by per-batch overhead.
DEFAULT_BATCH_SIZE = 256
Dtype = Literal["float32", "bfloat16", "float16"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ConfigModel(BaseModel):
    """A mode's settings: an unknown key is an error (a typo must not fall back to a default)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LogSettings(ConfigModel):
    """The logging settings every mode takes (--log-level, --log-file)."""

    log_level: LogLevel = "INFO"
    log_file: Optional[str] = None  # JSON lines, one object per log record (appended)


class RunSettings(LogSettings):
    """What every mode that runs a model and writes its results shares."""

    split: str = "test"
    task: Optional[str] = None  # puzzle task for verifiers / raw files; detected when absent
    output_dir: Optional[str] = None  # default: outputs/<mode>/<what>-<timestamp>, new for each run
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: Optional[Dtype] = None  # default: the checkpoint's forward_dtype
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=limits.MAX_BATCH_SIZE)
    limit: Optional[int] = Field(None, ge=1, le=limits.MAX_LIMIT)  # evaluate only the first N examples
    progress: bool = True
    wandb: bool = False  # log metrics, tables and plots to a W&B run (offline by default)
    wandb_project: str = "hrm-eval"


class ScalingSettings(ConfigModel):
    """Test-time scaling (README: Thinking longer). off: one attempt, every number as without it."""

    scaling: Literal["off", "verify"] = "off"
    # ACT steps per puzzle, all attempts (default 4 x halt_max_steps)
    budget: Optional[int] = Field(None, ge=1, le=limits.MAX_BUDGET)
    views: int = Field(8, ge=1, le=limits.MAX_VIEWS)  # most attempts; each after the first on a view of the puzzle
    attempt_steps: Optional[int] = Field(None, ge=1, le=limits.MAX_BUDGET)  # one attempt's most (the halting limit)
    noise: float = Field(0.0, ge=0, le=100)  # std of Gaussian noise on the initial carry of later attempts
    seed: int = 0  # views and noise
