"""Where the bundled model and configs are: the one lookup library code uses for them.

The data home is a folder holding `configs/` and `checkpoints/` (the bundled models,
`BUNDLED_MODELS`: `sudoku6-hard-hrm`, the default, `sudoku6-hrm`, and `sudoku9-hrm` once it is
shipped). It is, first found:

1. `$HRM_EVAL_HOME`, when set (a folder of your own, laid out the same way);
2. the source checkout this package is imported from (a clone, or `pip install -e .`);
3. `<prefix>/share/hrm-eval`, where `pip install .` puts them (pyproject's data-files).

Relative paths written in config files are tried from the working directory first, then from
the data home (the bundled configs name `checkpoints/sudoku6-hard-hrm`).

Each bundled model answers one task; `bundled_model_for` picks the one for a puzzle (by the
task that reads it, i.e. by its size), which is how solve and serve route puzzles when no
checkpoint is given.

A checkpoint may also be given by its name alone (`step_3750`, or a run directory's name):
`find_checkpoint` looks in the configured checkpoint directory, then in `checkpoints/*/` of
the working directory and of the data home; `checkpoint_by_name` is where every caller asks.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrm_eval.data.tasks import get_task
from hrm_eval.utils.errors import HRMEvalError

HOME_ENV = "HRM_EVAL_HOME"
# The default model (evaluate, serve, solve, ensemble and compare without a checkpoint), chosen by
# measurement: on the first model's own test set (6-14 blanks) it solves 1.000 against 0.991 at
# 2.08 against 2.57 adaptive steps, and on 19-27 blanks 0.863 against 0.112 (its model card).


@dataclass(frozen=True)
class BundledModel:
    """A shipped model: its run folder under checkpoints/ and the one task (layout) it answers."""

    name: str  # its folder under the data home's checkpoints/
    task: str  # its task in hrm_eval.data.tasks: what it reads (a 6x6 model cannot read 81 cells)
    label: str  # the task in words, for messages: "9x9 Sudoku"

    @property
    def path(self) -> Path:
        return bundled_run().parent / self.name

    @property
    def present(self) -> bool:
        """Its folder holds a checkpoint: a model may be listed before it is shipped."""
        p = self.path
        return p.is_dir() and any(_CHECKPOINT_FILE.match(f.name) for f in p.iterdir())


# Every shipped run (never a training output), the default first. The first listed of a task is
# that task's model: what solve and serve pick for its puzzles when no checkpoint is given.
BUNDLED_MODELS = (
    BundledModel("sudoku6-hard-hrm", "sudoku6", "6x6 Sudoku"),
    BundledModel("sudoku6-hrm", "sudoku6", "6x6 Sudoku"),
    # issue 28: in training; listed now so that 81-cell puzzles go to it once its folder is there
    BundledModel("sudoku9-hrm", "sudoku", "9x9 Sudoku"),
)
BUNDLED_RUN_NAMES = tuple(m.name for m in BUNDLED_MODELS)
BUNDLED_RUN_NAME = BUNDLED_RUN_NAMES[0]
_MARKER = Path("configs") / "eval_config.yaml"  # what makes a folder a data home
CHECKPOINTS_DIR = "checkpoints"
_CHECKPOINT_FILE = re.compile(r"^(step_\d+|checkpoint)$")


def _candidates() -> list[Path]:
    found = [Path(__file__).resolve().parent.parent]  # the checkout: hrm_eval/ sits at its root
    for prefix in dict.fromkeys([sysconfig.get_path("data"), sys.prefix]):
        found.append(Path(prefix) / "share" / "hrm-eval")
    return found


def data_home() -> Path:
    """The first candidate that holds configs/eval_config.yaml (see the module docstring); a set
    $HRM_EVAL_HOME is the user's choice and must hold it."""
    env = os.environ.get(HOME_ENV)
    if env:
        if not (Path(env).expanduser() / _MARKER).is_file():
            raise HRMEvalError(f"{HOME_ENV}={env}: no {_MARKER} there")
        return Path(env).expanduser()
    candidates = _candidates()
    for home in candidates:
        if (home / _MARKER).is_file():
            return home
    raise HRMEvalError(
        "bundled configs not found (looked in "
        + ", ".join(map(str, candidates))
        + f"); set {HOME_ENV} to a folder with configs/ and checkpoints/"
    )


def config_file(name: str) -> Path:
    """A bundled config, e.g. config_file("eval_config.yaml")."""
    return data_home() / "configs" / name


def bundled_run() -> Path:
    """The bundled training run directory (its step_<N> files, all_config.yaml and data/).
    Never raises: when no data home is found it names where the installed copy would be, and
    the caller's "not found" error shows that path."""
    home = _home_or_none()
    fallback = Path(os.environ[HOME_ENV]) if os.environ.get(HOME_ENV) else _candidates()[-1]
    return (home if home is not None else fallback) / "checkpoints" / BUNDLED_RUN_NAME


def bundled_runs() -> list[Path]:
    """Every shipped run directory that is there (see `bundled_run`), the default first."""
    return [m.path for m in BUNDLED_MODELS if m.path.is_dir()]


def task_models() -> list[BundledModel]:
    """Each task's bundled model (the first listed of its task), present or not, in listed order."""
    return list({m.task: m for m in reversed(BUNDLED_MODELS)}.values())[::-1]


def bundled_model_for(puzzle: Any = None, task: str | None = None) -> BundledModel:
    """The bundled model for `puzzle` (a puzzle in its natural form): the model of the one task
    that reads it, which for Sudoku text is its size (36 cells: 6x6, 81: 9x9); `task`, when
    given, decides instead. One-line error when no bundled model is there for it: what is
    missing and what to do."""
    models = task_models()
    if task is not None:
        chosen = [m for m in models if m.task == task]
        if not chosen:
            known = ", ".join(f"{m.task} ({m.label})" for m in models)
            raise HRMEvalError(f"no bundled model for task {task} (bundled: {known}): pass --checkpoint")
    else:
        chosen, reasons = [], []
        for m in models:
            reader = get_task(m.task)
            try:
                tokens = reader.encode_puzzle(puzzle)  # [seq_len]: the task reads the puzzle
            except HRMEvalError as e:
                reasons.append(str(e))
                continue
            if reader.matches(reader.vocab_size, len(tokens), tokens[None]):
                chosen.append(m)
        if not chosen:
            sizes = ", ".join(f"{m.label}: {_cells(m)} cells" for m in models)
            raise HRMEvalError(
                f"the puzzle fits none of the bundled models ({sizes}): {'; '.join(reasons)}; "
                "for another kind of puzzle pass --checkpoint"
            )
        if len(chosen) > 1:
            names = ", ".join(m.task for m in chosen)
            raise HRMEvalError(f"the puzzle reads as several tasks ({names}); give the task (--task NAME)")
    model = chosen[0]
    if not model.present:
        raise HRMEvalError(
            f"no bundled model for {model.label} ({_cells(model)} cells) yet ({model.path} is not there): "
            f"pass --checkpoint <a {model.label} checkpoint>"
        )
    return model


def _cells(model: BundledModel) -> str:
    seq_len = get_task(model.task).seq_len
    return str(seq_len) if seq_len is not None else "any number of"


def find(path: str | Path) -> Path:
    """A path from a config file: as given when it exists (or is absolute), else under the data
    home when it exists there, else as given (the caller reports it missing)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    home = _home_or_none()
    if home is not None and (home / p).exists():
        return home / p
    return p


def _home_or_none() -> Path | None:
    try:
        return data_home()
    except HRMEvalError:
        return None


# ---- checkpoints by name -----------------------------------------------------------------------
def is_checkpoint_name(value: str | Path) -> bool:
    """A bare name (no folder part) that is not a path here: `step_3750`, `sudoku6-hrm`."""
    text = str(value)
    return bool(text) and "/" not in text and os.sep not in text and not Path(text).expanduser().exists()


def checkpoint_dirs(configured: Sequence[str | Path] = ()) -> list[Path]:
    """Where names are looked up, in order: the configured directories, then `checkpoints/` and
    each `checkpoints/*/` of the working directory and of the data home."""
    dirs = [Path(d) for d in configured if Path(d).is_dir()]
    for base in _checkpoint_roots():
        dirs.append(base)
        dirs.extend(sorted(d for d in base.iterdir() if d.is_dir()))
    return dirs


def _checkpoint_roots() -> list[Path]:
    """checkpoints/ of the working directory (shown relative) and of the data home, when they exist."""
    home = _home_or_none()
    roots = [Path(CHECKPOINTS_DIR)]
    if home is not None and home.resolve() != Path.cwd().resolve():
        roots.append(home / CHECKPOINTS_DIR)
    return [r for r in roots if r.is_dir()]


def find_checkpoint(name: str | Path, configured: Sequence[str | Path] = ()) -> Path:
    """The checkpoint file (or run directory) called `name`: from the first configured directory
    that holds it, else the one match under checkpoints/*/; one-line error naming the candidates
    when there are several or none."""
    name = str(name)
    for d in configured:
        if (Path(d) / name).exists():
            return Path(d) / name
    dirs = checkpoint_dirs(configured)
    hits = list({(d / name).resolve(): d / name for d in dirs if (d / name).exists()}.values())
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise HRMEvalError(
            f"checkpoint name {name} is ambiguous: {', '.join(map(str, hits))}; give the path of the one you mean"
        )
    known = sorted({_label(f) for d in dirs for f in d.iterdir() if f.is_file() and _CHECKPOINT_FILE.match(f.name)})
    shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    where = [*map(str, configured), *(f"{r}/*/" for r in _checkpoint_roots())]
    raise HRMEvalError(
        f"checkpoint not found: {name} (looked in {', '.join(where) or 'no checkpoints/ folder'}; "
        + (f"checkpoints there: {shown})" if known else "no checkpoints there)")
    )


def checkpoint_by_name(value: str | Path, configured: Sequence[str | Path] = ()) -> str | Path:
    """The one lookup of a checkpoint given by name, for every caller (the command line, the
    loader): `find_checkpoint(value, configured)` when `value` is a bare name
    (`is_checkpoint_name`), else `value` itself, unchanged."""
    return find_checkpoint(value, configured) if is_checkpoint_name(value) else value


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
