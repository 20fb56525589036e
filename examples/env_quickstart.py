"""hrm-eval's Gymnasium environments in five minutes (needs the env extra: pip install -e ".[env]").

    python examples/env_quickstart.py [--puzzles 200]

1. hrm_eval/Sudoku6-v0 on the bundled model's test puzzles: a random legal player against the
   model agent (the model's answer placed most confident first, re-solved while it breaks a rule).
2. hrm_eval/Think-v0, the model's own ACT loop: the Q head's halting rule against fixed
   thresholds on sigmoid(q_halt): accuracy against steps thought, on held-out puzzles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402

import hrm_eval.env  # noqa: E402, F401 - registers the hrm_eval/... ids
from hrm_eval.env.agents import ModelAgent, QHeadAgent, RandomAgent, ThresholdAgent  # noqa: E402
from hrm_eval.env.play import play, play_set  # noqa: E402

RUN = ROOT / "checkpoints" / "sudoku6-hard-hrm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--puzzles", type=int, default=200)
    n = ap.parse_args().puzzles

    # ---- 1. playing a Sudoku move by move -------------------------------------------------
    env = gym.make("hrm_eval/Sudoku6-v0", data=RUN / "data", render_mode="ansi")
    obs, info = env.reset(seed=0)  # obs: the board's 36 tokens; info["action_mask"]: legal moves
    print(env.render())
    print("1. hrm_eval/Sudoku6-v0, the bundled model's test puzzles")
    for name, agent in (("random", RandomAgent(seed=0)), ("model", ModelAgent(env))):
        r = play(env, agent, n, seed=0)
        print(f"   {name:<7} solved {r['solved_rate']:.3f}  mean moves {r['mean_moves']:5.2f}")

    # ---- 2. when to stop thinking ---------------------------------------------------------
    print(f"\n2. hrm_eval/Think-v0 on {n} held-out puzzles: halting policies, accuracy vs steps")
    vec = gym.make_vec("hrm_eval/Think-v0", num_envs=n, data=RUN / "heldout", autoreset_mode="disabled")
    policies = [("Q head (q_halt > q_continue)", QHeadAgent(vec))]
    policies += [(f"sigmoid(q_halt) >= {p}", ThresholdAgent(p)) for p in (0.1, 0.5, 0.9, 0.99)]
    for name, agent in policies:
        r = play_set(vec.unwrapped, agent, range(n))
        print(f"   {name:<29} accuracy {r['accuracy']:.3f}  mean steps {r['mean_steps']:.2f} of 8")


if __name__ == "__main__":
    main()
