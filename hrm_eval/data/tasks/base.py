"""The interface every puzzle task implements.

A task owns everything specific to one puzzle family: its token layout (`vocab_size`,
`seq_len`, `matches`), the mapping between its natural form and tokens (`encode` / `decode`),
its raw-source dataset builder (`build`), its generator (`generate`, optional), its verifier,
its test-time views (`tta_views`, optional) and its own scoring (`scorer`, optional). Evaluation,
the ensemble and the coming HTTP service go through these methods and never ask for a task by
name.

The one-puzzle path (what a service or a `solve` mode calls):

    tokens = task.encode_puzzle(text_or_json)   # parse_puzzle + encode: uint8 [seq_len]
    ...model...                                 # predicted tokens [seq_len]
    answer = task.decode_answer(pred_tokens)    # the natural form again
"""

from __future__ import annotations

import abc
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrm_eval.data.csv_source import read_puzzle_csv
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

Row = tuple[str, str, int]  # a generated raw puzzle: (question, answer, rating) in the public CSV layout
ViewMaps = tuple[np.ndarray, np.ndarray]  # a test-time view: (token map [vocab], cell map [seq_len])


@dataclass(frozen=True)
class BuildOptions:
    """How `PuzzleTask.build` turns raw puzzles into a dataset (the flags of --mode build-data)."""

    num_aug: int | None = None  # augmented copies of each training puzzle (None: the task's default)
    subsample_size: int | None = None  # keep only this many training puzzles
    min_difficulty: int | None = None  # drop puzzles rated below this
    seed: int = 0  # every random draw of the build comes from it


class TaskScorer(abc.ABC):
    """A task's own scoring over a whole dataset (ARC: voting over augmentations, pass@k).

    Prediction rows are added in any number of batches, then `finish` scores them."""

    @abc.abstractmethod
    def add(self, identifiers: Any, inputs: Any, preds: Any, q_halt_logits: Any = None, *, weight: float = 1.0) -> None:
        """identifiers [n], inputs [n, L], preds [n, L] token ids (or logits [n, L, V]),
        q_halt_logits [n] (None: all 0); numpy arrays or torch tensors. Each row counts
        `weight` (an ensemble member's weight)."""

    @abc.abstractmethod
    def finish(self, output_dir: Path | None = None) -> dict:
        """The scores; with `output_dir`, also the task's score files written there (atomically)."""

    @staticmethod
    def summary(scores: dict) -> dict:
        """The part of the scores that belongs in a results.json (the rest stays in the score files)."""
        return scores


class PuzzleTask(abc.ABC):
    """One puzzle family. Sequences are token arrays as stored in the dataset ([seq_len] ints);
    labels may hold -100 (ignored) where the dataset marks positions as not scored."""

    name: str = "task"
    vocab_size: int
    # Whether `verify` judges an answer by the puzzle's rules alone (Sudoku, maze); False where it
    # can only compare with a known answer (ARC), so an unsolved puzzle's answer cannot be checked.
    checks_rules: bool = True
    # None where the task has no single length (a maze is any n x n)
    seq_len: int | None = None

    # ------------------------------------------------------------------ layout

    @abc.abstractmethod
    def matches(self, vocab_size: int, seq_len: int, inputs_sample: np.ndarray | None = None) -> bool:
        """Whether a dataset with this vocabulary / sequence length (and these inputs) is this task."""

    def describe_layout(self) -> str:
        """The task's layout in words, for error messages: `vocab_size 8, seq_len 36`."""
        return f"vocab_size {self.vocab_size}, seq_len {self.seq_len if self.seq_len is not None else 'n*n'}"

    def check_layout(
        self, vocab_size: int, seq_len: int, inputs_sample: np.ndarray | None = None, *, where: str = "the data"
    ) -> None:
        """HRMEvalError (one line, naming both layouts) when data of this layout is not this task."""
        if not self.matches(vocab_size, seq_len, inputs_sample):
            raise HRMEvalError(
                f"task {self.name} ({self.describe_layout()}) does not fit {where} "
                f"(vocab_size {vocab_size}, seq_len {seq_len}); give the task the data was built for "
                "or leave --task out to detect it"
            )

    # ------------------------------------------------------------------ natural form <-> tokens

    @abc.abstractmethod
    def encode(self, natural: Any) -> np.ndarray:
        """The task's natural form of one puzzle or answer -> uint8 tokens [seq_len]."""

    @abc.abstractmethod
    def decode(self, tokens: np.ndarray) -> Any:
        """Tokens [seq_len] -> the natural form (inverse of `encode` on valid tokens)."""

    @abc.abstractmethod
    def parse_puzzle(self, puzzle: Any) -> Any:
        """A puzzle as a user writes it (text or decoded JSON) -> the natural form `encode` takes.
        Raises HRMEvalError with one line on a wrong size or character."""

    def encode_puzzle(self, puzzle: Any) -> np.ndarray:
        """One puzzle as a user writes it -> the model's input tokens, uint8 [seq_len]."""
        return self.encode(self.parse_puzzle(puzzle))

    def decode_answer(self, pred_tokens: Any) -> Any:
        """The model's predicted tokens for one puzzle [seq_len] -> the answer in natural form."""
        return self.decode(np.asarray(pred_tokens).reshape(-1))

    def read_csv_puzzles(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A raw public-layout CSV converted in memory: (inputs [N, L], labels [N, L], names);
        names are `<file stem>:<line>` so a result points back at its row."""

        raw = read_puzzle_csv(str(path), self.check_row)
        inputs = np.stack([self.encode(q) for q in raw.questions]).astype(np.int32)
        labels = np.stack([self.encode(a) for a in raw.answers]).astype(np.int32)
        return inputs, labels, [f"{Path(path).stem}:{line}" for line in raw.lines]

    def check_row(self, question: str, answer: str) -> None:
        """Raise csv_source.RowError when a raw CSV row is not a puzzle of this task."""
        raise HRMEvalError(f"task {self.name} has no CSV source")

    # ------------------------------------------------------------------ rules

    @abc.abstractmethod
    def verify(self, inputs: np.ndarray, prediction: np.ndarray, label: np.ndarray | None = None) -> bool:
        """True when `prediction` is a valid answer to the puzzle `inputs` by the task's rules."""

    def verify_many(self, inputs: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """[n] bool: `verify` of each row of inputs / predictions [n, L] (a task may do it at once)."""
        return np.array([bool(self.verify(i, p)) for i, p in zip(inputs, predictions)], dtype=bool)

    def givens_conflict(self, inputs: np.ndarray) -> str | None:
        """Why the puzzle `inputs` [seq_len] has no answer by the rules, read from its givens alone
        (`digit 3 twice in row 1`), or None when nothing given breaks them. A model asked to
        solve such a puzzle still answers, confidently: this is checked first."""
        return None

    # ------------------------------------------------------------------ data

    def build(
        self,
        source: str,
        output: str,
        *,
        num_aug: int | None = None,
        subsample_size: int | None = None,
        min_difficulty: int | None = None,
        seed: int = 0,
    ) -> dict:
        """Build a public-format dataset directory at `output` from `source`; returns a summary
        (examples per split, ...). Atomic: on error nothing is left at `output`. The options are
        those of BuildOptions; each task says what `source` is and how it uses them."""
        return self.write_dataset(source, output, BuildOptions(num_aug, subsample_size, min_difficulty, seed))

    @abc.abstractmethod
    def write_dataset(self, source: str, output: str, options: BuildOptions) -> dict:
        """`build`'s work, with its options in one value."""

    def puzzle_stream(self, rng: random.Random, *, size: int | None = None, **options: Any) -> Iterator[Row]:
        """An endless stream of generated (question, answer, rating) rows drawn from `rng`; the
        options (`size`, `min_blanks`, `loop_fraction`, ...) are the task's. Tasks without a
        generator raise HRMEvalError."""
        # why: the registry (hrm_eval.data.tasks) imports this module
        from hrm_eval.data.tasks import generator_names

        raise HRMEvalError(f"no generator for task '{self.name}' (have: {', '.join(generator_names())})")

    def generate(self, num: int, *, seed: int = 0, size: int | None = None, **options: Any) -> list[Row]:
        """`num` generated puzzles from `random.Random(seed)`: same seed, same puzzles."""
        if num < 0:
            raise HRMEvalError(f"num must be >= 0, got {num}")
        stream = self.puzzle_stream(random.Random(seed), size=size, **options)
        return [next(stream) for _ in range(num)]

    # ------------------------------------------------------------------ evaluation hooks

    def tta_views(self, num_views: int, *, seq_len: int | None = None, seed: int = 0) -> list[ViewMaps]:
        """`num_views` distinct validity-preserving views for test-time augmentation, identity
        first, each as (token map [vocab], cell map [seq_len]) with
        view[cell] = token_map[puzzle[cell_map[cell]]]."""
        raise HRMEvalError(f"task {self.name} has no test-time views")

    def scorer(self, dataset: Any, *, rank_by_q: bool = False, seen_tasks_only: bool = False) -> TaskScorer | None:
        """The task's own scorer for `dataset` (a PuzzleDataset), or None when plain exact
        accuracy is all there is. For a scorer that ranks candidate answers (ARC), `rank_by_q`
        ranks by summed sigmoid(q_halt) before votes; `seen_tasks_only` scores only what rows
        were added for (an ensemble scores a subset)."""
        return None

    # What `difficulty` counts, e.g. "blanks"; None where the task has no difficulty measure.
    difficulty_name: str | None = None

    def difficulty(self, inputs: np.ndarray) -> np.ndarray:
        """inputs [n, L] tokens -> [n] ints: each puzzle's difficulty as `difficulty_name` counts
        it, read from the input alone (so it is known for any dataset). Only where
        `difficulty_name` is set."""
        raise HRMEvalError(f"task {self.name} has no difficulty measure")

    @property
    def needs_answers(self) -> bool:
        """Whether evaluation must keep every row's answer (argmax, inputs, q_halt) for `scorer`."""
        return type(self).scorer is not PuzzleTask.scorer


def decode_json_list(puzzle: Any, where: str) -> Any:
    """`puzzle` decoded when it is JSON text of a list (`[[0, 1], ...]`, `["#S #", ...]`), else as
    given; HRMEvalError naming `where` when such text is not valid JSON."""
    if not (isinstance(puzzle, str) and puzzle.lstrip().startswith("[")):
        return puzzle
    return guarded.parse_json(puzzle, where)
