"""ARC token layout: a grid of up to 30x30 colours on a 30x30 canvas, and back.

The public HRM builder's layout: the grid is drawn at the canvas' top-left (the train split
may translate it), flattened row-major to 900 tokens. Token = colour + 2, pad 0, EOS 1 (vocab
12). EOS marks the row just below the grid and the column just right of it (when those are
still inside the canvas; the corner cell below-right is not marked). Reading a grid back
(`crop_grid`) takes the largest top-left rectangle of colour tokens.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from hrm_eval.data.tasks.base import decode_json_list
from hrm_eval.utils.errors import HRMEvalError

GRID_SIZE = 30
SEQ_LEN = GRID_SIZE * GRID_SIZE
PAD_ID = 0
EOS_ID = 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10
VOCAB_SIZE = NUM_COLOURS + COLOUR_OFFSET


def parse_grid(value: Any, where: str) -> np.ndarray:
    """A grid as decoded JSON (a non-empty list of equally long rows of colours 0-9, at most
    30x30) -> uint8 [rows, cols]; ValueError names what is wrong at `where`."""
    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        raise ValueError(f"{where} is not a non-empty list of rows")
    widths = {len(row) for row in value}
    if len(widths) != 1:
        raise ValueError(f"{where} has ragged rows (lengths {sorted(widths)})")
    width = widths.pop()
    if width == 0:
        raise ValueError(f"{where} is empty")
    if len(value) > GRID_SIZE or width > GRID_SIZE:
        raise ValueError(f"{where} is {len(value)}x{width}, over {GRID_SIZE}x{GRID_SIZE}")
    for row in value:
        for cell in row:
            if type(cell) is not int or not 0 <= cell < NUM_COLOURS:
                raise ValueError(f"{where} has colour {cell!r} outside 0-9")
    return np.array(value, dtype=np.uint8)


def parse_grid_text(puzzle: Any, where: str = "ARC grid") -> np.ndarray:
    """A grid as a user writes it: JSON text or a decoded list of rows, or a 2-D array ->
    uint8 [rows, cols]. HRMEvalError with one line on anything else."""
    puzzle = decode_json_list(puzzle, where)
    if isinstance(puzzle, np.ndarray):
        puzzle = puzzle.tolist()
    try:
        return parse_grid(puzzle, where)
    except ValueError as e:
        raise HRMEvalError(str(e)) from None


def grid_to_sequence(grid: np.ndarray, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
    """uint8 [900]: the grid's tokens placed at (row_offset, col_offset), with EOS below and right."""
    grid = np.asarray(grid)
    rows, cols = grid.shape
    if rows + row_offset > GRID_SIZE or cols + col_offset > GRID_SIZE:
        raise ValueError(
            f"a {rows}x{cols} grid at ({row_offset}, {col_offset}) does not fit the {GRID_SIZE}x{GRID_SIZE} canvas"
        )
    canvas = np.full((GRID_SIZE, GRID_SIZE), PAD_ID, dtype=np.uint8)
    r1, c1 = row_offset + rows, col_offset + cols
    canvas[row_offset:r1, col_offset:c1] = grid.astype(np.uint8) + COLOUR_OFFSET
    if r1 < GRID_SIZE:
        canvas[r1, col_offset:c1] = EOS_ID
    if c1 < GRID_SIZE:
        canvas[row_offset:r1, c1] = EOS_ID
    return canvas.reshape(SEQ_LEN)


def crop_shapes(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the crop (see `crop_grid`) of each of [n, 900] token sequences."""
    canvas = np.asarray(tokens).reshape(-1, GRID_SIZE, GRID_SIZE)
    is_colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    # per row: index of the first non-colour token (GRID_SIZE when the whole row is colours)
    first_other = np.where(is_colour.all(axis=2), GRID_SIZE, np.argmin(is_colour, axis=2))
    widths = np.minimum.accumulate(first_other, axis=1)  # the width shrinks, never grows
    areas = widths * np.arange(1, GRID_SIZE + 1)
    best = np.argmax(areas, axis=1)  # first maximum, as the public scan (strict >) keeps it
    n = np.arange(canvas.shape[0])
    found = areas[n, best] > 0
    rows = np.where(found, best + 1, 0)
    cols = np.where(found, widths[n, best], 0)
    return rows, cols


def crop_grid(tokens: np.ndarray) -> np.ndarray:
    """The grid in a 900-token sequence: the largest top-left rectangle whose cells are all colour
    tokens (2..11), scanning rows and shrinking the width at each row's first non-colour token;
    colours = token - 2. uint8 [rows, cols] (0x0 when the first cell is not a colour)."""
    canvas = np.asarray(tokens).reshape(GRID_SIZE, GRID_SIZE)
    rows, cols = crop_shapes(canvas)
    return (canvas[: rows[0], : cols[0]].astype(np.int64) - COLOUR_OFFSET).astype(np.uint8)


def grid_origin(tokens: np.ndarray) -> tuple[int, int]:
    """Top-left cell of the first colour token (row-major): where a translated grid starts."""
    canvas = np.asarray(tokens).reshape(GRID_SIZE, GRID_SIZE)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    if not colour.any():
        return 0, 0
    r, c = np.argwhere(colour)[0]
    return int(r), int(c)


def grid_hash(grid: np.ndarray) -> str:
    """sha256 of the shape and the uint8 cells: equal exactly when the grids are equal."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()
