"""Grid helpers shared by the puzzle tasks: the 8 dihedral transforms and breadth-first search.

The dihedral transforms are numbered as in the public builders (maze and ARC use the same
numbering): 0 identity, 1-3 rot90 by 1-3 quarter turns (numpy's `rot90`, counter-clockwise),
4 fliplr, 5 flipud, 6 transpose, 7 anti-transpose ((i, j) <- (n-1-j, n-1-i)).
"""

from __future__ import annotations

from collections import deque

import numpy as np

DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "fliplr", "flipud", "transpose", "antitranspose")
# DIHEDRAL_INVERSE[t] undoes transform t (rot90 and rot270 undo each other; the rest are involutions)
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
# up, down, left, right: the order neighbours are visited in (the maze generator's tie-break)
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def dihedral_transform(grid: np.ndarray, t: int) -> np.ndarray:
    """Dihedral transform `t` (0-7, see DIHEDRAL_NAMES) of a 2-D array (a view where numpy gives one)."""
    t = int(t)
    if t == 0:
        return grid
    if t in (1, 2, 3):
        return np.rot90(grid, k=t)
    if t == 4:
        return np.fliplr(grid)
    if t == 5:
        return np.flipud(grid)
    if t == 6:
        return grid.T
    if t == 7:
        return np.fliplr(np.rot90(grid, k=1))
    raise ValueError(f"dihedral transform id must be 0-7, got {t}")


def inverse_dihedral_transform(grid: np.ndarray, t: int) -> np.ndarray:
    return dihedral_transform(grid, DIHEDRAL_INVERSE[int(t)])


def square_side(num_cells: int) -> int | None:
    """n when `num_cells` == n * n for some n > 0, else None."""
    n = int(round(num_cells**0.5))
    return n if n > 0 and n * n == num_cells else None


def grid_distances(free: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Breadth-first step counts from `start` over the True cells of `free` [rows, cols], moving
    up/down/left/right: int64 [rows, cols], -1 where unreachable (and on blocked cells)."""
    free = np.asarray(free, dtype=bool)
    rows, cols = free.shape
    dist = np.full((rows, cols), -1, dtype=np.int64)
    dist[start] = 0
    queue = deque([tuple(start)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols and free[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist
