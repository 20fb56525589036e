"""Registry of puzzle task families.

A task owns everything that is specific to one kind of puzzle (see `base.PuzzleTask`): its
token layout, natural form <-> tokens, raw source format and dataset builder, generator,
verifier (is a predicted answer a valid solution by the rules, even where it differs from the
stored label?), test-time views and its own scoring. Evaluation looks the task up by name, or
detects it from a dataset's metadata.
"""

from __future__ import annotations

import numpy as np

from hrm_eval.data.tasks.base import PuzzleTask, TaskScorer
from hrm_eval.utils.errors import HRMEvalError

__all__ = [
    "TASKS",
    "PuzzleTask",
    "TaskScorer",
    "register_task",
    "get_task",
    "all_tasks",
    "detect_task",
    "generator_names",
]

TASKS: dict[str, PuzzleTask] = {}


def register_task(task: PuzzleTask) -> PuzzleTask:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> PuzzleTask:
    _load_builtin_tasks()
    if name not in TASKS:
        raise HRMEvalError(f"unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def all_tasks() -> list[PuzzleTask]:
    """Every registered task, the built-in ones included."""
    _load_builtin_tasks()
    return list(TASKS.values())


def detect_task(vocab_size: int, seq_len: int, inputs_sample: np.ndarray | None = None) -> PuzzleTask | None:
    """The registered task whose layout matches, or None when none (or several) do."""
    _load_builtin_tasks()
    found = [t for t in TASKS.values() if t.matches(vocab_size, seq_len, inputs_sample)]
    return found[0] if len(found) == 1 else None


def generator_names() -> list[str]:
    """Names of the registered tasks that generate puzzles (`PuzzleTask.puzzle_stream`)."""
    _load_builtin_tasks()
    return sorted(name for name, task in TASKS.items() if type(task).puzzle_stream is not PuzzleTask.puzzle_stream)


def _load_builtin_tasks() -> None:
    # Imported lazily so that `hrm_eval.data` stays cheap to import; each module registers itself.
    import importlib

    for module in ("sudoku", "maze", "arc"):
        importlib.import_module(f"hrm_eval.data.tasks.{module}")
