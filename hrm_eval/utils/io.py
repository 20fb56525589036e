"""Atomic file writing and hashing: results are either complete or absent, never half-written."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_eval.utils.errors import HRMEvalError

TEMP_SUFFIX = ".tmp"
# What `atomic_write` names its temp file for `name`: mkstemp's "." + name + "." + 8 random characters.
TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


# Write errors that are the machine's state, not a bug: one line naming the file, exit 2.
DISK_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EIO: "I/O error",
}


def disk_error_line(e: OSError, path: str | os.PathLike | None, kept: str) -> str | None:
    """`no space left on device while writing <path>; <kept>` for a DISK_ERRORS error, else None."""
    reason = DISK_ERRORS.get(e.errno) if isinstance(e.errno, int) else None
    if reason is None:
        return None
    return f"{reason} while writing {path if path is not None else 'an output file'}; {kept}"


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the finished file onto `path` (same directory, one rename).
    A full disk (or quota, read-only mount, I/O error) is one HRMEvalError line saying that the
    earlier file, if any, is untouched; the temp file is removed either way."""
    path = Path(path)
    existed = path.exists()
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; results are ordinary files
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        kept = "the earlier file there is unchanged" if existed else "no partial file was left"
        line = disk_error_line(e, path, kept) if isinstance(e, OSError) else None
        if line is not None:
            raise HRMEvalError(line) from None
        raise
    return path


def leftover_temp_files(directory: str | os.PathLike) -> list[Path]:
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
    found: list[str] = []
    clean = _strict(data, "", found)
    if found and isinstance(clean, dict):
        clean["nonfinite_fields"] = found
    return json.dumps(clean, indent=indent, allow_nan=False)


def _strict(o: Any, where: str, found: list[str]) -> Any:
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

    def save(tmp: str) -> None:
        try:
            with open(tmp, "wb") as f:  # closed here even when the writer fails (its error keeps it alive)
                torch.save(obj, f)
        except RuntimeError as e:  # torch's zip writer reports a full disk as "unexpected pos ..."
            if _nearly_full(tmp):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp) from e
            raise

    return atomic_write(path, save)


def _nearly_full(path: str) -> bool:
    """Less than 1 MiB left for unprivileged writers on `path`'s file system."""
    try:
        st = os.statvfs(os.path.dirname(path) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


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
