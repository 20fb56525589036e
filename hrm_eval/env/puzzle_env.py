"""PuzzleEnv: one puzzle per episode, solved one move at a time (hrm_eval/Sudoku6-v0, ...).

    env = gymnasium.make("hrm_eval/Sudoku6-v0", data="checkpoints/sudoku6-hard-hrm/data")
    obs, info = env.reset(seed=0)          # obs: the board's tokens [L]; info["action_mask"]
    obs, reward, terminated, truncated, info = env.step(action)

Observation: the board's tokens in the task's vocabulary (MultiDiscrete([vocab_size] * L)).
Action: see `games` (Sudoku: cell * n + digit - 1; maze: the cell to mark). `info["action_mask"]`
[num_actions] int8 marks the legal moves; a given is never legal to write.

Reward (configurable): `solved_reward` (1) when a move leaves a board that passes the task's
rule check, else 0; minus `move_cost` (0) for every move; a move the mask forbids changes
nothing and, with `rule_break_reward` set (e.g. -1), ends the episode with that reward.
The episode ends (terminated) when solved, on a rule break (when set) or when no legal move is
left; it is truncated after `max_moves` moves (default: one per open cell, twice over).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hrm_eval.data.tasks import get_task
from hrm_eval.env.games import Game, game_for
from hrm_eval.env.puzzles import Puzzle, PuzzleSource
from hrm_eval.env.render import rgb
from hrm_eval.utils.errors import HRMEvalError

REDRAWS = 100  # drawn puzzles that are solved before any move (a maze with S next to G) are drawn again


class PuzzleEnv(gym.Env):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        task: str = "sudoku6",
        data: str | Path | None = None,
        *,
        split: str = "test",
        difficulty: tuple[int, int] | None = None,
        size: int | None = None,
        max_moves: int | None = None,
        solved_reward: float = 1.0,
        move_cost: float = 0.0,
        rule_break_reward: float | None = None,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise HRMEvalError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if max_moves is not None and max_moves < 1:
            raise HRMEvalError(f"max_moves must be at least 1, got {max_moves}")
        self.task = get_task(task)
        self.source = PuzzleSource(self.task, data, split=split, difficulty=difficulty, size=size)
        self.game: Game = game_for(self.task, self.source.seq_len)
        L = self.source.seq_len
        self.observation_space = spaces.MultiDiscrete(np.full(L, self.task.vocab_size, dtype=np.int64))
        self.action_space = spaces.Discrete(self.game.num_actions)
        self.max_moves = max_moves
        self.solved_reward, self.move_cost, self.rule_break_reward = solved_reward, move_cost, rule_break_reward
        self.render_mode = render_mode
        self.puzzle: Puzzle | None = None
        self.board = np.zeros(L, dtype=np.int64)  # [L] tokens
        self.moves = 0
        self.limit = 0

    # ---- the episode ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        pinned = (options or {}).get("puzzle")
        if pinned is not None:
            self.puzzle = self.source.pinned(pinned)
            self.game.start(self.puzzle.inputs)
        else:
            for _ in range(REDRAWS):
                self.puzzle = self.source.draw(self.np_random)
                self.game.start(self.puzzle.inputs)
                if not self.game.solved(self.puzzle.inputs):
                    break
        assert self.puzzle is not None
        self.board = self.puzzle.inputs.copy()
        self.moves = 0
        open_cells = int(self.game.open_cells(self.board).sum())
        self.limit = self.max_moves if self.max_moves is not None else max(2, 2 * open_cells)
        return self.board.copy(), self._info(self.game.legal(self.board))

    def step(self, action: Any):
        if self.puzzle is None:
            raise HRMEvalError("call reset() before step()")
        action = int(action)
        if not 0 <= action < self.game.num_actions:
            raise HRMEvalError(f"action {action} is outside 0..{self.game.num_actions - 1}")
        self.moves += 1
        reward = -self.move_cost
        legal = bool(self.game.legal(self.board)[action])
        if legal:
            self.board = self.game.apply(self.board, action)
        solved = legal and self.game.solved(self.board)
        mask = self.game.legal(self.board)
        broke = not legal and self.rule_break_reward is not None
        if solved:
            reward += self.solved_reward
        if broke:
            reward += float(self.rule_break_reward)  # type: ignore[arg-type]
        stuck = not solved and not mask.any()
        terminated = solved or broke or stuck
        truncated = not terminated and self.moves >= self.limit
        info = self._info(mask, legal=legal, solved=solved, stuck=stuck)
        return self.board.copy(), float(reward), terminated, truncated, info

    def _info(self, mask: np.ndarray, *, legal: bool = True, solved: bool = False, stuck: bool = False) -> dict:
        assert self.puzzle is not None
        return {
            "action_mask": mask,
            "legal": legal,  # this move was allowed (a forbidden move changes nothing)
            "solved": solved,
            "stuck": stuck,  # no legal move left on an unsolved board
            "moves": self.moves,
            "puzzle": self.puzzle.name,
        }

    # ---- drawing -----------------------------------------------------------------------------
    def render(self):
        if self.render_mode == "ansi":
            return self.game.ansi(self.board) + "\n"
        if self.render_mode == "rgb_array":
            return rgb(self.game, self.board)
        return None
