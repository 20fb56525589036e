"""Evaluation across processes: one process vs K under torchrun on this machine, the bundled
model (or any checkpoint), fixed halting, fp32.

    python benchmarks/torchrun_scaling.py                    # 1, 2 and 4 processes, 1024 puzzles
    python benchmarks/torchrun_scaling.py --procs 1 2 --limit 256

Each run is a real `torchrun --standalone --nproc-per-node K deploy.py --mode evaluate` with
OMP_NUM_THREADS = cores / K. Reported per K: wall seconds of the whole command (start-up of K
processes, loading, evaluation, gather, writing), the evaluation's own wall time from
results.json (rank 0: its shard, the wait for the others and the gather), puzzles/s of each,
and whether the per-puzzle records equal the one-process run's byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(procs: int, limit: int, batch_size: int, out: Path, checkpoint: str, data: str) -> dict:
    threads = max(1, (os.cpu_count() or 1) // procs)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
    cmd += [str(ROOT / "deploy.py"), "--mode", "evaluate", "--checkpoint", checkpoint, "--data", data]
    cmd += ["--output", str(out), "--limit", str(limit), "--batch-size", str(batch_size), "--dtype", "float32"]
    cmd += ["--device", "cpu", "--threads", str(threads), "--no-progress", "--log-level", "WARNING"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True)
    wall = time.perf_counter() - start
    results = json.loads((out / "results.json").read_text())
    return {"wall": wall, "eval": results["aggregate_metrics"]["wall_time_seconds"], "threads": threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--limit", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--checkpoint", default="checkpoints/sudoku6-hrm")
    p.add_argument("--data", default="checkpoints/sudoku6-hrm/data")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        print(
            f"{'procs':>5} {'threads':>7} {'wall s':>8} {'puzzles/s':>10} {'eval s':>8} {'eval puzzles/s':>15}  records"
        )
        for k in args.procs:
            out = Path(tmp) / f"k{k}"
            r = run(k, args.limit, args.batch_size, out, args.checkpoint, args.data)
            records = (out / "per_puzzle.jsonl").read_bytes()
            reference = reference if reference is not None else records
            same = "same" if records == reference else "DIFFERENT"
            print(
                f"{k:>5} {r['threads']:>7} {r['wall']:>8.1f} {args.limit / r['wall']:>10.1f} "
                f"{r['eval']:>8.1f} {args.limit / r['eval']:>15.1f}  {same}"
            )


if __name__ == "__main__":
    main()
