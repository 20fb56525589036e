"""--mode train: a training YAML (the public all_config.yaml shape) plus the common settings as flags."""

from __future__ import annotations

import argparse
from typing import Any

from hrm_eval.cli.base import Invocation, KeyValues, Mode, add_flags, key_value
from hrm_eval.resources import find
from hrm_eval.training.config import TrainConfig
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.validation import read_yaml


def train_arguments(g: argparse._ArgumentGroup) -> None:
    # The flags of TrainConfig fields come from the fields; the others steer the run, not its config:
    # --config (the YAML itself), --set (any field, dotted into blocks), what to do with an existing
    # run directory (--resume | --overwrite) and --no-progress are arguments of `train()`.
    g.add_argument("--config", required=True, help="training YAML, e.g. configs/train_sudoku6.yaml")
    add_flags(g, TrainConfig, "data_path", "checkpoint_path", "max_steps", "device")
    g.add_argument(
        "--set",
        dest="overrides",
        action=KeyValues,
        type=key_value,
        metavar="KEY=VALUE",
        help="set any config field (repeatable; dotted keys reach into blocks: arch.hidden_size=64)",
    )
    existing = g.add_mutually_exclusive_group()  # what to do with a run directory that holds steps
    existing.add_argument(
        "--resume", action="store_true", help="continue exactly from the newest complete step_<N> in the output"
    )
    existing.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the step_<N> files already in the output, then train from scratch",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["arch"]["hidden_size"] = value for key "arch.hidden_size"."""
    *parents, last = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise HRMEvalError(f"--set {key}: {'.'.join(parents[: i + 1])} is not a block of settings")
        node = child
    node[last] = value


def run_train(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.training.trainer import train

    flags = dict(inv.flags)
    assert inv.config_file is not None  # --config is required by the parser
    data = read_yaml(inv.config_file)
    if isinstance(data.get("data_path"), str):  # the bundled configs name the bundled data
        data["data_path"] = str(find(data["data_path"]))
    for key, value in flags.get("overrides", {}).items():
        set_dotted(data, key, value)
    config = inv.validate(TrainConfig, data, inv.config_file)
    summary = train(
        config,
        resume=flags.get("resume", False),
        overwrite=flags.get("overwrite", False),
        progress=flags.get("progress", True),
    )
    if summary.final_checkpoint is not None:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.last_metrics.items())
        print(f"trained {summary.steps} steps in {summary.seconds / 60:.1f} min: {metrics}")
        print(f"checkpoint: {summary.final_checkpoint}")
    return 0


TRAIN = Mode(
    "train", "Train an HRM / TRM model (single process, or several with torchrun).", run_train, flags=train_arguments
)
