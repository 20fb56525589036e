"""Logging for every mode: readable lines on the console, one JSON object per line in a file.

    setup_logging("INFO", "run.log.jsonl", mode="evaluate")
    log.info("checkpoint %s", path, extra={"checkpoint_sha256": sha, "puzzles": 300})

The console shows `LEVEL message`; the file (`--log-file`) holds, for each record, `time`
(UTC, ISO 8601), `level`, `logger`, `message`, the context given to `setup_logging` (the mode)
and every structured field the call passed with `extra=` (checkpoint sha, puzzles done,
metrics, ...). One level applies to both. A record with `extra={"console": False}` goes to the
file only (progress counts while a progress bar already shows them).

The package logs under the `hrm_eval` logger; the handlers set up here hang there, so a
program that imports hrm_eval keeps its own logging set-up untouched.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.guarded import path_kind

PACKAGE_LOGGER = "hrm_eval"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CONSOLE_FORMAT = "%(levelname)s %(message)s"
# Attributes every LogRecord has: whatever else a record holds came from `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "console"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, context, extra fields."""

    def __init__(self, context: dict[str, Any] | None = None):
        super().__init__()
        self.context = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.context,
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # default=str: a Path, a dtype or a numpy number in `extra` must never break a log line
        return json.dumps(out, default=_jsonable, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return str(value)


class _Stderr(logging.StreamHandler):
    """A stream handler on whatever sys.stderr is when a record is written (a test's capture, a
    redirect made after set-up), never a stale stream object."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


def setup_logging(level: str = "INFO", log_file: str | Path | None = None, **context: Any) -> Path | None:
    """Console handler (stderr) and, with `log_file`, a JSON-lines file handler (appended to)
    on the `hrm_eval` logger, both at `level`. Calling it again replaces what an earlier call
    set up. `context` (e.g. mode="evaluate") is added to every JSON line. Returns the log file."""
    if level not in LEVELS:
        raise HRMEvalError(f"--log-level {level!r}: expected one of {', '.join(LEVELS)}")
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "_hrm_eval", False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    # The handlers here are the one place a line is printed: onnxruntime's quantizer (and other
    # libraries) call logging.basicConfig, and through the root logger every line came out twice.
    logger.propagate = False

    console = _Stderr()
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    console.addFilter(_ConsoleFilter())
    _add(logger, console, level)  # first: a --log-file refused below is still said on the console, once
    path = Path(log_file).expanduser() if log_file else None
    if path is not None:
        _add(logger, _file_handler(path, context), level)
    return path


def _add(logger: logging.Logger, handler: logging.Handler, level: str) -> None:
    handler._hrm_eval = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    logger.addHandler(handler)


class _LogFile(logging.FileHandler):
    """A log file whose first failing write (a full disk, /dev/full, a vanished mount) is one
    warning line on stderr, after which it stays quiet: logging's default is a traceback per
    record, and the run itself must not suffer for its log."""

    _failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self._failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if self._failed:
            return
        self._failed = True
        e = sys.exc_info()[1]
        why = e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or type(e).__name__)
        sys.stderr.write(f"warning: --log-file {self.baseFilename}: cannot write ({why}); not logging there any more\n")

    def flush(self) -> None:
        try:
            super().flush()
        except OSError:
            self.handleError(logging.makeLogRecord({}))

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # the last buffered lines could not be written either; said once already
            self._failed = True


def _file_handler(path: Path, context: dict[str, Any]) -> logging.Handler:
    """The JSON-lines handler. The target is checked before it is opened: a FIFO would block the
    open until some reader appears (forever, before any output), a directory cannot take lines."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # not there yet: created below
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):  # /dev/null is a fine target
        raise HRMEvalError(f"--log-file {path} is a {path_kind(mode)}, expected a regular file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path, mode="a", encoding="utf-8")
    except OSError as e:
        raise HRMEvalError(f"--log-file {path}: cannot open ({e.strerror or e})") from None
    handler.setFormatter(JsonLinesFormatter(context))
    return handler


class ProgressLog:
    """Progress counts as log records, at most one per `every_s` seconds plus the last one:
    `update(n, exact=0.93)` after each batch of n finished puzzles."""

    def __init__(
        self, logger: logging.Logger, total: int, *, what: str = "puzzles", every_s: float = 10.0, console: bool = True
    ):
        self.logger, self.total, self.what, self.every_s, self.console = logger, total, what, every_s, console
        self.done = 0
        self._last = time.monotonic()

    def update(self, n: int, **fields: Any) -> None:
        self.done += n
        now = time.monotonic()
        if self.done < self.total and now - self._last < self.every_s:
            return
        self._last = now
        shown = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        self.logger.info(
            "%d/%d %s%s",
            self.done,
            self.total,
            self.what,
            f" ({shown})" if shown else "",
            extra={
                "event": "progress",
                f"{self.what}_done": self.done,
                f"{self.what}_total": self.total,
                "console": self.console,
                **fields,
            },
        )


def log_metrics(logger: logging.Logger, metrics: dict[str, Any], what: str = "metrics", **fields: Any) -> None:
    """Final metrics as one record: `event: metrics` with the whole dict in the JSON log, the
    headline numbers on the console."""
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("exact_accuracy", "accuracy") if k in metrics)
    logger.info("%s: %s", what, shown or "none", extra={"event": "metrics", "metrics": metrics, **fields})
