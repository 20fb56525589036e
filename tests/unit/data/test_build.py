"""build_dataset: dispatch through the registry, and malformed sources (clear error, nothing written)."""

from __future__ import annotations

import re
import sys

import pytest

from hrm_eval.data.build import build_dataset
from hrm_eval.utils.errors import HRMEvalError

HEADER = "source,question,answer,rating"
Q = "..2.8.6731.5...2..67.......21.7...9.46..5.......3.2..632.....8..5..2.96...1..7..."
A = "942581673135679248678234159213746895469158327587392416326915784754823961891467532"
GOOD = f"ceo,{Q},{A},52"

MQ = "######S  ## # ##  G######"
MA = "######Soo## #o##  G######"
MGOOD = f"ceo,{MQ},{MA},4"
MQ7 = "########S    ## ### ##     ## ### ##    G########"


def test_dispatch_to_each_task(tmp_path, official):
    for task in ("sudoku", "maze"):
        summary = build_dataset(task, official / f"{task}_raw", tmp_path / task)
        assert summary["task"] == task and summary["splits"]["test"]["examples"] == 40
    with pytest.raises(HRMEvalError, match="unknown task 'chess'"):
        build_dataset("chess", str(official / "sudoku_raw"), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


BAD_SUDOKU = {
    "too few columns": ([GOOD, f"ceo,{Q},{A}"], 3, "expected 4 columns"),
    "too many columns": ([GOOD, GOOD, f"{GOOD},extra"], 4, "expected 4 columns"),
    "short question": ([f"ceo,{Q[:-1]},{A},52"], 2, "question has 80 characters, expected 81"),
    "long answer": ([GOOD, f"ceo,{Q},{A}1,52"], 3, "answer has 82 characters, expected 81"),
    "bad question char": ([f"ceo,x{Q[1:]},{A},52"], 2, "question has character 'x' at position 0"),
    "blank in answer": ([f"ceo,{Q},.{A[1:]},52"], 2, "answer has character '.'"),
    "non-integer rating": ([GOOD, f"ceo,{Q},{A},hard"], 3, "rating 'hard' is not an integer"),
    "float rating": ([f"ceo,{Q},{A},5.5"], 2, "rating '5.5' is not an integer"),
    "bad header": (None, 1, "expected the header"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUDOKU))
def test_malformed_sudoku_csv(tmp_path, csv_lines, case):
    rows, line, reason = BAD_SUDOKU[case]
    lines = [GOOD] if rows is None else [HEADER] + rows
    path = csv_lines(tmp_path / "src" / "train.csv", lines)
    out = tmp_path / "out"
    with pytest.raises(HRMEvalError) as err:
        build_dataset("sudoku", str(tmp_path / "src"), str(out))
    msg = str(err.value)
    assert str(path) in msg and f"row {line}:" in msg and reason in msg, msg
    assert "\n" not in msg
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temporary directory left behind


def test_error_in_test_split_leaves_nothing_even_when_train_is_fine(tmp_path, csv_lines):
    csv_lines(tmp_path / "src" / "train.csv", [HEADER, GOOD])
    path = csv_lines(tmp_path / "src" / "test.csv", [HEADER, GOOD, GOOD, f"ceo,{Q},{A[:-1]}z,1"])
    with pytest.raises(HRMEvalError, match=re.escape(f"{path}, row 4: answer has character 'z'")):
        build_dataset("sudoku", str(tmp_path / "src"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_failed_build_keeps_an_existing_output(tmp_path, csv_lines):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    csv_lines(tmp_path / "src" / "test.csv", [HEADER, f"ceo,{Q},{A},x"])
    with pytest.raises(HRMEvalError):
        build_dataset("sudoku", str(tmp_path / "src"), str(out))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


BAD_MAZE = {
    "non-square": ([MGOOD, f"ceo,{MQ[:-1]},{MA[:-1]},4"], 3, "question has 24 characters, not a square grid"),
    "inconsistent sizes": ([MGOOD, MGOOD, f"ceo,{MQ7},{MQ7},8"], 4, "inconsistent maze sizes: this maze is 7x7"),
    "bad char": ([f"ceo,{MQ.replace('G', 'E')},{MA},4"], 2, "question has character 'E' at position 18"),
    "answer length": ([f"ceo,{MQ},{MA}#,4"], 2, "answer has 26 characters, question has 25"),
    "ragged": ([MGOOD, f"ceo,{MQ}"], 3, "expected 4 columns"),
    "rating": ([f"ceo,{MQ},{MA},four"], 2, "rating 'four' is not an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_MAZE))
def test_malformed_maze_csv(tmp_path, csv_lines, case):
    rows, line, reason = BAD_MAZE[case]
    path = csv_lines(tmp_path / "src" / "test.csv", [HEADER] + rows)
    with pytest.raises(HRMEvalError) as err:
        build_dataset("maze", str(tmp_path / "src"), str(tmp_path / "out"))
    msg = str(err.value)
    assert str(path) in msg and f"row {line}:" in msg and reason in msg, msg
    assert not (tmp_path / "out").exists()


def test_row_numbers_count_physical_lines(tmp_path, csv_lines):
    # a quoted source spanning two lines: the bad row is on line 4 of the file
    path = csv_lines(tmp_path / "src" / "test.csv", [HEADER, '"multi', f'line",{Q},{A},1', f"ceo,{Q},{A},?"])
    with pytest.raises(HRMEvalError, match=re.escape(f"{path}, row 4: rating '?'")):
        build_dataset("sudoku", str(tmp_path / "src"), str(tmp_path / "out"))


def test_missing_and_empty_sources(tmp_path, csv_lines):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HRMEvalError, match="neither train.csv nor test.csv"):
        build_dataset("sudoku", str(tmp_path / "empty"), str(tmp_path / "out"))
    with pytest.raises(HRMEvalError, match="not found"):
        build_dataset("maze", str(tmp_path / "nope"), str(tmp_path / "out"))
    csv_lines(tmp_path / "file.csv", [HEADER, GOOD])
    with pytest.raises(HRMEvalError, match="expected a folder"):
        build_dataset("sudoku", str(tmp_path / "file.csv"), str(tmp_path / "out"))
    (tmp_path / "hdr").mkdir()
    (tmp_path / "hdr" / "test.csv").write_text("")
    with pytest.raises(HRMEvalError, match="empty file"):
        build_dataset("sudoku", str(tmp_path / "hdr"), str(tmp_path / "out"))
    csv_lines(tmp_path / "only_header" / "test.csv", [HEADER])
    with pytest.raises(HRMEvalError, match="no puzzles"):
        build_dataset("sudoku", str(tmp_path / "only_header"), str(tmp_path / "out"))
    csv_lines(tmp_path / "easy" / "test.csv", [HEADER, GOOD])
    with pytest.raises(HRMEvalError, match="no puzzles with rating >= 53"):
        build_dataset("sudoku", str(tmp_path / "easy"), str(tmp_path / "out"), min_difficulty=53)
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "test.csv").write_bytes(HEADER.encode() + b"\r\nc\xe9o," + f"{Q},{A},1\r\n".encode())
    with pytest.raises(HRMEvalError, match="not UTF-8"):
        build_dataset("sudoku", str(tmp_path / "latin1"), str(tmp_path / "out"))
    with pytest.raises(HRMEvalError, match="num_aug must be >= 0"):
        build_dataset("sudoku", str(tmp_path / "easy"), str(tmp_path / "out"), num_aug=-1)
    assert not (tmp_path / "out").exists()


def test_hub_name_without_huggingface_hub(tmp_path, monkeypatch):
    # The test extra installs huggingface_hub; None in sys.modules makes its import fail as it
    # does where the hub extra is not installed.
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(HRMEvalError, match="huggingface_hub is not installed") as err:
        build_dataset("sudoku", "sapientinc/sudoku-extreme", str(tmp_path / "out"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
