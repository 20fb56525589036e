"""Reading what a real offline W&B run wrote, for the tracking tests.

An offline run keeps its records in `run-<id>.wandb`: a 7-byte file header (`:W&B`, magic,
version), then records in the LevelDB log layout (32 KiB blocks; each chunk has a 7-byte
header: CRC32 u32, length u16, type u8 with 1 full, 2 first, 3 middle, 4 last), each record a
protobuf `wandb_internal_pb2.Record`. Media (tables, images) are files under `files/media/`."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

BLOCK = 32768
CHUNK_HEADER = 7


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "wandb").glob("*run-*") if p.is_dir())


def records(run_dir: Path, timeout: float = 60.0) -> list[Any]:
    """The run's records, once its `exit` record is written (wandb's service writes the file
    on its own schedule, possibly after `finish()` returned)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _read_records(run_dir)
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _read_records(run_dir: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    files = list(run_dir.glob("run-*.wandb"))
    if not files:
        return []
    data = files[0].read_bytes()
    if len(data) < 7:
        return []
    assert data[:4] == b":W&B"
    out, pos, pending = [], 7, b""
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # the rest of a block is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def history(run_dir: Path) -> list[dict[str, Any]]:
    """Each `run.log` call as {key: value} (values decoded from their JSON)."""
    rows = []
    for r in records(run_dir):
        if r.WhichOneof("record_type") == "history":
            rows.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item})
    return rows


def config(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records(run_dir):
        kind = r.WhichOneof("record_type")
        items = r.config.update if kind == "config" else r.run.config.update if kind == "run" else []
        out.update({i.key: json.loads(i.value_json) for i in items})
    return out


def media(run_dir: Path, kind: str) -> list[Path]:
    """The media files a run wrote: kind 'table' or 'images'."""
    return sorted((run_dir / "files" / "media" / kind).rglob("*.*"))
