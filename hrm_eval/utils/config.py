"""Config files and config models: one reader for YAML/JSON, one formatter for validation
errors, and the Pydantic model of every command-line mode (one set of defaults each).

A mode's settings come in three layers, later ones winning: the model's defaults below, the
mode's config file (`evaluate`: the bundled configs/eval_config.yaml unless --config names
another), the flags given on the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Type, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hrm_eval.utils.errors import HRMEvalError

T = TypeVar("T", bound=BaseModel)

# The batch size of every evaluation path (CLI, `simple_evaluate`, ensemble, compare): large
# enough that a CPU evaluation is not dominated by per-batch overhead.
DEFAULT_BATCH_SIZE = 256
Dtype = Literal["float32", "bfloat16", "float16"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


# ---- reading and validating ------------------------------------------------------------------
def read_yaml(path: str | Path, what: str = "config file") -> Dict[str, Any]:
    """A YAML (or JSON) file holding a mapping; every problem is one line naming the file."""
    path = Path(path)
    text = _read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:  # the line users need to look at, 1-based
        line = f":{e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise HRMEvalError(f"{path}{line}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise HRMEvalError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    return _mapping(path, {} if data is None else data)


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise HRMEvalError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise HRMEvalError(f"{what} not found: {path}" + (" (a directory)" if path.is_dir() else ""))
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise HRMEvalError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e.reason}") from None


def _mapping(path: Path, data: Any) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise HRMEvalError(f"{path}: expected a mapping (key: value lines) at the top level, got {type(data).__name__}")
    return data


def validation_error_line(error: ValidationError, names: Optional[Mapping[str, str]] = None) -> str:
    """The first problem of a ValidationError as `field 'value': message`; `names` renames
    top-level fields (e.g. to the command-line flag that set them)."""
    err = error.errors()[0]
    loc = [str(x) for x in err["loc"]]
    field = ".".join(loc) or "config"
    if loc and names and loc[0] in names:
        field = names[loc[0]] + "".join(f".{x}" for x in loc[1:])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{field}: {msg}"
    return f"{field} {err['input']!r}: {msg}"


def validate_config(data: Dict[str, Any], schema: Type[T], origin: str, names: Optional[Mapping[str, str]] = None) -> T:
    try:
        return schema(**data)
    except ValidationError as e:
        line = validation_error_line(e, names)
        raise HRMEvalError(f"{origin}: {line}" if origin else line) from None


def load_config(path: str | Path, schema: Optional[Type[T]] = None, overrides: Optional[Dict[str, Any]] = None) -> Any:
    """Load a YAML config into `schema`; `overrides` that are not None win. Without a schema it
    is picked by content: an `arch` block means a training/run config (all_config.yaml)."""
    data = read_yaml(path)
    if schema is None:
        schema = config_schema_for(data)  # type: ignore[assignment]
    elif "arch" in data and "arch" not in schema.model_fields:
        raise HRMEvalError(
            f"{path} is a training/run config (it has an `arch` block), not a {schema.__name__}: "
            "load it with load_config(path) or TrainConfig"
        )
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_config(data, schema, str(path))  # type: ignore[arg-type]


def config_schema_for(data: Mapping[str, Any]) -> Type[BaseModel]:
    if "arch" in data:
        # The one place this layer names the training schema: a run's all_config.yaml is a
        # config file users hand to load_config.
        from hrm_eval.training.config import TrainConfig

        return TrainConfig
    return EvalConfig


# ---- the modes' config models ------------------------------------------------------------------
class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LogSettings(_Config):
    """The logging settings every mode takes (--log-level, --log-file)."""

    log_level: LogLevel = "INFO"
    log_file: Optional[str] = None  # JSON lines, one object per log record (appended)


class ModelFlags(_Config):
    """How a mode that loads a checkpoint reads it: an architecture YAML for a checkpoint without
    all_config.yaml (--model-config) and single architecture fields (--arch KEY=VALUE)."""

    model_config_path: Optional[str] = None  # architecture YAML for checkpoints without all_config.yaml
    arch_overrides: Dict[str, Any] = Field(default_factory=dict)


class RunSettings(LogSettings):
    """What every mode that runs a model and writes its results shares."""

    split: str = "test"
    task: Optional[str] = None  # puzzle task for verifiers / raw files; detected when absent
    output_dir: Optional[str] = None  # default: outputs/<mode>/<what>-<timestamp>, new for each run
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: Optional[Dtype] = None  # default: the checkpoint's forward_dtype
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    limit: Optional[int] = Field(None, ge=1)  # evaluate only the first N examples
    progress: bool = True
    wandb: bool = False  # log metrics, tables and plots to a W&B run (offline by default)
    wandb_project: str = "hrm-eval"


# Upper bounds of the scaling flags, checked before any work (a typo's 10^9 is refused, not run)
MAX_BUDGET = 100_000  # ACT steps one puzzle may use over all its attempts
MAX_VIEWS = 1_000  # attempts (views) per puzzle


class ScalingSettings(_Config):
    """Test-time scaling (README: Thinking longer). off: one attempt, every number as without it."""

    scaling: Literal["off", "verify"] = "off"
    budget: Optional[int] = Field(None, ge=1, le=MAX_BUDGET)  # ACT steps per puzzle, all attempts (4 x halt_max_steps)
    views: int = Field(8, ge=1, le=MAX_VIEWS)  # most attempts; each after the first on a view of the puzzle
    attempt_steps: Optional[int] = Field(None, ge=1, le=MAX_BUDGET)  # one attempt's most (2 x the halting limit)
    noise: float = Field(0.0, ge=0, le=100)  # std of Gaussian noise on the initial carry of later attempts
    seed: int = 0  # views and noise


class EvalConfig(RunSettings, ModelFlags, ScalingSettings):
    """`--mode evaluate` (and configs/eval_config.yaml): every field is also a flag."""

    checkpoint: str  # step_<N> file, `checkpoint` file or run directory
    data_path: str  # dataset directory, or a .csv / .jsonl file of puzzles
    dtype: Optional[Literal["auto", "float32", "bfloat16", "float16"]] = None  # type: ignore[assignment]  # auto: bf16 where native
    halting: Literal["fixed", "adaptive", "threshold", "sweep"] = "fixed"  # fixed: the public numbers
    halt_threshold: float = Field(0.5, gt=0, lt=1)  # threshold: stop when sigmoid(q_halt) >= this
    min_steps: int = Field(1, ge=1)  # adaptive / threshold never stop earlier
    max_steps: Optional[int] = Field(None, ge=1)  # default: the model's halt_max_steps
    threads: Optional[int] = Field(None, ge=1)  # CPU threads (default: OMP_NUM_THREADS, else one per core)
    compile: bool = False  # torch.compile the ACT step (skipped with a warning if unavailable)
    backend: Literal["torch", "onnxruntime"] = "torch"  # onnxruntime: one exported ACT step, CPU, fp32
    quantize: Optional[Literal["int8"]] = None  # int8 linear weights (implies onnxruntime)
    save_predictions: bool = False
    output_format: Literal["json", "csv"] = "json"  # csv: per_puzzle.csv as well as results.json
    resume: bool = False  # skip the puzzles an interrupted run with the same settings finished in output_dir


class InspectConfig(LogSettings, ModelFlags):
    checkpoint: str
    dtype: Optional[Dtype] = None


class ExportConfig(LogSettings, ModelFlags):
    """`--mode export`: a checkpoint as a model folder (safetensors) or an ONNX step."""

    checkpoint: str
    format: Literal["safetensors", "onnx"] = "safetensors"
    output_dir: str
    quantize: Optional[Literal["int8"]] = None  # onnx only
    data_path: Optional[str] = None  # evaluate on it: model card results, the int8 cost
    split: str = "test"
    task: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    max_accuracy_drop: float = Field(1.0, ge=0)  # int8: refuse above this exact-accuracy drop (points)
    threads: Optional[int] = Field(None, ge=1)
    push_to_hub: Optional[str] = None  # OWNER/REPO: upload the written folder (hrm_eval.export.hub)
    private: bool = False  # a repo --push-to-hub creates is private
    revision: Optional[str] = None  # --push-to-hub: the branch to commit to (created when missing)


class ScoreConfig(LogSettings):
    data_path: str
    predictions: str  # prefix of PREFIX_all_preds.<rank> files
    output_dir: str


class BuildDataConfig(LogSettings):
    task: str
    source: str  # folder of raw CSVs / ARC JSON, hub name, or arc-agi-1|arc-agi-2
    output_dir: str
    num_aug: Optional[int] = Field(None, ge=0)
    subsample_size: Optional[int] = Field(None, ge=1)
    min_difficulty: Optional[int] = None
    seed: int = 0


class GenerateConfig(LogSettings):
    task: str
    output_dir: str
    num_train: int = Field(0, ge=0)
    num_test: int = Field(0, ge=0)
    seed: int = 0
    size: Optional[int] = Field(None, ge=1)  # board size (sudoku 4/6/9) or maze side
    min_blanks: Optional[int] = Field(None, ge=0)
    max_blanks: Optional[int] = Field(None, ge=0)

    def model_post_init(self, __context: Any) -> None:
        if self.num_train + self.num_test <= 0:
            raise HRMEvalError("--mode generate: give --num-train N and/or --num-test N (both are 0)")


class MembersSettings(RunSettings):
    """Ensemble and compare: which checkpoints, on which data, through which member cache."""

    checkpoints: Optional[List[str]] = None  # checkpoint files (a run directory means its newest step)
    run: Optional[str] = None  # every step_<N> of this training run directory
    data_path: Optional[str] = None  # default: the run's training data (its test split)
    # One member-prediction cache for ensemble and compare (entries are keyed by checkpoint hash,
    # data fingerprint and settings), so each run's fresh output folder still reuses it.
    cache_dir: str = "outputs/cache"


class EnsembleConfig(MembersSettings, ModelFlags):
    strategy: Literal["average", "vote", "q_vote", "stacking"] = "average"
    weights: Union[Literal["uniform", "learned"], List[float], None] = None
    # tta, calibration_fraction and calibration_limit are checked by evaluate_ensemble itself
    # (one place, for the CLI and the Python API alike).
    tta: int = 1
    calibration_data: Optional[str] = None
    calibration_split: Optional[str] = None  # default: the split
    calibration_fraction: float = 0.2
    calibration_limit: Optional[int] = None
    stacker: Optional[str] = None
    seed: int = 0


class CompareConfig(MembersSettings):
    plots: bool = True


class SolveConfig(LogSettings, ModelFlags, ScalingSettings):
    """`--mode solve`: puzzles without answers -> the model's answers."""

    checkpoint: Optional[str] = None  # default: the bundled run (its newest step)
    puzzle: List[str] = Field(default_factory=list)  # puzzles in their natural form (repeatable flag)
    data_path: Optional[str] = None  # a .csv (answer column may be empty) or .jsonl (target_sequence optional)
    task: Optional[str] = None  # detected from the model's vocabulary and the puzzle when absent
    halting: Literal["fixed", "adaptive", "threshold"] = "adaptive"
    halt_threshold: float = Field(0.5, gt=0, lt=1)
    min_steps: int = Field(1, ge=1)
    max_steps: Optional[int] = Field(None, ge=1)
    show_steps: bool = False  # also print the answer after each ACT step
    limit: Optional[int] = Field(None, ge=1)  # solve only the first N puzzles of the file
    output_dir: Optional[str] = None  # also write solutions.jsonl there
    device: str = "auto"
    dtype: Optional[Dtype] = None
