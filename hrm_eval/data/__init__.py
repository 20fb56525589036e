"""Puzzle data: the public dataset format (`format`, `dataset`), raw sources (CSV, JSONL),
tasks (`tasks`), builders and generators.

    from hrm_eval.data import open_dataset, PuzzleDataset, resolve_task
"""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

# Imported on first use: `hrm_eval.data.<module>` imports stay as light as they were.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hrm_eval.data.open": ["open_dataset", "resolve_task"],
        "hrm_eval.data.dataset": ["PuzzleDataset"],
        "hrm_eval.data.format": ["DatasetMetadata"],
        "hrm_eval.data.tasks": ["get_task"],
    },
)
