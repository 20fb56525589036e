"""hrm_eval: evaluate, compare, ensemble and deploy HRM / TRM checkpoints on any machine.

    from hrm_eval import HRMModel, HRMConfig, Evaluator
    from hrm_eval.utils import load_checkpoint, load_config
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Imported on first use, so that `hrm-eval --help` and other light commands do not pay for torch.
_LAZY = {
    "Evaluator": "hrm_eval.evaluation.evaluator",
    "HRMConfig": "hrm_eval.models.config",
    "HRMModel": "hrm_eval.models.hrm",
    "TRMModel": "hrm_eval.models.trm",
    "build_model": "hrm_eval.models",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hrm_eval' has no attribute {name!r}")
