"""Where an environment's episodes come from: a fixed set of puzzles (a dataset directory, a
.csv or a .jsonl file, read through `hrm_eval.data.open_dataset`) or the task's generator.

Both are drawn with the environment's own `np_random`, so `reset(seed=s)` always gives the
same puzzle. A pinned puzzle (`options={"puzzle": ...}`) is an index into the set or a puzzle
in the task's natural form (board text, a list of rows, maze text).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrm_eval.data.open import open_dataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.data.tasks.maze import GOAL, START, shortest_distances
from hrm_eval.utils.errors import HRMEvalError

IGNORE = -100  # a label position that is not scored (the datasets' convention)


@dataclass
class Puzzle:
    """One episode's puzzle: input tokens and, where known, the stored answer."""

    inputs: np.ndarray  # [L] int64 tokens
    label: np.ndarray | None  # [L] int64, IGNORE where not scored; None where no answer is known
    name: str


class PuzzleSource:
    """Puzzles of one task, drawn with a caller's generator.

    `data`: a dataset directory (its `split`), a .csv or a .jsonl file; None: the task's
    generator. `difficulty=(lo, hi)` keeps puzzles whose difficulty lies in [lo, hi]: the
    task's measure (Sudoku: blanks; maze: shortest path length) for a set, the generator's
    range (Sudoku: blanks) or a redraw (maze) for generated ones. `size`: the generated board
    side (default: the task's)."""

    def __init__(
        self,
        task: PuzzleTask,
        data: str | Path | None = None,
        *,
        split: str = "test",
        difficulty: tuple[int, int] | None = None,
        size: int | None = None,
    ):
        self.task = task
        self.difficulty = _check_range(difficulty)
        self.size = size
        self.inputs: np.ndarray | None = None  # [N, L] a fixed set's puzzles
        self.labels: np.ndarray | None = None  # [N, L]
        self.names: list = []
        if data is not None:
            self.seq_len = self._read(data, split)
        else:
            self.seq_len = len(next(self._stream(random.Random(0)))[0])

    # ---- a fixed set -----------------------------------------------------------------------
    def _read(self, data: str | Path, split: str) -> int:
        dataset = open_dataset(data, split=split, task=self.task.name, vocab_size=self.task.vocab_size)
        meta = dataset.metadata
        sample = np.asarray(next(iter(dataset.sets.values()))["inputs"][:64])
        self.task.check_layout(meta.vocab_size, meta.seq_len, sample, where=f"the data {data}")
        inputs, labels = [], []
        for batch in dataset.iter_batches(4096):
            inputs.append(batch.inputs.numpy().astype(np.int64))
            labels.append(batch.labels.numpy().astype(np.int64))
            self.names += [dataset.example_name(batch.set_name, int(i)) for i in batch.example_index]
        x, y = np.concatenate(inputs), np.concatenate(labels)
        if self.difficulty is not None:
            level = self._difficulty(x)
            keep = (level >= self.difficulty[0]) & (level <= self.difficulty[1])
            if not keep.any():
                raise HRMEvalError(f"{data}: no puzzle has a difficulty in {list(self.difficulty)}")
            x, y = x[keep], y[keep]
            self.names = [n for n, k in zip(self.names, keep) if k]
        self.inputs, self.labels = x, y
        return int(x.shape[1])

    def _difficulty(self, inputs: np.ndarray) -> np.ndarray:
        if self.task.difficulty_name is not None:
            return self.task.difficulty(inputs)
        if self.task.name == "maze":
            return np.array([shortest_distances(x, int(np.flatnonzero(x == START)[0]))[x == GOAL][0] for x in inputs])
        raise HRMEvalError(f"task {self.task.name} has no difficulty measure to filter by")

    def __len__(self) -> int:
        return 0 if self.inputs is None else len(self.inputs)

    # ---- drawing ---------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator) -> Puzzle:
        """One puzzle: a uniform draw from the set, or a generated one seeded from `rng`."""
        if self.inputs is not None:
            return self.pick(int(rng.integers(len(self.inputs))))
        seed = int(rng.integers(2**63 - 1))
        question, answer, _ = next(self._stream(random.Random(seed)))
        return Puzzle(
            self.task.encode(question).astype(np.int64), self.task.encode(answer).astype(np.int64), f"seed:{seed}"
        )

    def pick(self, index: int) -> Puzzle:
        if self.inputs is None or self.labels is None:
            raise HRMEvalError("options puzzle=<index> needs a set of puzzles (data=...), not the generator")
        if not 0 <= index < len(self.inputs):
            raise HRMEvalError(f"puzzle index {index} is outside the set's 0..{len(self.inputs) - 1}")
        return Puzzle(self.inputs[index].copy(), self.labels[index].copy(), self.names[index])

    def pinned(self, puzzle: Any) -> Puzzle:
        """`options={"puzzle": ...}`: an index into the set, or a puzzle in natural form."""
        if isinstance(puzzle, (int, np.integer)) and not isinstance(puzzle, bool):
            return self.pick(int(puzzle))
        tokens = self.task.encode_puzzle(puzzle).astype(np.int64)
        if len(tokens) != self.seq_len:
            raise HRMEvalError(f"the pinned puzzle has {len(tokens)} cells, this environment's boards {self.seq_len}")
        return Puzzle(tokens, None, "pinned")

    def _stream(self, rng: random.Random):
        options: dict = {}
        lo_hi = self.difficulty
        if lo_hi is not None and self.task.difficulty_name == "blanks":
            options = {"min_blanks": lo_hi[0], "max_blanks": lo_hi[1]}
        stream = self.task.puzzle_stream(rng, size=self.size, **options)
        if lo_hi is None or options:
            return stream
        return _redraw(stream, lo_hi)


REDRAWS = 1000  # generated puzzles tried for one in the difficulty range before giving up


def _redraw(stream, lo_hi: tuple[int, int]):
    """No generator option for the range (maze): draw until the rating (path length) fits."""
    while True:
        for _ in range(REDRAWS):
            row = next(stream)
            if lo_hi[0] <= row[2] <= lo_hi[1]:
                break
        else:
            raise HRMEvalError(f"no generated puzzle in {REDRAWS} had a difficulty in {list(lo_hi)}")
        yield row


def _check_range(difficulty: tuple[int, int] | None) -> tuple[int, int] | None:
    if difficulty is None:
        return None
    try:
        lo, hi = (int(v) for v in difficulty)
    except (TypeError, ValueError):
        raise HRMEvalError(f"difficulty must be a (low, high) pair of ints, got {difficulty!r}") from None
    if not 0 <= lo <= hi:
        raise HRMEvalError(f"difficulty needs 0 <= low <= high, got {lo} and {hi}")
    return lo, hi
