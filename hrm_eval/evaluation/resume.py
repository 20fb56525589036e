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
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import torch

from hrm_eval.evaluation.payload import Payload
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_json

log = logging.getLogger("hrm_eval")

RESUME_DIR = "resume"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_LEN = struct.Struct("<Q")  # frame length prefix, little-endian uint64


def build_manifest(
    *,
    checkpoint_sha256: str,
    dataset_fingerprint: str,
    split: str,
    limit: Optional[int],
    dtype: str,
    halting: Dict[str, Any],
    batch_size: int,
    model_config: Dict[str, Any],
    task: Optional[str],
    device_type: str,
    keep_logits: bool,
    scaling: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
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


def manifest_id(manifest: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


class RowLog:
    """This rank's append-only log of finished puzzles."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND + one os.write per frame: a kill leaves whole frames and at most one cut short
        self._fd: Optional[int] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, payloads: List[Payload]) -> None:
        """One frame for the group: its payloads as columns (a tensor field stacked), since a
        `torch.save` per puzzle costs ~100 bytes of headers for each of its ~20 tensors."""
        if self._fd is None or not payloads:
            return
        buf = io.BytesIO()
        torch.save({"rows": len(payloads), "columns": _columns(payloads)}, buf)
        data = buf.getvalue()
        os.write(self._fd, _LEN.pack(len(data)) + data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_log(path: Path) -> Iterator[Payload]:
    """The frames of one log; stops at a frame cut short (the end of a killed run)."""
    data = path.read_bytes()
    at = 0
    while at + _LEN.size <= len(data):
        (n,) = _LEN.unpack_from(data, at)
        start, end = at + _LEN.size, at + _LEN.size + n
        if end > len(data):
            return
        try:
            frame = torch.load(io.BytesIO(data[start:end]), map_location="cpu", weights_only=True)
            rows = [_row(frame["columns"], r) for r in range(frame["rows"])]
        except Exception:  # noqa: BLE001 - a damaged frame: stop trusting this log here
            log.warning("%s: unreadable frame at byte %d; the puzzles from there on are evaluated again", path, at)
            return
        yield from rows
        at = end


def _columns(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Dicts with the same keys -> one dict of columns: tensors of one shape and dtype stacked
    ({"stack": T}), nested dicts recursively ({"dict": ...}), anything else a list ({"list": ...})."""
    out: Dict[str, Any] = {}
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


def _row(columns: Dict[str, Any], r: int) -> Dict[str, Any]:
    """Row r of `_columns` output, as the dict it was."""
    out: Dict[str, Any] = {}
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

    def __init__(self, output_dir: Path, manifest: Dict[str, Any], rank: int):
        self.dir = Path(output_dir) / RESUME_DIR
        self.manifest = manifest
        self.id = manifest_id(manifest)
        self.rank = rank
        self.log: Optional[RowLog] = None
        self.done: Dict[int, Payload] = {}

    def prepare(self, resume: bool) -> None:
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

    def start(self, resume: bool) -> None:
        """Every rank: `done` = the finished rows in the logs of this manifest (by position);
        this rank's log opened for appending."""
        own = self.dir / f"rows.{self.rank}.{self.id}.log"
        if resume:
            for path in sorted(self.dir.glob(f"rows.*.{self.id}.log")):
                for payload in read_log(path):
                    self.done[int(payload["position"])] = payload
        elif own.exists():
            own.unlink()  # a fresh start on a disk rank 0 did not clear (another node's)
        self.log = RowLog(own)

    def append(self, payloads: List[Payload]) -> None:
        if self.log is not None:
            self.log.append(payloads)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def remove(self) -> None:
        """After a complete run: the rows are in results.json / per_puzzle.jsonl now."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
