"""Reading a raw public-layout CSV: a file without puzzle rows is a one-line error, not a crash later."""

from __future__ import annotations

import pytest

from hrm_eval.data.csv_source import read_puzzle_csv
from hrm_eval.data.tasks import get_task
from hrm_eval.utils import HRMEvalError


def _any_row(question: str, answer: str) -> None:
    return None


@pytest.mark.parametrize(
    "text",
    ["source,question,answer,rating\r\n", "source,question,answer,rating", "source,question,answer,rating\r\n\r\n\r\n"],
)
def test_header_only_csv(tmp_path, text):
    f = tmp_path / "test.csv"
    f.write_text(text)
    with pytest.raises(HRMEvalError) as e:
        read_puzzle_csv(str(f), _any_row)
    assert str(e.value) == f"{f}: no puzzles (only the header source,question,answer,rating)"
    # The task reader (what `--data file.csv` uses) stacks the rows: it used to fail on the empty list.
    with pytest.raises(HRMEvalError, match="no puzzles"):
        get_task("sudoku6").read_csv_puzzles(str(f))


def test_one_row_is_enough(tmp_path):
    f = tmp_path / "test.csv"
    f.write_text("source,question,answer,rating\r\nx,q,a,3\r\n")
    rows = read_puzzle_csv(str(f), _any_row)
    assert rows.questions == ["q"] and rows.answers == ["a"] and rows.ratings == [3] and rows.lines == [2]
