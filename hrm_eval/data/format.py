"""The public HRM dataset directory format: one place that knows its files.

    <dir>/identifiers.json                 names of puzzle identifiers, "<blank>" at 0
    <dir>/<split>/dataset.json             DatasetMetadata
    <dir>/<split>/<set>__<field>.npy       inputs, labels       uint8 [N_examples, seq_len]
                                           puzzle_identifiers   int32 [N_puzzles]
                                           puzzle_indices       int32 [N_puzzles + 1]  example offsets
                                           group_indices        int32 [N_groups + 1]   puzzle offsets

Writers here produce files byte-identical to the public builders' (`np.save`, `json.dump`
with default separators), and write atomically: a directory is assembled under a temporary
name and renamed into place, so a failed build never leaves a half-written dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
from pydantic import BaseModel

FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
# dtype each field has on disk in the public format
FIELD_DTYPES = {
    "inputs": np.uint8,
    "labels": np.uint8,
    "puzzle_identifiers": np.int32,
    "puzzle_indices": np.int32,
    "group_indices": np.int32,
}
IGNORE_LABEL_ID = -100  # what labels equal to `ignore_label_id` become after loading; the losses skip it


class DatasetMetadata(BaseModel):
    """`dataset.json`, field order as the public builders write it."""

    pad_id: int
    ignore_label_id: Optional[int]
    blank_identifier_id: int
    vocab_size: int
    seq_len: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    sets: List[str]
    total_puzzles: Optional[int] = None  # written by TRM builders only

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=self.total_puzzles is None))


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path`.

    On any exception the temporary directory is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a dataset is an ordinary directory
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        backup = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, backup)
        os.replace(tmp, path)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, path)


def write_split(root: str | os.PathLike, split: str, metadata: DatasetMetadata,
                sets: Dict[str, Dict[str, np.ndarray]]) -> None:
    """Write `<root>/<split>/` : dataset.json and one .npy per (set, field)."""
    split_dir = Path(root) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    with open(split_dir / "dataset.json", "w") as f:
        f.write(metadata.to_json())
    for set_name, arrays in sets.items():
        for field in FIELDS:
            np.save(split_dir / f"{set_name}__{field}.npy", np.asarray(arrays[field], dtype=FIELD_DTYPES[field]))


def write_identifiers(root: str | os.PathLike, names: List[str]) -> None:
    with open(Path(root) / "identifiers.json", "w") as f:
        json.dump(names, f)
