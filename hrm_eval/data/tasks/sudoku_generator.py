"""Sudoku solver and generator (the generator behind `SudokuTask.generate`).

Boards are n x n (4, 6 or 9) with 0 or `.` for a blank. The solver is bitmask backtracking,
most-constrained cell first; the generator fills a random full board, then removes cells in
random order as long as the solution stays unique. Everything is driven by the caller's
`random.Random`: same seed, same boards.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from hrm_eval.data.tasks.base import Row
from hrm_eval.utils.errors import HRMEvalError

# side -> (box rows, box cols); fewest givens a uniquely solvable board can have
SUDOKU_SIZES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
_MIN_GIVENS = {4: 4, 6: 8, 9: 17}


def sudoku_box_shape(size: int) -> tuple[int, int]:
    if size not in SUDOKU_SIZES:
        raise HRMEvalError(f"Sudoku size must be one of {sorted(SUDOKU_SIZES)}, got {size}")
    return SUDOKU_SIZES[size]


# =========================================================================== Sudoku solver


class _Board:
    """Cell geometry of one board size: unit (row/col/box) of every cell and its peers."""

    _cache: dict[int, _Board] = {}

    def __init__(self, n: int):
        br, bc = sudoku_box_shape(n)
        self.n = n
        self.cells = n * n
        self.full = (1 << n) - 1
        self.row = [i // n for i in range(self.cells)]
        self.col = [i % n for i in range(self.cells)]
        self.box = [(i // n // br) * (n // bc) + (i % n) // bc for i in range(self.cells)]
        self.peers = [
            sorted(
                {
                    j
                    for j in range(self.cells)
                    if j != i
                    and (self.row[j] == self.row[i] or self.col[j] == self.col[i] or self.box[j] == self.box[i])
                }
            )
            for i in range(self.cells)
        ]

    @classmethod
    def of(cls, n: int) -> _Board:
        if n not in cls._cache:
            cls._cache[n] = cls(n)
        return cls._cache[n]


def _search(
    b: _Board, grid: list[int], limit: int, forbid: dict[int, int] | None = None, rng: random.Random | None = None
) -> int:
    """Count completions of `grid` (0 = blank, digits 1..n), stopping at `limit`.

    Bitmask backtracking, most-constrained cell first. `forbid` maps cell -> bitmask of digits
    not allowed there. With `rng`, digits are tried in random order; when the count reaches
    `limit` the grid is left filled with the last solution found (used to make full boards)."""
    masks = _unit_masks(b, grid)
    if masks is None:
        return 0  # the givens already clash
    rows, cols, boxes, empties = masks  # bit d-1 set: digit d is placed in that row / column / box
    forbid = forbid or {}
    row_of, col_of, box_of, full = b.row, b.col, b.box, b.full

    def rec(empties: list[int]) -> int:  # one piece: a helper called per node measured 2-13% slower
        if not empties:
            return 1
        best_i = -1
        best_mask = 0
        best_n = 99
        for k, cell in enumerate(empties):
            m = full & ~(rows[row_of[cell]] | cols[col_of[cell]] | boxes[box_of[cell]])
            if cell in forbid:
                m &= ~forbid[cell]
            cnt = m.bit_count()
            if cnt < best_n:
                best_i, best_mask, best_n = k, m, cnt
                if cnt <= 1:
                    break
        if best_n == 0:
            return 0
        cell = empties[best_i]
        rest = empties[:best_i] + empties[best_i + 1 :]
        r, c, x = row_of[cell], col_of[cell], box_of[cell]
        bits = []
        m = best_mask
        while m:
            low = m & -m
            bits.append(low)
            m ^= low
        if rng is not None:
            rng.shuffle(bits)
        total = 0
        for bit in bits:
            rows[r] |= bit
            cols[c] |= bit
            boxes[x] |= bit
            grid[cell] = bit.bit_length()
            total += rec(rest)
            if total >= limit:
                return total  # leave this solution in `grid`
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[x] ^= bit
            grid[cell] = 0
        return total

    return rec(empties)


def _unit_masks(b: _Board, grid: list[int]) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """(row, column and box bitmasks of the digits `grid` holds, its blank cells), or None when
    two equal givens share a row, column or box."""
    rows = [0] * b.n
    cols = [0] * b.n
    boxes = [0] * b.n
    empties = []
    for i, v in enumerate(grid):
        if v:
            bit = 1 << (v - 1)
            r, c, x = b.row[i], b.col[i], b.box[i]
            if (rows[r] | cols[c] | boxes[x]) & bit:
                return None
            rows[r] |= bit
            cols[c] |= bit
            boxes[x] |= bit
        else:
            empties.append(i)
    return rows, cols, boxes, empties


def _parse(board, n: int | None = None) -> tuple[_Board, list[int]]:
    if isinstance(board, str):
        cells = [0 if ch in ".0" else int(ch) for ch in board]
    else:
        cells = [int(v) for v in (board.reshape(-1).tolist() if hasattr(board, "reshape") else board)]
    if n is None:
        n = int(round(len(cells) ** 0.5))
    if n * n != len(cells):
        raise HRMEvalError(f"a Sudoku board needs n*n cells, got {len(cells)}")
    b = _Board.of(n)
    if any(v < 0 or v > n for v in cells):
        raise HRMEvalError(f"Sudoku cells must be 0..{n}")
    return b, cells


def count_solutions(board, limit: int = 2) -> int:
    """Number of solutions of `board` (text with `.`/`0` blanks, or a sequence / array of ints
    with 0 blank), counted up to `limit`."""
    b, cells = _parse(board)
    return _search(b, cells, limit)


def solve_sudoku(board) -> str | None:
    """One solution of `board` as text, or None."""
    b, cells = _parse(board)
    if _search(b, cells, 1) == 0:
        return None
    return "".join(map(str, cells))


def _full_board(b: _Board, rng: random.Random) -> list[int]:
    grid = [0] * b.cells
    _search(b, grid, 1, rng=rng)
    return grid


def _sudoku_one(b: _Board, rng: random.Random, blanks: int, max_tries: int = 100) -> Row:
    for _ in range(max_tries):
        solution = _full_board(b, rng)
        grid = solution[:]
        order = list(range(b.cells))
        rng.shuffle(order)
        removed = 0
        for cell in order:
            if removed == blanks:
                break
            v = grid[cell]
            grid[cell] = 0
            bit = 1 << (v - 1)
            seen = 0
            for p in b.peers[cell]:
                if grid[p]:
                    seen |= 1 << (grid[p] - 1)
            if (b.full & ~seen) == bit:
                removed += 1  # naked single: v is forced, the solution stays unique
                continue
            # unique iff no completion puts another digit in this cell
            if _search(b, grid[:], 1, forbid={cell: bit}) == 0:
                removed += 1
            else:
                grid[cell] = v
        if removed == blanks:
            question = "".join("." if v == 0 else str(v) for v in grid)
            return question, "".join(map(str, solution)), blanks
    raise HRMEvalError(
        f"could not make a {b.n}x{b.n} Sudoku with {blanks} blanks and a unique solution "
        f"in {max_tries} tries; lower max_blanks"
    )


def sudoku_stream(
    rng: random.Random, size: int, min_blanks: int | None = None, max_blanks: int | None = None
) -> Iterator[Row]:
    """Endless uniquely solvable boards of side `size` (4, 6 or 9) drawn from `rng`; each one's
    number of blanks is drawn uniformly from [min_blanks, max_blanks] (defaults: 45% to 60% of
    the cells) and is its rating. Rows are (question with `.` blanks, answer, rating). The
    arguments are checked here, before the first board is drawn."""
    lo, hi = _blank_range(size, min_blanks, max_blanks)
    return _stream(rng, _Board.of(size), lo, hi)


def _stream(rng: random.Random, b: _Board, lo: int, hi: int) -> Iterator[Row]:
    while True:
        yield _sudoku_one(b, rng, rng.randint(lo, hi))


def _blank_range(size: int, min_blanks: int | None, max_blanks: int | None) -> tuple[int, int]:
    sudoku_box_shape(size)
    cells = size * size
    lo = round(0.45 * cells) if min_blanks is None else int(min_blanks)
    hi = max(lo, round(0.6 * cells)) if max_blanks is None else int(max_blanks)
    most = cells - _MIN_GIVENS[size]
    if not 0 <= lo <= hi:
        raise HRMEvalError(f"need 0 <= min_blanks <= max_blanks, got {lo} and {hi}")
    if hi > most:
        raise HRMEvalError(
            f"a {size}x{size} Sudoku with a unique solution has at most {most} blanks, max_blanks is {hi}"
        )
    return lo, hi
