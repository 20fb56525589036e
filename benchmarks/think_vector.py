"""The vector ThinkEnv against plain ThinkEnvs stepped in a loop, side by side, in env steps/s.

    python benchmarks/think_vector.py [--envs 64] [--rounds 5] [--device cpu|cuda] [--threads 1]

Both play the same thing: `--envs` sub-environments on the bundled model's held-out puzzles,
every one thinking on (action 0) for the model's 8 steps and then halting, round after round
(the vector env starts a finished sub-environment anew on its next step, as it does in use;
the plain ones are reset in the loop). An env step is one sub-environment's step, so a vector
step of 64 sub-environments counts 64. The two take turns each round (a slow moment on a
shared machine slows both alike); the best round of each is reported. Ends with
    vector Think-v0 (64 envs) is R.Rx the plain loop: V env steps/s vs P env steps/s
    the bare model step, batch 64 against batch 1: B.Bx (...), the most batching can give here
and the machine's load average (`uptime`) before and after. On a CPU the model step is
compute-bound (its cost grows with the rows), so B is small and R cannot exceed it by much; on
a GPU a batch-1 step is bound by kernel launches and B is large.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import hrm_eval.env  # noqa: E402, F401 - registers the ids
from hrm_eval.resources import bundled_run  # noqa: E402


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "(uptime not available)"


def plain_round(envs, steps: int) -> float:
    """env steps/s of the plain envs in a loop: reset, `steps` continues, halt (the last)."""
    t = time.perf_counter()
    count = 0
    for env in envs:
        env.reset()
    for k in range(steps):
        action = 1 if k == steps - 1 else 0
        for env in envs:
            env.step(action)
            count += 1
    return count / (time.perf_counter() - t)


def vector_round(vec, n: int, steps: int) -> float:
    t = time.perf_counter()
    vec.reset()
    count = 0
    for k in range(steps):
        vec.step(np.full(n, 1 if k == steps - 1 else 0))
        count += n
    return count / (time.perf_counter() - t)


def model_round(model, n: int, steps: int) -> tuple:
    """Rows/s of the bare model step at batch 1 (n calls) and at batch n (one call), `steps` times:
    what batching gives at most on this machine, with no environment around it."""
    from hrm_eval.models.base import InnerCarry

    inner, cfg = model.inner, model.config
    dev = next(model.parameters()).device
    shape = (n, cfg.full_seq_len, cfg.hidden_size)
    x, z = torch.randn(shape, device=dev), torch.randn(shape, device=dev)
    rates = []
    with torch.inference_mode():
        for rows in (1, n):
            carry = InnerCarry(z[:rows], z[:rows])
            t = time.perf_counter()
            for _ in range(steps):
                for _ in range(n // rows):
                    inner.step(carry, x[:rows], inner.cos_sin())
            if dev.type == "cuda":
                torch.cuda.synchronize()
            rates.append(n * steps / (time.perf_counter() - t))
    return rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = bundled_run() / "heldout"
    kw = {"data": str(data), "device": args.device}
    envs = [gym.make("hrm_eval/Think-v0", **kw) for _ in range(args.envs)]  # one model, shared
    for i, env in enumerate(envs):
        env.reset(seed=i)
    vec = gym.make_vec("hrm_eval/Think-v0", num_envs=args.envs, **kw)
    vec.reset(seed=0)
    steps = envs[0].unwrapped.limit  # 8: continue 7 times, halt on the 8th
    print(f"before: {uptime()}")
    plain_round(envs, 2)  # warm-up
    vector_round(vec, args.envs, 2)
    plain, vector, bare = [], [], []
    model = vec.unwrapped.model
    for _ in range(args.rounds):
        plain.append(plain_round(envs, steps))
        vector.append(vector_round(vec, args.envs, steps))
        bare.append(model_round(model, args.envs, steps))
    print(f"after:  {uptime()}")
    p, v = max(plain), max(vector)
    where = f"{args.device}, {args.threads} thread(s)"
    print(f"{args.envs} envs, {steps} steps per episode, best of {args.rounds} rounds, {where}")
    rates = f"{v:,.0f} env steps/s vs {p:,.0f} env steps/s"
    print(f"vector Think-v0 ({args.envs} envs) is {v / p:.1f}x the plain loop: {rates}")
    one, many = max(b[0] for b in bare), max(b[1] for b in bare)
    bare_rates = f"{many:,.0f} vs {one:,.0f} rows/s"
    print(
        f"the bare model step, batch {args.envs} vs batch 1: {many / one:.1f}x ({bare_rates}), the most batching gives"
    )


if __name__ == "__main__":
    main()
