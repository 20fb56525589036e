"""Configs, devices, atomic I/O and the user-facing error type.

from hrm_eval.utils import load_config, HRMEvalError
"""

from __future__ import annotations

import importlib

from hrm_eval.utils.errors import HRMEvalError

# Imported on first use: `hrm_eval.utils.errors` must stay cheap (the CLI imports it before torch).
_LAZY = {
    "EvalConfig": "hrm_eval.utils.config",
    "load_config": "hrm_eval.utils.config",
}
__all__ = ["HRMEvalError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hrm_eval.utils' has no attribute {name!r}")
