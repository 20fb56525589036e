"""Configs, devices, atomic I/O and the user-facing error type.

    from hrm_eval.utils import load_config, HRMEvalError

`load_checkpoint` / `LoadedCheckpoint` live in `hrm_eval.models.loading` (also exported by
`hrm_eval`); the names are still reachable here for code written against earlier releases.
"""

from __future__ import annotations

import importlib

from hrm_eval.utils.errors import HRMEvalError

# Imported on first use: `hrm_eval.utils.errors` must stay cheap (the CLI imports it before torch).
_LAZY = {
    "LoadedCheckpoint": "hrm_eval.models.loading",
    "load_checkpoint": "hrm_eval.models.loading",
    "EvalConfig": "hrm_eval.utils.config",
    "load_config": "hrm_eval.utils.config",
}
__all__ = ["HRMEvalError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hrm_eval.utils' has no attribute {name!r}")
