"""Maze: an n x n grid of `# SGo` (wall, open, start, goal, path), as in the public Maze-Hard data.

Token layout: pad 0, `#` 1, space 2, `S` 3, `G` 4, `o` 5; vocab 6, seq_len n * n. The question
has no `o`; the answer marks a shortest S-G path with `o` (S and G stay as they are).

Build (`MazeTask.build`) reproduces the public `build_maze_dataset.py` byte for byte. Its only
augmentation is a switch (`aug`) for the full 8-fold dihedral set on the train split: every
original gives 8 puzzles (identity first, then rot90, rot180, rot270, fliplr, flipud, transpose,
anti-transpose), one group per original. Here any `num_aug > 0` turns that switch on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from hrm_eval.data.csv_source import RawPuzzles, RowError, check_charset, check_num_aug, read_splits
from hrm_eval.data.grids import dihedral_transform, grid_distances, square_side
from hrm_eval.data.tasks import register_task
from hrm_eval.data.tasks.base import BuildOptions, PuzzleTask, Row, decode_json_list
from hrm_eval.data.tasks.csv_build import PAD_ID, puzzle_arrays, token_arrays, write_csv_dataset
from hrm_eval.data.tasks.maze_generator import DEFAULT_SIDE, maze_stream
from hrm_eval.utils.errors import HRMEvalError

CHARSET = "# SGo"
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5

_CHAR_TO_TOKEN = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(CHARSET):
    _CHAR_TO_TOKEN[ord(_c)] = _i + 1


def encode(text: str) -> np.ndarray:
    """Maze text (n*n characters of `# SGo`) -> uint8 tokens."""
    if square_side(len(text)) is None:
        raise HRMEvalError(f"maze text of {len(text)} characters is not a square grid")
    try:
        check_charset(text, CHARSET, "maze")
    except RowError as e:
        raise HRMEvalError(str(e)) from None
    return _CHAR_TO_TOKEN[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]


def decode(tokens: np.ndarray) -> str:
    """Tokens -> maze text (`?` for pad or unknown tokens)."""
    return "".join(CHARSET[t - 1] if 1 <= t <= 5 else "?" for t in np.asarray(tokens).reshape(-1).tolist())


def to_grid(tokens: np.ndarray) -> np.ndarray:
    """Tokens [n*n] -> token grid [n, n]."""
    t = np.asarray(tokens)
    n = square_side(t.size)
    if n is None:
        raise HRMEvalError(f"{t.size} tokens do not form a square maze")
    return t.reshape(n, n)


def shortest_distances(tokens: np.ndarray, source: int) -> np.ndarray:
    """BFS step counts [n*n] from cell `source` over non-wall cells (-1 where unreachable)."""
    grid = np.asarray(tokens).reshape(-1)
    n = square_side(grid.size)
    if n is None:
        raise HRMEvalError(f"{grid.size} tokens do not form a square maze")
    free = ((grid != WALL) & (grid != PAD_ID)).reshape(n, n)
    return grid_distances(free, divmod(int(source), n)).reshape(-1)


class MazeTask(PuzzleTask):
    name = "maze"
    vocab_size = len(CHARSET) + 1

    def encode(self, natural: str) -> np.ndarray:
        return encode(natural)

    def decode(self, tokens: np.ndarray) -> str:
        return decode(tokens)

    to_grid = staticmethod(to_grid)

    def parse_puzzle(self, puzzle: Any) -> str:
        """A maze as a user writes it -> maze text of n*n characters of `# SGo`.

        Text: n rows of n characters separated by line breaks (spaces are open cells, so they
        count), or the n*n characters on one line. JSON: the same text as a string, or a list
        of n row strings."""
        puzzle = decode_json_list(puzzle, "maze")
        if isinstance(puzzle, str):
            rows = puzzle.strip("\r\n").replace("\r\n", "\n").split("\n")
        elif isinstance(puzzle, (list, tuple)) and all(isinstance(r, str) for r in puzzle):
            rows = list(puzzle)
        else:
            raise HRMEvalError(f"maze: a maze is text or a list of row strings, got {type(puzzle).__name__}")
        if len(rows) > 1 and any(len(r) != len(rows) for r in rows):
            widths = sorted({len(r) for r in rows})
            raise HRMEvalError(f"maze: {len(rows)} rows need {len(rows)} characters each, got widths {widths}")
        text = "".join(rows)
        encode(text)  # checks the size and the characters, one line each
        return text

    def matches(self, vocab_size: int, seq_len: int, inputs_sample: np.ndarray | None = None) -> bool:
        if vocab_size != self.vocab_size or square_side(seq_len) is None:
            return False
        if inputs_sample is None:
            return True
        rows = np.asarray(inputs_sample)
        if rows.size == 0 or rows.size % seq_len:
            return False
        rows = rows.reshape(-1, seq_len)
        # a maze question holds exactly one S and one G and no path cells
        return bool(
            np.all((rows == START).sum(1) == 1) and np.all((rows == GOAL).sum(1) == 1) and not np.any(rows == PATH)
        )

    def verify(self, inputs: np.ndarray, prediction: np.ndarray, label: np.ndarray | None = None) -> bool:
        """Valid iff walls, S and G are kept, every other open cell is open or `o`, and the `o`
        cells together with S and G form one S-G path of the shortest length (BFS on the input)."""
        inp = np.asarray(inputs).reshape(-1).astype(np.int64)
        pred = np.asarray(prediction).reshape(-1).astype(np.int64)
        if inp.size != pred.size or square_side(inp.size) is None:
            return False
        starts, goals = np.flatnonzero(inp == START), np.flatnonzero(inp == GOAL)
        if len(starts) != 1 or len(goals) != 1:
            return False
        s, g = int(starts[0]), int(goals[0])
        fixed = (inp == WALL) | (inp == START) | (inp == GOAL)
        if np.any(pred[fixed] != inp[fixed]):
            return False
        rest = ~fixed
        if np.any((pred[rest] != OPEN) & (pred[rest] != PATH)) or np.any(inp[rest] != OPEN):
            return False  # pad / walls / extra S or G in the prediction, or an odd input
        shortest = shortest_distances(inp, s)[g]
        if shortest < 0:
            return False  # unsolvable
        # A connected set of cells holding S and G needs at least shortest+1 cells; one with
        # exactly shortest+1 cells (shortest-1 `o`s) is a shortest path and nothing else.
        if int((pred == PATH).sum()) != shortest - 1:
            return False
        on_path = np.where((pred == PATH) | (pred == START) | (pred == GOAL), OPEN, WALL)
        return bool(shortest_distances(on_path, s)[g] == shortest)

    def check_row(self, question: str, answer: str) -> None:
        if not question:
            raise RowError("question is empty")
        if square_side(len(question)) is None:
            raise RowError(f"question has {len(question)} characters, not a square grid (n*n)")
        if len(answer) != len(question):
            raise RowError(f"answer has {len(answer)} characters, question has {len(question)}")
        check_charset(question, CHARSET, "question")
        check_charset(answer, CHARSET, "answer")

    def write_dataset(self, source: str, output: str, options: BuildOptions) -> dict:
        num_aug = check_num_aug(options.num_aug)
        raw = read_splits(source, self.check_row, options.min_difficulty)
        sides: dict[str, int] = {}
        for split, rows in raw.items():
            first = len(rows.questions[0])
            for q, line in zip(rows.questions, rows.lines):
                if len(q) != first:
                    raise HRMEvalError(
                        f"{rows.path}, row {line}: inconsistent maze sizes: this maze is "
                        f"{square_side(len(q))}x{square_side(len(q))}, the first ({rows.lines[0]}) is "
                        f"{square_side(first)}x{square_side(first)}"
                    )
            side = square_side(first)
            assert side is not None  # check_row let only square mazes through
            sides[split] = side

        def convert(split: str, rows: RawPuzzles, rng: np.random.RandomState):
            n, train = sides[split], split == "train"  # subsampling and augmentation apply to train only
            arrays = self._convert(rows, n, rng, options.subsample_size if train else None, train and num_aug > 0)
            return arrays, n * n, {"side": n, "seq_len": n * n}

        summary = {"task": self.name, "output": str(output), "vocab_size": self.vocab_size}
        return write_csv_dataset(output, raw, convert, vocab_size=self.vocab_size, seed=options.seed, summary=summary)

    def puzzle_stream(
        self, rng: random.Random, *, size: int | None = None, loop_fraction: float | None = None, **options: Any
    ) -> Iterator[Row]:
        """Mazes of side `size` (default 15) with a `loop_fraction` (default 0.1) of the inner walls
        opened; rating = shortest S-G path length. See `maze_generator`."""
        if options:
            raise HRMEvalError(f"the maze generator takes no {', '.join(sorted(options))}")
        extra = {} if loop_fraction is None else {"loop_fraction": loop_fraction}
        return maze_stream(rng, DEFAULT_SIDE if size is None else size, **extra)

    def tta_views(
        self, num_views: int, *, seq_len: int | None = None, seed: int = 0
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first `num_views` of the 8 dihedral transforms (identity first, numbered as
        `grids.dihedral_transform`) for test-time augmentation, each as (token map [vocab], cell map [n*n]) with
        view[cell] = token_map[maze[cell_map[cell]]]; tokens are unchanged. `seed` is unused
        (the order is fixed)."""
        n = square_side(seq_len) if seq_len is not None else None
        if n is None:
            raise HRMEvalError(f"maze test-time views need a square sequence length, got {seq_len}")
        if not 1 <= num_views <= 8:
            raise HRMEvalError(f"a maze has 8 dihedral views; asked for {num_views}")
        cells = np.arange(n * n, dtype=np.int64).reshape(n, n)
        tokens = np.arange(self.vocab_size, dtype=np.int64)
        return [
            (tokens.copy(), np.ascontiguousarray(dihedral_transform(cells, t)).reshape(-1)) for t in range(num_views)
        ]

    @staticmethod
    def _convert(
        rows: RawPuzzles, n: int, rng: np.random.RandomState, subsample_size: int | None, augment: bool
    ) -> dict[str, np.ndarray]:
        inputs, labels = token_arrays(rows, n * n, _CHAR_TO_TOKEN, subsample_size, rng)
        per_group = 8 if augment else 1
        if augment:

            def expand(a: np.ndarray) -> np.ndarray:
                g = a.reshape(-1, n, n)
                # [N, 8, n, n]: the 8 transforms of each original, identity first
                stacked = np.stack([np.stack([dihedral_transform(x, t) for t in range(8)]) for x in g])
                return np.ascontiguousarray(stacked.reshape(-1, n * n))

            inputs, labels = expand(inputs), expand(labels)
        return puzzle_arrays(inputs, labels, per_group)


MAZE = register_task(MazeTask())
