"""Puzzle data: the public dataset format (`format`, `dataset`), raw sources (CSV, JSONL),
tasks (`tasks`), builders and generators.

    from hrm_eval.data import open_dataset, PuzzleDataset, resolve_task
"""

from __future__ import annotations

import importlib

# Imported on first use: `hrm_eval.data.<module>` imports stay as light as they were.
_LAZY = {
    "open_dataset": "hrm_eval.data.open",
    "resolve_task": "hrm_eval.data.open",
    "PuzzleDataset": "hrm_eval.data.dataset",
    "DatasetMetadata": "hrm_eval.data.format",
    "get_task": "hrm_eval.data.tasks",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hrm_eval.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
