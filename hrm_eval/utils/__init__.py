"""Settings files and config bases, devices, paths and locks, atomic I/O and the user-facing
error type.

from hrm_eval.utils import HRMEvalError
"""

from __future__ import annotations

from hrm_eval.utils.errors import HRMEvalError

__all__ = ["HRMEvalError"]
