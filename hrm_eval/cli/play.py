"""--mode play: an agent plays episodes of an hrm_eval environment; prints solved rate, mean
moves and mean reward.

hrm-eval --mode play --env hrm_eval/Sudoku6-v0 --agent model --episodes 100
hrm-eval --mode play --env hrm_eval/Think-v0 --agent threshold --halt-threshold 0.9
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Literal

from pydantic import Field

from hrm_eval.cli.base import Invocation, Mode
from hrm_eval.utils.config import LogSettings
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")
PUZZLE_AGENTS, THINK_AGENTS = ("model", "random"), ("qhead", "threshold")


class PlayConfig(LogSettings):
    """`--mode play`: an agent on an environment."""

    env: str = "hrm_eval/Sudoku6-v0"
    agent: Literal["model", "random", "qhead", "threshold"] = "model"
    episodes: int = Field(100, ge=1)
    seed: int = 0  # the first episode's reset seed (the rest follow from it)
    checkpoint: str | None = None  # the model agent's / ThinkEnv's checkpoint (default: bundled)
    data_path: str | None = None  # puzzles: a dataset directory, .csv or .jsonl (default: the generator)
    split: str = "test"
    difficulty: list[int] | None = Field(None, min_length=2, max_length=2)  # LO HI: blanks / path length
    max_moves: int | None = Field(None, ge=1)
    move_cost: float = 0.0
    rule_break_reward: float | None = None
    step_cost: float = 0.0
    halt_threshold: float = Field(0.5, gt=0, lt=1)
    device: str = "cpu"


def play_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--env", help="an hrm_eval environment id (hrm_eval/Sudoku6-v0, .../Maze-v0, .../Think-v0, ...)")
    g.add_argument(
        "--agent",
        choices=("model", "random", "qhead", "threshold"),
        help="puzzle envs: model (the checkpoint's answers) or random (legal moves); "
        "Think-v0: qhead (the model's own halting rule) or threshold (sigmoid(q_halt) >= P)",
    )
    g.add_argument("--episodes", type=int, help="episodes to play")
    g.add_argument("--seed", type=int, help="seed of the first episode")
    g.add_argument("--checkpoint", help="the model's checkpoint (default: bundled)")
    g.add_argument("--data", dest="data_path", help="puzzles: dataset directory, .csv or .jsonl (default: generated)")
    g.add_argument("--split", help="dataset split")
    g.add_argument(
        "--difficulty", nargs=2, type=int, metavar=("LO", "HI"), help="puzzles of this difficulty (Sudoku: blanks)"
    )
    g.add_argument("--max-moves", type=int, help="puzzle envs: truncate after this many moves")
    g.add_argument("--move-cost", type=float, help="puzzle envs: reward -C for every move")
    g.add_argument("--rule-break-reward", type=float, help="puzzle envs: a forbidden move ends the episode with R")
    g.add_argument("--step-cost", type=float, help="Think-v0: reward -C for every ACT step")
    g.add_argument("--halt-threshold", type=float, help="--agent threshold: halt when sigmoid(q_halt) >= P")
    g.add_argument("--device", help="cpu | cuda | ...")


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
    play_arguments,
    run_play,
    PlayConfig,
)
