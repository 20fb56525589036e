"""A checkpoint loaded for the puzzles it will run on: checked against a dataset directory, a
raw .jsonl / .csv file or an open dataset.

Above both `hrm_eval.models` (the restore, which takes the dataset's sizes as a mapping) and
`hrm_eval.data` (which opens datasets), so that the model code never opens a dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.open import open_dataset
from hrm_eval.models.checkpoint import LoadedCheckpoint, restore


def load_checkpoint(path: str | Path, *, data: Any | None = None, **options: Any) -> LoadedCheckpoint:
    """`hrm_eval.models.checkpoint.load_checkpoint` (its keywords in `options`), checked against
    `data` when given: a dataset path (directory or .jsonl / .csv file) or an open dataset. This
    is `hrm_eval.load_checkpoint`."""
    if data is not None:
        options["dataset"] = dataset_facts(data)
    return restore.load_checkpoint(path, **options)


def dataset_facts(data: Any) -> dict[str, Any]:
    """What a checkpoint is checked against, from a dataset path or an open PuzzleDataset. A raw
    .jsonl / .csv file has no vocabulary of its own (it is read with the checkpoint's): only its
    sequence length counts."""
    # a raw CSV needs its task: open_dataset(path, task=...) and pass the dataset
    dataset = data if isinstance(data, PuzzleDataset) else open_dataset(data)
    if dataset.in_memory:
        return {"seq_len": dataset.metadata.seq_len}
    return dataset.metadata.model_dump()


def load_with_data(
    checkpoint: str | Path, data: str | Path, *, split: str = "test", task: str | None = None, **options: Any
) -> tuple[LoadedCheckpoint, PuzzleDataset]:
    """(the checkpoint checked against the data, the PuzzleDataset): a dataset directory is opened
    as it is; a raw .jsonl / .csv file has no vocabulary of its own, so it is read with the
    checkpoint's (and its puzzle identifiers). `options`: load_checkpoint's keywords."""
    if Path(data).is_dir():
        dataset = open_dataset(data, split=split, task=task)
    else:
        facts = {k: v for k, v in options.items() if k in ("overrides", "model_config", "dtype")}
        probe = restore.load_checkpoint(checkpoint, require_seq_len=False, **facts).config  # on the CPU: sizes only
        dataset = open_dataset(
            data,
            split=split,
            task=task,
            vocab_size=probe.vocab_size,
            num_puzzle_identifiers=probe.num_puzzle_identifiers,
        )
    return restore.load_checkpoint(checkpoint, dataset=dataset.metadata, **options), dataset
