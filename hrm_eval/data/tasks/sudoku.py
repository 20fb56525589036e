"""Sudoku: 9x9 (the public layout), plus 4x4 and 6x6 boards built and checked the same way.

Token layout (all sizes): pad 0, blank 1, digit d -> d + 1. A board of side n has vocabulary
n + 2 and sequence length n * n, so 9x9 gives vocab 11, seq_len 81 exactly like the public
builder. Raw CSV text uses `.` (or `0`) for a blank and the digits 1..n.

Build (`SudokuTask.build`) reproduces the public `build_sudoku_dataset.py` byte for byte:
each raw puzzle is one puzzle of one example, each original with its augmented copies forms
one group, `ignore_label_id` 0, one identifier (`<blank>`). Randomness (train subsampling, then
augmentation) comes from `np.random.RandomState(seed)` drawn in the public order, so a build
equals a public build run after `np.random.seed(seed)`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from hrm_eval.data.csv_source import RawPuzzles, RowError, check_charset, check_num_aug, read_splits
from hrm_eval.data.tasks import register_task
from hrm_eval.data.tasks.base import BuildOptions, PuzzleTask, Row, decode_json_list
from hrm_eval.data.tasks.csv_build import PAD_ID, puzzle_arrays, token_arrays, write_csv_dataset
from hrm_eval.data.tasks.sudoku_generator import SUDOKU_SIZES, sudoku_stream
from hrm_eval.utils.errors import HRMEvalError

BLANK_ID = 1
DIGIT_OFFSET = 1  # token = digit + 1


class SudokuTask(PuzzleTask):
    """An n x n Sudoku with boxes of `box_rows` x `box_cols` cells."""

    seq_len: int

    def __init__(self, name: str, n: int, box_rows: int, box_cols: int):
        if box_rows * box_cols != n:
            raise ValueError("box_rows * box_cols must equal n")
        self.name = name
        self.n = n
        self.box_rows = box_rows
        self.box_cols = box_cols
        self.vocab_size = n + 2
        self.seq_len = n * n
        self.digits = "".join(str(d) for d in range(1, n + 1))
        # CSV text -> token: '.'/'0' blank, 'd' -> d + 1; anything else 255 (rejected earlier)
        table = np.full(256, 255, dtype=np.uint8)
        table[ord(".")] = table[ord("0")] = BLANK_ID
        for d in range(1, n + 1):
            table[ord(str(d))] = d + DIGIT_OFFSET
        self._char_to_token = table
        # box id of every cell, row-major
        r, c = np.divmod(np.arange(self.seq_len), n)
        self._box_of_cell = (r // box_rows) * (n // box_cols) + c // box_cols
        self._row_of_cell, self._col_of_cell = r, c

    # ------------------------------------------------------------------ encoding helpers

    def encode(self, text: str) -> np.ndarray:
        """CSV board text (`.`/`0` blank) -> uint8 tokens [n*n]."""
        if len(text) != self.seq_len:
            raise HRMEvalError(f"{self.name}: board text must have {self.seq_len} characters, got {len(text)}")
        try:
            check_charset(text, "." + "0" + self.digits, "board")
        except RowError as e:
            raise HRMEvalError(f"{self.name}: {e}") from None
        return self._char_to_token[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]

    def decode(self, tokens: np.ndarray) -> str:
        """Tokens -> CSV board text (`.` for blank; `?` for a token that is no cell value)."""
        out = []
        for t in np.asarray(tokens).reshape(-1).tolist():
            if t == BLANK_ID:
                out.append(".")
            elif 2 <= t <= self.n + 1:
                out.append(str(t - DIGIT_OFFSET))
            else:
                out.append("?")
        return "".join(out)

    def parse_puzzle(self, puzzle: Any) -> str:
        """A board as a user writes it -> board text of n*n characters (`.` for a blank).

        Text: the n*n cells in row-major order, `.` or `0` for a blank; line breaks, spaces and
        `|` / `-` / `+` separators between cells are ignored (so a drawn board reads too). JSON:
        the same text as a string, or a list of n rows of n ints (0 blank)."""
        puzzle = decode_json_list(puzzle, self.name)
        if isinstance(puzzle, str):
            text = "".join(ch for ch in puzzle if ch not in " \t\r\n|-+")
        elif isinstance(puzzle, (list, tuple, np.ndarray)):
            text = self._rows_to_text(puzzle)
        else:
            raise HRMEvalError(f"{self.name}: a board is text or a list of rows, got {type(puzzle).__name__}")
        self.encode(text)  # checks the size and the characters, one line each
        return text.replace("0", ".")

    def _rows_to_text(self, rows: Any) -> str:
        if len(rows) != self.n or any(not isinstance(r, (list, tuple, np.ndarray)) or len(r) != self.n for r in rows):
            raise HRMEvalError(f"{self.name}: a board is {self.n} rows of {self.n} numbers")
        cells = [v for r in rows for v in r]
        bad = next(
            (v for v in cells if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= self.n),
            None,
        )
        if bad is not None:
            raise HRMEvalError(f"{self.name}: cell value {bad!r} is not 0 (blank) or a digit 1-{self.n}")
        return "".join("." if v == 0 else str(int(v)) for v in cells)

    def to_grid(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens [n*n] -> int grid [n, n] with 0 for blank (and for pad/ignored positions)."""
        t = np.asarray(tokens, dtype=np.int64).reshape(self.n, self.n)
        return np.where((t >= 2) & (t <= self.n + 1), t - DIGIT_OFFSET, 0)

    def from_grid(self, grid: np.ndarray) -> np.ndarray:
        """Int grid [n, n] (0 blank, 1..n digits) -> uint8 tokens [n*n]."""
        g = np.asarray(grid).reshape(-1)
        if g.size != self.seq_len or g.min() < 0 or g.max() > self.n:
            raise HRMEvalError(f"{self.name}: grid must be {self.n}x{self.n} with values 0..{self.n}")
        return (g + DIGIT_OFFSET).astype(np.uint8)

    # ------------------------------------------------------------------ task interface

    def matches(self, vocab_size: int, seq_len: int, inputs_sample: np.ndarray | None = None) -> bool:
        if vocab_size != self.vocab_size or seq_len != self.seq_len:
            return False
        if inputs_sample is None or self.n != 4:
            return True
        # 4x4 Sudoku and a 4x4 maze share vocab 6 / seq 16: a maze input has exactly one S (3)
        # and one G (4) and never a path token (5).
        return not _looks_like_maze(np.asarray(inputs_sample), self.seq_len)

    difficulty_name = "blanks"

    def difficulty(self, inputs: np.ndarray) -> np.ndarray:
        """The number of blank cells: what makes a Sudoku hard (the bundled models' cards and
        `--mode evaluate` report exact accuracy and steps per blank count)."""
        return (np.asarray(inputs).reshape(len(inputs), -1) == BLANK_ID).sum(-1)

    def verify(self, inputs: np.ndarray, prediction: np.ndarray, label: np.ndarray | None = None) -> bool:
        inp = np.asarray(inputs).reshape(-1).astype(np.int64)
        pred = np.asarray(prediction).reshape(-1).astype(np.int64)
        if inp.size != self.seq_len or pred.size != self.seq_len:
            return False
        if np.any((pred < 2) | (pred > self.n + 1)):
            return False  # a blank, pad or out-of-range token
        given = (inp >= 2) & (inp <= self.n + 1)
        if np.any(pred[given] != inp[given]):
            return False
        grid = (pred - DIGIT_OFFSET).reshape(self.n, self.n)
        full = np.arange(1, self.n + 1)
        if not all(np.array_equal(np.sort(grid[i]), full) for i in range(self.n)):
            return False
        if not all(np.array_equal(np.sort(grid[:, j]), full) for j in range(self.n)):
            return False
        flat = grid.reshape(-1)
        order = np.argsort(self._box_of_cell, kind="stable")
        boxes = flat[order].reshape(self.n, self.n)
        return all(np.array_equal(np.sort(b), full) for b in boxes)

    def verify_many(self, inputs: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """`verify` of every row at once (test-time scaling checks answers at every ACT step):
        digits only, the givens kept, and each row, column and box holding each digit once."""
        inp = np.asarray(inputs).astype(np.int64).reshape(len(inputs), -1)
        pred = np.asarray(predictions).astype(np.int64).reshape(len(predictions), -1)
        if inp.shape[1] != self.seq_len or pred.shape != inp.shape:
            return np.zeros(len(inp), dtype=bool)
        digits = (pred >= 2) & (pred <= self.n + 1)
        given = (inp >= 2) & (inp <= self.n + 1)
        ok = digits.all(1) & ((pred == inp) | ~given).all(1)
        onehot = np.eye(self.n, dtype=np.int64)[np.clip(pred - DIGIT_OFFSET - 1, 0, self.n - 1)]  # [n, L, d]
        for unit_of_cell in (self._row_of_cell, self._col_of_cell, self._box_of_cell):
            for u in range(self.n):  # each digit exactly once in each row / column / box
                ok &= (onehot[:, unit_of_cell == u].sum(1) == 1).all(1)
        return ok

    def givens_conflict(self, inputs: np.ndarray) -> str | None:
        grid = np.asarray(inputs).reshape(-1).astype(np.int64) - DIGIT_OFFSET  # 1..n for a given digit
        units = [("row", lambda i, j: i), ("column", lambda i, j: j)]
        for i in range(self.seq_len):
            for k in range(i + 1, self.seq_len):
                if not 1 <= grid[i] <= self.n or grid[i] != grid[k]:
                    continue
                (ri, ci), (rk, ck) = divmod(i, self.n), divmod(k, self.n)
                where = next(
                    (f"{unit} {pick(ri, ci) + 1}" for unit, pick in units if pick(ri, ci) == pick(rk, ck)),
                    f"box {self._box_of_cell[i] + 1}" if self._box_of_cell[i] == self._box_of_cell[k] else None,
                )
                if where is not None:
                    return f"digit {grid[i]} is given twice in {where} (positions {i} and {k})"
        return None

    def check_row(self, question: str, answer: str) -> None:
        if len(question) != self.seq_len:
            raise RowError(f"question has {len(question)} characters, expected {self.seq_len} ({self.n}x{self.n})")
        if len(answer) != self.seq_len:
            raise RowError(f"answer has {len(answer)} characters, expected {self.seq_len} ({self.n}x{self.n})")
        check_charset(question, ".0" + self.digits, "question")
        check_charset(answer, self.digits, "answer")

    def write_dataset(self, source: str, output: str, options: BuildOptions) -> dict:
        num_aug = check_num_aug(options.num_aug)
        raw = read_splits(source, self.check_row, options.min_difficulty)

        def convert(split: str, rows: RawPuzzles, rng: np.random.RandomState):
            train = split == "train"  # subsampling and augmentation apply to train only
            arrays = self._convert(rows, rng, options.subsample_size if train else None, num_aug if train else 0)
            return arrays, self.seq_len, {}

        summary = {"task": self.name, "output": str(output), "vocab_size": self.vocab_size, "seq_len": self.seq_len}
        return write_csv_dataset(output, raw, convert, vocab_size=self.vocab_size, seed=options.seed, summary=summary)

    # ------------------------------------------------------------------ building

    def _convert(
        self, rows: RawPuzzles, rng: np.random.RandomState, subsample_size: int | None, num_aug: int
    ) -> dict[str, np.ndarray]:
        inputs, labels = token_arrays(rows, self.seq_len, self._char_to_token, subsample_size, rng)

        n_orig = len(inputs)
        per_group = 1 + num_aug
        if num_aug:
            # Draw every transform first (same order of draws as one call per example), then
            # apply them in vectorised chunks.
            total = n_orig * per_group
            src = np.repeat(np.arange(n_orig), per_group)
            cell_map = np.tile(np.arange(self.seq_len, dtype=np.uint8), (total, 1))  # seq_len <= 81
            digit_maps = np.tile(np.arange(self.vocab_size, dtype=np.uint8), (total, 1))
            for i in range(n_orig):
                for k in range(1, per_group):
                    e = i * per_group + k
                    digit_maps[e], cell_map[e] = self._draw(rng)
            out_in = np.empty((total, self.seq_len), dtype=np.uint8)
            out_lab = np.empty_like(out_in)
            for start in range(0, total, 65536):
                sl = slice(start, start + 65536)
                for src_arr, dst in ((inputs, out_in), (labels, out_lab)):
                    moved = np.take_along_axis(src_arr[src[sl]], cell_map[sl].astype(np.intp), axis=1)
                    dst[sl] = np.take_along_axis(digit_maps[sl], moved.astype(np.intp), axis=1)
            inputs, labels = out_in, out_lab

        return puzzle_arrays(inputs, labels, per_group)

    def _draw(self, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """One random validity-preserving transform: (token map [vocab], cell map [n*n]) with
        new[cell] = token_map[old[cell_map[cell]]].

        Public order of draws: digit permutation, transpose coin, band order, rows inside each
        band, stack order, columns inside each stack. The transpose coin is only drawn for
        square boxes (a 6x6 board's 2x3 boxes would become 3x2)."""
        n, br, bc = self.n, self.box_rows, self.box_cols
        token_map = np.concatenate([[PAD_ID, BLANK_ID], rng.permutation(np.arange(1, n + 1)) + DIGIT_OFFSET])
        transpose = bool(rng.rand() < 0.5) if br == bc else False
        bands = rng.permutation(n // br)
        row_perm = np.concatenate([b * br + rng.permutation(br) for b in bands])
        stacks = rng.permutation(n // bc)
        col_perm = np.concatenate([s * bc + rng.permutation(bc) for s in stacks])
        if transpose:  # noqa: SIM108 - new[r, c] = old.T[row_perm[r], col_perm[c]] = old[col_perm[c], row_perm[r]]
            cell_map = col_perm[None, :] * n + row_perm[:, None]
        else:
            cell_map = row_perm[:, None] * n + col_perm[None, :]
        return token_map.astype(np.uint8), cell_map.reshape(-1)

    # ------------------------------------------------------------------ generating

    def puzzle_stream(
        self,
        rng: random.Random,
        *,
        size: int | None = None,
        min_blanks: int | None = None,
        max_blanks: int | None = None,
        **options: Any,
    ) -> Iterator[Row]:
        """Uniquely solvable boards of this task's side (or of side `size`: 4, 6 or 9); the number
        of blanks, drawn from [min_blanks, max_blanks] (default 45% to 60% of the cells), is the
        rating. See `sudoku_generator`."""
        if options:
            raise HRMEvalError(f"the {self.name} generator takes no {', '.join(sorted(options))}")
        return sudoku_stream(rng, self.n if size is None else size, min_blanks, max_blanks)

    # ------------------------------------------------------------------ test-time augmentation

    def tta_views(
        self, num_views: int, *, seq_len: int | None = None, seed: int = 0
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`num_views` distinct validity-preserving transforms for test-time augmentation, the
        identity first, each as (token map [vocab], cell map [n*n]) with
        view[cell] = token_map[board[cell_map[cell]]] (the convention of `_draw`): digit
        relabelling, band / row-in-band and stack / column-in-stack permutations, and the
        transpose where the boxes are square. Drawn from `np.random.RandomState(seed)`."""
        if seq_len is not None and seq_len != self.seq_len:
            raise HRMEvalError(f"{self.name}: sequences of {seq_len} tokens are not {self.n}x{self.n} boards")
        if num_views < 1:
            raise HRMEvalError(f"the number of test-time views must be at least 1, got {num_views}")
        views = [(np.arange(self.vocab_size, dtype=np.int64), np.arange(self.seq_len, dtype=np.int64))]
        seen = {(views[0][0].tobytes(), views[0][1].tobytes())}
        rng = np.random.RandomState(seed)
        for _ in range(200 * num_views):
            if len(views) >= num_views:
                break
            token_map, cell_map = self._draw(rng)
            view = (token_map.astype(np.int64), cell_map.astype(np.int64))
            key = (view[0].tobytes(), view[1].tobytes())
            if key not in seen:
                seen.add(key)
                views.append(view)
        if len(views) < num_views:
            raise HRMEvalError(f"{self.name}: found only {len(views)} distinct test-time views, asked for {num_views}")
        return views


def _looks_like_maze(sample: np.ndarray, seq_len: int) -> bool:
    rows = sample.reshape(-1, seq_len) if sample.size and sample.size % seq_len == 0 else None
    if rows is None or len(rows) == 0:
        return False
    return bool(np.all((rows == 3).sum(1) == 1) and np.all((rows == 4).sum(1) == 1) and not np.any(rows == 5))


SUDOKU = register_task(SudokuTask("sudoku", 9, *SUDOKU_SIZES[9]))
SUDOKU4 = register_task(SudokuTask("sudoku4", 4, *SUDOKU_SIZES[4]))
SUDOKU6 = register_task(SudokuTask("sudoku6", 6, *SUDOKU_SIZES[6]))
