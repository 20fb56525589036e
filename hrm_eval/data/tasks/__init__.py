"""Registry of puzzle task families.

A task owns everything that is specific to one kind of puzzle: its token layout, its raw
source format and dataset builder, its generator, and its verifier (is a predicted answer a
valid solution by the rules, even where it differs from the stored label?). Evaluation looks
the task up by name, or detects it from a dataset's metadata.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from hrm_eval.data.tasks.base import PuzzleTask

TASKS: Dict[str, PuzzleTask] = {}


def register_task(task: PuzzleTask) -> PuzzleTask:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> PuzzleTask:
    from hrm_eval.utils.errors import HRMEvalError

    _load_builtin_tasks()
    if name not in TASKS:
        raise HRMEvalError(f"unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def detect_task(vocab_size: int, seq_len: int, inputs_sample: Optional[np.ndarray] = None) -> Optional[PuzzleTask]:
    """The registered task whose layout matches, or None when none (or several) do."""
    _load_builtin_tasks()
    found = [t for t in TASKS.values() if t.matches(vocab_size, seq_len, inputs_sample)]
    return found[0] if len(found) == 1 else None


def _load_builtin_tasks() -> None:
    # Imported lazily so that `hrm_eval.data` stays cheap to import; each module registers itself.
    import importlib

    for module in ("sudoku", "maze", "arc"):
        importlib.import_module(f"hrm_eval.data.tasks.{module}")
