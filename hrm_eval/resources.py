"""Where the bundled model and configs are: the one lookup library code uses for them.

The data home is a folder holding `configs/` and `checkpoints/` (the bundled models
`sudoku6-hard-hrm`, the default, and `sudoku6-hrm`). It is, first found:

1. `$HRM_EVAL_HOME`, when set (a folder of your own, laid out the same way);
2. the source checkout this package is imported from (a clone, or `pip install -e .`);
3. `<prefix>/share/hrm-eval`, where `pip install .` puts them (pyproject's data-files).

Relative paths written in config files are tried from the working directory first, then from
the data home (the bundled configs name `checkpoints/sudoku6-hard-hrm`).

A checkpoint may also be given by its name alone (`step_3750`, or a run directory's name):
`find_checkpoint` looks in the configured checkpoint directory, then in `checkpoints/*/` of
the working directory and of the data home.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import List, Optional, Sequence

from hrm_eval.utils.errors import HRMEvalError

HOME_ENV = "HRM_EVAL_HOME"
# The default model (evaluate, serve, solve, ensemble and compare without a checkpoint), chosen by
# measurement: on the first model's own test set (6-14 blanks) it solves 1.000 against 0.991 at
# 2.08 against 2.57 adaptive steps, and on 19-27 blanks 0.863 against 0.112 (its model card).
BUNDLED_RUN_NAMES = ("sudoku6-hard-hrm", "sudoku6-hrm")  # every shipped run (never a training output), default first
BUNDLED_RUN_NAME = BUNDLED_RUN_NAMES[0]
_MARKER = Path("configs") / "eval_config.yaml"  # what makes a folder a data home
CHECKPOINTS_DIR = "checkpoints"
_CHECKPOINT_FILE = re.compile(r"^(step_\d+|checkpoint)$")


def _candidates() -> List[Path]:
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


def bundled_runs() -> List[Path]:
    """Every shipped run directory (see `bundled_run`), the default first."""
    return [bundled_run().parent / name for name in BUNDLED_RUN_NAMES]


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


def _home_or_none() -> Optional[Path]:
    try:
        return data_home()
    except HRMEvalError:
        return None


# ---- checkpoints by name -----------------------------------------------------------------------
def is_checkpoint_name(value: str | Path) -> bool:
    """A bare name (no folder part) that is not a path here: `step_3750`, `sudoku6-hrm`."""
    text = str(value)
    return bool(text) and "/" not in text and os.sep not in text and not Path(text).expanduser().exists()


def checkpoint_dirs(configured: Sequence[str | Path] = ()) -> List[Path]:
    """Where names are looked up, in order: the configured directories, then `checkpoints/` and
    each `checkpoints/*/` of the working directory and of the data home."""
    dirs = [Path(d) for d in configured if Path(d).is_dir()]
    for base in _checkpoint_roots():
        dirs.append(base)
        dirs.extend(sorted(d for d in base.iterdir() if d.is_dir()))
    return dirs


def _checkpoint_roots() -> List[Path]:
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


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
