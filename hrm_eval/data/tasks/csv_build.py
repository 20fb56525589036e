"""The dataset directory the public CSV builders (Sudoku, maze) write, shared by those tasks.

One raw puzzle = one puzzle of one example; an original and its augmented copies form one
group; one set `all`, one identifier (`<blank>`), pad 0 and `ignore_label_id` 0. Each split
draws from its own `np.random.RandomState(seed)`, as the public builders (which reseed per split).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hrm_eval.data.csv_source import RawPuzzles, strings_to_array, subsample_indices
from hrm_eval.data.format import DatasetMetadata, atomic_directory, write_identifiers, write_split

PAD_ID = 0

# (split, rows, rng) -> (arrays as `puzzle_arrays` returns them, seq_len, extra summary fields)
Convert = Callable[[str, RawPuzzles, np.random.RandomState], tuple[dict[str, np.ndarray], int, dict[str, Any]]]


def token_arrays(
    rows: RawPuzzles, seq_len: int, char_to_token: np.ndarray, subsample_size: int | None, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) uint8 [N, seq_len] of the rows' questions and answers, subsampled to
    `subsample_size` rows with `rng` first (as the public builders draw it)."""
    inputs = strings_to_array(rows.questions, seq_len, char_to_token)
    labels = strings_to_array(rows.answers, seq_len, char_to_token)
    keep = subsample_indices(len(inputs), subsample_size, rng)
    if keep is not None:
        inputs, labels = inputs[keep], labels[keep]
    return inputs, labels


def puzzle_arrays(inputs: np.ndarray, labels: np.ndarray, per_group: int) -> dict[str, np.ndarray]:
    """The split's arrays for `inputs` / `labels` [N, L] that hold groups of `per_group` consecutive
    puzzles, each puzzle one example."""
    n_puzzles = len(inputs)
    return {
        "inputs": np.ascontiguousarray(inputs),
        "labels": np.ascontiguousarray(labels),
        "puzzle_identifiers": np.zeros(n_puzzles, dtype=np.int32),
        "puzzle_indices": np.arange(n_puzzles + 1, dtype=np.int32),
        "group_indices": np.arange(0, n_puzzles + 1, per_group, dtype=np.int32),
    }


def write_csv_dataset(
    output: str, raw: dict[str, RawPuzzles], convert: Convert, *, vocab_size: int, seed: int, summary: dict[str, Any]
) -> dict[str, Any]:
    """Write each split of `raw` (train, then test) converted by `convert` into `output`
    atomically; returns `summary` with a "splits" entry per split written."""
    summary["splits"] = {}
    with atomic_directory(output) as tmp:
        for split in ("train", "test"):
            if split not in raw:
                continue
            arrays, seq_len, extra = convert(split, raw[split], np.random.RandomState(seed))
            n_groups = len(arrays["group_indices"]) - 1
            metadata = DatasetMetadata(
                pad_id=PAD_ID,
                ignore_label_id=0,
                blank_identifier_id=0,
                vocab_size=vocab_size,
                seq_len=seq_len,
                num_puzzle_identifiers=1,
                total_groups=n_groups,
                mean_puzzle_examples=1,
                sets=["all"],
            )
            write_split(tmp, split, metadata, {"all": arrays})
            summary["splits"][split] = {
                "source": raw[split].path,
                **extra,
                "groups": n_groups,
                "puzzles": len(arrays["puzzle_identifiers"]),
                "examples": len(arrays["inputs"]),
            }
        write_identifiers(tmp, ["<blank>"])
    return summary
