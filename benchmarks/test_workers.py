"""The in-process test tier in one process and in two pytest-xdist workers, side by side.

    python benchmarks/test_workers.py            # tests/unit, once each way
    python benchmarks/test_workers.py --tier tests/e2e --repeat 2

README "Test" quotes this: each run's wall time and pytest's own count, the ratio, and the
machine (CPU capability, bf16 instructions, cores, the 1-minute load average before each run:
timings taken beside other work are not the machine's). The runs alternate (one process, two
workers, one process, ...) so a machine whose speed drifts slows both alike. Needs the test extra.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.inference.runtime import cpu_bf16_native  # noqa: E402

WAYS = {"one process": [], "-n 2 --dist loadfile": ["-n", "2", "--dist", "loadfile"]}


def run(tier: str, extra: list[str]) -> tuple[float, str]:
    """(wall seconds, pytest's summary line) of one run of the tier."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tier, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"\d+ passed", line)), "")
    if proc.returncode != 0:
        sys.exit(f"{tier} {' '.join(extra)} failed:\n{proc.stdout[-3000:]}")
    return seconds, summary.strip("= ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tier", default="tests/unit")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    native = [k for k, ok in cpu_bf16_native().items() if ok] or ["none"]
    print(
        f"{os.cpu_count()} cores, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"bf16 instructions: {', '.join(native)}"
    )
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.repeat):
        for way, extra in WAYS.items():
            load = os.getloadavg()[0]
            seconds, summary = run(args.tier, extra)
            times[way].append(seconds)
            print(f"{args.tier} {way:22s} {seconds:6.1f} s  (load {load:.2f} before; {summary})")
    one, two = (min(v) for v in times.values())
    print(f"two workers: {one / two:.2f}x one process (best of {args.repeat}: {one:.1f} s against {two:.1f} s)")


if __name__ == "__main__":
    main()
