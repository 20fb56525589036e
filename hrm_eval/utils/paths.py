"""Output directories: checked before any work starts, unique by default, locked while a run writes.

    check_writable_dir(path)   -> one-line error now, not an "internal error" after the evaluation
    default_output(mode, ...)  -> outputs/<mode>/<names>-<timestamp>, a new folder for each run
    OutputLock(path)           -> a second run into the same folder stops with one line

The lock is `fcntl.flock` on `<output>/.hrm-eval.lock`: the kernel releases it when the holding
process exits, however it exits (a killed run never leaves a stale lock behind).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from pathlib import Path

from hrm_eval.utils.errors import HRMEvalError

LOCK_NAME = ".hrm-eval.lock"


def check_writable_dir(path: str | Path, flag: str = "--output") -> Path:
    """Fail now, in one line, when `path` cannot become a directory we can write into."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise HRMEvalError(f"{flag} {path}: is an existing file, not a directory")
    existing = path
    while not existing.exists():  # the nearest existing ancestor decides whether mkdir can work
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise HRMEvalError(f"{flag} {path}: {existing} is a file, so no directory can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HRMEvalError(f"{flag} {path}: {existing} is not writable")
    return path


def default_output(mode: str, *names: str | Path | None) -> Path:
    """outputs/<mode>/<name>-<name>-<UTC timestamp>: never the folder of an earlier run."""
    parts: list = []
    for slug in (_slug(n) for n in names if n):
        if parts and slug.startswith(parts[-1] + "-"):  # sudoku6-hrm + sudoku6-hrm-data -> sudoku6-hrm-data
            parts[-1] = slug
        elif not parts or slug != parts[-1]:
            parts.append(slug)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path("outputs") / mode / "-".join([*parts, stamp])
    path, n = base, 1
    while path.exists():  # two runs in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _slug(name: str | Path) -> str:
    p = Path(name)
    # A step file is named after its run directory ("sudoku6-hrm-step_3750"), a dataset
    # directory after itself; `data` alone says nothing, so its parent is used.
    label = f"{p.parent.name}-{p.name}" if p.name.startswith("step_") or p.name in ("data", "") else p.name
    label = re.sub(r"\.(csv|jsonl|json)$", "", label)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_.-") or "run"


class OutputLock:
    """Held for a run: `with OutputLock(dir): ...`; a second holder gets a one-line error."""

    def __init__(self, directory: str | Path, flag: str = "--output"):
        self.directory = Path(directory)
        self.flag = flag
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> OutputLock:
        import fcntl

        check_writable_dir(self.directory, self.flag)
        self._created = not self.directory.exists()
        path = self.directory / LOCK_NAME
        try:  # the real test: permission bits say nothing for root, or on /proc, /sys, read-only mounts
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise HRMEvalError(f"{self.flag} {self.directory}: cannot write there ({e.strerror})") from None
        os.close(fd)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise HRMEvalError(
                        f"{self.flag} {self.directory}: another run is writing there now "
                        f"(it holds {path}); wait for it or choose another --output"
                    ) from None
                raise
            # The holder before us may have removed the file between our open and our flock:
            # then we hold a lock on a deleted file; take the lock again on the current one.
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd = fd
        try:  # who holds it, for a curious user; a full disk must not stop the run (or keep the lock)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):  # removed first, while still holding the lock,
            os.unlink(self.directory / LOCK_NAME)  # so that no one locks a file about to go
        os.close(self._fd)
        self._fd = None
        if self._created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                self.directory.rmdir()
