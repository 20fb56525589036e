"""--mode play: an agent plays episodes of an hrm_eval environment; prints solved rate, mean
moves and mean reward.

hrm-eval --mode play --env hrm_eval/Sudoku6-v0 --agent model --episodes 100
hrm-eval --mode play --env hrm_eval/Think-v0 --agent threshold --halt-threshold 0.9
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from hrm_eval.cli.base import Invocation, Mode
from hrm_eval.utils.config import LogSettings, setting
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")
PUZZLE_AGENTS, THINK_AGENTS = ("model", "random"), ("qhead", "threshold")


class PlayConfig(LogSettings):
    """`--mode play`: an agent on an environment."""

    env: str = setting(
        "hrm_eval/Sudoku6-v0",
        help="an hrm_eval environment id (hrm_eval/Sudoku6-v0, .../Maze-v0, .../Think-v0, ...)",
    )
    agent: Literal["model", "random", "qhead", "threshold"] = setting(
        "model",
        help="puzzle envs: model (the checkpoint's answers) or random (legal moves); "
        "Think-v0: qhead (the model's own halting rule) or threshold (sigmoid(q_halt) >= P)",
    )
    episodes: int = setting(100, ge=1, help="episodes to play")
    seed: int = setting(0, help="seed of the first episode")  # the rest follow from it
    checkpoint: str | None = setting(  # the model agent's / ThinkEnv's checkpoint
        None, help="the model's checkpoint (default: bundled)"
    )
    data_path: str | None = setting(  # default: the task's generator
        None, flag="--data", help="puzzles: dataset directory, .csv or .jsonl (default: generated)"
    )
    split: str = setting("test", help="dataset split")
    difficulty: list[int] | None = setting(  # LO HI: blanks / path length
        None,
        min_length=2,
        max_length=2,
        nargs=2,
        metavar=("LO", "HI"),
        help="puzzles of this difficulty (Sudoku: blanks)",
    )
    max_moves: int | None = setting(None, ge=1, help="puzzle envs: truncate after this many moves")
    move_cost: float = setting(0.0, help="puzzle envs: reward -C for every move")
    rule_break_reward: float | None = setting(None, help="puzzle envs: a forbidden move ends the episode with R")
    step_cost: float = setting(0.0, help="Think-v0: reward -C for every ACT step")
    halt_threshold: float = setting(0.5, gt=0, lt=1, help="--agent threshold: halt when sigmoid(q_halt) >= P")
    device: str = setting("cpu", help="cpu | cuda | ...")


def run_play(inv: Invocation) -> int:
    cfg = inv.config(PlayConfig)
    import gymnasium as gym

    # why: gymnasium (the env extra) and torch, only for --mode play
    import hrm_eval.env as envs
    from hrm_eval.env.agents import ModelAgent, QHeadAgent, RandomAgent, ThresholdAgent
    from hrm_eval.env.play import play

    if cfg.env not in envs.ENV_IDS:
        raise HRMEvalError(f"--env {cfg.env}: not an hrm_eval environment (have: {', '.join(envs.ENV_IDS)})")
    think = cfg.env == envs.THINK_ENV
    allowed = THINK_AGENTS if think else PUZZLE_AGENTS
    if cfg.agent not in allowed:
        raise HRMEvalError(f"--agent {cfg.agent} does not play {cfg.env}; it takes {' or '.join(allowed)}")
    kwargs: dict[str, Any] = {"data": cfg.data_path, "split": cfg.split, "difficulty": cfg.difficulty}
    if think:
        kwargs.update(checkpoint=cfg.checkpoint, step_cost=cfg.step_cost, device=cfg.device)
    else:
        kwargs.update(max_moves=cfg.max_moves, move_cost=cfg.move_cost, rule_break_reward=cfg.rule_break_reward)
    env = gym.make(cfg.env, **kwargs)
    agent: Any
    if cfg.agent == "model":
        agent = ModelAgent(env, cfg.checkpoint, device=cfg.device)
    elif cfg.agent == "random":
        agent = RandomAgent(cfg.seed)
    elif cfg.agent == "qhead":
        agent = QHeadAgent(env)
    else:
        agent = ThresholdAgent(cfg.halt_threshold)
    result = play(env, agent, cfg.episodes, seed=cfg.seed)
    log.info("played %d episodes", cfg.episodes, extra={"event": "metrics", "metrics": result, "console": False})
    what = "right answers at the halt" if think else "solved boards"
    print(f"{cfg.env}, agent {cfg.agent}: {cfg.episodes} episodes from seed {cfg.seed}")
    print(f"solved rate  {result['solved_rate']:.3f}  ({what})")
    print(f"mean moves   {result['mean_moves']:.2f}" + ("  (ACT steps)" if think else ""))
    print(f"mean reward  {result['mean_reward']:.3f}")
    return 0


PLAY = Mode(
    "play",
    "An agent (the model, random, the Q head, a threshold) plays an hrm_eval Gymnasium environment.",
    run_play,
    PlayConfig,
)
