"""Maze task: public-identical build, dihedral augmentation, verifier, detection."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hrm_eval.data.build import build_dataset
from hrm_eval.data.grids import dihedral_transform
from hrm_eval.data.tasks import detect_task, get_task
from hrm_eval.data.tasks.maze import decode, encode, shortest_distances
from hrm_eval.utils.errors import HRMEvalError

MAZE = get_task("maze")

# S at (1,1), G at (5,5): every shortest path has 8 steps (7 `o` cells); several exist.
OPEN_MAZE = [
    "#######",
    "#S    #",
    "# ### #",
    "#     #",
    "# ### #",
    "#    G#",
    "#######",
]
PATH_TOP = {(1, 2), (1, 3), (1, 4), (1, 5), (2, 5), (3, 5), (4, 5)}
PATH_LEFT = {(2, 1), (3, 1), (4, 1), (5, 1), (5, 2), (5, 3), (5, 4)}
PATH_MIDDLE = {(2, 1), (3, 1), (3, 2), (3, 3), (3, 4), (3, 5), (4, 5)}
DETOUR = {
    (1, 2),
    (1, 3),
    (1, 4),
    (1, 5),
    (2, 5),
    (3, 5),
    (3, 4),
    (3, 3),
    (3, 2),
    (3, 1),
    (4, 1),
    (5, 1),
    (5, 2),
    (5, 3),
    (5, 4),
}


def _with(rows, marks, char="o"):
    grid = [list(r) for r in rows]
    for r, c in marks:
        grid[r][c] = char
    return "".join(map("".join, grid))


def _rows(text, n=7):
    return [text[i * n : (i + 1) * n] for i in range(n)]


def _ok(question_rows, answer_text):
    inp = encode("".join(question_rows))
    return MAZE.verify(inp, encode(answer_text), None)


# --------------------------------------------------------------------------- build


def test_build_matches_public_builder_byte_for_byte(tmp_path, official, same_tree):
    summary = build_dataset("maze", str(official / "maze_raw"), str(tmp_path / "out"))
    same_tree(official / "maze_built", tmp_path / "out")
    assert summary["splits"]["test"]["seq_len"] == 225


def test_encode_decode(maze_rows):
    q, a, _ = maze_rows[0]
    assert decode(encode(q)) == q and decode(encode(a)) == a
    assert set(np.unique(encode(a)).tolist()) == {1, 2, 3, 4, 5}
    assert MAZE.to_grid(encode(q)).shape == (15, 15)
    with pytest.raises(HRMEvalError):
        encode(q[:-1])
    with pytest.raises(HRMEvalError):
        encode("x" + q[1:])


def test_dihedral_augmentation_is_the_public_one(tmp_path, maze_train_dir, maze_rows):
    build_dataset("maze", str(maze_train_dir), str(tmp_path / "out"), num_aug=1)
    inputs = np.load(tmp_path / "out" / "train" / "all__inputs.npy")
    labels = np.load(tmp_path / "out" / "train" / "all__labels.npy")
    groups = np.load(tmp_path / "out" / "train" / "all__group_indices.npy")
    assert inputs.shape == (8 * len(maze_rows), 225)
    assert np.array_equal(groups, np.arange(0, 8 * len(maze_rows) + 1, 8))
    reference = [
        lambda g: g,
        lambda g: np.rot90(g, 1),
        lambda g: np.rot90(g, 2),
        lambda g: np.rot90(g, 3),
        np.fliplr,
        np.flipud,
        lambda g: g.T,
        lambda g: np.fliplr(np.rot90(g, 1)),
    ]
    for k, (q, a, _) in enumerate(maze_rows[:5]):
        grid_q, grid_a = encode(q).reshape(15, 15), encode(a).reshape(15, 15)
        for t, f in enumerate(reference):
            assert np.array_equal(inputs[8 * k + t].reshape(15, 15), f(grid_q))
            assert np.array_equal(labels[8 * k + t].reshape(15, 15), f(grid_a))
            assert np.array_equal(dihedral_transform(grid_q, t), f(grid_q))
    assert all(MAZE.verify(i, y, y) for i, y in zip(inputs, labels))
    meta = json.loads((tmp_path / "out" / "train" / "dataset.json").read_text())
    assert meta["total_groups"] == len(maze_rows) and meta["mean_puzzle_examples"] == 1.0
    # the test split never is augmented (here: absent, as the source has no test.csv)
    assert not (tmp_path / "out" / "test").exists()


def test_subsample_and_min_difficulty(tmp_path, maze_train_dir, maze_rows):
    build_dataset("maze", str(maze_train_dir), str(tmp_path / "a"), subsample_size=5, seed=2)
    build_dataset("maze", str(maze_train_dir), str(tmp_path / "b"), subsample_size=5, seed=2)
    a = np.load(tmp_path / "a" / "train" / "all__inputs.npy")
    assert a.shape == (5, 225) and np.array_equal(a, np.load(tmp_path / "b" / "train" / "all__inputs.npy"))
    build_dataset("maze", str(maze_train_dir), str(tmp_path / "c"), min_difficulty=40)
    kept = np.load(tmp_path / "c" / "train" / "all__inputs.npy")
    assert [decode(x) for x in kept] == [q for q, _, r in maze_rows if r >= 40]


# --------------------------------------------------------------------------- verifier


def test_fixture_labels_verify_and_ratings_are_bfs_lengths(official, maze_rows):
    inputs = np.load(official / "maze_built" / "test" / "all__inputs.npy")
    labels = np.load(official / "maze_built" / "test" / "all__labels.npy")
    assert all(MAZE.verify(i, y, y) for i, y in zip(inputs, labels))
    for i, (_, _, rating) in zip(inputs, maze_rows):
        s, g = int(np.flatnonzero(i == 3)[0]), int(np.flatnonzero(i == 4)[0])
        assert shortest_distances(i, s)[g] == rating
    assert not MAZE.verify(inputs[0], inputs[0], labels[0])  # no path at all
    assert not MAZE.verify(inputs[0], labels[1], labels[0])  # another maze's answer


def test_equal_length_paths_all_accepted():
    for path in (PATH_TOP, PATH_LEFT, PATH_MIDDLE):
        assert _ok(OPEN_MAZE, _with(OPEN_MAZE, path))


@pytest.mark.parametrize(
    "answer",
    [
        _with(OPEN_MAZE, DETOUR),  # a simple S-G path, but 16 steps long
        _with(OPEN_MAZE, PATH_TOP | {(3, 4)}),  # one cell too many (a spur on the path)
        _with(OPEN_MAZE, PATH_TOP | {(5, 2)}),  # a stray o off the path
        _with(OPEN_MAZE, PATH_TOP - {(1, 3)}),  # broken path
        _with(OPEN_MAZE, (PATH_TOP - {(1, 3)}) | {(3, 2)}),  # right count, not connected
        _with(OPEN_MAZE, set()),  # no path marked
        _with(_rows(_with(OPEN_MAZE, PATH_TOP)), {(2, 2)}, " "),  # a wall removed
        _with(OPEN_MAZE, PATH_TOP | {(1, 1)}),  # S overwritten
        _with(OPEN_MAZE, PATH_TOP | {(5, 5)}, "S"),  # G turned into a second S
    ],
)
def test_near_misses_rejected(answer):
    assert not _ok(OPEN_MAZE, answer)


def test_pad_and_shape_rejected():
    label = encode(_with(OPEN_MAZE, PATH_TOP))
    inp = encode("".join(OPEN_MAZE))
    bad = label.copy()
    bad[3 * 7 + 2] = 0  # pad on an open cell
    assert not MAZE.verify(inp, bad, label)
    assert not MAZE.verify(inp, label[:-1], label)
    assert MAZE.verify(inp, label, label)


def test_adjacent_and_unreachable_goals():
    adjacent = ["#####", "#SG #", "# # #", "#   #", "#####"]
    assert _ok(adjacent, "".join(adjacent))
    assert not _ok(adjacent, _with(adjacent, {(2, 1)}))
    walled = ["#####", "#S# #", "### #", "#  G#", "#####"]
    assert not _ok(walled, "".join(walled))


# --------------------------------------------------------------------------- detection


def test_matches():
    assert MAZE.matches(6, 225) and MAZE.matches(6, 900)
    assert not MAZE.matches(6, 224) and not MAZE.matches(11, 81)
    assert detect_task(6, 225) is MAZE
    inputs = np.stack([encode("".join(OPEN_MAZE))] * 2)
    assert MAZE.matches(6, 49, inputs)
    assert not MAZE.matches(6, 49, encode(_with(OPEN_MAZE, PATH_TOP))[None])  # has `o`: not a question


# --------------------------------------------------------------------------- one puzzle (the service's path)


def test_one_puzzle_path_round_trips_the_fixture(official, maze_rows):
    """Each fixture maze, written as rows of text, encodes to the public build's input row;
    each label row decodes to the CSV's answer."""
    inputs = np.load(official / "maze_built" / "test" / "all__inputs.npy")
    labels = np.load(official / "maze_built" / "test" / "all__labels.npy")
    for (q, a, _), x, y in zip(maze_rows, inputs, labels, strict=True):
        n = int(len(q) ** 0.5)
        drawn = "\n".join(q[r * n : (r + 1) * n] for r in range(n)) + "\n"
        assert MAZE.parse_puzzle(drawn) == q == MAZE.parse_puzzle(q)
        assert MAZE.parse_puzzle([q[r * n : (r + 1) * n] for r in range(n)]) == q
        assert np.array_equal(MAZE.encode_puzzle(drawn), x)
        assert MAZE.decode_answer(y) == a


@pytest.mark.parametrize(
    "puzzle,message",
    [
        ("\n".join(OPEN_MAZE[:-1] + ["######"]), "7 rows need 7 characters each, got widths [6, 7]"),
        ("\n".join(OPEN_MAZE).replace("G", "X"), "'X'"),
        ("#" * 20, "20 characters is not a square grid"),
        ([1, 2], "text or a list of row strings"),
    ],
)
def test_parse_puzzle_errors_are_one_line(puzzle, message):
    with pytest.raises(HRMEvalError, match=re.escape(message)) as e:
        MAZE.parse_puzzle(puzzle)
    assert "\n" not in str(e.value)
