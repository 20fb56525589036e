"""The interface every puzzle task implements."""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np


class PuzzleTask:
    """One puzzle family. Sequences are token arrays as stored in the dataset ([seq_len] ints);
    labels may hold -100 (ignored) where the dataset marks positions as not scored."""

    name: str = "task"

    def matches(self, vocab_size: int, seq_len: int, inputs_sample: Optional[np.ndarray] = None) -> bool:
        """Whether a dataset with this vocabulary / sequence length (and these inputs) is this task."""
        raise NotImplementedError

    def verify(self, inputs: np.ndarray, prediction: np.ndarray, label: np.ndarray) -> bool:
        """True when `prediction` is a valid answer to the puzzle `inputs` by the task's rules."""
        raise NotImplementedError

    def build(self, source: str, output: str, *, num_aug: Optional[int] = None,
              subsample_size: Optional[int] = None, min_difficulty: Optional[int] = None,
              seed: int = 0) -> dict:
        """Build a public-format dataset directory at `output` from `source`; returns a summary
        (examples per split, ...). Atomic: on error nothing is left at `output`."""
        raise NotImplementedError

    def read_csv_puzzles(self, path: str) -> Tuple[np.ndarray, np.ndarray, List[str]]:
        """A raw public-layout CSV converted in memory: (inputs [N, L], labels [N, L], names);
        names are `<file stem>:<line>` so a result points back at its row."""
        from pathlib import Path

        from hrm_eval.data.csv_source import read_puzzle_csv

        raw = read_puzzle_csv(str(path), self.check_row)
        inputs = np.stack([self.encode(q) for q in raw.questions]).astype(np.int32)
        labels = np.stack([self.encode(a) for a in raw.answers]).astype(np.int32)
        return inputs, labels, [f"{Path(path).stem}:{line}" for line in raw.lines]
