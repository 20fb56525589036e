"""Gymnasium environments over hrm-eval's tasks and models (extra `.[env]`: gymnasium).

Importing this module registers:

    hrm_eval/Sudoku-v0    9x9 Sudoku     PuzzleEnv(task="sudoku")
    hrm_eval/Sudoku6-v0   6x6 Sudoku     PuzzleEnv(task="sudoku6")
    hrm_eval/Sudoku4-v0   4x4 Sudoku     PuzzleEnv(task="sudoku4")
    hrm_eval/Maze-v0      maze (15x15)   PuzzleEnv(task="maze")
    hrm_eval/Think-v0     the ACT loop of a checkpoint (default: the bundled model)  ThinkEnv

    import gymnasium, hrm_eval.env
    env = gymnasium.make("hrm_eval/Sudoku6-v0", data="checkpoints/sudoku6-hard-hrm/data")

Puzzles come from `data` (a dataset directory, .csv or .jsonl) or, without it, from the task's
generator. Agents that play them: `hrm_eval.env.agents` (ModelAgent, QHeadAgent, RandomAgent).
"""

from __future__ import annotations

from hrm_eval.utils.errors import HRMEvalError

try:
    import gymnasium as gym
except ImportError:  # one line, not a traceback: the extra is missing
    raise HRMEvalError("hrm_eval.env needs gymnasium: pip install 'hrm-eval[env]'") from None

from hrm_eval.env.puzzle_env import PuzzleEnv
from hrm_eval.env.think import ThinkEnv, ThinkVectorEnv

PUZZLE_ENVS = {
    "hrm_eval/Sudoku-v0": "sudoku",
    "hrm_eval/Sudoku6-v0": "sudoku6",
    "hrm_eval/Sudoku4-v0": "sudoku4",
    "hrm_eval/Maze-v0": "maze",
}
THINK_ENV = "hrm_eval/Think-v0"
ENV_IDS = (*PUZZLE_ENVS, THINK_ENV)


def _register() -> None:
    for env_id, task in PUZZLE_ENVS.items():
        if env_id not in gym.registry:  # importing twice (a reload) registers once
            gym.register(env_id, entry_point="hrm_eval.env.puzzle_env:PuzzleEnv", kwargs={"task": task})
    if THINK_ENV not in gym.registry:
        gym.register(
            THINK_ENV, entry_point="hrm_eval.env.think:ThinkEnv", vector_entry_point="hrm_eval.env.think:ThinkVectorEnv"
        )


_register()

__all__ = ["PuzzleEnv", "ThinkEnv", "ThinkVectorEnv", "ENV_IDS", "PUZZLE_ENVS", "THINK_ENV"]
