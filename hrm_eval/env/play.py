"""Playing episodes: an agent on an environment, summed up (what `--mode play` prints)."""

from __future__ import annotations

from typing import Any

import numpy as np


def play(env: Any, agent: Any, episodes: int, *, seed: int | None = 0) -> dict[str, Any]:
    """`episodes` episodes (the first reset seeded with `seed`, the rest drawn on from it) ->
    solved rate (PuzzleEnv: a solved board; ThinkEnv: a right answer at the halt), mean moves
    (ThinkEnv: ACT steps) and mean reward per episode."""
    solved, moves, rewards = [], [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed if episode == 0 else None)
        agent.reset()
        total, n, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
            total += float(reward)
            n += 1
            done = terminated or truncated
        solved.append(bool(info.get("solved", info.get("correct", False))))
        moves.append(info.get("moves", info.get("steps", n)))
        rewards.append(total)
    return {
        "episodes": episodes,
        "solved_rate": float(np.mean(solved)) if episodes else 0.0,
        "mean_moves": float(np.mean(moves)) if episodes else 0.0,
        "mean_reward": float(np.mean(rewards)) if episodes else 0.0,
    }


def play_set(vec: Any, agent: Any, puzzles: Any) -> dict[str, Any]:
    """Every puzzle of `puzzles` (indices into the vector env's set, one sub-environment each)
    played once by `agent` on a ThinkVectorEnv made with `autoreset_mode="disabled"`, all
    sub-environments stepped together -> accuracy (right at the halt), mean steps, and the
    per-puzzle `correct` [n] and `steps` [n]."""
    n = len(puzzles)
    if vec.num_envs != n:
        raise ValueError(f"{n} puzzles need a vector env of {n} sub-environments, got {vec.num_envs}")
    obs, _ = vec.reset(options={"puzzles": list(puzzles)})
    done = np.zeros(n, dtype=bool)
    correct, steps = np.zeros(n, dtype=bool), np.zeros(n, dtype=int)
    while not done.all():
        obs, _, terminated, _, infos = vec.step(agent.act(obs))
        now = terminated & ~done  # the first time each ends; a disabled-autoreset env stays ended
        correct[now], steps[now] = infos["correct"][now], infos["steps"][now]
        done |= terminated
    return {"accuracy": float(correct.mean()), "mean_steps": float(steps.mean()), "correct": correct, "steps": steps}
