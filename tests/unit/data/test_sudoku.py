"""Sudoku task: public-identical build, token helpers, verifier, augmentation, detection."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from hrm_eval.data.build import build_dataset
from hrm_eval.data.csv_source import write_csv
from hrm_eval.data.tasks import detect_task, get_task
from hrm_eval.data.tasks.sudoku_generator import count_solutions
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT

SUDOKU = get_task("sudoku")


def _pattern_grid(n=9, br=3, bc=3):
    """A valid n x n solution: the classic shifted pattern."""
    return np.array([[(bc * (r % br) + r // br + c) % n + 1 for c in range(n)] for r in range(n)])


def _deadly_rectangle(grid, br, bc):
    """Cells (r1,c1),(r1,c2),(r2,c1),(r2,c2) in two boxes holding a,b / b,a: swapping them keeps
    the board valid, so blanking them leaves exactly two solutions."""
    n = len(grid)
    for r1 in range(n):
        for r2 in range(r1 + 1, n):
            if r1 // br != r2 // br:
                continue
            for c1 in range(n):
                for c2 in range(c1 + 1, n):
                    if c1 // bc == c2 // bc:
                        continue
                    if grid[r1, c1] == grid[r2, c2] and grid[r1, c2] == grid[r2, c1]:
                        return [(r1, c1), (r1, c2), (r2, c1), (r2, c2)]
    return None


def _two_solution_case(task):
    """A generated solution with 4 cells blanked so that the puzzle has exactly two solutions."""
    for _, answer, _ in task.generate(30, seed=0):
        grid = task.to_grid(task.encode(answer))
        cells = _deadly_rectangle(grid, task.box_rows, task.box_cols)
        if cells is not None:
            break
    assert cells is not None
    puzzle = grid.copy()
    alt = grid.copy()
    for r, c in cells:
        puzzle[r, c] = 0
    (r1, c1), (_, c2), (r2, _), _ = cells
    alt[r1, c1], alt[r1, c2], alt[r2, c1], alt[r2, c2] = grid[r1, c2], grid[r1, c1], grid[r2, c2], grid[r2, c1]
    return grid, puzzle, alt, cells


# --------------------------------------------------------------------------- build


def test_build_matches_public_builder_byte_for_byte(tmp_path, official, same_tree):
    summary = build_dataset("sudoku", str(official / "sudoku_raw"), str(tmp_path / "out"))
    same_tree(official / "sudoku_built", tmp_path / "out")
    assert summary["splits"]["test"]["examples"] == 40
    assert np.load(tmp_path / "out" / "test" / "all__inputs.npy").dtype == np.uint8


def test_build_both_splits_and_min_difficulty(tmp_path, sudoku_train_dir, sudoku_rows):
    out = tmp_path / "out"
    build_dataset("sudoku", str(sudoku_train_dir), str(out), min_difficulty=55)
    keep = [q for q, _, r in sudoku_rows if r >= 55]
    assert 0 < len(keep) < len(sudoku_rows)
    for split in ("train", "test"):
        inputs = np.load(out / split / "all__inputs.npy")
        assert [SUDOKU.decode(x) for x in inputs] == keep
        meta = json.loads((out / split / "dataset.json").read_text())
        assert meta["total_groups"] == len(keep)


def test_subsample_is_seeded_and_train_only(tmp_path, sudoku_train_dir, sudoku_rows):
    def build(seed, name):
        build_dataset("sudoku", str(sudoku_train_dir), str(tmp_path / name), subsample_size=7, seed=seed)
        return np.load(tmp_path / name / "train" / "all__inputs.npy")

    a, b, c = build(3, "a"), build(3, "b"), build(4, "c")
    assert a.shape == (7, 81)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    questions = {q for q, _, _ in sudoku_rows}
    assert all(SUDOKU.decode(x) in questions for x in a)
    assert len({SUDOKU.decode(x) for x in a}) == 7  # without replacement
    assert np.load(tmp_path / "a" / "test" / "all__inputs.npy").shape == (40, 81)


# --------------------------------------------------------------------------- token helpers


def test_encode_decode_round_trip(sudoku_rows):
    q, a, _ = sudoku_rows[0]
    tokens = SUDOKU.encode(q)
    assert tokens.dtype == np.uint8 and tokens.shape == (81,)
    assert SUDOKU.decode(tokens) == q
    assert SUDOKU.decode(SUDOKU.encode(a)) == a
    grid = SUDOKU.to_grid(SUDOKU.encode(a))
    assert grid.shape == (9, 9) and grid[0, 0] == int(a[0])
    assert np.array_equal(SUDOKU.from_grid(grid), SUDOKU.encode(a))
    assert np.all(SUDOKU.to_grid(SUDOKU.encode(q))[np.array(list(q)).reshape(9, 9) == "."] == 0)
    with pytest.raises(HRMEvalError):
        SUDOKU.encode(q[:80])
    with pytest.raises(HRMEvalError):
        SUDOKU.encode("x" + q[1:])


# --------------------------------------------------------------------------- verifier


def test_fixture_labels_verify(official):
    inputs = np.load(official / "sudoku_built" / "test" / "all__inputs.npy")
    labels = np.load(official / "sudoku_built" / "test" / "all__labels.npy")
    assert all(SUDOKU.verify(i, y, y) for i, y in zip(inputs, labels))
    # a label of another puzzle is a valid board but breaks this puzzle's givens
    assert not SUDOKU.verify(inputs[0], labels[1], labels[0])


@pytest.mark.parametrize("name", ["sudoku", "sudoku6", "sudoku4"])
def test_alternative_solution_accepted_and_near_misses_rejected(name):
    task = get_task(name)
    grid, puzzle, alt, cells = _two_solution_case(task)
    assert count_solutions(puzzle.reshape(-1).tolist(), limit=3) == 2
    inp, label, other = task.from_grid(puzzle), task.from_grid(grid), task.from_grid(alt)
    assert not np.array_equal(label, other)
    assert task.verify(inp, label, label)
    assert task.verify(inp, other, label)  # differs from the label, still right

    # two digits swapped inside a row (not at givens): columns break
    r, c = cells[0]
    bad = grid.copy()
    c2 = (c + 1) % task.n
    bad[r, c], bad[r, c2] = bad[r, c2], bad[r, c]
    assert not task.verify(inp, task.from_grid(bad), label)
    # a valid board that changes a given digit: give the label's digit at one rectangle cell
    (gr, gc) = cells[0]
    inp_with_given = inp.copy()
    inp_with_given[gr * task.n + gc] = label[gr * task.n + gc]
    assert task.verify(inp_with_given, label, label)
    assert not task.verify(inp_with_given, other, label)
    # a blank, the pad token and an out-of-range token
    for token in (1, 0, task.n + 2):
        t = label.copy()
        t[cells[0][0] * task.n + cells[0][1]] = token
        assert not task.verify(inp, t, label)
    # wrong length
    assert not task.verify(inp, label[:-1], label)


@pytest.mark.parametrize("name", ["sudoku", "sudoku6", "sudoku4"])
def test_verify_many_is_verify_row_by_row(name):
    """The batched rule check (test-time scaling runs it every ACT step) agrees with `verify` on
    solutions, an alternative solution, swapped digits, changed givens and stray tokens."""
    task = get_task(name)
    rows = task.generate(40, seed=5)
    inputs = np.stack([task.encode(q) for q, _, _ in rows]).astype(np.int64)
    answers = np.stack([task.encode(a) for _, a, _ in rows]).astype(np.int64)
    rng = np.random.default_rng(0)
    preds = answers.copy()
    for i in range(0, len(preds), 2):  # every other row damaged in one random cell
        preds[i, rng.integers(task.seq_len)] = rng.integers(task.vocab_size)
    grid, puzzle, alt, _ = _two_solution_case(task)
    inputs = np.vstack([inputs, task.from_grid(puzzle)[None], task.from_grid(puzzle)[None]])
    preds = np.vstack([preds, task.from_grid(alt)[None], task.from_grid(grid)[None]])
    expected = np.array([task.verify(i, p) for i, p in zip(inputs, preds)])
    np.testing.assert_array_equal(task.verify_many(inputs, preds), expected)
    assert expected[1::2][:20].all() and expected[-2:].all() and not expected[0:40:2].all()


def test_box_rule_is_checked():
    latin = np.array([[(r + c) % 9 + 1 for c in range(9)] for r in range(9)])  # rows/cols fine
    empty = np.ones(81, dtype=np.uint8)
    assert not SUDOKU.verify(empty, SUDOKU.from_grid(latin), None)
    assert SUDOKU.verify(empty, SUDOKU.from_grid(_pattern_grid()), None)


# --------------------------------------------------------------------------- augmentation


def _check_augmented(task, out, per_group, n_orig):
    inputs = np.load(out / "train" / "all__inputs.npy")
    labels = np.load(out / "train" / "all__labels.npy")
    groups = np.load(out / "train" / "all__group_indices.npy")
    puzzles = np.load(out / "train" / "all__puzzle_indices.npy")
    assert inputs.shape == (n_orig * per_group, task.seq_len)
    assert np.array_equal(groups, np.arange(0, n_orig * per_group + 1, per_group))
    assert np.array_equal(puzzles, np.arange(n_orig * per_group + 1))
    for i, y in zip(inputs, labels):
        assert task.verify(np.ones_like(i), y, y)  # the label is a complete valid board
        given = i != 1
        assert np.array_equal(i[given], y[given])  # givens agree with the label
        assert task.verify(i, y, y)
    for g in range(n_orig):  # augmented copies keep the number of givens and differ from it
        block = inputs[groups[g] : groups[g + 1]]
        assert len({int((x != 1).sum()) for x in block}) == 1
        assert any(not np.array_equal(block[0], x) for x in block[1:])
    meta = json.loads((out / "train" / "dataset.json").read_text())
    assert meta["total_groups"] == n_orig and meta["mean_puzzle_examples"] == 1.0
    return inputs, labels


def test_augmentation_valid_and_seeded(tmp_path, sudoku_train_dir, sudoku_rows):
    build_dataset("sudoku", str(sudoku_train_dir), str(tmp_path / "a"), num_aug=4, seed=11)
    build_dataset("sudoku", str(sudoku_train_dir), str(tmp_path / "b"), num_aug=4, seed=11)
    build_dataset("sudoku", str(sudoku_train_dir), str(tmp_path / "c"), num_aug=4, seed=12)
    inputs, _ = _check_augmented(SUDOKU, tmp_path / "a", 5, len(sudoku_rows))
    assert [SUDOKU.decode(x) for x in inputs[::5]] == [q for q, _, _ in sudoku_rows]  # originals first
    for name in ("inputs", "labels"):
        a = (tmp_path / "a" / "train" / f"all__{name}.npy").read_bytes()
        assert a == (tmp_path / "b" / "train" / f"all__{name}.npy").read_bytes()
        assert a != (tmp_path / "c" / "train" / f"all__{name}.npy").read_bytes()
    # the test split is never augmented
    assert np.load(tmp_path / "a" / "test" / "all__inputs.npy").shape == (40, 81)


@pytest.mark.parametrize("name,size", [("sudoku4", 4), ("sudoku6", 6)])
def test_small_boards_build_and_augment(tmp_path, name, size):
    task = get_task(name)
    rows = get_task(name).generate(12, seed=5)
    write_csv(rows, tmp_path / "src" / "train.csv")
    summary = build_dataset(name, str(tmp_path / "src"), str(tmp_path / "out"), num_aug=3, seed=1)
    assert summary["splits"]["train"]["examples"] == 48
    meta = json.loads((tmp_path / "out" / "train" / "dataset.json").read_text())
    assert (meta["vocab_size"], meta["seq_len"]) == (size + 2, size * size)
    _check_augmented(task, tmp_path / "out", 4, 12)
    # the same CSV is not a 9x9 source
    with pytest.raises(HRMEvalError, match=rf"train\.csv, row 2: question has {size * size} characters, expected 81"):
        build_dataset("sudoku", str(tmp_path / "src"), str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- detection


def test_matches_and_detection():
    from hrm_eval.data.tasks.maze import encode as maze_encode

    assert SUDOKU.matches(11, 81) and not SUDOKU.matches(11, 80) and not SUDOKU.matches(12, 81)
    assert detect_task(11, 81) is SUDOKU
    assert detect_task(8, 36) is get_task("sudoku6")
    four = get_task("sudoku4")
    sudoku4_inputs = np.stack([four.encode(q) for q, _, _ in four.generate(5, seed=2)])
    maze_inputs = np.stack([maze_encode("#S  # ##  G#####"), maze_encode("####S  G########")])
    assert four.matches(6, 16, sudoku4_inputs) and not four.matches(6, 16, maze_inputs)
    assert detect_task(6, 16, sudoku4_inputs) is four
    assert detect_task(6, 16, maze_inputs) is get_task("maze")
    assert detect_task(6, 16) is None  # ambiguous without inputs


# --------------------------------------------------------------------------- one puzzle (the service's path)

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


def test_one_puzzle_path_round_trips_the_bundled_data():
    """Every question of the bundled raw CSV encodes to the bundled dataset's input row, and
    every label row decodes to the CSV's answer."""
    six = get_task("sudoku6")
    with open(BUNDLED / "raw" / "test.csv", newline="") as f:
        rows = [(q, a) for _, q, a, _ in list(csv.reader(f))[1:]]
    inputs = np.load(BUNDLED / "data" / "test" / "all__inputs.npy")
    labels = np.load(BUNDLED / "data" / "test" / "all__labels.npy")
    assert len(rows) == len(inputs) == 1000
    for (q, a), x, y in zip(rows, inputs, labels):
        assert np.array_equal(six.encode_puzzle(q), x)
        assert six.decode_answer(y) == a


def test_parse_puzzle_reads_drawn_boards_and_json(sudoku_rows):
    six = get_task("sudoku6")
    q = "356.2..24.366..3422.36514312.556.4.."
    drawn = "\n".join(" ".join(q[r * 6 : r * 6 + 3]) + " | " + " ".join(q[r * 6 + 3 : r * 6 + 6]) for r in range(6))
    grid = [[0 if ch == "." else int(ch) for ch in q[r * 6 : r * 6 + 6]] for r in range(6)]
    assert six.parse_puzzle(drawn) == q
    assert six.parse_puzzle(q.replace(".", "0")) == q
    assert six.parse_puzzle(grid) == q and six.parse_puzzle(json.dumps(grid)) == q
    assert six.parse_puzzle(np.array(grid)) == q
    nine_q, nine_a, _ = sudoku_rows[0]
    assert SUDOKU.decode_answer(SUDOKU.encode_puzzle(nine_a)) == nine_a
    assert SUDOKU.decode_answer(SUDOKU.encode_puzzle(nine_q)) == nine_q


@pytest.mark.parametrize(
    "puzzle,message",
    [
        ("356.2..24.366..3422.36514312.556.4.", "must have 36 characters, got 35"),
        ("356.2..24.366..3422.36514312.556.4.7", "'7'"),
        ("356.2..24.366..3422.36514312.556.4.x", "'x'"),
        ([[1, 2, 3, 4, 5, 6]] * 5, "6 rows of 6 numbers"),
        ([[1, 2, 3, 4, 5, 7]] * 6, "cell value 7"),
        ("[[1, 2, 3", "not valid JSON"),
        (36, "text or a list of rows"),
    ],
)
def test_parse_puzzle_errors_are_one_line(puzzle, message):
    with pytest.raises(HRMEvalError, match=re.escape(message)) as e:
        get_task("sudoku6").parse_puzzle(puzzle)
    assert "\n" not in str(e.value) and "sudoku6" in str(e.value)


def test_difficulty_counts_the_blanks():
    task = get_task("sudoku6")
    boards = np.stack([task.encode("356.2..24.366..3422.36514312.556.4.."), task.encode("1" * 36)])
    assert task.difficulty_name == "blanks"
    assert task.difficulty(boards).tolist() == [11, 0]
