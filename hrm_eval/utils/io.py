"""Atomic file writing and hashing: results are either complete or absent, never half-written."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, List

TEMP_SUFFIX = ".tmp"
# What `atomic_write` names its temp file for `name`: mkstemp's "." + name + "." + 8 random characters.
TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the finished file onto `path` (same directory, one rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; results are ordinary files
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def leftover_temp_files(directory: str | os.PathLike) -> List[Path]:
    """Temp files of `atomic_write`s into `directory` that never finished (the process was killed
    between write and rename). Only meaningful while the caller holds the directory's lock: a
    running writer's temp file looks the same."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and TEMP_RE.match(p.name))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write strict JSON: NaN and Infinity are not JSON (other readers reject the file), so a
    non-finite number is written as null and, when `data` is a mapping, the dotted paths of
    those fields are listed under "nonfinite_fields"."""
    return atomic_write_text(path, to_json(data) + "\n")


def to_json(data: Any, indent: int = 2) -> str:
    """`json.dumps` with allow_nan=False semantics (see `atomic_write_json`)."""
    found: List[str] = []
    clean = _strict(data, "", found)
    if found and isinstance(clean, dict):
        clean["nonfinite_fields"] = found
    return json.dumps(clean, indent=indent, allow_nan=False)


def _strict(o: Any, where: str, found: List[str]) -> Any:
    """A copy of `o` with plain JSON types only and every non-finite float replaced by None."""
    if isinstance(o, dict):
        return {k: _strict(v, f"{where}.{k}" if where else str(k), found) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict(v, f"{where}[{i}]", found) for i, v in enumerate(o)]
    if isinstance(o, (str, int, bool)) or o is None:  # bool before float: it is an int, never NaN
        return o
    if isinstance(o, float):
        if math.isfinite(o):
            return o
        found.append(where or "(value)")
        return None
    return _strict(_json_default(o), where, found)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_line(record: Any) -> str:
    """One compact JSON line (per_puzzle.jsonl), numpy / torch scalars converted."""
    return json.dumps(record, default=_json_default, separators=(",", ":"))
