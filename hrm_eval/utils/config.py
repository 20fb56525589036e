"""Config files and config models: one reader for YAML/JSON, one formatter for validation
errors, and the Pydantic model of every command-line mode (one set of defaults each).

A mode's settings come in three layers, later ones winning: the model's defaults below, the
mode's config file (`evaluate`: the bundled configs/eval_config.yaml unless --config names
another), the flags given on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Type, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hrm_eval.utils import guarded, limits
from hrm_eval.utils.errors import HRMEvalError

T = TypeVar("T", bound=BaseModel)

# The batch size of every evaluation path (CLI, `simple_evaluate`, ensemble, compare): large
# enough that a CPU evaluation is not dominated by per-batch overhead.
DEFAULT_BATCH_SIZE = 256
Dtype = Literal["float32", "bfloat16", "float16"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


# ---- reading and validating ------------------------------------------------------------------
def read_yaml(path: str | Path, what: str = "config file") -> Dict[str, Any]:
    """A YAML (or JSON) file holding a mapping; every problem is one line naming the file
    (read through the guarded reader: kind, size, depth, aliases, keys checked)."""
    data = guarded.read_yaml(path, what)
    return guarded.mapping({} if data is None else data, str(path))


def read_json(path: str | Path, what: str = "file") -> Any:
    return guarded.read_json(path, what)


def validation_error_line(
    error: ValidationError, names: Optional[Mapping[str, str]] = None, schema: Optional[Type[BaseModel]] = None
) -> str:
    """The first problem of a ValidationError as `field 'value': message`; `names` renames
    top-level fields (e.g. to the command-line flag that set them). An unknown key comes first
    (a typo'd `checkpiont:` is the reason `checkpoint` is missing), with the nearest name of
    `schema` when one is close."""
    errors = error.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(x) for x in err["loc"]]
    field = ".".join(loc) or "config"
    if err["type"] == "extra_forbidden" and schema is not None and len(loc) == 1:
        from hrm_eval.models.config import unknown_field_error  # the one did-you-mean rule

        return unknown_field_error(loc[0], schema.model_fields, "unknown setting")
    if loc and names and loc[0] in names:
        field = names[loc[0]] + "".join(f".{x}" for x in loc[1:])
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names them (the input is the whole mapping)
        return msg
    if err["type"] == "missing" or isinstance(err["input"], (dict, list)):  # a block: its message says where
        return f"{field}: {msg}"
    return f"{field} {short_repr(err['input'])}: {msg}"


def short_repr(value: Any, width: int = 60) -> str:
    """repr of a value for a one-line message: a 400-digit number or a long list cut short."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 20]}...({len(text):,} characters)"


def validate_config(data: Dict[str, Any], schema: Type[T], origin: str, names: Optional[Mapping[str, str]] = None) -> T:
    try:
        return schema(**data)
    except ValidationError as e:
        line = validation_error_line(e, names, schema)
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

    @field_validator("arch_overrides")
    @classmethod
    def _known_arch_fields(cls, v: Dict[str, Any]) -> Dict[str, Any]:
        if v:  # the model's field names live with the model (imported only when there is a name to check)
            from hrm_eval.models.config import check_arch_names

            check_arch_names(v)  # an HRMEvalError passes through pydantic as it is: one line, naming --arch
        return v


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


class ScalingSettings(_Config):
    """Test-time scaling (README: Thinking longer). off: one attempt, every number as without it."""

    scaling: Literal["off", "verify"] = "off"
    # ACT steps per puzzle, all attempts (default 4 x halt_max_steps)
    budget: Optional[int] = Field(None, ge=1, le=limits.MAX_BUDGET)
    views: int = Field(8, ge=1, le=limits.MAX_VIEWS)  # most attempts; each after the first on a view of the puzzle
    attempt_steps: Optional[int] = Field(None, ge=1, le=limits.MAX_BUDGET)  # one attempt's most (the halting limit)
    noise: float = Field(0.0, ge=0, le=100)  # std of Gaussian noise on the initial carry of later attempts
    seed: int = 0  # views and noise


class EvalConfig(RunSettings, ModelFlags, ScalingSettings):
    """`--mode evaluate` (and configs/eval_config.yaml): every field is also a flag."""

    checkpoint: str  # step_<N> file, `checkpoint` file or run directory
    data_path: str  # dataset directory, or a .csv / .jsonl file of puzzles
    dtype: Optional[Literal["auto", "float32", "bfloat16", "float16"]] = None  # type: ignore[assignment]  # auto: bf16 where native
    halting: Literal["fixed", "adaptive", "threshold", "sweep"] = "fixed"  # fixed: the public numbers
    halt_threshold: float = Field(0.5, gt=0, lt=1)  # threshold: stop when sigmoid(q_halt) >= this
    min_steps: int = Field(1, ge=1, le=limits.MAX_STEPS)  # adaptive / threshold never stop earlier
    max_steps: Optional[int] = Field(None, ge=1, le=limits.MAX_STEPS)  # default: the model's halt_max_steps
    threads: Optional[int] = Field(
        None, ge=1, le=limits.MAX_THREADS
    )  # CPU threads (default: OMP_NUM_THREADS, else one per core)
    compile: bool = False  # torch.compile the ACT step (skipped with a warning if unavailable)
    backend: Literal["torch", "onnxruntime"] = "torch"  # onnxruntime: one exported ACT step, CPU, fp32
    quantize: Optional[Literal["int8"]] = None  # int8 linear weights (implies onnxruntime)
    save_predictions: bool = False
    output_format: Literal["json", "csv"] = "json"  # csv: per_puzzle.csv as well as results.json
    # skip the puzzles an interrupted run with the same settings finished in output_dir; "strict":
    # stop at a logged row that cannot be trusted instead of evaluating it again
    resume: Union[bool, Literal["strict"]] = False
    overwrite: bool = False  # start afresh in an output_dir that holds an interrupted run


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
    limit: Optional[int] = Field(None, ge=1, le=limits.MAX_LIMIT)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=limits.MAX_BATCH_SIZE)
    max_accuracy_drop: float = Field(1.0, ge=0)  # int8: refuse above this exact-accuracy drop (points)
    threads: Optional[int] = Field(None, ge=1, le=limits.MAX_THREADS)
    overwrite: bool = False  # replace an earlier export in output_dir (never files it did not write)
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
    num_train: int = Field(0, ge=0, le=limits.MAX_LIMIT)
    num_test: int = Field(0, ge=0, le=limits.MAX_LIMIT)
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


class SolveConfig(LogSettings, ModelFlags, ScalingSettings):
    """`--mode solve`: puzzles without answers -> the model's answers."""

    checkpoint: Optional[str] = None  # default: the bundled run (its newest step)
    puzzle: List[str] = Field(default_factory=list)  # puzzles in their natural form (repeatable flag)
    data_path: Optional[str] = None  # a .csv (answer column may be empty) or .jsonl (target_sequence optional)
    task: Optional[str] = None  # detected from the model's vocabulary and the puzzle when absent
    halting: Literal["fixed", "adaptive", "threshold"] = "adaptive"
    halt_threshold: float = Field(0.5, gt=0, lt=1)
    min_steps: int = Field(1, ge=1, le=limits.MAX_STEPS)
    max_steps: Optional[int] = Field(None, ge=1, le=limits.MAX_STEPS)
    show_steps: bool = False  # also print the answer after each ACT step
    limit: Optional[int] = Field(None, ge=1, le=limits.MAX_LIMIT)  # solve only the first N puzzles of the file
    output_dir: Optional[str] = None  # also write solutions.jsonl there
    device: str = "auto"
    dtype: Optional[Dtype] = None
