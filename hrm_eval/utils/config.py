"""The shared bases of the modes' config models: the settings every mode takes (logging), every
mode that runs a model and writes its results takes (`RunSettings`), and test-time scaling.

Each mode's own config model lives with its feature (`hrm_eval.evaluation.config`,
`hrm_eval.ensemble.config`, `hrm_eval.export.config`, `hrm_eval.inference.config`,
`hrm_eval.data.config`, `hrm_eval.training.config`, `hrm_eval.serve.config`);
`hrm_eval.config.load_config` reads a config file into one of them.

A setting is declared once, as a field: `setting(default, help=...)` makes it a command-line
flag as well (`--batch-size` for `batch_size`; its type and choices from the annotation, its
default shown in --help from the field); `hrm_eval.cli.base.add_flags` builds the flags of a
config model from these fields.

A mode's settings come in three layers, later ones winning: the model's defaults, the
mode's config file (`evaluate`: the bundled configs/eval_config.yaml unless --config names
another), the flags given on the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from hrm_eval.utils import limits

# The batch size of every evaluation path (CLI, `simple_evaluate`, ensemble, compare): large
# enough that a CPU evaluation is not dominated by per-batch overhead.
DEFAULT_BATCH_SIZE = 256
Dtype = Literal["float32", "bfloat16", "float16"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
DTYPE_HELP = "override the checkpoint's forward_dtype"


def setting(
    default: Any = PydanticUndefined,
    *,
    help: str | None = None,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    metavar: str | tuple[str, ...] | None = None,
    action: str | None = None,
    nargs: int | str | None = None,
    const: Any = None,
    choices: Sequence[str] | None = None,
    exclusive: str | None = None,
    **field: Any,
) -> Any:
    """A config field that is also a command-line flag (`pydantic.Field` with the flag's facts).

    `help`: the flag's help (also the field's description); the default is added to it in --help.
    `flag`: its spelling when not `--` + the field name with dashes (`--output` for output_dir;
    a `--no-...` flag of a field defaulting to True stores False). `aliases`: other spellings.
    The type, and the choices of a `Literal`, come from the annotation; `metavar`, `nargs`,
    `const` and `choices` are argparse's, `action` one of argparse's or the CLI's own
    (`key_value`: repeatable KEY=VALUE into a dict, `weights`: numbers or a word). `exclusive`:
    flags sharing this name cannot be given together. `field`: pydantic's (ge, le, default_factory)."""
    cli = {
        "flag": flag,
        "aliases": list(aliases) or None,
        "metavar": metavar,
        "action": action,
        "nargs": nargs,
        "const": const,
        "choices": list(choices) if choices is not None else None,
        "exclusive": exclusive,
    }
    extra = {"cli": {k: v for k, v in cli.items() if v is not None}}
    return Field(default, description=help, json_schema_extra=extra, **field)  # type: ignore[arg-type]


class ConfigModel(BaseModel):
    """A mode's settings: an unknown key is an error (a typo must not fall back to a default)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LogSettings(ConfigModel):
    """The logging settings every mode takes (--log-level, --log-file)."""

    log_level: LogLevel = setting("INFO", help="for the console and the --log-file")
    log_file: str | None = setting(  # JSON lines, one object per log record (appended)
        None, metavar="PATH", help="also log to PATH, one JSON object per line (appended)"
    )


class RunSettings(LogSettings):
    """What every mode that runs a model and writes its results shares."""

    split: str = setting("test", help="dataset split")
    # puzzle task for verifiers / raw files; detected when absent
    task: str | None = setting(None, help="puzzle task (sudoku, sudoku4, sudoku6, maze, arc); detected when absent")
    output_dir: str | None = setting(  # default: outputs/<mode>/<what>-<timestamp>, new for each run
        None, flag="--output", help="output directory (default: a new outputs/<mode>/<names>-<timestamp>)"
    )
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N | mps")
    dtype: Dtype | None = setting(None, help=DTYPE_HELP)  # default: the checkpoint's forward_dtype
    batch_size: int = setting(DEFAULT_BATCH_SIZE, ge=1, le=limits.MAX_BATCH_SIZE)
    limit: int | None = setting(None, ge=1, le=limits.MAX_LIMIT, help="evaluate only the first N examples")
    progress: bool = setting(True, flag="--no-progress", help="no progress bar")
    wandb: bool = setting(  # log metrics, tables and plots to a W&B run (offline by default)
        False,
        help="log metrics, tables and plots to a Weights & Biases run (offline unless WANDB_MODE is set)",
    )
    wandb_project: str = setting("hrm-eval", help="W&B project")


class ScalingSettings(ConfigModel):
    """Test-time scaling (README: Thinking longer). off: one attempt, every number as without it."""

    scaling: Literal["off", "verify"] = setting(
        "off",
        help="verify: an answer that breaks the task's rules (ARC: a low halting confidence) thinks "
        "longer, then again on views of the puzzle, until one passes or --budget is spent",
    )
    # ACT steps per puzzle, all attempts (default 4 x halt_max_steps)
    budget: int | None = setting(
        None, ge=1, le=limits.MAX_BUDGET, help="scaling: most ACT steps per puzzle, all attempts (4 x halt_max_steps)"
    )
    views: int = setting(  # most attempts; each after the first on a view of the puzzle
        8, ge=1, le=limits.MAX_VIEWS, help="scaling: most attempts, each after the first on a view"
    )
    attempt_steps: int | None = setting(  # one attempt's most (the halting limit)
        None, ge=1, le=limits.MAX_BUDGET, help="scaling: most steps of one attempt (default: the halting limit)"
    )
    noise: float = setting(  # std of Gaussian noise on the initial carry of later attempts
        0.0, ge=0, le=100, help="scaling: std of noise on the initial carry of later attempts"
    )
    seed: int = setting(0, help="scaling: the seed of the views and the noise")  # views and noise
