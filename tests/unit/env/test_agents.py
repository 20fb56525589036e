"""The agents on PuzzleEnv (hrm_eval/Sudoku6-v0): the model agent never plays a forbidden move,
and `--mode play` prints what they did. (How many puzzles the bundled model solves as a player:
tests/acceptance/test_bundled_model_agent.py.)"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hrm_eval.env  # noqa: F401 - registers the ids
from hrm_eval.env.agents import ModelAgent, RandomAgent
from hrm_eval.env.play import play
from tests.conftest import ROOT

DATA = ROOT / "checkpoints" / "sudoku6-hard-hrm" / "data"  # the default bundled model's test split


def pinned_episodes(env, agent, n):
    """The first n test puzzles, one episode each: (solved [n], moves [n])."""
    solved, moves = [], []
    for i in range(n):
        obs, info = env.reset(options={"puzzle": i})
        agent.reset()
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
            done = terminated or truncated
        solved.append(info["solved"])
        moves.append(info["moves"])
    return np.array(solved), np.array(moves)


def test_the_model_agent_never_plays_a_forbidden_move():
    env = gym.make("hrm_eval/Sudoku6-v0", data=DATA)
    agent = ModelAgent(env)
    for i in range(10):
        obs, info = env.reset(options={"puzzle": i})
        agent.reset()
        done = False
        while not done:
            a = agent.act(obs, info)
            assert info["action_mask"][a]
            obs, _, terminated, truncated, info = env.step(a)
            done = terminated or truncated


def test_random_agent_plays_legal_moves_only_and_play_sums_up():
    env = gym.make("hrm_eval/Sudoku4-v0", move_cost=0.01)
    result = play(env, RandomAgent(seed=1), 20, seed=0)
    assert result["episodes"] == 20 and 0 <= result["solved_rate"] <= 1
    # every move costs 0.01 and a solved board pays 1: the mean reward follows from the other two
    assert result["mean_reward"] == pytest.approx(result["solved_rate"] - 0.01 * result["mean_moves"])


def test_a_model_of_another_task_is_a_one_line_error():
    from hrm_eval.utils.errors import HRMEvalError

    with pytest.raises(HRMEvalError, match="was not trained on sudoku "):
        ModelAgent(gym.make("hrm_eval/Sudoku-v0"))  # the bundled model plays 6x6 boards, not 9x9
    with pytest.raises(HRMEvalError, match="was not trained on maze"):
        gym.make("hrm_eval/Think-v0", task="maze")
