"""Reading a public HRM dataset split, validated, with inputs and labels memory-mapped.

Batches follow the public evaluation order: every set listed in `dataset.json`, examples in
file order, in chunks of the batch size. Labels equal to `ignore_label_id` become -100. The
public code pads the last chunk to the full batch; padded rows count in no metric, so this
reader simply yields the shorter chunk (same numbers, less work).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from hrm_eval.data.format import FIELDS, IGNORE_LABEL_ID, DatasetMetadata
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

_SCAN_CHUNK = 1 << 16  # rows per chunk when scanning memory-mapped token arrays


@dataclass
class PuzzleBatch:
    set_name: str
    example_index: np.ndarray  # [B] row numbers in the set's files
    puzzle_index: np.ndarray  # [B] puzzle each row belongs to
    inputs: torch.Tensor  # [B, L] int32
    labels: torch.Tensor  # [B, L] int32, -100 where ignored
    puzzle_identifiers: torch.Tensor  # [B] int32

    def as_model_batch(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        return {
            "inputs": self.inputs.to(device),
            "labels": self.labels.to(device),
            "puzzle_identifiers": self.puzzle_identifiers.to(device),
        }


class PuzzleDataset:
    """One split of a dataset: `PuzzleDataset("data/sudoku-extreme", split="test")`.

    `path` may be the dataset root (holding `<split>/`) or the split folder itself.
    Use `PuzzleDataset.from_arrays` for puzzles held in memory (JSONL, CSV)."""

    def __init__(self, path: str | Path, split: str = "test", *, check_tokens: bool = True):
        path = Path(path)
        if not path.exists():
            raise HRMEvalError(f"dataset not found: {path}")
        split_dir = path / split if (path / split / "dataset.json").is_file() else path
        meta_file = split_dir / "dataset.json"
        if not meta_file.is_file():
            raise HRMEvalError(f"not a dataset directory: no {split}/dataset.json or dataset.json in {path}")
        self.path, self.split_dir, self.split = path, split_dir, split
        self.source, self.in_memory = str(path), False
        self.example_names: list[str] | None = None
        self.metadata = _read_metadata(meta_file)
        root = path if split_dir != path else path.parent  # identifiers.json sits beside the splits
        self.identifiers = _read_identifiers(root / "identifiers.json")
        self.sets: dict[str, dict[str, np.ndarray]] = {name: self._load_set(name) for name in self.metadata.sets}
        self._validate(check_tokens)
        if self.num_examples == 0:
            raise HRMEvalError(f"{meta_file}: the sets {self.metadata.sets} hold no examples (nothing to evaluate)")

    # ---- construction from memory ---------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        inputs: np.ndarray,
        labels: np.ndarray,
        metadata: DatasetMetadata,
        *,
        puzzle_identifiers: np.ndarray | None = None,
        names: list[str] | None = None,
        identifiers: list[str] | None = None,
        source: str = "<memory>",
    ) -> PuzzleDataset:
        """One example per puzzle. `names` are per-example puzzle ids for the results."""
        self = cls.__new__(cls)
        n = len(inputs)
        self.path = self.split_dir = Path(source)
        self.split, self.source, self.in_memory = "test", source, True
        self.metadata = metadata
        self.identifiers = identifiers
        ids = np.zeros(n, np.int32) if puzzle_identifiers is None else np.asarray(puzzle_identifiers, np.int32)
        self.sets = {
            "all": {
                "inputs": np.asarray(inputs),
                "labels": np.asarray(labels),
                "puzzle_identifiers": ids,
                "puzzle_indices": np.arange(n + 1, dtype=np.int32),
                "group_indices": np.arange(n + 1, dtype=np.int32),
            }
        }
        self.example_names = names
        self._validate(check_tokens=True)
        return self

    # ---- reading ------------------------------------------------------------------------------
    def _load_set(self, set_name: str) -> dict[str, np.ndarray]:
        arrays = {}
        for field in FIELDS:
            f = self.split_dir / f"{set_name}__{field}.npy"
            if not f.is_file():
                raise HRMEvalError(f"dataset file missing: {f}")
            try:
                # Every field is memory-mapped: mapping fails when the header declares more data than the
                # file holds, so a damaged header cannot allocate memory. Inputs and labels stay mapped (they
                # can be gigabytes); the small index arrays are then copied into memory.
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
                arrays[field] = arr if field in ("inputs", "labels") else np.array(arr)
            except Exception as e:  # noqa: BLE001 - a damaged .npy header fails in many ways (ValueError, SyntaxError, ...)
                if "python objects" in str(e).lower() or "pickle" in str(e).lower():  # numpy's text says allow_pickle
                    raise HRMEvalError(
                        f"cannot read {f}: it holds pickled Python objects, which are never loaded "
                        f"(expected an integer array)"
                    ) from e
                raise HRMEvalError(f"cannot read {f}: {_first_line(e)}") from e
        return arrays

    def _validate(self, check_tokens: bool) -> None:
        for set_name, a in self.sets.items():
            self._check_shapes(set_name, a)
            self._check_indices(set_name, a)
            if check_tokens:
                self._check_tokens(set_name, a)
        m = self.metadata
        if self.identifiers is not None and len(self.identifiers) < m.num_puzzle_identifiers:
            raise HRMEvalError(
                f"identifiers.json lists {len(self.identifiers)} names but dataset.json says "
                f"num_puzzle_identifiers {m.num_puzzle_identifiers}"
            )

    def _where(self, set_name: str, field: str) -> str:
        """The file (or in-memory source) an error is about."""
        return f"{self.source} ({field})" if self.in_memory else str(self.split_dir / f"{set_name}__{field}.npy")

    def _check_shapes(self, set_name: str, a: dict[str, np.ndarray]) -> None:
        seq_len = self.metadata.seq_len
        for field in ("inputs", "labels"):
            x = a[field]
            if not np.issubdtype(x.dtype, np.integer):
                raise HRMEvalError(f"{self._where(set_name, field)}: dtype {x.dtype}, expected integer tokens")
            if x.ndim != 2 or x.shape[1] != seq_len:
                raise HRMEvalError(
                    f"{self._where(set_name, field)}: shape {tuple(x.shape)}, expected [N, seq_len={seq_len}]"
                )
        if a["inputs"].shape != a["labels"].shape:
            raise HRMEvalError(
                f"{self._where(set_name, 'labels')}: shape {tuple(a['labels'].shape)} "
                f"differs from inputs {tuple(a['inputs'].shape)}"
            )
        for field in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
            x = a[field]
            if not np.issubdtype(x.dtype, np.integer) or x.ndim != 1:
                raise HRMEvalError(
                    f"{self._where(set_name, field)}: expected a 1-D integer array, got {x.dtype} {tuple(x.shape)}"
                )

    def _check_indices(self, set_name: str, a: dict[str, np.ndarray]) -> None:
        """puzzle_indices: example offsets of each puzzle; group_indices: puzzle offsets of each group."""
        n_examples, n_puzzles = len(a["inputs"]), len(a["puzzle_identifiers"])
        pi, gi, ids = a["puzzle_indices"], a["group_indices"], a["puzzle_identifiers"]
        if len(pi) >= 1 and len(pi) != n_puzzles + 1:  # one identifier per puzzle
            raise HRMEvalError(
                f"{self._where(set_name, 'puzzle_identifiers')}: {n_puzzles} puzzle identifiers, but "
                f"puzzle_indices ({len(pi)} offsets) describes {len(pi) - 1} puzzles "
                f"(one identifier per puzzle)"
            )
        if len(pi) != n_puzzles + 1 or pi[0] != 0 or pi[-1] != n_examples or np.any(np.diff(pi) < 0):
            got = f"{pi[0]}..{pi[-1]}" if len(pi) else "empty"
            raise HRMEvalError(
                f"{self._where(set_name, 'puzzle_indices')}: must run from 0 to {n_examples} examples, "
                f"non-decreasing, with {n_puzzles + 1} entries (got {len(pi)}, {got})"
            )
        if len(gi) < 1 or gi[0] != 0 or gi[-1] != n_puzzles or np.any(np.diff(gi) < 0):
            raise HRMEvalError(
                f"{self._where(set_name, 'group_indices')}: must run from 0 to {n_puzzles} puzzles, non-decreasing"
            )
        limit = self.metadata.num_puzzle_identifiers
        if len(ids) and (ids.min() < 0 or ids.max() >= limit):
            bad = int(ids.max() if ids.max() >= limit else ids.min())
            raise HRMEvalError(
                f"{self._where(set_name, 'puzzle_identifiers')}: identifier {bad} "
                f"outside 0..{limit - 1} (num_puzzle_identifiers)"
            )

    def _check_tokens(self, set_name: str, a: dict[str, np.ndarray]) -> None:
        vocab_size = self.metadata.vocab_size
        for field in ("inputs", "labels"):
            lo, hi = _min_max(a[field], ignore=IGNORE_LABEL_ID if field == "labels" else None)
            if lo is not None and (lo < 0 or hi >= vocab_size):
                bad = hi if hi >= vocab_size else lo
                raise HRMEvalError(
                    f"{self._where(set_name, field)}: token {bad}{self._first_row_with(a[field], bad)} "
                    f"outside the vocabulary 0..{vocab_size - 1}"
                )

    def _first_row_with(self, x: np.ndarray, token: int) -> str:
        """' in puzzle <name>' for in-memory data (whose rows are a file's lines), else ''."""
        if not self.in_memory:
            return ""
        row = int(np.argmax((np.asarray(x) == token).any(axis=1)))
        return f" in puzzle {self.example_name('all', row)}"

    # ---- iteration ----------------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        return sum(len(a["inputs"]) for a in self.sets.values())

    def __len__(self) -> int:
        return self.num_examples

    def iter_batches(self, batch_size: int, limit: int | None = None) -> Iterator[PuzzleBatch]:
        """Batches in the public order; `limit` keeps the first N examples overall."""
        if batch_size < 1:
            raise HRMEvalError(f"batch size must be at least 1, got {batch_size}")
        remaining = self.num_examples if limit is None else min(limit, self.num_examples)
        for set_name, a in self.sets.items():
            example_puzzle = np.repeat(np.arange(len(a["puzzle_identifiers"])), np.diff(a["puzzle_indices"]))
            n = min(len(a["inputs"]), remaining)
            for start in range(0, n, batch_size):
                end = min(start + batch_size, n)
                labels = torch.from_numpy(np.asarray(a["labels"][start:end], dtype=np.int32))
                if self.metadata.ignore_label_id is not None:
                    labels[labels == self.metadata.ignore_label_id] = IGNORE_LABEL_ID
                puzzles = example_puzzle[start:end]
                yield PuzzleBatch(
                    set_name=set_name,
                    example_index=np.arange(start, end),
                    puzzle_index=puzzles,
                    inputs=torch.from_numpy(np.asarray(a["inputs"][start:end], dtype=np.int32)),
                    labels=labels,
                    puzzle_identifiers=torch.from_numpy(np.asarray(a["puzzle_identifiers"][puzzles], dtype=np.int32)),
                )
            remaining -= n
            if remaining <= 0:
                return

    def example_name(self, set_name: str, example_index: int) -> str:
        if self.example_names is not None:
            return str(self.example_names[example_index])
        return f"{set_name}/{example_index}" if len(self.sets) > 1 else str(example_index)

    def identifier_name(self, identifier: int) -> str | None:
        if self.identifiers is None or identifier >= len(self.identifiers):
            return None
        return self.identifiers[identifier]

    def fingerprint(self) -> str:
        """sha256 over dataset.json and every array file of this split (content, not paths).
        Computed once: an ensemble asks for it up to three times (scoring, fitting, provenance),
        and an open split's arrays do not change."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            cached = self._fingerprint = self._hash()
        return cached

    def _hash(self) -> str:
        h = hashlib.sha256(self.metadata.to_json().encode())
        for set_name, a in self.sets.items():
            for field in FIELDS:
                arr = np.ascontiguousarray(a[field])
                h.update(f"{set_name}/{field}/{arr.dtype.str}/{arr.shape}".encode())
                for start in range(0, len(arr), _SCAN_CHUNK):
                    h.update(np.ascontiguousarray(arr[start : start + _SCAN_CHUNK]).tobytes())
        return h.hexdigest()


def _read_json(path: Path) -> Any:
    """A dataset's JSON file, every way it can be broken (not UTF-8, not JSON, absurdly nested) one HRMEvalError."""
    return guarded.read_json(path, "dataset file", max_bytes=guarded.MAX_DATA_BYTES)


def _read_metadata(path: Path) -> DatasetMetadata:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise HRMEvalError(f"{path}: expected a JSON object")
    try:
        return DatasetMetadata(**data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(map(str, err["loc"])) or "?"
        msg = err["msg"].removeprefix("Value error, ")  # our validators' messages already name the value
        value = "" if err["type"] in ("missing", "value_error") else f" (got {_short(err.get('input'))})"
        raise HRMEvalError(f"{path}: field '{field}': {msg}{value}") from e


def _read_identifiers(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    names = _read_json(path)
    if not isinstance(names, list):
        raise HRMEvalError(f"{path}: expected a JSON list of names")
    return [str(x) for x in names]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _min_max(x: np.ndarray, ignore: int | None = None):
    """(min, max) over a possibly memory-mapped array, in chunks; `ignore` values skipped."""
    lo, hi = None, None
    for start in range(0, len(x), _SCAN_CHUNK):
        chunk = np.asarray(x[start : start + _SCAN_CHUNK])
        if ignore is not None:
            chunk = chunk[chunk != ignore]
        if chunk.size == 0:
            continue
        c_lo, c_hi = int(chunk.min()), int(chunk.max())
        lo = c_lo if lo is None else min(lo, c_lo)
        hi = c_hi if hi is None else max(hi, c_hi)
    return lo, hi
