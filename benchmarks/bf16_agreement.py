"""How far bf16 moves the answers of the seed-shaped model, to read the argmax agreements that
act_throughput.py prints for bf16 rows.

    python benchmarks/bf16_agreement.py                  # CPU (slow where bf16 is emulated)
    python benchmarks/bf16_agreement.py --device cuda --compile

The seed-shaped HRM has random weights, so many of its token logits are near ties and any
change of rounding flips some argmaxes. This prints, on the same puzzles, the argmax agreement
(fraction of tokens with the same answer) of:
  public bf16  vs public fp32   what bf16 itself costs (the public code's own precision step)
  engine bf16  vs public bf16   the engine in bf16 against the public loop in bf16
  compiled bf16 vs public bf16  (--compile) torch.compile's reordered bf16 sums
An agreement between two bf16 runs that is no lower than bf16's own against fp32 is a
difference of bf16 rounding, not of the computation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import act_throughput as bench  # noqa: E402  (the seed-shaped model, its puzzles and the public loop)

from hrm_eval.inference.engine import HaltingPolicy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--puzzles", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="halt_max_steps (act_throughput's seed-shaped default)")
    ap.add_argument("--compile", action="store_true", help="also the compiled engine in bf16")
    args = ap.parse_args()
    bench.DEVICE = torch.device(args.device)
    puzzles = bench.random_puzzles(args.puzzles, 900, 12)
    fixed = HaltingPolicy("fixed")
    preds = {}
    for dtype in ("float32", "bfloat16"):
        model = bench.seed_shaped(dtype, args.steps)  # the same seeded weights for both dtypes
        preds[f"public {dtype}"] = bench.public_loop(model, puzzles, args.puzzles)[0]
        if dtype == "bfloat16":
            preds["engine bfloat16"] = bench.engine_run(model, puzzles, args.puzzles, fixed)[0]
            if args.compile:
                bench.compile_warmup(model, puzzles, args.puzzles)
                preds["compiled bfloat16"] = bench.engine_run(model, puzzles, args.puzzles, fixed, True)[0]

    def agree(a: str, b: str) -> None:
        print(f"{a:>18} vs {b:<15} argmax agreement {float((preds[a] == preds[b]).float().mean()):.4f}")

    print(f"seed-shaped HRM, {args.puzzles} puzzles x 900 tokens, {args.steps} ACT steps, {args.device}")
    agree("public bfloat16", "public float32")
    agree("engine bfloat16", "public bfloat16")
    if args.compile:
        agree("compiled bfloat16", "public bfloat16")
        agree("compiled bfloat16", "public float32")


if __name__ == "__main__":
    main()
