"""float32 vs bfloat16 on this machine's CPU, side by side in one run.

    python benchmarks/cpu_dtype.py [--threads N]

Prints the time of one matrix product and of one evaluation batch of the bundled model in
each dtype, and their ratio. On CPUs without AVX-512 BF16 / AMX, bf16 is emulated and slower;
this is why the bundled model is float32 and why the evaluator suggests --dtype float32 there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def best_of(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} threads"
    )

    a32, w32 = torch.randn(2304, 128), torch.randn(1024, 128)
    mm = {
        dt: best_of(lambda dt=dt: torch.nn.functional.linear(a32.to(dt), w32.to(dt)), 20)
        for dt in (torch.float32, torch.bfloat16)
    }
    print(
        f"matmul [2304x128]x[128x1024]: float32 {mm[torch.float32] * 1e3:.2f} ms, "
        f"bfloat16 {mm[torch.bfloat16] * 1e3:.2f} ms, bf16/fp32 = {mm[torch.bfloat16] / mm[torch.float32]:.1f}x"
    )

    from hrm_eval.data.dataset import PuzzleDataset
    from hrm_eval.inference.engine import ACTEngine
    from hrm_eval.models.checkpoint import load_checkpoint

    data = PuzzleDataset(ROOT / "checkpoints" / "sudoku6-hrm" / "data")
    pb = next(data.iter_batches(256))
    batch_time = {}
    for dtype in ("float32", "bfloat16"):
        loaded = load_checkpoint(ROOT / "checkpoints" / "sudoku6-hrm", dataset=data.metadata, dtype=dtype)
        engine = ACTEngine(loaded.model, slots=256)
        batch_time[dtype] = best_of(lambda e=engine: e.run_all(pb.inputs, pb.puzzle_identifiers), 3)
    print(
        f"bundled model, 256 puzzles x 4 ACT steps: float32 {batch_time['float32']:.2f} s, "
        f"bfloat16 {batch_time['bfloat16']:.2f} s, bf16/fp32 = {batch_time['bfloat16'] / batch_time['float32']:.1f}x"
    )


if __name__ == "__main__":
    main()
