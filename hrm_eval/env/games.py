"""The rules of play for each task: which moves are legal, what a move does, when a board is
solved. The solved check is the task's own rule check (`PuzzleTask.verify`); the rest follows
the same rules one move at a time, so a legal move never makes a board unsolvable by the rules
it can see.

Sudoku (n x n): action = cell * n + (digit - 1) places `digit` in `cell`. Legal: the cell is
blank (a given or an earlier placement is never overwritten) and no cell in its row, column or
box holds `digit`.

Maze: action = cell marks `cell` as path (`o`). Legal: the cell is open and unmarked, lies on
some shortest S-G path (dist_S + dist_G = shortest), no marked cell sits at its distance from S
already, and it touches the marked cells one step nearer to and one step further from S (S and
G count as marked): the marks stay a piece of one shortest path.
"""

from __future__ import annotations

import abc

import numpy as np

from hrm_eval.data.grids import square_side
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.data.tasks.maze import GOAL, OPEN, PATH, START, shortest_distances
from hrm_eval.data.tasks.sudoku import BLANK_ID, DIGIT_OFFSET, SudokuTask
from hrm_eval.utils.errors import HRMEvalError


class Game(abc.ABC):
    """One task's moves over boards of `seq_len` tokens (a board is int64 tokens [L])."""

    def __init__(self, task: PuzzleTask, seq_len: int):
        self.task = task
        self.seq_len = seq_len
        self.side = square_side(seq_len) or seq_len

    num_actions: int

    def start(self, inputs: np.ndarray) -> None:
        """A new puzzle (inputs [L]): whatever the rules need per puzzle."""
        self.inputs = np.asarray(inputs, dtype=np.int64).copy()

    @abc.abstractmethod
    def legal(self, board: np.ndarray) -> np.ndarray:
        """[num_actions] int8: 1 where the move is legal on `board`."""

    @abc.abstractmethod
    def cell_token(self, action: int) -> tuple[int, int]:
        """The (cell, token) a move writes."""

    @abc.abstractmethod
    def action_of(self, cell: int, token: int) -> int | None:
        """The move that writes `token` into `cell`, or None where no move writes that token."""

    def apply(self, board: np.ndarray, action: int) -> np.ndarray:
        """The board after a legal move (a new array)."""
        cell, token = self.cell_token(action)
        out = board.copy()
        out[cell] = token
        return out

    def solved(self, board: np.ndarray) -> bool:
        return bool(self.task.verify(self.inputs, board))

    @abc.abstractmethod
    def action_scores(self, probs: np.ndarray) -> np.ndarray:
        """probs [L, V] (the model's token probabilities per cell) -> [num_actions]: the model's
        probability of the token each move writes."""

    @abc.abstractmethod
    def open_cells(self, board: np.ndarray) -> np.ndarray:
        """[L] bool: cells a move may still write."""

    def model_input(self, board: np.ndarray) -> np.ndarray:
        """What the model reads to solve from this board."""
        return board

    def ansi(self, board: np.ndarray) -> str:
        return self.task.decode(board)


class SudokuGame(Game):
    def __init__(self, task: PuzzleTask, seq_len: int):
        super().__init__(task, seq_len)
        if not isinstance(task, SudokuTask) or seq_len != task.seq_len:
            raise HRMEvalError(f"a Sudoku game needs a Sudoku task of {seq_len} cells")
        self.n = n = task.n
        self.num_actions = seq_len * n
        r, c = np.divmod(np.arange(seq_len), n)
        box = (r // task.box_rows) * (n // task.box_cols) + c // task.box_cols
        same = (r[:, None] == r[None]) | (c[:, None] == c[None]) | (box[:, None] == box[None])
        self.peers = (same & ~np.eye(seq_len, dtype=bool)).astype(np.int32)  # [L, L]

    def legal(self, board: np.ndarray) -> np.ndarray:
        digits = board - DIGIT_OFFSET  # 1..n where filled
        onehot = (digits[:, None] == np.arange(1, self.n + 1)[None]).astype(np.int32)  # [L, n]
        taken = (self.peers @ onehot) > 0  # [L, n]: a peer holds that digit
        blank = board == BLANK_ID
        return (blank[:, None] & ~taken).reshape(-1).astype(np.int8)

    def cell_token(self, action: int) -> tuple[int, int]:
        cell, d = divmod(int(action), self.n)
        return cell, d + 1 + DIGIT_OFFSET

    def action_of(self, cell: int, token: int) -> int | None:
        d = int(token) - DIGIT_OFFSET
        return cell * self.n + d - 1 if 1 <= d <= self.n else None

    def action_scores(self, probs: np.ndarray) -> np.ndarray:
        return probs[:, 1 + DIGIT_OFFSET : self.n + 1 + DIGIT_OFFSET].reshape(-1)  # digit tokens 2..n+1

    def open_cells(self, board: np.ndarray) -> np.ndarray:
        return board == BLANK_ID

    def ansi(self, board: np.ndarray) -> str:
        assert isinstance(self.task, SudokuTask)
        text, n, br, bc = self.task.decode(board), self.n, self.task.box_rows, self.task.box_cols
        rule = "+" + "+".join("-" * (2 * bc + 1) for _ in range(n // bc)) + "+"
        lines = [rule]
        for r in range(n):
            row = text[r * n : (r + 1) * n]
            lines.append("| " + " | ".join(" ".join(row[s : s + bc]) for s in range(0, n, bc)) + " |")
            if (r + 1) % br == 0:
                lines.append(rule)
        return "\n".join(lines)


class MazeGame(Game):
    def __init__(self, task: PuzzleTask, seq_len: int):
        super().__init__(task, seq_len)
        if square_side(seq_len) is None:
            raise HRMEvalError(f"a maze of {seq_len} cells is not square")
        self.num_actions = seq_len
        n = self.side
        r, c = np.divmod(np.arange(seq_len), n)
        self.adjacent = (np.abs(r[:, None] - r[None]) + np.abs(c[:, None] - c[None])) == 1  # [L, L]

    def start(self, inputs: np.ndarray) -> None:
        super().start(inputs)
        x = self.inputs
        self.s, self.g = int(np.flatnonzero(x == START)[0]), int(np.flatnonzero(x == GOAL)[0])
        self.level = shortest_distances(x, self.s)  # [L] steps from S (-1: unreachable)
        to_goal = shortest_distances(x, self.g)
        self.shortest = int(self.level[self.g])
        on = (x == OPEN) & (self.level >= 0) & (to_goal >= 0) & (self.level + to_goal == self.shortest)
        self.candidates = np.flatnonzero(on)  # cells on some shortest path

    def legal(self, board: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.num_actions, dtype=np.int8)
        if self.shortest < 2:
            return mask
        at: dict = {0: self.s, self.shortest: self.g}  # level -> the marked cell there
        for cell in np.flatnonzero(board == PATH):
            at[int(self.level[cell])] = int(cell)
        for cell in self.candidates:
            k = int(self.level[cell])
            if board[cell] != OPEN or k in at:
                continue
            if all(k + d not in at or self.adjacent[cell, at[k + d]] for d in (-1, 1)):
                mask[cell] = 1
        return mask

    def cell_token(self, action: int) -> tuple[int, int]:
        return int(action), PATH

    def action_of(self, cell: int, token: int) -> int | None:
        return int(cell) if token == PATH else None

    def action_scores(self, probs: np.ndarray) -> np.ndarray:
        return probs[:, PATH]

    def open_cells(self, board: np.ndarray) -> np.ndarray:
        return board == OPEN

    def model_input(self, board: np.ndarray) -> np.ndarray:
        return self.inputs  # the model reads questions, which hold no path marks

    def ansi(self, board: np.ndarray) -> str:
        text = self.task.decode(board)
        return "\n".join(text[r * self.side : (r + 1) * self.side] for r in range(self.side))


def game_for(task: PuzzleTask, seq_len: int) -> Game:
    if isinstance(task, SudokuTask):
        return SudokuGame(task, seq_len)
    if task.name == "maze":
        return MazeGame(task, seq_len)
    raise HRMEvalError(f"no environment rules for task {task.name} (have: sudoku, sudoku4, sudoku6, maze)")
