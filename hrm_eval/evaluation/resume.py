"""Resumable evaluations: finished puzzles are streamed to `<output>/resume/`, and a run
started again with `--resume` after a crash or kill skips them.

    resume/manifest.json        what the rows were computed with (checkpoint sha256, dataset
                                fingerprint, split, limit, dtype, halting policy, ...)
    resume/rows.<rank>.<id>.log one per rank: length-prefixed frames, each a `torch.save` of
                                the puzzles finished together, as columns (read back with
                                weights_only=True)

A frame is written (one unbuffered write) as soon as the engine hands its puzzle out, so a
kill loses at most the puzzles in flight; a frame cut short by the kill is ignored. `<id>` is
the manifest's digest: a rank only ever reads rows computed with the same settings, even
from a directory the manifest check did not see (another node's disk). On --resume, rank 0
compares the manifest field by field: a difference is one line naming the field. After a
complete run (results.json written) the folder is removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from hrm_eval.evaluation.payload import ROW_FIELDS, Payload
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_json

log = logging.getLogger("hrm_eval")

RESUME_DIR = "resume"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2  # 2: each frame carries a digest tied to the manifest
_LEN = struct.Struct("<Q")  # frame length prefix, little-endian uint64
_DIGEST = 32  # sha256(manifest id + frame data) after the length: an edited or damaged frame is not trusted


def build_manifest(
    *,
    checkpoint_sha256: str,
    dataset_fingerprint: str,
    split: str,
    limit: int | None,
    dtype: str,
    halting: dict[str, Any],
    batch_size: int,
    model_config: dict[str, Any],
    task: str | None,
    device_type: str,
    keep_logits: bool,
    scaling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a finished puzzle's numbers depend on. Beyond the checkpoint, data and
    policy: the batch size (with fixed halting a puzzle's floats are those of its batch),
    the resolved model config (--arch overrides), the device type (CPU and CUDA round
    differently) and whether logits were kept (--save-predictions needs them)."""
    config_digest = hashlib.sha256(json.dumps(model_config, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "format": MANIFEST_FORMAT,
        "checkpoint_sha256": checkpoint_sha256,
        "dataset_fingerprint": dataset_fingerprint,
        "split": split,
        "limit": limit,
        "dtype": dtype,
        "halting": halting,
        "batch_size": batch_size,
        "model_config_sha256": config_digest,
        "task": task,
        "device_type": device_type,
        "save_predictions": keep_logits,
        **({"scaling": scaling} if scaling else {}),  # test-time scaling's settings (absent when off)
    }


def manifest_id(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


class RowLog:
    """This rank's append-only log of finished puzzles."""

    def __init__(self, path: Path, key: bytes = b""):
        self.path = path
        self.key = key  # the manifest id: a frame's digest ties it to the settings it was computed with
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND + one os.write per frame: a kill leaves whole frames and at most one cut short
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, payloads: list[Payload]) -> None:
        """One frame for the group: its payloads as columns (a tensor field stacked), since a
        `torch.save` per puzzle costs ~100 bytes of headers for each of its ~20 tensors."""
        if self._fd is None or not payloads:
            return
        buf = io.BytesIO()
        torch.save({"rows": len(payloads), "columns": _columns(payloads)}, buf)
        data = buf.getvalue()
        os.write(self._fd, _LEN.pack(len(data)) + hashlib.sha256(self.key + data).digest() + data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_log(path: Path, key: bytes = b"", problems: list[str] | None = None) -> Iterator[Payload]:
    """The frames of one log; stops at a frame cut short (the end of a killed run), and at a
    frame whose digest does not match (edited or damaged: what follows is evaluated again; the
    reason goes to `problems` when given, else to a warning)."""
    data = path.read_bytes()
    at = 0
    while at + _LEN.size + _DIGEST <= len(data):
        (n,) = _LEN.unpack_from(data, at)
        start = at + _LEN.size + _DIGEST
        end = start + n
        if end > len(data):
            return
        if hashlib.sha256(key + data[start:end]).digest() != data[at + _LEN.size : start]:
            why = f"{path}: the frame at byte {at} does not match its checksum (edited or damaged)"
            if problems is None:
                log.warning("--resume: %s; the puzzles from there on are evaluated again", why)
            else:
                problems.append(why)
            return
        try:
            frame = torch.load(io.BytesIO(data[start:end]), map_location="cpu", weights_only=True)
            rows = [_row(frame["columns"], r) for r in range(frame["rows"])]
        except Exception:  # noqa: BLE001 - a damaged frame: stop trusting this log here
            log.warning("%s: unreadable frame at byte %d; the puzzles from there on are evaluated again", path, at)
            return
        yield from rows
        at = end


def _columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Dicts with the same keys -> one dict of columns: tensors of one shape and dtype stacked
    ({"stack": T}), nested dicts recursively ({"dict": ...}), anything else a list ({"list": ...})."""
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        first = values[0]
        if isinstance(first, dict):
            out[key] = {"dict": _columns(values)}
        elif isinstance(first, torch.Tensor) and all(
            isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values
        ):
            out[key] = {"stack": torch.stack(values)}
        else:
            out[key] = {"list": values}
    return out


def _row(columns: dict[str, Any], r: int) -> dict[str, Any]:
    """Row r of `_columns` output, as the dict it was."""
    out: dict[str, Any] = {}
    for key, col in columns.items():
        if "dict" in col:
            out[key] = _row(col["dict"], r)
        elif "stack" in col:
            out[key] = col["stack"][r]
        else:
            out[key] = col["list"][r]
    return out


class ResumeState:
    """The resume folder of one run, as seen by one rank.

    Rank 0 calls `prepare` (checks or writes the manifest), then, after a barrier, every rank
    calls `start` (loads the rows any log holds for this manifest and opens its own)."""

    def __init__(self, output_dir: Path, manifest: dict[str, Any], rank: int):
        self.dir = Path(output_dir) / RESUME_DIR
        self.manifest = manifest
        self.id = manifest_id(manifest)
        self.rank = rank
        self.log: RowLog | None = None
        self.done: dict[int, Payload] = {}

    def prepare(self, resume: bool | str) -> None:
        """Rank 0, before the other ranks look: check the manifest (--resume) or start afresh."""
        path = self.dir / MANIFEST
        if resume and path.exists():
            self._check(path)
            return
        if resume:
            log.info("--resume: nothing to resume in %s (no %s); starting from the beginning", self.dir, MANIFEST)
        shutil.rmtree(self.dir, ignore_errors=True)
        atomic_write_json(path, self.manifest)

    def _check(self, path: Path) -> None:
        try:
            saved = guarded.mapping(guarded.read_json(path, "resume manifest"), str(path), "a JSON object")
        except HRMEvalError as e:
            raise HRMEvalError(f"--resume: {e}; remove {self.dir} to start again") from None
        for key, value in self.manifest.items():
            if saved.get(key) != value:
                raise HRMEvalError(
                    f"--resume: {path} was written with {key} {_short(saved.get(key))}, this run has "
                    f"{_short(value)}; resume with the same settings or remove {self.dir}"
                )

    def start(self, resume: bool | str, check: Callable[[Payload], str | None] | None = None) -> None:
        """Every rank: `done` = the finished rows in the logs of this manifest (by position),
        each checked, not trusted: a damaged or edited frame, a row `check` finds wrong (a
        position outside the data, inputs that are not the dataset's there) or missing a field is
        evaluated again, said in one warning; with resume="strict" it stops the run instead.
        Then this rank's log is opened for appending."""
        own = self.dir / f"rows.{self.rank}.{self.id}.log"
        key = self.id.encode()
        if resume:
            refused: list[str] = []
            for path in sorted(self.dir.glob(f"rows.*.{self.id}.log")):
                for payload in read_log(path, key, refused):
                    why = _row_problem(payload, check)
                    if why is None:
                        self.done[int(payload["position"])] = payload
                    else:
                        refused.append(why)
            if refused and resume == "strict":
                raise HRMEvalError(
                    f"--resume strict: {len(refused)} problems with the logged rows in {self.dir} (first: "
                    f"{refused[0]}); resume without strict to evaluate those puzzles again, or remove the folder"
                )
            if refused:
                log.warning(
                    "--resume: %d problems with the logged rows (first: %s); those puzzles are evaluated again",
                    len(refused),
                    refused[0],
                )
        elif own.exists():
            own.unlink()  # a fresh start on a disk rank 0 did not clear (another node's)
        self.log = RowLog(own, key)

    def append(self, payloads: list[Payload]) -> None:
        if self.log is not None:
            self.log.append(payloads)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def remove(self) -> None:
        """After a complete run: the rows are in results.json / per_puzzle.jsonl now."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _row_problem(payload: Payload, check: Callable[[Payload], str | None] | None) -> str | None:
    """Why a logged row cannot be used, or None."""
    if not isinstance(payload, dict) or not set(payload) >= ROW_FIELDS:
        missing = sorted(ROW_FIELDS - set(payload)) if isinstance(payload, dict) else ["all"]
        return f"a row without the field {missing[0]}"
    position = payload["position"]
    if not isinstance(position, int) or isinstance(position, bool):
        return f"position {position!r} is not a row number"
    return check(payload) if check is not None else None


def dataset_row_check(dataset: Any, total: int) -> Callable[[Payload], str | None]:
    """A `start` check against the data being evaluated: the position lies inside the first
    `total` rows, and the row's set, index, inputs and puzzle identifier are the dataset's there
    (what a log cannot fake without the data itself)."""
    import numpy as np

    starts, offset = [], 0
    for name, arrays in dataset.sets.items():  # each example's puzzle, once (as iter_batches finds it)
        puzzles = np.repeat(np.arange(len(arrays["puzzle_identifiers"])), np.diff(arrays["puzzle_indices"]))
        starts.append((offset, name, arrays, puzzles))
        offset += len(arrays["inputs"])

    def check(p: Payload) -> str | None:
        position = p["position"]
        if not 0 <= position < total:
            return f"position {position} is outside the {total} puzzles evaluated"
        first, name, arrays, puzzles = next(s for s in reversed(starts) if s[0] <= position)
        index = position - first
        if p["set_name"] != name or p["example_index"] != index:
            return (
                f"position {position} is logged as {p['set_name']}/{p['example_index']}, the dataset has {name}/{index}"
            )
        puzzle = int(puzzles[index])
        same = torch.equal(
            torch.as_tensor(p["inputs"]).long(), torch.as_tensor(np.asarray(arrays["inputs"][index])).long()
        )
        if not same or int(p["puzzle_identifier"]) != int(arrays["puzzle_identifiers"][puzzle]):
            return f"the row at position {position} holds other inputs than the dataset's"
        return None

    return check


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
