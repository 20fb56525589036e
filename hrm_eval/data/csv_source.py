"""Raw puzzle CSVs in the public layout: finding them, fetching them, reading and checking them.

A source is either a local folder holding `train.csv` and/or `test.csv`, or the name of a
Hugging Face Hub dataset (`owner/name`, e.g. `sapientinc/sudoku-extreme`) whose files of the
same names are downloaded (``huggingface_hub`` is an optional dependency).

Every CSV has the header ``source,question,answer,rating`` followed by one puzzle per row.
Rows are checked as they are read; the first problem raises `HRMEvalError` naming the file,
the 1-based line number in the file (the header is line 1) and the reason.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write

SPLITS = ("train", "test")
HEADER = ("source", "question", "answer", "rating")

# evaluation scores against the answers; a file of puzzles nobody has solved is for --mode solve
_NO_ANSWER = "no answer (evaluation scores against the answer; --mode solve takes puzzles without answers)"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class RawPuzzles:
    """The rows of one CSV that passed the checks (and the difficulty filter), in file order."""

    path: str
    questions: list[str]
    answers: list[str]
    ratings: list[int]
    lines: list[int]  # 1-based line number of each row in the file

    def __len__(self) -> int:
        return len(self.questions)


class RowError(ValueError):
    """Raised by a row checker; `read_puzzle_csv` turns it into an HRMEvalError with file/line."""


# --------------------------------------------------------------------------- locating sources


def resolve_source(source: str, splits: Sequence[str] = SPLITS) -> dict[str, str]:
    """Map each split present in `source` to a local CSV path.

    A local folder wins over a hub name of the same spelling. Raises HRMEvalError when neither
    `train.csv` nor `test.csv` can be found."""
    src = os.fspath(source)
    if os.path.isdir(src):
        found = {s: os.path.join(src, f"{s}.csv") for s in splits if os.path.isfile(os.path.join(src, f"{s}.csv"))}
        if not found:
            raise HRMEvalError(f"{src}: neither train.csv nor test.csv found in this folder")
        return found
    if os.path.exists(src):
        raise HRMEvalError(f"{src}: expected a folder holding train.csv and/or test.csv, not a file")
    if not _HUB_NAME.match(src):
        raise HRMEvalError(
            f"source '{src}' not found: give a folder holding train.csv and/or test.csv "
            f"or a Hugging Face dataset name such as sapientinc/sudoku-extreme"
        )
    return fetch_from_hub(src, splits)


def fetch_from_hub(repo: str, splits: Sequence[str] = SPLITS) -> dict[str, str]:
    """Download `<split>.csv` of the hub dataset `repo`; splits the repository lacks are skipped."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise HRMEvalError(
            f"'{repo}' is not a local folder and huggingface_hub is not installed: "
            f"pip install 'hrm-eval[hub]', or download train.csv/test.csv into a folder "
            f"and pass that folder"
        ) from None

    found: dict[str, str] = {}
    for split in splits:
        try:
            found[split] = hf_hub_download(repo, f"{split}.csv", repo_type="dataset")
        except Exception as e:  # noqa: BLE001 - the hub's exception classes differ between versions: sort by name
            kinds = {c.__name__ for c in type(e).__mro__}
            if "EntryNotFoundError" in kinds and "LocalEntryNotFoundError" not in kinds:
                continue  # this split is not in the repository
            if "RepositoryNotFoundError" in kinds:
                raise HRMEvalError(f"hub dataset '{repo}' not found (or private) on the Hugging Face Hub") from None
            if "LocalEntryNotFoundError" in kinds or "OfflineModeIsEnabled" in kinds or isinstance(e, OSError):
                raise HRMEvalError(
                    f"could not fetch {split}.csv of hub dataset '{repo}' (offline or network "
                    f"error: {_one_line(e)}); download it into a folder and pass that folder"
                ) from None
            raise HRMEvalError(f"could not fetch {split}.csv of hub dataset '{repo}': {_one_line(e)}") from None
    if not found:
        raise HRMEvalError(f"hub dataset '{repo}' has neither train.csv nor test.csv")
    return found


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- reading rows


def check_charset(text: str, allowed: str, what: str) -> None:
    """Raise RowError naming the first character of `text` not in `allowed`."""
    if text.strip(allowed):  # strip removes everything only when every character is allowed
        bad = next(c for c in text if c not in allowed)
        raise RowError(f"{what} has character {bad!r} at position {text.index(bad)} (allowed: {allowed!r})")


def read_puzzle_csv(
    path: str,
    check_row: Callable[[str, str], None],
    min_difficulty: int | None = None,
    *,
    answers_optional: bool = False,
) -> RawPuzzles:
    """Read a public-layout puzzle CSV.

    `check_row(question, answer)` raises RowError for a bad row. Ratings must be integers.
    Rows whose rating is below `min_difficulty` are dropped (after their checks). Completely
    empty lines are skipped; a file without any puzzle row is an error. With `answers_optional`
    (puzzles to solve) a row may leave answer and rating empty: its answer is '' and its
    question is left for the caller to check (`check_row` sees rows with answers only)."""
    out = RawPuzzles(path=str(path), questions=[], answers=[], ratings=[], lines=[])
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            _check_header(path, next(reader, None))
            rows_seen = _read_rows(reader, out, check_row, min_difficulty, answers_optional)
        except RowError as e:  # raised while the row that ends on line `reader.line_num` is checked
            raise HRMEvalError(f"{path}, row {reader.line_num}: {e}") from None
        except UnicodeDecodeError as e:
            raise HRMEvalError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except csv.Error as e:
            raise HRMEvalError(f"{path}, row {reader.line_num}: malformed CSV ({e})") from None
    if rows_seen == 0:  # callers stack the rows: an empty list must not reach them
        raise HRMEvalError(f"{path}: no puzzles (only the header {','.join(HEADER)})")
    return out


def _open_text(path: str) -> TextIO:
    """`path` opened for the csv module (UTF-8, newlines left to it), or one line saying why not."""
    try:
        return open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise HRMEvalError(f"{path}: cannot open ({e.strerror or e})") from None


def _check_header(path: str, header: list[str] | None) -> None:
    """The first row must be HEADER (any case, spaces and a UTF-8 byte-order mark allowed)."""
    if header is None:
        raise HRMEvalError(f"{path}: empty file (expected the header {','.join(HEADER)})")
    names = tuple(h.strip().lower().lstrip("\ufeff") for h in header)
    if names != HEADER:
        raise HRMEvalError(f"{path}, row 1: expected the header {','.join(HEADER)}, found {','.join(header)[:80]!r}")


def _read_rows(
    reader: Any,  # a csv.reader: its rows, and line_num (the file line a row ends on)
    out: RawPuzzles,
    check_row: Callable[[str, str], None],
    min_difficulty: int | None,
    answers_optional: bool,
) -> int:
    """Append each checked row at or above `min_difficulty` to `out`; returns the number of
    puzzle rows in the file (empty lines not counted), kept or not."""
    rows_seen = 0
    for row in reader:
        if not row:
            continue
        rows_seen += 1
        question, answer, rating = _checked_row(row, check_row, answers_optional)
        if min_difficulty is not None and rating < min_difficulty:
            continue
        out.questions.append(question)
        out.answers.append(answer)
        out.ratings.append(rating)
        out.lines.append(reader.line_num)
    return rows_seen


def _checked_row(row: list[str], check_row: Callable[[str, str], None], answers_optional: bool) -> tuple[str, str, int]:
    """(question, answer, rating) of one CSV row, or RowError saying what is wrong with it."""
    if len(row) != 4:
        raise RowError(f"expected 4 columns (source,question,answer,rating), found {len(row)}")
    _, q, a, r = row
    if not a.strip() and not answers_optional:
        raise RowError(_NO_ANSWER)
    unsolved = answers_optional and not a.strip()
    try:
        rating = 0 if unsolved and not r.strip() else int(r)
    except ValueError:
        raise RowError(f"rating {r!r} is not an integer") from None
    if not unsolved:
        check_row(q, a)
    return q, a, rating


def read_splits(
    source: str, check_row: Callable[[str, str], None], min_difficulty: int | None = None
) -> dict[str, RawPuzzles]:
    """Resolve `source` and read every split it has, all checked before anything is built.
    A split left with no puzzles is an error."""
    paths = resolve_source(source)
    raw = {split: read_puzzle_csv(p, check_row, min_difficulty) for split, p in paths.items()}
    for rows in raw.values():
        if len(rows) == 0:
            why = f" with rating >= {min_difficulty}" if min_difficulty is not None else ""
            raise HRMEvalError(f"{rows.path}: no puzzles{why}")
    return raw


def check_num_aug(num_aug: int | None) -> int:
    """`--num-aug` as a count: None means 0; negative is an error."""
    num_aug = int(num_aug or 0)
    if num_aug < 0:
        raise HRMEvalError(f"num_aug must be >= 0, got {num_aug}")
    return num_aug


def strings_to_array(strings: list[str], length: int, table: np.ndarray) -> np.ndarray:
    """Encode equal-length ASCII strings to uint8 [N, length] through a 256-entry lookup table."""
    if not strings:
        return np.zeros((0, length), dtype=np.uint8)
    raw = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).reshape(len(strings), length)
    return table[raw]


def subsample_indices(total: int, size: int | None, rng: np.random.RandomState) -> np.ndarray | None:
    """Indices kept by the public builders' train subsampling (None: keep everything).

    Same draw as the public code (`np.random.choice(total, size, replace=False)`), here from a
    seeded RandomState rather than the global one."""
    if size is None:
        return None
    if size < 0:
        raise HRMEvalError(f"subsample_size must be >= 0, got {size}")
    if size >= total:
        return None
    return rng.choice(total, size=size, replace=False)


def write_csv(rows, path: str | os.PathLike, source: str = "hrm-eval-generator") -> None:
    """Write (question, answer, rating) rows in the public layout, atomically (temp file, rename)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)  # "\r\n" line ends, as in the public CSVs
            writer.writerow(HEADER)
            for question, answer, rating in rows:
                writer.writerow((source, question, answer, int(rating)))

    atomic_write(Path(path), write)
