"""Where the bundled model and configs are: the one lookup library code uses for them.

The data home is a folder holding `configs/` and `checkpoints/sudoku6-hrm/`. It is, first found:

1. `$HRM_EVAL_HOME`, when set (a folder of your own, laid out the same way);
2. the source checkout this package is imported from (a clone, or `pip install -e .`);
3. `<prefix>/share/hrm-eval`, where `pip install .` puts them (pyproject's data-files).

Relative paths written in config files are tried from the working directory first, then from
the data home (the bundled configs name `checkpoints/sudoku6-hrm`).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import List, Optional

from hrm_eval.utils.errors import HRMEvalError

HOME_ENV = "HRM_EVAL_HOME"
BUNDLED_RUN_NAME = "sudoku6-hrm"
_MARKER = Path("configs") / "eval_config.yaml"  # what makes a folder a data home


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
