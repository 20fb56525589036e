"""Start-up cost of loading a checkpoint in a fresh process (as every command does), and what
importing torch._dynamo would add to it, side by side.

    python benchmarks/startup.py

The loader checks a checkpoint's shapes on a model built on the meta device. Were anything
computed there (RoPE tables, weight init), torch would run its Python references, whose first
call imports torch._dynamo; tests/e2e/models/test_loading_process.py holds that loading does not. This
times, best of --repeat fresh interpreters each, loading the default bundled checkpoint:
  load          import torch and hrm_eval, load_checkpoint
  load+dynamo   the same with `import torch._dynamo` first (the cost loading avoids)
Ends with
    loading avoids X.XX s of torch._dynamo import (load A.AA s, load+dynamo B.BB s)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.resources import bundled_run  # noqa: E402


def fresh_load(step: Path, dynamo: bool) -> float:
    code = ("import torch._dynamo\n" if dynamo else "") + (
        f"import torch\nfrom hrm_eval.models.checkpoint import load_checkpoint\nload_checkpoint({str(step)!r})\n"
    )
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from hrm_eval.models.checkpoint import list_steps

    step = list_steps(bundled_run())[-1]
    best = {"load": float("inf"), "load+dynamo": float("inf")}
    for _ in range(args.repeat):  # taking turns: a slow moment slows both alike
        for name in best:
            best[name] = min(best[name], fresh_load(step, dynamo=name == "load+dynamo"))
    print(f"{step.parent.name}/{step.name}, best of {args.repeat} fresh processes each")
    print(
        f"loading avoids {best['load+dynamo'] - best['load']:.2f} s of torch._dynamo import "
        f"(load {best['load']:.2f} s, load+dynamo {best['load+dynamo']:.2f} s)"
    )


if __name__ == "__main__":
    main()
