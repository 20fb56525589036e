"""Reading a public HRM dataset split, validated, with inputs and labels memory-mapped.

Batches follow the public evaluation order: every set listed in `dataset.json`, examples in
file order, in chunks of the batch size. Labels equal to `ignore_label_id` become -100. The
public code pads the last chunk to the full batch; padded rows count in no metric, so this
reader simply yields the shorter chunk (same numbers, less work).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch
from pydantic import ValidationError

from hrm_eval.data.format import FIELDS, IGNORE_LABEL_ID, DatasetMetadata
from hrm_eval.utils.errors import HRMEvalError

_SCAN_CHUNK = 1 << 16  # rows per chunk when scanning memory-mapped token arrays


@dataclass
class PuzzleBatch:
    set_name: str
    example_index: np.ndarray        # [B] row numbers in the set's files
    puzzle_index: np.ndarray         # [B] puzzle each row belongs to
    inputs: torch.Tensor             # [B, L] int32
    labels: torch.Tensor             # [B, L] int32, -100 where ignored
    puzzle_identifiers: torch.Tensor  # [B] int32

    def as_model_batch(self, device: torch.device | str) -> Dict[str, torch.Tensor]:
        return {"inputs": self.inputs.to(device), "labels": self.labels.to(device),
                "puzzle_identifiers": self.puzzle_identifiers.to(device)}


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
        self.source, self.in_memory, self.example_names = str(path), False, None
        self.metadata = _read_metadata(meta_file)
        root = path if split_dir != path else path.parent  # identifiers.json sits beside the splits
        self.identifiers = _read_identifiers(root / "identifiers.json")
        self.sets: Dict[str, Dict[str, np.ndarray]] = {name: self._load_set(name) for name in self.metadata.sets}
        self._validate(check_tokens)

    # ---- construction from memory ---------------------------------------------------------
    @classmethod
    def from_arrays(cls, inputs: np.ndarray, labels: np.ndarray, metadata: DatasetMetadata, *,
                    puzzle_identifiers: Optional[np.ndarray] = None, names: Optional[List[str]] = None,
                    identifiers: Optional[List[str]] = None, source: str = "<memory>") -> "PuzzleDataset":
        """One example per puzzle. `names` are per-example puzzle ids for the results."""
        self = cls.__new__(cls)
        n = len(inputs)
        self.path = self.split_dir = Path(source)
        self.split, self.source, self.in_memory = "test", source, True
        self.metadata = metadata
        self.identifiers = identifiers
        ids = np.zeros(n, np.int32) if puzzle_identifiers is None else np.asarray(puzzle_identifiers, np.int32)
        self.sets = {"all": {
            "inputs": np.asarray(inputs), "labels": np.asarray(labels), "puzzle_identifiers": ids,
            "puzzle_indices": np.arange(n + 1, dtype=np.int32), "group_indices": np.arange(n + 1, dtype=np.int32)}}
        self.example_names = names
        self._validate(check_tokens=True)
        return self

    # ---- reading ------------------------------------------------------------------------------
    def _load_set(self, set_name: str) -> Dict[str, np.ndarray]:
        arrays = {}
        for field in FIELDS:
            f = self.split_dir / f"{set_name}__{field}.npy"
            if not f.is_file():
                raise HRMEvalError(f"dataset file missing: {f}")
            try:
                # Inputs and labels can be gigabytes: map them, read the small index arrays.
                arrays[field] = np.load(f, mmap_mode="r" if field in ("inputs", "labels") else None, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise HRMEvalError(f"cannot read {f}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        return arrays

    def _validate(self, check_tokens: bool) -> None:
        m = self.metadata
        for set_name, a in self.sets.items():
            def where(field: str) -> str:
                return f"{self.source} ({field})" if self.in_memory else str(self.split_dir / f"{set_name}__{field}.npy")
            for field in ("inputs", "labels"):
                x = a[field]
                if not np.issubdtype(x.dtype, np.integer):
                    raise HRMEvalError(f"{where(field)}: dtype {x.dtype}, expected integer tokens")
                if x.ndim != 2 or x.shape[1] != m.seq_len:
                    raise HRMEvalError(f"{where(field)}: shape {tuple(x.shape)}, expected [N, seq_len={m.seq_len}]")
            if a["inputs"].shape != a["labels"].shape:
                raise HRMEvalError(f"{where('labels')}: shape {tuple(a['labels'].shape)} differs from inputs {tuple(a['inputs'].shape)}")
            for field in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
                x = a[field]
                if not np.issubdtype(x.dtype, np.integer) or x.ndim != 1:
                    raise HRMEvalError(f"{where(field)}: expected a 1-D integer array, got {x.dtype} {tuple(x.shape)}")
            n_examples, n_puzzles = len(a["inputs"]), len(a["puzzle_identifiers"])
            pi, gi = a["puzzle_indices"], a["group_indices"]
            if len(pi) != n_puzzles + 1 or pi[0] != 0 or pi[-1] != n_examples or np.any(np.diff(pi) < 0):
                raise HRMEvalError(f"{where('puzzle_indices')}: must run from 0 to {n_examples} examples, "
                                   f"non-decreasing, with {n_puzzles + 1} entries (got {len(pi)}, {pi[0] if len(pi) else '-'}..{pi[-1] if len(pi) else '-'})")
            if len(gi) < 1 or gi[0] != 0 or gi[-1] != n_puzzles or np.any(np.diff(gi) < 0):
                raise HRMEvalError(f"{where('group_indices')}: must run from 0 to {n_puzzles} puzzles, non-decreasing")
            ids = a["puzzle_identifiers"]
            if len(ids) and (ids.min() < 0 or ids.max() >= m.num_puzzle_identifiers):
                raise HRMEvalError(f"{where('puzzle_identifiers')}: identifier {int(ids.max() if ids.max() >= m.num_puzzle_identifiers else ids.min())} "
                                   f"outside 0..{m.num_puzzle_identifiers - 1} (num_puzzle_identifiers)")
            if check_tokens:
                for field in ("inputs", "labels"):
                    lo, hi = _min_max(a[field], ignore=IGNORE_LABEL_ID if field == "labels" else None)
                    if lo is not None and (lo < 0 or hi >= m.vocab_size):
                        bad = hi if hi >= m.vocab_size else lo
                        raise HRMEvalError(f"{where(field)}: token {bad} outside the vocabulary 0..{m.vocab_size - 1}")
        if self.identifiers is not None and len(self.identifiers) < m.num_puzzle_identifiers:
            raise HRMEvalError(f"identifiers.json lists {len(self.identifiers)} names but dataset.json says "
                               f"num_puzzle_identifiers {m.num_puzzle_identifiers}")

    # ---- iteration ----------------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        return sum(len(a["inputs"]) for a in self.sets.values())

    def __len__(self) -> int:
        return self.num_examples

    def iter_batches(self, batch_size: int, limit: Optional[int] = None) -> Iterator[PuzzleBatch]:
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
                    set_name=set_name, example_index=np.arange(start, end), puzzle_index=puzzles,
                    inputs=torch.from_numpy(np.asarray(a["inputs"][start:end], dtype=np.int32)),
                    labels=labels,
                    puzzle_identifiers=torch.from_numpy(np.asarray(a["puzzle_identifiers"][puzzles], dtype=np.int32)))
            remaining -= n
            if remaining <= 0:
                return

    def example_name(self, set_name: str, example_index: int) -> str:
        if self.example_names is not None:
            return str(self.example_names[example_index])
        return f"{set_name}/{example_index}" if len(self.sets) > 1 else str(example_index)

    def identifier_name(self, identifier: int) -> Optional[str]:
        if self.identifiers is None or identifier >= len(self.identifiers):
            return None
        return self.identifiers[identifier]

    def fingerprint(self) -> str:
        """sha256 over dataset.json and every array file of this split (content, not paths)."""
        h = hashlib.sha256(self.metadata.to_json().encode())
        for set_name, a in self.sets.items():
            for field in FIELDS:
                arr = np.ascontiguousarray(a[field])
                h.update(f"{set_name}/{field}/{arr.dtype.str}/{arr.shape}".encode())
                for start in range(0, len(arr), _SCAN_CHUNK):
                    h.update(np.ascontiguousarray(arr[start:start + _SCAN_CHUNK]).tobytes())
        return h.hexdigest()


def _read_metadata(path: Path) -> DatasetMetadata:
    try:
        return DatasetMetadata(**json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise HRMEvalError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    except (ValidationError, TypeError) as e:
        if isinstance(e, ValidationError):
            err = e.errors()[0]
            raise HRMEvalError(f"{path}: field '{'.'.join(map(str, err['loc']))}': {err['msg']}") from e
        raise HRMEvalError(f"{path}: expected a JSON object") from e


def _read_identifiers(path: Path) -> Optional[List[str]]:
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HRMEvalError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(names, list):
        raise HRMEvalError(f"{path}: expected a JSON list of names")
    return [str(x) for x in names]


def _min_max(x: np.ndarray, ignore: Optional[int] = None):
    """(min, max) over a possibly memory-mapped array, in chunks; `ignore` values skipped."""
    lo, hi = None, None
    for start in range(0, len(x), _SCAN_CHUNK):
        chunk = np.asarray(x[start:start + _SCAN_CHUNK])
        if ignore is not None:
            chunk = chunk[chunk != ignore]
        if chunk.size == 0:
            continue
        c_lo, c_hi = int(chunk.min()), int(chunk.max())
        lo = c_lo if lo is None else min(lo, c_lo)
        hi = c_hi if hi is None else max(hi, c_hi)
    return lo, hi
