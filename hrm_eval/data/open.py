"""Opening puzzles for evaluation: a dataset directory, or a raw `.jsonl` / `.csv` file
converted in memory, and the task that scores them.

    from hrm_eval.data import open_dataset, resolve_task
    dataset = open_dataset("checkpoints/sudoku6-hrm/data")          # the test split
    task = resolve_task(None, dataset)                               # detected: sudoku
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.format import DatasetMetadata
from hrm_eval.data.jsonl import read_jsonl_puzzles
from hrm_eval.data.tasks import detect_task, get_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError


def open_dataset(
    data: str | Path,
    *,
    split: str = "test",
    task: str | None = None,
    vocab_size: int | None = None,
    num_puzzle_identifiers: int = 1,
) -> PuzzleDataset:
    """A dataset directory, or a `.jsonl` / `.csv` file of puzzles converted in memory."""
    path = Path(data)
    if not path.exists():
        raise HRMEvalError(f"data not found: {path}")
    if path.is_dir() and path.suffix.lower() in (".csv", ".jsonl"):  # named as a file: meant as one
        raise HRMEvalError(f"data {path} is a directory, expected a {path.suffix.lower()} file")
    if path.is_dir():
        return PuzzleDataset(path, split=split)
    if not path.is_file():  # a FIFO, device or socket: never opened (reading could block forever)
        kind = guarded.path_kind(path.stat().st_mode)
        raise HRMEvalError(f"data {path} is a {kind}, expected a dataset directory, .jsonl or .csv file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        inputs, labels, ids, names = read_jsonl_puzzles(path, vocab_size=vocab_size)
    elif suffix == ".csv":
        if task is None:
            raise HRMEvalError(f"{path}: a raw CSV needs its task (--task sudoku|maze|...)")
        inputs, labels, names = get_task(task).read_csv_puzzles(path)
        ids = np.zeros(len(inputs), np.int32)
    else:
        raise HRMEvalError(f"{path}: unknown data file type '{suffix}' (expected a dataset directory, .jsonl or .csv)")
    if vocab_size is None:
        vocab_size = int(max(inputs.max(), labels.max())) + 1
    metadata = DatasetMetadata(
        pad_id=0,
        ignore_label_id=None,
        blank_identifier_id=0,
        vocab_size=vocab_size,
        seq_len=int(inputs.shape[1]),
        num_puzzle_identifiers=num_puzzle_identifiers,
        total_groups=len(inputs),
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
    return PuzzleDataset.from_arrays(inputs, labels, metadata, puzzle_identifiers=ids, names=names, source=str(path))


def resolve_task(name: str | None, dataset: PuzzleDataset) -> PuzzleTask | None:
    """The task named (checked against the dataset's layout: one-line error when it does not
    fit), or the one detected from the dataset (None when no task or several fit)."""
    meta = dataset.metadata
    sample = np.asarray(next(iter(dataset.sets.values()))["inputs"][:64])
    if name:
        task = get_task(name)
        # a raw file has no vocabulary of its own: it is read with the checkpoint's
        where = f"the data {dataset.source}" + (" read with the checkpoint's vocabulary" if dataset.in_memory else "")
        task.check_layout(meta.vocab_size, meta.seq_len, sample, where=where)
        return task
    return detect_task(meta.vocab_size, meta.seq_len, sample)
