"""Seeded generators of raw puzzles in the public CSV layout (source, question, answer, rating).

- `generate_sudoku`: n x n Sudoku (4, 6 or 9) with a unique solution; rating = number of blanks.
- `generate_maze`: n x n mazes with walls on the border; rating = shortest S-G path length.
- `write_csv` / `generate_csvs`: write them (atomically) so that `build_dataset` can read them.

Everything is driven by a private `random.Random(seed)`: same seed, same puzzles, same bytes.
"""

from __future__ import annotations

import os
import random
from collections import deque
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from hrm_eval.data.csv_source import write_csv
from hrm_eval.utils.errors import HRMEvalError

Row = Tuple[str, str, int]  # (question, answer, rating)

__all__ = ["generate_sudoku", "generate_maze", "write_csv", "generate_csvs", "count_solutions",
           "solve_sudoku", "sudoku_box_shape", "SUDOKU_SIZES"]

# side -> (box rows, box cols); fewest givens a uniquely solvable board can have
SUDOKU_SIZES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
_MIN_GIVENS = {4: 4, 6: 8, 9: 17}


def sudoku_box_shape(size: int) -> Tuple[int, int]:
    if size not in SUDOKU_SIZES:
        raise HRMEvalError(f"Sudoku size must be one of {sorted(SUDOKU_SIZES)}, got {size}")
    return SUDOKU_SIZES[size]


# =========================================================================== Sudoku solver

class _Board:
    """Cell geometry of one board size: unit (row/col/box) of every cell and its peers."""

    _cache: Dict[int, "_Board"] = {}

    def __init__(self, n: int):
        br, bc = sudoku_box_shape(n)
        self.n = n
        self.cells = n * n
        self.full = (1 << n) - 1
        self.row = [i // n for i in range(self.cells)]
        self.col = [i % n for i in range(self.cells)]
        self.box = [(i // n // br) * (n // bc) + (i % n) // bc for i in range(self.cells)]
        self.peers = [sorted({j for j in range(self.cells) if j != i and (
            self.row[j] == self.row[i] or self.col[j] == self.col[i] or self.box[j] == self.box[i])})
            for i in range(self.cells)]

    @classmethod
    def of(cls, n: int) -> "_Board":
        if n not in cls._cache:
            cls._cache[n] = cls(n)
        return cls._cache[n]


def _search(b: _Board, grid: List[int], limit: int, forbid: Optional[Dict[int, int]] = None,
            rng: Optional[random.Random] = None) -> int:
    """Count completions of `grid` (0 = blank, digits 1..n), stopping at `limit`.

    Bitmask backtracking, most-constrained cell first. `forbid` maps cell -> bitmask of digits
    not allowed there. With `rng`, digits are tried in random order; when the count reaches
    `limit` the grid is left filled with the last solution found (used to make full boards)."""
    rows = [0] * b.n
    cols = [0] * b.n
    boxes = [0] * b.n
    empties = []
    for i, v in enumerate(grid):
        if v:
            bit = 1 << (v - 1)
            r, c, x = b.row[i], b.col[i], b.box[i]
            if (rows[r] | cols[c] | boxes[x]) & bit:
                return 0  # the givens already clash
            rows[r] |= bit
            cols[c] |= bit
            boxes[x] |= bit
        else:
            empties.append(i)
    forbid = forbid or {}
    row_of, col_of, box_of, full = b.row, b.col, b.box, b.full

    def rec(empties: List[int]) -> int:
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
        rest = empties[:best_i] + empties[best_i + 1:]
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


def _parse(board, n: Optional[int] = None) -> Tuple[_Board, List[int]]:
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


def solve_sudoku(board) -> Optional[str]:
    """One solution of `board` as text, or None."""
    b, cells = _parse(board)
    if _search(b, cells, 1) == 0:
        return None
    return "".join(map(str, cells))


def _full_board(b: _Board, rng: random.Random) -> List[int]:
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
    raise HRMEvalError(f"could not make a {b.n}x{b.n} Sudoku with {blanks} blanks and a unique solution "
                       f"in {max_tries} tries; lower max_blanks")


def _sudoku_stream(rng: random.Random, size: int, min_blanks: int, max_blanks: int) -> Iterator[Row]:
    b = _Board.of(size)
    while True:
        yield _sudoku_one(b, rng, rng.randint(min_blanks, max_blanks))


def _sudoku_blank_range(size: int, min_blanks: Optional[int], max_blanks: Optional[int]) -> Tuple[int, int]:
    sudoku_box_shape(size)
    cells = size * size
    lo = round(0.45 * cells) if min_blanks is None else int(min_blanks)
    hi = max(lo, round(0.6 * cells)) if max_blanks is None else int(max_blanks)
    most = cells - _MIN_GIVENS[size]
    if not 0 <= lo <= hi:
        raise HRMEvalError(f"need 0 <= min_blanks <= max_blanks, got {lo} and {hi}")
    if hi > most:
        raise HRMEvalError(f"a {size}x{size} Sudoku with a unique solution has at most {most} blanks, "
                           f"max_blanks is {hi}")
    return lo, hi


def generate_sudoku(num: int, size: int = 9, min_blanks: Optional[int] = None, max_blanks: Optional[int] = None,
                    seed: int = 0) -> List[Row]:
    """`num` Sudoku puzzles of side `size` (4, 6 or 9), each with exactly one solution.

    Each puzzle's number of blanks is drawn uniformly from [min_blanks, max_blanks] (defaults:
    45% to 60% of the cells) and is its rating. Returns (question, answer, rating) rows with `.`
    for blanks."""
    if num < 0:
        raise HRMEvalError(f"num must be >= 0, got {num}")
    lo, hi = _sudoku_blank_range(size, min_blanks, max_blanks)
    stream = _sudoku_stream(random.Random(seed), size, lo, hi)
    return [next(stream) for _ in range(num)]


# =========================================================================== mazes

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right: the tie-break order


def _bfs(open_cells: List[List[bool]], start: Tuple[int, int]) -> Dict[Tuple[int, int], int]:
    n = len(open_cells)
    dist = {start: 0}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in _MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < n and open_cells[nr][nc] and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                queue.append((nr, nc))
    return dist


def _maze_one(n: int, rng: random.Random, loop_fraction: float) -> Row:
    rooms = list(range(1, n - 1, 2))
    is_open = [[False] * n for _ in range(n)]
    # carve a spanning tree over the rooms (randomised depth-first search)
    start = (rng.choice(rooms), rng.choice(rooms))
    is_open[start[0]][start[1]] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        nexts = [(r + 2 * dr, c + 2 * dc) for dr, dc in _MOVES
                 if 1 <= r + 2 * dr <= rooms[-1] and 1 <= c + 2 * dc <= rooms[-1]
                 and not is_open[r + 2 * dr][c + 2 * dc]]
        if not nexts:
            stack.pop()
            continue
        nr, nc = rng.choice(nexts)
        is_open[(r + nr) // 2][(c + nc) // 2] = True
        is_open[nr][nc] = True
        stack.append((nr, nc))
    # knock out some remaining walls between two rooms: loops, hence several routes
    walls = [(r, c) for r in range(1, rooms[-1] + 1) for c in range(1, rooms[-1] + 1)
             if not is_open[r][c] and (r % 2) != (c % 2)]
    for r, c in walls:
        if rng.random() < loop_fraction:
            is_open[r][c] = True

    cells = [(r, c) for r in range(n) for c in range(n) if is_open[r][c]]
    s, g = rng.sample(cells, 2)
    dist_to_goal = _bfs(is_open, g)
    length = dist_to_goal[s]
    path = []
    cur = s
    while cur != g:  # walk downhill towards G, first move in _MOVES order on ties
        for dr, dc in _MOVES:
            nxt = (cur[0] + dr, cur[1] + dc)
            if dist_to_goal.get(nxt, -1) == dist_to_goal[cur] - 1:
                cur = nxt
                break
        if cur != g:
            path.append(cur)

    q = [["#" if not is_open[r][c] else " " for c in range(n)] for r in range(n)]
    q[s[0]][s[1]] = "S"
    q[g[0]][g[1]] = "G"
    a = [row[:] for row in q]
    for r, c in path:
        a[r][c] = "o"
    return "".join(map("".join, q)), "".join(map("".join, a)), length


def generate_maze(num: int, n: int = 15, seed: int = 0, loop_fraction: float = 0.1) -> List[Row]:
    """`num` mazes of n x n cells (odd n recommended, n >= 5): border walls, rooms on odd
    coordinates joined by a random spanning tree, plus a `loop_fraction` of the remaining inner
    walls opened. S and G are two distinct open cells; the answer marks one shortest S-G path
    with `o` (ties broken by preferring up, down, left, right in that order, walking from S).
    Rating = shortest path length in steps."""
    if num < 0:
        raise HRMEvalError(f"num must be >= 0, got {num}")
    if n < 5:
        raise HRMEvalError(f"maze side must be at least 5, got {n}")
    if not 0.0 <= loop_fraction <= 1.0:
        raise HRMEvalError(f"loop_fraction must be in [0, 1], got {loop_fraction}")
    rng = random.Random(seed)
    return [_maze_one(n, rng, loop_fraction) for _ in range(num)]


# =========================================================================== CSV folders

def generate_csvs(task: str, output_dir: str | os.PathLike, *, num_train: int, num_test: int, seed: int = 0,
                  size: Optional[int] = None, min_blanks: Optional[int] = None, max_blanks: Optional[int] = None,
                  loop_fraction: float = 0.1) -> Dict[str, str]:
    """Write `train.csv` and `test.csv` (no question in both, none twice) for `task`:
    "sudoku" (9x9, or `size`), "sudoku4", "sudoku6" or "maze" (side `size`, default 15).
    Returns {split: path}. Splits with 0 rows are not written."""
    rng = random.Random(seed)
    if task in ("sudoku", "sudoku4", "sudoku6"):
        side = {"sudoku4": 4, "sudoku6": 6}.get(task, size or 9)
        lo, hi = _sudoku_blank_range(side, min_blanks, max_blanks)
        stream: Iterator[Row] = _sudoku_stream(rng, side, lo, hi)
    elif task == "maze":
        side = size or 15
        generate_maze(0, side, loop_fraction=loop_fraction)  # argument checks
        stream = iter(lambda: _maze_one(side, rng, loop_fraction), None)
    else:
        raise HRMEvalError(f"no generator for task '{task}' (have: sudoku, sudoku4, sudoku6, maze)")
    if num_train < 0 or num_test < 0:
        raise HRMEvalError("num_train and num_test must be >= 0")

    wanted = num_train + num_test
    rows: List[Row] = []
    seen = set()
    tries = 0
    while len(rows) < wanted:
        tries += 1
        if tries > 20 * wanted + 100:
            raise HRMEvalError(f"only {len(rows)} distinct {task} puzzles found for {wanted} wanted; "
                               f"ask for fewer or widen the blank range / grid size")
        row = next(stream)
        if row[0] not in seen:
            seen.add(row[0])
            rows.append(row)

    out = Path(output_dir)
    written = {}
    for split, part in (("train", rows[:num_train]), ("test", rows[num_train:])):
        if part:
            write_csv(part, out / f"{split}.csv")
            written[split] = str(out / f"{split}.csv")
    return written
