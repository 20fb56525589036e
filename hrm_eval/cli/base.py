"""What every mode shares: the mode table entry, the one-line-error parser, flag groups, and
turning the given flags (+ the mode's config file) into the mode's config model.

Adding a flag to a mode is one line in that mode's `add_arguments` plus the field of the same
name in its config model (owned by the mode's feature, e.g. hrm_eval.evaluation.config); its
default is shown in --help from there.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, NoReturn, Optional, Tuple, Type, TypeVar

from pydantic import BaseModel, ValidationError

from hrm_eval.resources import checkpoint_by_name, find
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.logging import LEVELS, setup_logging
from hrm_eval.utils.paths import OutputLock, check_writable_dir
from hrm_eval.utils.tracking import start_run, wandb_module
from hrm_eval.utils.validation import read_yaml, validation_error_line

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger("hrm_eval")

# Fields that name inputs: a relative path in a config file is looked up with resources.find.
INPUT_PATHS = (
    "checkpoint",
    "data_path",
    "model_config_path",
    "calibration_data",
    "stacker",
    "run",
    "source",
    "predictions",
)
NOT_SETTINGS = ("mode", "debug", "config")  # flags that steer the CLI itself


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, status 2, as for every other user mistake
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


@dataclass
class Invocation:
    """One command line: the flags the user gave (by config field name) and their spelling."""

    flags: Dict[str, Any]
    flag_names: Dict[str, str]  # config field -> flag, e.g. data_path -> --data
    config_file: Optional[Path] = None

    def config(self, schema: Type[T], default_file: Optional[Path] = None) -> T:
        """schema defaults < the config file (--config, else `default_file`) < the given flags."""
        path = self.config_file or default_file
        return self.validate(schema, _file_settings(path) if path is not None else {}, path)

    def output_config(self, schema: Type[T]) -> T:
        """`config(schema)` for a mode that writes a folder: its `output_dir` is checked now (one
        line naming --output), before any work whose result could not be written."""

        config = self.config(schema)
        output_dir = getattr(config, "output_dir", None)
        if output_dir:
            check_writable_dir(output_dir)
        return config

    def validate(self, schema: Type[T], file_data: Dict[str, Any], path: Optional[Path]) -> T:
        """file_data updated by the given flags, into `schema`; a problem is named the way the
        user wrote it: the flag when a flag set it (or could have), else the file and its field."""
        settings = {k: v for k, v in self.flags.items() if k not in NOT_SETTINGS and k in schema.model_fields}
        _resolve_checkpoint_names(settings, file_data)
        try:
            config = schema(**{**file_data, **settings})
        except ValidationError as e:
            errors = e.errors()
            err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])  # typos first
            field = str(err["loc"][0]) if err["loc"] else ""
            if field in settings or (err["type"] == "missing" and field in self.flag_names):
                hint = f" (nor set as `{field}` in {path})" if path is not None and field not in settings else ""
                raise HRMEvalError(validation_error_line(e, self.flag_names) + hint) from None
            line = validation_error_line(e, schema=schema)
            raise HRMEvalError(f"{path}: {line}" if path else line) from None
        self.start_logging(config)
        return config

    def start_logging(self, config: Optional[BaseModel] = None) -> None:
        """Logging as the flags (and, once read, the config file) say; with a config, its
        settings go into the log as the mode's first event."""
        level = getattr(config, "log_level", None) or self.flags.get("log_level", "INFO")
        log_file = getattr(config, "log_file", None) or self.flags.get("log_file")
        mode = self.flags.get("mode")
        setup_logging(level, log_file, mode=mode)
        if config is not None:
            settings = config.model_dump(mode="json")
            log.info(
                "%s: settings read",
                mode,
                extra={"event": "start", "config": settings, "config_file": self.config_file, "console": False},
            )


def _file_settings(path: Path) -> Dict[str, Any]:
    data = read_yaml(path)
    if "arch" in data:
        raise HRMEvalError(
            f"--config {path} is a training/run config (it has an `arch` block): use it with "
            "--mode train, or as --model-config for a checkpoint without all_config.yaml"
        )
    for key in INPUT_PATHS:
        if isinstance(data.get(key), str):
            data[key] = str(find(data[key]))
    return data


def _resolve_checkpoint_names(settings: Dict[str, Any], file_data: Dict[str, Any]) -> None:
    """--checkpoint step_3750 (a name, not a path): looked up first in the checkpoint directory
    the config file names (its `checkpoint` or `run`), then in checkpoints/*/."""
    configured = []
    for key in ("checkpoint", "run"):
        if isinstance(file_data.get(key), str):
            p = Path(file_data[key])
            configured.append(p if p.is_dir() else p.parent)
    if isinstance(settings.get("checkpoint"), str):
        settings["checkpoint"] = str(checkpoint_by_name(settings["checkpoint"], configured))
    if isinstance(settings.get("checkpoints"), list):
        settings["checkpoints"] = [
            str(checkpoint_by_name(c, configured)) if isinstance(c, str) else c for c in settings["checkpoints"]
        ]


@dataclass
class Mode:
    name: str
    help: str
    add_arguments: Callable[[argparse._ArgumentGroup], None]
    run: Callable[[Invocation], int]
    schema: Optional[Type[BaseModel]] = None  # its config model: --help shows the defaults from here
    defaults_file: Optional[str] = None  # the bundled config file that sets its required fields


def mode_parser(mode: Mode) -> Parser:
    # SUPPRESS: a flag not given is absent from the namespace, so config files and model
    # defaults are never overridden by argparse's own defaults.
    p = Parser(prog=f"hrm-eval --mode {mode.name}", description=mode.help, argument_default=argparse.SUPPRESS)
    p.add_argument("--mode", choices=[mode.name], help=argparse.SUPPRESS)
    group = p.add_argument_group(f"{mode.name} options")
    mode.add_arguments(group)
    common = p.add_argument_group("common options")
    common.add_argument("--log-level", choices=LEVELS, help="for the console and the --log-file (default: INFO)")
    common.add_argument("--log-file", metavar="PATH", help="also log to PATH, one JSON object per line (appended)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    for action in group._group_actions:  # --data DATA, not --data DATA_PATH
        if action.option_strings and action.metavar is None and action.nargs is None and action.choices is None:
            action.metavar = action.option_strings[0].lstrip("-").upper().replace("-", "_")
    if mode.schema is not None:
        _show_defaults(group, mode.schema, mode.defaults_file)
    return p


def _show_defaults(group: argparse._ArgumentGroup, schema: Type[BaseModel], defaults_file: Optional[str]) -> None:
    for action in group._group_actions:
        field = schema.model_fields.get(action.dest)
        if field is None or action.help == argparse.SUPPRESS:
            continue
        if field.is_required():
            note = f" (default: set in {defaults_file})" if defaults_file else " (required)"
            action.help = (action.help or "") + note
        elif (
            field.default not in (None, {}, [])
            and isinstance(field.default, (str, int, float))
            and not isinstance(field.default, bool)
        ):
            action.help = (action.help or "") + f" (default: {field.default})"


def flag_names(parser: argparse.ArgumentParser) -> Dict[str, str]:
    return {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}


# ---- flags shared by several modes -------------------------------------------------------------
def key_value(text: str) -> tuple:
    """KEY=VALUE with VALUE read as YAML (so 8 is an int, true a bool, [1, 2] a list)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got '{text}'")
    key, value = text.split("=", 1)
    try:
        return key.strip(), guarded.parse_yaml(value, f"the value of '{key.strip()}'", max_bytes=1 << 16)
    except HRMEvalError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class KeyValues(argparse.Action):
    """Repeatable KEY=VALUE flag collected into one dict."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = dict(getattr(namespace, self.dest, None) or {})
        key, value = values
        current[key] = value
        setattr(namespace, self.dest, current)


def add_dtype_flag(g: argparse._ArgumentGroup, *, auto: bool = False) -> None:
    choices = ("auto", "float32", "bfloat16", "float16") if auto else ("float32", "bfloat16", "float16")
    g.add_argument(
        "--dtype",
        choices=choices,
        help="override the checkpoint's forward_dtype"
        + ("; auto: bf16 where this device runs it natively, else the checkpoint's" if auto else ""),
    )


def add_model_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--model-config", dest="model_config_path", help="architecture YAML for a checkpoint without all_config.yaml"
    )
    g.add_argument(
        "--arch",
        dest="arch_overrides",
        action=KeyValues,
        type=key_value,
        metavar="KEY=VALUE",
        help="override one architecture field (repeatable), e.g. --arch num_heads=8",
    )


def add_run_flags(g: argparse._ArgumentGroup, *, auto_dtype: bool = False) -> None:
    """What every mode that runs a model and writes its results takes (hrm_eval.utils.config.RunSettings)."""
    g.add_argument("--split", help="dataset split")
    g.add_argument("--task", help="puzzle task (sudoku, sudoku4, sudoku6, maze, arc); detected when absent")
    g.add_argument(
        "--output", dest="output_dir", help="output directory (default: a new outputs/<mode>/<names>-<timestamp>)"
    )
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    add_dtype_flag(g, auto=auto_dtype)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--limit", type=int, help="evaluate only the first N examples")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument(
        "--wandb",
        action="store_true",
        help="log metrics, tables and plots to a Weights & Biases run (offline unless WANDB_MODE is set)",
    )
    g.add_argument("--wandb-project", help="W&B project (default: hrm-eval)")


def add_scaling_flags(g: argparse._ArgumentGroup) -> None:
    """Test-time scaling (hrm_eval.utils.config.ScalingSettings; README: Thinking longer)."""
    g.add_argument(
        "--scaling",
        choices=("off", "verify"),
        help="verify: an answer that breaks the task's rules (ARC: a low halting confidence) thinks "
        "longer, then again on views of the puzzle, until one passes or --budget is spent (default off)",
    )
    g.add_argument("--budget", type=int, help="scaling: most ACT steps per puzzle, all attempts (4 x halt_max_steps)")
    g.add_argument("--views", type=int, help="scaling: most attempts, each after the first on a view (default 8)")
    g.add_argument("--attempt-steps", type=int, help="scaling: most steps of one attempt (default: the halting limit)")
    g.add_argument("--noise", type=float, help="scaling: std of noise on the initial carry of later attempts (0)")
    g.add_argument("--seed", type=int, help="scaling: the seed of the views and the noise (default 0)")


def model_config(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The architecture fields of a --model-config YAML (a bare block or an all_config.yaml)."""
    if not path:
        return None
    from hrm_eval.models.config import read_arch_fields  # why: models import torch; not every command line needs it

    return read_arch_fields(path)


def replaced_note(existed: bool) -> str:
    return " (replaced the earlier results in this --output)" if existed else ""


def check_wandb(config: BaseModel) -> None:
    """--wandb without wandb installed: one line now, not after the evaluation."""
    if getattr(config, "wandb", False):
        wandb_module(required=True)


def track(config: BaseModel, mode: str, results: Dict[str, Any], out: Path) -> None:
    """With --wandb: the results (metrics, tables, the PNGs in `out`) as one W&B run in `out`."""
    if not getattr(config, "wandb", False):
        return

    tracker = start_run(
        getattr(config, "wandb_project", None),
        name=out.name,
        config=config.model_dump(mode="json"),
        job_type=mode,
        directory=out,
    )
    if tracker is not None:
        tracker.log_results(results, output_dir=out)
        tracker.finish()


def run_on_ranks(
    cfg: BaseModel,
    mode: str,
    device_name: str,
    out: Path,
    report_file: str,
    entry: Callable[..., dict],
    *args,
    **kwargs,
) -> Optional[Tuple[dict, bool]]:
    """`entry(*args, output_dir=out, device=..., dist=..., **kwargs)` for a mode that writes `out`,
    alone or as one rank under torchrun (gloo on CPU, NCCL on CUDA, one GPU per rank): every rank
    runs its share, rank 0 holds the --output lock, writes and tracks. Returns (results, whether
    `out` already held `report_file`) on rank 0, None on the other ranks."""
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.evaluation.distributed import init_from_env, rank_device, run_rank
    from hrm_eval.utils.device import resolve_device

    check_wandb(cfg)  # a missing wandb is one line now, not after the work
    device = rank_device(resolve_device(device_name))
    dist = init_from_env(device)

    def rank_work() -> Tuple[dict, bool]:
        def work() -> dict:
            return entry(*args, output_dir=out, device=str(device), dist=dist, **kwargs)

        if not dist.is_main:  # its rows go to rank 0; it writes only its own resume log
            return work(), False
        with OutputLock(out):
            existed = (out / report_file).exists()
            results = work()
            track(cfg, mode, results, out)
            return results, existed

    try:
        results, existed = run_rank(dist, rank_work)
    finally:
        dist.close()
    return (results, existed) if dist.is_main else None
