"""`render_mode="rgb_array"`: a board as an RGB image (uint8 [H, W, 3]) drawn with numpy alone
(no plotting library needed): Sudoku digits from a 3x5 pixel font, the given ones black and the
placed ones blue, box borders thicker; a maze's walls dark, S green, G red, path marks blue."""

from __future__ import annotations

import numpy as np

from hrm_eval.data.tasks.maze import GOAL, OPEN, PATH, START, WALL
from hrm_eval.data.tasks.sudoku import DIGIT_OFFSET, SudokuTask
from hrm_eval.env.games import Game

CELL = 24  # pixels per cell
SCALE = 3  # font pixels -> image pixels: a digit is 9 x 15
# 3x5 bitmaps of 1..9, rows top to bottom, 3 bits each (left bit first)
_FONT = {
    1: ("010", "110", "010", "010", "111"),
    2: ("111", "001", "111", "100", "111"),
    3: ("111", "001", "111", "001", "111"),
    4: ("101", "101", "111", "001", "001"),
    5: ("111", "100", "111", "001", "111"),
    6: ("111", "100", "111", "101", "111"),
    7: ("111", "001", "010", "010", "010"),
    8: ("111", "101", "111", "101", "111"),
    9: ("111", "101", "111", "001", "111"),
}
GIVEN_INK, PLACED_INK = (0, 0, 0), (30, 90, 220)
MAZE_COLORS = {
    WALL: (40, 40, 40),
    OPEN: (255, 255, 255),
    START: (40, 170, 60),
    GOAL: (210, 50, 50),
    PATH: (30, 90, 220),
}


def _glyph(d: int) -> np.ndarray:
    bits = np.array([[ch == "1" for ch in row] for row in _FONT[d]])  # [5, 3]
    return np.kron(bits, np.ones((SCALE, SCALE), dtype=bool))  # [15, 9]


def rgb(game: Game, board: np.ndarray) -> np.ndarray:
    """uint8 [side * CELL + 1, side * CELL + 1, 3]."""
    n = game.side
    size = n * CELL + 1
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    if isinstance(game.task, SudokuTask):
        task = game.task
        for r in range(n):
            for c in range(n):
                d = int(board[r * n + c]) - DIGIT_OFFSET
                if 1 <= d <= n:
                    ink = GIVEN_INK if game.inputs[r * n + c] == board[r * n + c] else PLACED_INK
                    g = _glyph(d)
                    y, x = r * CELL + (CELL - g.shape[0]) // 2, c * CELL + (CELL - g.shape[1]) // 2
                    img[y : y + g.shape[0], x : x + g.shape[1]][g] = ink
        for k in range(n + 1):  # thin cell lines, thick box borders
            thick = 2 if k % task.box_rows == 0 else 1
            img[max(0, k * CELL - thick + 1) : k * CELL + 1, :] = 0 if thick == 2 else 160
            thick = 2 if k % task.box_cols == 0 else 1
            img[:, max(0, k * CELL - thick + 1) : k * CELL + 1] = 0 if thick == 2 else 160
        return img
    for r in range(n):
        for c in range(n):
            color = MAZE_COLORS.get(int(board[r * n + c]), (255, 0, 255))
            img[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = color
    img[::CELL, :] = 200  # cell lines
    img[:, ::CELL] = 200
    return img
