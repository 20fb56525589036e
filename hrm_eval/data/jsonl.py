"""Puzzles as JSON lines, for evaluating a handful of puzzles without building a directory.

    {"puzzle_id": "p1", "input_sequence": [...], "target_sequence": [...], "puzzle_identifier": 0}

Sequences are token ids in the model's vocabulary (the task's token layout); `target_sequence`
may use -100 for positions that are not scored; `puzzle_identifier` is optional (default 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

IGNORE = -100  # a label position that is not known / not scored
_MAX_TOKEN = np.iinfo(np.int32).max  # ids are stored as int32; a larger one would overflow, not fail cleanly


def read_jsonl_puzzles(
    path: str | Path, vocab_size: int | None = None, *, targets_optional: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(inputs [N, L] int32, labels [N, L] int32, puzzle_identifiers [N] int32, names).

    With `vocab_size` (the checkpoint's), a token outside 0..vocab_size-1 is an error naming its
    line. With `targets_optional` (puzzles to solve) a line may leave out target_sequence: its
    labels are all -100 (nothing known)."""
    path = guarded.expect_file(path, "puzzle file")
    inputs: list[list[int]] = []
    labels: list[list[int]] = []
    ids: list[int] = []
    names: list[str] = []
    seq_len: int | None = None
    with open(path, "rb") as f:  # bytes: a line that is not UTF-8 is reported with its number
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            rec = _parse_line(raw, where)
            if rec is None:
                continue
            if targets_optional and "target_sequence" not in rec:
                rec = {**rec, "target_sequence": [IGNORE] * len(rec.get("input_sequence") or [])}
            x, y = _sequences(rec, where)
            if seq_len is None:
                seq_len = len(x)
            elif len(x) != seq_len:
                raise HRMEvalError(f"{where}: sequence length {len(x)} differs from the first puzzle's {seq_len}")
            if vocab_size is not None:
                _check_vocabulary(x, y, vocab_size, where)
            pid = _identifier(rec.get("puzzle_identifier", 0), where)
            inputs.append(x)
            labels.append(y)
            ids.append(pid)
            names.append(str(rec.get("puzzle_id", len(names))))
    if not inputs:
        raise HRMEvalError(f"{path}: no puzzles")
    return (np.asarray(inputs, np.int32), np.asarray(labels, np.int32), np.asarray(ids, np.int32), names)


def _identifier(pid: object, where: str) -> int:
    """The puzzle_identifier, with the reason it is refused (1e20 was called "negative")."""
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise HRMEvalError(f"{where}: puzzle_identifier must be an integer, got {pid!r}")
    if pid < 0:
        raise HRMEvalError(f"{where}: puzzle_identifier must be non-negative, got {pid}")
    if pid > _MAX_TOKEN:
        raise HRMEvalError(f"{where}: puzzle_identifier {pid} is beyond the largest possible, {_MAX_TOKEN}")
    return pid


def _parse_line(raw: bytes, where: str) -> dict | None:
    """The JSON object on one line (None for a blank line)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HRMEvalError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start} of the line)") from None
    if not line.strip():
        return None
    rec = guarded.parse_json(line, where)
    if not isinstance(rec, dict):
        raise HRMEvalError(f"{where}: expected a JSON object")
    return rec


def _sequences(rec: dict, where: str) -> tuple[list[int], list[int]]:
    """input_sequence and target_sequence, checked: equal non-zero lengths, integer ids in range."""
    missing = [k for k in ("input_sequence", "target_sequence") if k not in rec]
    if missing:
        why = (
            " (evaluation scores against it; --mode solve takes puzzles without answers)"
            if missing[0] == "target_sequence"
            else ""
        )
        raise HRMEvalError(f"{where}: missing field {missing[0]}{why}")
    x, y = rec["input_sequence"], rec["target_sequence"]
    for key, seq in (("input_sequence", x), ("target_sequence", y)):
        if not isinstance(seq, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seq):
            raise HRMEvalError(f"{where}: {key} must be a list of integer token ids")
    if len(x) != len(y):
        raise HRMEvalError(f"{where}: input_sequence has {len(x)} tokens but target_sequence {len(y)}")
    if not x:
        raise HRMEvalError(f"{where}: input_sequence is empty")
    if any(t < 0 for t in x) or any(t < 0 and t != -100 for t in y):
        raise HRMEvalError(f"{where}: negative token id (only -100 is allowed, in target_sequence)")
    if any(t > _MAX_TOKEN for t in x) or any(t > _MAX_TOKEN for t in y):
        raise HRMEvalError(f"{where}: token id above {_MAX_TOKEN} (not a token of any vocabulary)")
    return x, y


def _check_vocabulary(x: list[int], y: list[int], vocab_size: int, where: str) -> None:
    for key, seq in (("input_sequence", x), ("target_sequence", y)):
        bad = next((t for t in seq if t >= vocab_size), None)
        if bad is not None:
            raise HRMEvalError(f"{where}: {key} has token {bad} outside the vocabulary 0..{vocab_size - 1}")
