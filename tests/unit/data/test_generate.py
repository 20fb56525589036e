"""Generators: unique Sudoku solutions, valid mazes, determinism, CSV round trip through build."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hrm_eval.data.build import build_dataset
from hrm_eval.data.csv_source import write_csv
from hrm_eval.data.generate import generate_csvs
from hrm_eval.data.tasks import get_task
from hrm_eval.data.tasks.maze import encode as maze_encode
from hrm_eval.data.tasks.maze import shortest_distances
from hrm_eval.data.tasks.sudoku_generator import count_solutions, solve_sudoku
from hrm_eval.utils.errors import HRMEvalError

SUDOKU_GEN = get_task("sudoku")  # 9x9 by default; `size` asks for 4x4 or 6x6
MAZE_GEN = get_task("maze")


# --------------------------------------------------------------------------- solver


def test_solver_counts(sudoku_rows):
    q, a, _ = sudoku_rows[0]
    assert count_solutions(q) == 1
    assert solve_sudoku(q) == a
    assert count_solutions(a) == 1
    assert count_solutions("." * 16, limit=1000) == 288  # all 4x4 Sudoku grids
    assert count_solutions("." * 81, limit=2) == 2
    assert count_solutions("11" + "." * 79) == 0  # clashing givens
    assert solve_sudoku("11" + "." * 14) is None
    two = list(a)
    two[0] = two[1] = "."  # may or may not stay unique; the count is what a brute check says
    brute = sum(1 for x in "123456789" for y in "123456789" if count_solutions(x + y + a[2:]) == 1)
    assert count_solutions("".join(two), limit=10) == brute


# --------------------------------------------------------------------------- Sudoku generator


@pytest.mark.parametrize("size,lo,hi,num", [(9, 20, 40, 40), (9, 45, 52, 8), (6, 14, 22, 30), (4, 6, 11, 30)])
def test_generated_sudokus_are_unique_and_verify(size, lo, hi, num):
    task = get_task({9: "sudoku", 6: "sudoku6", 4: "sudoku4"}[size])
    rows = SUDOKU_GEN.generate(num, size=size, min_blanks=lo, max_blanks=hi, seed=123)
    assert len(rows) == num
    for q, a, rating in rows:
        assert len(q) == len(a) == size * size
        assert rating == q.count(".") and lo <= rating <= hi
        assert count_solutions(q, limit=2) == 1
        assert solve_sudoku(q) == a
        assert all(qc in (".", ac) for qc, ac in zip(q, a))
        assert task.verify(task.encode(q), task.encode(a), None)
    assert len({r for _, _, r in rows}) > 1  # difficulties spread over the range


def test_sudoku_generator_is_seeded():
    assert SUDOKU_GEN.generate(5, seed=1) == SUDOKU_GEN.generate(5, seed=1)
    assert SUDOKU_GEN.generate(5, seed=1) != SUDOKU_GEN.generate(5, seed=2)
    assert SUDOKU_GEN.generate(3, seed=1) == SUDOKU_GEN.generate(5, seed=1)[:3]


def test_sudoku_generator_arguments():
    with pytest.raises(HRMEvalError, match="at most 64 blanks"):
        SUDOKU_GEN.generate(1, min_blanks=20, max_blanks=70)
    with pytest.raises(HRMEvalError, match="min_blanks <= max_blanks"):
        SUDOKU_GEN.generate(1, min_blanks=30, max_blanks=20)
    with pytest.raises(HRMEvalError, match="size must be one of"):
        SUDOKU_GEN.generate(1, size=5)


# --------------------------------------------------------------------------- maze generator


@pytest.mark.parametrize("n", [5, 11, 15, 16])
def test_generated_mazes_verify(n):
    maze = get_task("maze")
    rows = MAZE_GEN.generate(20, size=n, seed=4)
    for q, a, rating in rows:
        assert len(q) == len(a) == n * n
        assert q.count("S") == q.count("G") == 1 and "o" not in q
        grid = np.array(list(q)).reshape(n, n)
        assert (grid[0] == "#").all() and (grid[-1] == "#").all()
        assert (grid[:, 0] == "#").all() and (grid[:, -1] == "#").all()
        inp = maze_encode(q)
        assert shortest_distances(inp, q.index("S"))[q.index("G")] == rating >= 1
        assert a.count("o") == rating - 1
        assert maze.verify(inp, maze_encode(a), None)


def test_maze_generator_is_seeded_and_has_loops():
    assert MAZE_GEN.generate(4, size=15, seed=3) == MAZE_GEN.generate(4, size=15, seed=3)
    assert MAZE_GEN.generate(4, size=15, seed=3) != MAZE_GEN.generate(4, size=15, seed=4)
    # with loops, some mazes have several shortest paths: the answer picks one, deterministically
    rows = MAZE_GEN.generate(30, size=11, seed=0, loop_fraction=0.5)
    several = 0
    for q, _, rating in rows:
        inp = maze_encode(q)
        d_s = shortest_distances(inp, q.index("S"))
        d_g = shortest_distances(inp, q.index("G"))
        on_some_shortest = ((d_s >= 0) & (d_g >= 0) & (d_s + d_g == rating)).sum()
        several += on_some_shortest > rating + 1
    assert several > 0
    with pytest.raises(HRMEvalError):
        MAZE_GEN.generate(1, size=3)


# --------------------------------------------------------------------------- CSVs


def test_write_csv_layout_and_determinism(tmp_path):
    rows = SUDOKU_GEN.generate(3, size=4, seed=0)
    write_csv(rows, tmp_path / "a.csv")
    write_csv(SUDOKU_GEN.generate(3, size=4, seed=0), tmp_path / "b.csv")
    raw = (tmp_path / "a.csv").read_bytes()
    assert raw == (tmp_path / "b.csv").read_bytes()
    assert raw.startswith(b"source,question,answer,rating\r\nhrm-eval-generator,")
    with open(tmp_path / "a.csv", newline="") as f:
        assert [(q, a, int(r)) for _, q, a, r in list(csv.reader(f))[1:]] == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]  # no temp files left


@pytest.mark.parametrize("task,options", [("sudoku", {}), ("sudoku4", {}), ("maze", {"size": 9})])
def test_generated_csvs_round_trip_through_build(tmp_path, task, options):
    paths = generate_csvs(task, tmp_path / "src", num_train=20, num_test=8, seed=9, **options)
    again = generate_csvs(task, tmp_path / "src2", num_train=20, num_test=8, seed=9, **options)
    for split in ("train", "test"):
        assert Path(paths[split]).read_bytes() == Path(again[split]).read_bytes()
    rows = {}
    for split in ("train", "test"):
        with open(paths[split], newline="") as f:
            rows[split] = [(q, a) for _, q, a, _ in list(csv.reader(f))[1:]]
    assert len(rows["train"]) == 20 and len(rows["test"]) == 8
    assert not {q for q, _ in rows["train"]} & {q for q, _ in rows["test"]}

    build_dataset(task, str(tmp_path / "src"), str(tmp_path / "out"))
    t = get_task(task)
    for split in ("train", "test"):
        inputs = np.load(tmp_path / "out" / split / "all__inputs.npy")
        labels = np.load(tmp_path / "out" / split / "all__labels.npy")
        assert [(t.decode(i), t.decode(y)) for i, y in zip(inputs, labels)] == rows[split]
        assert all(t.verify(i, y, y) for i, y in zip(inputs, labels))


def test_generate_csvs_unknown_task(tmp_path):
    with pytest.raises(HRMEvalError, match=r"no generator for task 'arc' \(have: maze, sudoku, sudoku4, sudoku6\)"):
        generate_csvs("arc", tmp_path, num_train=1, num_test=1)
    # an option of another task's generator is named, not silently dropped
    with pytest.raises(HRMEvalError, match="the maze generator takes no max_blanks, min_blanks"):
        generate_csvs("maze", tmp_path, num_train=1, num_test=1, min_blanks=3, max_blanks=5)
    with pytest.raises(HRMEvalError, match="the sudoku4 generator takes no loop_fraction"):
        generate_csvs("sudoku4", tmp_path, num_train=1, num_test=1, loop_fraction=0.2)
    assert not any(tmp_path.iterdir())
