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
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator

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

    pad_id: int = Field(ge=0)
    ignore_label_id: int | None
    blank_identifier_id: int = Field(ge=0)
    vocab_size: int = Field(ge=1)
    seq_len: int = Field(ge=1)
    num_puzzle_identifiers: int = Field(ge=1)
    total_groups: int = Field(ge=0)
    mean_puzzle_examples: float
    sets: list[str]
    total_puzzles: int | None = Field(default=None, ge=0)  # written by TRM builders only

    @field_validator("mean_puzzle_examples")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"expected a finite number >= 0, got {v}")
        return v

    @field_validator("sets")
    @classmethod
    def _plain_set_names(cls, names: list[str]) -> list[str]:
        # Set names become file names (<set>__<field>.npy): a separator or `..` would read outside the split.
        if not names:
            raise ValueError('no sets listed (expected at least one name, e.g. ["all"])')
        for name in names:
            if not is_plain_set_name(name):
                raise ValueError(
                    f"set name {name!r} is not a plain name (letters, digits, '_', '-', '.'; not '.' or '..')"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"set names repeat: {names}")
        return names

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=self.total_puzzles is None))


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def is_plain_set_name(name: str) -> bool:
    """A set name usable as a file-name prefix inside the split folder: no separators, not `.`/`..`."""
    return bool(_PLAIN_NAME.fullmatch(name)) and name not in (".", "..")


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


def write_split(
    root: str | os.PathLike, split: str, metadata: DatasetMetadata, sets: dict[str, dict[str, np.ndarray]]
) -> None:
    """Write `<root>/<split>/` : dataset.json and one .npy per (set, field)."""
    split_dir = Path(root) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    with open(split_dir / "dataset.json", "w") as f:
        f.write(metadata.to_json())
    for set_name, arrays in sets.items():
        for field in FIELDS:
            np.save(split_dir / f"{set_name}__{field}.npy", np.asarray(arrays[field], dtype=FIELD_DTYPES[field]))


def write_identifiers(root: str | os.PathLike, names: list[str]) -> None:
    with open(Path(root) / "identifiers.json", "w") as f:
        json.dump(names, f)
