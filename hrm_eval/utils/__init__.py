"""Checkpoints, configs, devices, atomic I/O and the user-facing error type."""

from hrm_eval.utils.checkpoint import LoadedCheckpoint, load_checkpoint
from hrm_eval.utils.config import EvalConfig, load_config
from hrm_eval.utils.errors import HRMEvalError

__all__ = ["EvalConfig", "HRMEvalError", "LoadedCheckpoint", "load_checkpoint", "load_config"]
