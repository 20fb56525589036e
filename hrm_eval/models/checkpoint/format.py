"""The checkpoint file format: file names and key prefixes, written once for both sides.

A run directory (what the public training scripts, and `--mode train`, write):

    step_<N>          the model's state dict; its keys carry `SAVE_PREFIX` (the public trainer
                      saves its compiled `torch.compile` wrapper: `_orig_mod.model.inner.`)
    step_<N>.optim    hrm-eval's resume state of that step (training only)
    all_config.yaml   the run's config, its architecture under `arch`
    checkpoint        a published single file, read as a step is

A model folder (what `--mode export` writes): `model.safetensors` + `config.json`; a bare
`.safetensors` file keeps its architecture in its header metadata.

The reader (`hrm_eval.models.checkpoint.read`) accepts any of `KEY_PREFIXES`; the trainer's
writer (`hrm_eval.training.checkpoint`) writes `SAVE_PREFIX`. Names only: this module imports
nothing heavy itself (importing it still runs `hrm_eval.models`, which imports torch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

V = TypeVar("V")

# What the public (compiled) training script writes; the reader also takes the other spellings.
SAVE_PREFIX = "_orig_mod.model.inner."
KEY_PREFIXES = (SAVE_PREFIX, "model.inner.", "_orig_mod.inner.", "inner.", "_orig_mod.")
STEP_RE = re.compile(r"^step_(\d+)$")
OPTIM_SUFFIX = ".optim"
OPTIM_RE = re.compile(r"^step_(\d+)\.optim$")
ALL_CONFIG_FILE = "all_config.yaml"
# The model folder `--mode export` writes (the Hugging Face layout: weights + config.json).
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SAFETENSORS_SUFFIX = ".safetensors"
CONFIG_METADATA_KEY = "hrm_eval_config"  # a bare .safetensors file's architecture, in its header metadata


def step_name(step: int) -> str:
    """The file name of training step `step`: `step_<N>`."""
    return f"step_{step}"


def step_number(name: str) -> int | None:
    """N of a `step_<N>` file name; None for any other name."""
    m = STEP_RE.match(name)
    return int(m.group(1)) if m else None


def list_steps(directory: str | Path) -> list[Path]:
    """The `step_<N>` files of a run directory, numerically by step (not by name: 10 after 9)."""
    d = Path(directory)
    steps = sorted((n, c) for c in d.iterdir() if c.is_file() and (n := step_number(c.name)) is not None)
    return [c for _, c in steps]


def is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == SAFETENSORS_SUFFIX


def strip_prefix(state_dict: Mapping[str, V]) -> tuple[dict[str, V], str]:
    """Bare key names and the prefix that was removed ('' when none)."""
    for prefix in KEY_PREFIXES:
        if all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items()}, prefix
    return dict(state_dict), ""
