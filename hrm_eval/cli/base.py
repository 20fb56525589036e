"""What every mode shares: the mode table entry, the one-line-error parser, the flags built from
a config model's fields, and turning the given flags (+ the mode's config file) into the mode's
config model.

A setting is declared once, as a field of its mode's config model (owned by the mode's feature,
e.g. hrm_eval.evaluation.config) made with `hrm_eval.utils.config.setting`: `add_flags` turns
each such field into its flag (name, help, type, choices), and --help shows its default.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from hrm_eval.inference.halting import HALTING_MODES, SWEEP, SWEEP_NOT_A_MODE
from hrm_eval.resources import checkpoint_by_name, find
from hrm_eval.utils import guarded
from hrm_eval.utils.config import LogSettings
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.logging import setup_logging
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

    flags: dict[str, Any]
    flag_names: dict[str, str]  # config field -> flag, e.g. data_path -> --data
    config_file: Path | None = None

    def config(self, schema: type[T], default_file: Path | None = None) -> T:
        """schema defaults < the config file (--config, else `default_file`) < the given flags."""
        path = self.config_file or default_file
        return self.validate(schema, _file_settings(path) if path is not None else {}, path)

    def output_config(self, schema: type[T]) -> T:
        """`config(schema)` for a mode that writes a folder: its `output_dir` is checked now (one
        line naming --output), before any work whose result could not be written."""

        config = self.config(schema)
        output_dir = getattr(config, "output_dir", None)
        if output_dir:
            check_writable_dir(output_dir)
        return config

    def validate(self, schema: type[T], file_data: dict[str, Any], path: Path | None) -> T:
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

    def start_logging(self, config: BaseModel | None = None) -> None:
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


def _file_settings(path: Path) -> dict[str, Any]:
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


def _resolve_checkpoint_names(settings: dict[str, Any], file_data: dict[str, Any]) -> None:
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
    """One `--mode`: what it runs, and the config model its flags and --help defaults come from."""

    name: str
    help: str
    run: Callable[[Invocation], int]
    schema: type[BaseModel] | None = None  # its config model: --help shows the defaults from here
    defaults_file: str | None = None  # the bundled config file that sets its required fields
    # Builds the mode's flags. Default: one flag per field of `schema` (add_flags); a mode
    # with flags of its own (--config, train's --set) gives its own builder.
    flags: Callable[[argparse._ArgumentGroup], None] | None = None


def mode_parser(mode: Mode) -> Parser:
    # SUPPRESS: a flag not given is absent from the namespace, so config files and model
    # defaults are never overridden by argparse's own defaults.
    p = Parser(prog=f"hrm-eval --mode {mode.name}", description=mode.help, argument_default=argparse.SUPPRESS)
    p.add_argument("--mode", choices=[mode.name], help=argparse.SUPPRESS)
    group = p.add_argument_group(f"{mode.name} options")
    if mode.flags is not None:
        mode.flags(group)
    elif mode.schema is not None:
        add_flags(group, mode.schema)
    common = p.add_argument_group("common options")
    add_flags(common, LogSettings)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    _show_defaults(common, LogSettings, None)
    for action in group._group_actions:  # --data DATA, not --data DATA_PATH
        if action.option_strings and action.metavar is None and action.nargs is None and action.choices is None:
            action.metavar = action.option_strings[0].lstrip("-").upper().replace("-", "_")
    if mode.schema is not None:
        _show_defaults(group, mode.schema, mode.defaults_file)
    return p


def _show_defaults(group: argparse._ArgumentGroup, schema: type[BaseModel], defaults_file: str | None) -> None:
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


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
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


class Weights(argparse.Action):
    """--weights 0.5 0.3 0.2 | uniform | learned"""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) == 1 and values[0] in ("uniform", "learned"):
            return setattr(namespace, self.dest, values[0])
        try:
            setattr(namespace, self.dest, [float(v) for v in values])
        except ValueError:
            bad = next(v for v in values if not _is_number(v))
            parser.error(f"argument --weights: '{bad}' is not a number (give numbers, or 'uniform' or 'learned')")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def halting_mode(text: str) -> str:
    """--halting's value; `sweep`, once a mode, is named as the switch it is now (--sweep)."""
    if text == SWEEP:
        raise argparse.ArgumentTypeError(SWEEP_NOT_A_MODE)
    return text


# the CLI's own actions a `setting(action=...)` names (a config module does not import argparse code)
ACTIONS: dict[str, dict[str, Any]] = {
    "halting": {"type": halting_mode, "choices": HALTING_MODES},
    "key_value": {"action": KeyValues, "type": key_value},
    "weights": {"action": Weights, "nargs": "+"},
}


def add_flags(g: argparse._ArgumentGroup, schema: type[BaseModel], *names: str) -> None:
    """The flag of every field of `schema` declared with `setting` (or only of `names`), in the
    order the model declares them (its own fields first, then each base's); the logging fields
    are the common options' (mode_parser)."""
    fields = schema.model_fields
    common = () if schema is LogSettings else LogSettings.model_fields
    chosen = list(names) if names else [n for n in _declared_order(schema) if n not in common]
    exclusive: dict[str, Any] = {}
    for name in chosen:
        cli = _flag_facts(fields[name])
        if cli is None:
            if names:
                raise TypeError(f"{schema.__name__}.{name} is not declared with setting(): it has no flag")
            continue
        group = g
        if "exclusive" in cli:
            if cli["exclusive"] not in exclusive:
                exclusive[cli["exclusive"]] = g.add_mutually_exclusive_group()
            group = exclusive[cli["exclusive"]]
        spellings = [cli.get("flag") or "--" + name.replace("_", "-"), *cli.get("aliases", [])]
        group.add_argument(
            *spellings, dest=name, help=fields[name].description, **_argparse_options(name, fields[name], cli)
        )


def _flag_facts(field: FieldInfo) -> dict[str, Any] | None:
    extra = field.json_schema_extra
    return extra.get("cli") if isinstance(extra, dict) else None  # type: ignore[return-value]


def _declared_order(schema: type[BaseModel]) -> list[str]:
    """The fields of `schema`, its own first, then each base's (a field declared again, like
    EvalConfig's dtype, stays where its base has it)."""
    order: list[str] = []
    for cls in schema.__mro__:
        for name in cls.__dict__.get("__annotations__", {}):
            if name in schema.model_fields:
                if name in order:
                    order.remove(name)
                order.append(name)
    return order


def _argparse_options(name: str, field: FieldInfo, cli: dict[str, Any]) -> dict[str, Any]:
    """argparse's keywords for a field: from its `setting` facts, else from its annotation."""
    options: dict[str, Any] = {k: cli[k] for k in ("metavar", "nargs", "const", "choices") if k in cli}
    action = cli.get("action")
    if action in ACTIONS:
        return {**ACTIONS[action], **options}
    if action is not None:
        return {"action": action, **options}
    kind = _unwrap_optional(field.annotation)
    if kind is bool:
        return {"action": "store_false" if field.default is True else "store_true", **options}
    if "choices" in options or "nargs" in options and kind is None:
        return options
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return {"choices": typing.get_args(kind), **options}
    if origin is list:  # list[int] / list[float]: each value converted (and refused) by argparse
        item = typing.get_args(kind)
        converted = {"type": item[0]} if item and item[0] in (int, float) else {}
        return {"nargs": "+", **converted, **options}
    if kind in (int, float):
        return {"type": kind, **options}
    if kind is str:
        return options
    raise TypeError(f"setting {name}: no flag type for {field.annotation}; give setting(action=... or choices=...)")


def _unwrap_optional(annotation: Any) -> Any:
    """X for `X | None` (or Optional[X]); None for a union of several types (its flag needs
    explicit facts)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return annotation


def model_config(path: str | None) -> dict[str, Any] | None:
    """The architecture fields of a --model-config YAML (a bare block or an all_config.yaml)."""
    if not path:
        return None
    from hrm_eval.models.config import read_arch_fields  # why: models import torch; not every command line needs it

    return read_arch_fields(path)


def passed_on(config: BaseModel, callee: Callable[..., Any]) -> dict[str, Any]:
    """The settings of `config` that `callee` takes under the same names, but those `run_on_ranks`
    gives it (output_dir, device, dist): what a mode passes on is read from its config model."""
    takes = set(inspect.signature(callee).parameters) - {"output_dir", "device", "dist"}
    return config.model_dump(include=takes & set(type(config).model_fields))


def replaced_note(existed: bool) -> str:
    return " (replaced the earlier results in this --output)" if existed else ""


def check_wandb(config: BaseModel) -> None:
    """--wandb without wandb installed: one line now, not after the evaluation."""
    if getattr(config, "wandb", False):
        wandb_module(required=True)


def track(config: BaseModel, mode: str, results: dict[str, Any], out: Path) -> None:
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
) -> tuple[dict, bool] | None:
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

    def rank_work() -> tuple[dict, bool]:
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
