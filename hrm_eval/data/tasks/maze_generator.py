"""Maze generator (behind `MazeTask.generate`): n x n mazes with walls on the border.

Rooms sit on odd coordinates and are joined by a random spanning tree (randomised depth-first
search); then a `loop_fraction` of the remaining inner walls between two rooms is opened, so
that some mazes have several routes. S and G are two distinct open cells; the answer marks one
shortest S-G path with `o` (ties broken by preferring up, down, left, right in that order,
walking from S). Rating = shortest path length in steps. Everything is driven by the caller's
`random.Random`: same seed, same mazes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

from hrm_eval.data.grids import MOVES, grid_distances
from hrm_eval.data.tasks.base import Row
from hrm_eval.utils.errors import HRMEvalError

DEFAULT_SIDE = 15
DEFAULT_LOOP_FRACTION = 0.1


def maze_stream(
    rng: random.Random, n: int = DEFAULT_SIDE, loop_fraction: float = DEFAULT_LOOP_FRACTION
) -> Iterator[Row]:
    """Endless (question, answer, rating) mazes of side `n` (odd n recommended, n >= 5) drawn
    from `rng`. The arguments are checked here, before the first maze is drawn."""
    if n < 5:
        raise HRMEvalError(f"maze side must be at least 5, got {n}")
    if not 0.0 <= loop_fraction <= 1.0:
        raise HRMEvalError(f"loop_fraction must be in [0, 1], got {loop_fraction}")
    return iter(lambda: _maze_one(n, rng, loop_fraction), None)


def _carve(n: int, rng: random.Random, loop_fraction: float) -> np.ndarray:
    """Open cells bool [n, n]: a spanning tree over the rooms plus some loops."""
    rooms = list(range(1, n - 1, 2))
    is_open = np.zeros((n, n), dtype=bool)
    start = (rng.choice(rooms), rng.choice(rooms))
    is_open[start] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        nexts = [
            (r + 2 * dr, c + 2 * dc)
            for dr, dc in MOVES
            if 1 <= r + 2 * dr <= rooms[-1] and 1 <= c + 2 * dc <= rooms[-1] and not is_open[r + 2 * dr, c + 2 * dc]
        ]
        if not nexts:
            stack.pop()
            continue
        nr, nc = rng.choice(nexts)
        is_open[(r + nr) // 2, (c + nc) // 2] = True
        is_open[nr, nc] = True
        stack.append((nr, nc))
    # knock out some remaining walls between two rooms: loops, hence several routes
    walls = [
        (r, c)
        for r in range(1, rooms[-1] + 1)
        for c in range(1, rooms[-1] + 1)
        if not is_open[r, c] and (r % 2) != (c % 2)
    ]
    for r, c in walls:
        if rng.random() < loop_fraction:
            is_open[r, c] = True
    return is_open


def _downhill_path(dist_to_goal: np.ndarray, s: tuple[int, int]) -> list[tuple[int, int]]:
    """The cells strictly between S and G on the walk from S that always steps to a neighbour one
    closer to G, taking the first such neighbour in MOVES order."""
    n_rows, n_cols = dist_to_goal.shape
    path, cur = [], s
    while dist_to_goal[cur] > 0:
        for dr, dc in MOVES:
            nxt = (cur[0] + dr, cur[1] + dc)
            if 0 <= nxt[0] < n_rows and 0 <= nxt[1] < n_cols and dist_to_goal[nxt] == dist_to_goal[cur] - 1:
                cur = nxt
                break
        if dist_to_goal[cur] > 0:
            path.append(cur)
    return path


def _maze_one(n: int, rng: random.Random, loop_fraction: float) -> Row:
    is_open = _carve(n, rng, loop_fraction)
    cells = [(r, c) for r in range(n) for c in range(n) if is_open[r, c]]
    s, g = rng.sample(cells, 2)
    dist_to_goal = grid_distances(is_open, g)
    q = np.where(is_open, " ", "#")
    q[s], q[g] = "S", "G"
    a = q.copy()
    for cell in _downhill_path(dist_to_goal, s):
        a[cell] = "o"
    return "".join(q.reshape(-1)), "".join(a.reshape(-1)), int(dist_to_goal[s])
