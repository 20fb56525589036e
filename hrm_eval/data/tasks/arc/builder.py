"""The ARC dataset builder: raw tasks -> the public HRM dataset directory.

The public builder seeds numpy's global RNG and depends on the file-system listing order, so
its outputs cannot be reproduced bit for bit; this builder follows its rules with its own
seeded `numpy.random.Generator` and sorted listings, so the same sources and seed always give
byte-identical files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np

from hrm_eval.data.format import DatasetMetadata, atomic_directory, write_identifiers, write_split
from hrm_eval.data.tasks.arc.augment import augment_grid, augmented_name
from hrm_eval.data.tasks.arc.layout import (
    GRID_SIZE,
    NUM_COLOURS,
    PAD_ID,
    SEQ_LEN,
    VOCAB_SIZE,
    grid_hash,
    grid_to_sequence,
)
from hrm_eval.data.tasks.arc.sources import TEST_SUBSET, RawTask, load_arc_tasks
from hrm_eval.utils.errors import HRMEvalError

AUGMENT_RETRIES_FACTOR = 5
DEFAULT_NUM_AUG = 0  # as the other builders here (the public ARC builder defaults to 1000)
SET_NAME = "all"
BLANK_NAME = "<blank>"


def _pairs_hash(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> str:
    """Order-independent hash of all example grids (shapes included)."""
    parts = sorted(grid_hash(i) + "|" + grid_hash(o) for i, o in pairs)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _augment_task(task: RawTask, num_aug: int, rng: np.random.Generator):
    """[(name, train_pairs, test_pairs)] : the original first, then up to `num_aug` distinct
    augmentations (duplicates by hash of all example grids dropped; at most 5x num_aug tries)."""
    group = [(task.id, task.train, task.test)]
    if num_aug <= 0:
        return group
    seen = {_pairs_hash(task.train + task.test)}
    for _ in range(AUGMENT_RETRIES_FACTOR * num_aug):
        t = int(rng.integers(0, 8))
        colour_map = np.concatenate([[0], rng.permutation(np.arange(1, NUM_COLOURS))]).astype(np.uint8)
        train = [(augment_grid(i, t, colour_map), augment_grid(o, t, colour_map)) for i, o in task.train]
        test = [(augment_grid(i, t, colour_map), augment_grid(o, t, colour_map)) for i, o in task.test]
        h = _pairs_hash(train + test)
        if h not in seen:
            seen.add(h)
            group.append((augmented_name(task.id, t, colour_map), train, test))
            if len(group) >= num_aug + 1:
                break
    return group


class _SplitWriter:
    """Accumulates one split's groups of puzzles as the public builder lays them out."""

    def __init__(self, translate: bool):
        self.translate = translate
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.names: list[str] = []  # one per puzzle
        self.puzzle_indices = [0]
        self.group_indices = [0]

    def add_group(self, puzzles: list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]], rng: np.random.Generator):
        """Append one group: each (name, [(input grid, output grid)]) becomes one puzzle whose
        examples are its pairs, each translated at random on the train split."""
        for name, pairs in puzzles:
            inputs = np.empty((len(pairs), SEQ_LEN), dtype=np.uint8)  # [examples, SEQ_LEN]
            labels = np.empty((len(pairs), SEQ_LEN), dtype=np.uint8)  # [examples, SEQ_LEN]
            # one random example per puzzle keeps its place at the top-left
            fixed = int(rng.integers(0, len(pairs))) if self.translate else -1
            for k, (inp, out) in enumerate(pairs):
                r = c = 0
                if self.translate and k != fixed:
                    r = int(rng.integers(0, GRID_SIZE - max(inp.shape[0], out.shape[0]) + 1))
                    c = int(rng.integers(0, GRID_SIZE - max(inp.shape[1], out.shape[1]) + 1))
                inputs[k] = grid_to_sequence(inp, r, c)
                labels[k] = grid_to_sequence(out, r, c)
            self.blocks.append((inputs, labels))
            self.names.append(name)
            self.puzzle_indices.append(self.puzzle_indices[-1] + len(pairs))
        self.group_indices.append(len(self.names))

    @property
    def num_examples(self) -> int:
        return self.puzzle_indices[-1]

    @property
    def num_groups(self) -> int:
        return len(self.group_indices) - 1

    def metadata(self, num_puzzle_identifiers: int) -> DatasetMetadata:
        """This split's dataset.json (the identifiers are shared by both splits)."""
        return DatasetMetadata(
            pad_id=PAD_ID,
            ignore_label_id=PAD_ID,
            blank_identifier_id=0,
            vocab_size=VOCAB_SIZE,
            seq_len=SEQ_LEN,
            num_puzzle_identifiers=num_puzzle_identifiers,
            total_groups=self.num_groups,
            mean_puzzle_examples=self.num_examples / len(self.names),
            sets=[SET_NAME],
        )

    def arrays(self, identifier_of: dict[str, int]) -> dict[str, np.ndarray]:
        """The split's arrays: inputs / labels [examples, SEQ_LEN] uint8, one identifier per
        puzzle, and the puzzle / group boundaries."""
        return {
            "inputs": np.concatenate([b[0] for b in self.blocks]),
            "labels": np.concatenate([b[1] for b in self.blocks]),
            "puzzle_identifiers": np.array([identifier_of[n] for n in self.names], dtype=np.int32),
            "puzzle_indices": np.array(self.puzzle_indices, dtype=np.int32),
            "group_indices": np.array(self.group_indices, dtype=np.int32),
        }


def build_arc_dataset(source, output, *, num_aug: int = DEFAULT_NUM_AUG, seed: int = 0) -> dict:
    """Build the public HRM ARC dataset directory at `output`; see `ARCTask.build`."""
    num_aug = _checked_num_aug(num_aug)
    tasks = load_arc_tasks(source)
    rng = np.random.default_rng(seed)  # one stream, drawn in task order: the same seed, the same bytes
    train, test, incomplete = _lay_out(tasks, num_aug, rng)
    names, identifier_of = _identifiers(train, test)
    summary = {
        "task": "arc",
        "output": os.fspath(output),
        "vocab_size": VOCAB_SIZE,
        "seq_len": SEQ_LEN,
        "num_tasks": len(tasks),
        "num_aug": num_aug,
        "seed": seed,
        "num_puzzle_identifiers": len(names),
        "incomplete_augmentation": incomplete,
        "splits": {},
    }
    with atomic_directory(output) as tmp:
        for split, writer in (("train", train), ("test", test)):
            if not writer.names:  # e.g. no `evaluation` subset: no test split, as in the public builder
                continue
            write_split(tmp, split, writer.metadata(len(names)), {SET_NAME: writer.arrays(identifier_of)})
            summary["splits"][split] = {
                "examples": writer.num_examples,
                "puzzles": len(writer.names),
                "groups": writer.num_groups,
            }
        write_identifiers(tmp, names)
    return summary


def _checked_num_aug(num_aug) -> int:
    """`num_aug` as a count: None means the default; negative is an error."""
    if num_aug is None:
        num_aug = DEFAULT_NUM_AUG
    if int(num_aug) < 0:
        raise HRMEvalError(f"num_aug must be >= 0, got {num_aug}")
    return int(num_aug)


def _lay_out(
    tasks: list[RawTask], num_aug: int, rng: np.random.Generator
) -> tuple[_SplitWriter, _SplitWriter, list[str]]:
    """(train, test, ids of tasks with fewer than `num_aug` distinct augmentations). A task of the
    test subset gives its train examples to the train split and its test examples to the test
    split; any other task puts all its examples in the train split."""
    train, test = _SplitWriter(translate=True), _SplitWriter(translate=False)
    incomplete = []
    for task in tasks:
        group = _augment_task(task, num_aug, rng)
        if len(group) < num_aug + 1:
            incomplete.append(task.id)
        if task.subset == TEST_SUBSET:
            train.add_group([(name, tr) for name, tr, _ in group], rng)
            test.add_group([(name, te) for name, _, te in group], rng)
        else:
            train.add_group([(name, tr + te) for name, tr, te in group], rng)
    return train, test, incomplete


def _identifiers(train: _SplitWriter, test: _SplitWriter) -> tuple[list[str], dict[str, int]]:
    """(identifier names, name -> identifier): 0 is the blank, then names in order of first
    appearance, train split first."""
    names = [BLANK_NAME]
    identifier_of: dict[str, int] = {}
    for name in train.names + test.names:
        if name not in identifier_of:
            identifier_of[name] = len(names)
            names.append(name)
    return names, identifier_of
