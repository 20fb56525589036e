"""Where the seed-shaped model's ACT step spends its time, by kind of op, and so how much any
fusion of the element-wise work could win at most.

    python benchmarks/step_profile.py               # one thread (the fairest on a shared VM)
    python benchmarks/step_profile.py --threads 2

Profiles one fixed-halting engine run of act_throughput's seed-shaped HRM (hidden 256, 2+2
layers, 8 heads, sequence 900) with torch.profiler and sums the ops' own time into matmul,
attention, element-wise and the rest. Matmul and attention already run torch's fastest CPU
kernels (MKL/oneDNN, flash attention; the math attention path is timed beside it on the step's
shapes), so a step can get at most 1 / (1 - element-wise share) faster from removing every
element-wise op. Ends with
    element-wise X% of the step: fusing it all away would be at most Y.YYx
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import act_throughput as bench  # noqa: E402  (the seed-shaped model and its puzzles)

from hrm_eval.inference.engine import HaltingPolicy  # noqa: E402

KINDS = {
    "matmul": ("aten::mm", "aten::bmm", "aten::addmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math"),
    "element-wise": (
        "aten::mul", "aten::add", "aten::cat", "aten::neg", "aten::pow", "aten::sum", "aten::silu",
        "aten::rsqrt", "aten::mean", "aten::copy_", "aten::div_", "aten::add_", "aten::mul_",
    ),
}  # fmt: skip


def attention_paths(model: torch.nn.Module, puzzles: int) -> dict:
    """Seconds (best of 3) of one attention call on the step's shapes [B, heads, S, head_dim],
    per scaled_dot_product_attention backend torch has on this CPU."""
    c = model.config
    q, k, v = (torch.randn(puzzles, c.num_heads, c.seq_len, c.hidden_size // c.num_heads) for _ in range(3))
    best = {}
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("math", SDPBackend.MATH)):
        with sdpa_kernel(backend):
            F.scaled_dot_product_attention(q, k, v)  # warm up
            times = []
            for _ in range(3):
                t = time.perf_counter()
                F.scaled_dot_product_attention(q, k, v)
                times.append(time.perf_counter() - t)
        best[name] = min(times)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--puzzles", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1, help="ACT steps per puzzle (halt_max_steps)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = bench.seed_shaped("float32", args.steps)
    puzzles = bench.random_puzzles(args.puzzles, 900, 12)
    fixed = HaltingPolicy("fixed")
    bench.engine_run(model, puzzles, args.puzzles, fixed)  # warm up: allocator, kernel choice
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        bench.engine_run(model, puzzles, args.puzzles, fixed)
    seconds: dict = defaultdict(float)
    for event in prof.key_averages():
        kind = next((k for k, names in KINDS.items() if event.key in names), "other")
        seconds[kind] += event.self_cpu_time_total / 1e6
    total = sum(seconds.values())
    print(f"seed-shaped HRM step, {args.puzzles} puzzles x {args.steps} ACT steps, {args.threads} thread(s), fp32")
    for kind in (*KINDS, "other"):
        print(f"{kind:>13}: {seconds[kind]:7.2f} s  {seconds[kind] / total:6.1%}")
    paths = attention_paths(model, args.puzzles)
    print(f"attention call: flash {paths['flash'] * 1e3:.0f} ms, math {paths['math'] * 1e3:.0f} ms "
          f"({paths['math'] / paths['flash']:.1f}x flash)")  # fmt: skip
    share = seconds["element-wise"] / total
    print(f"element-wise {share:.1%} of the step: fusing it all away would be at most {1 / (1 - share):.2f}x")


if __name__ == "__main__":
    main()
