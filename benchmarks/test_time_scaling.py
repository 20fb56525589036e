"""Test-time scaling: what thinking longer buys and what it costs, side by side in one run.

    python benchmarks/test_time_scaling.py                 # the default model's 2,000 held-out puzzles
    python benchmarks/test_time_scaling.py --limit 400     # a quicker run
    python benchmarks/test_time_scaling.py --device cuda   # a GPU (larger --slots pays there)
    python benchmarks/test_time_scaling.py --checkpoint checkpoints/sudoku6-hrm --band 15 18

On one model and one set of puzzles, in one process: fixed halting (every puzzle runs the
trained limit: the public numbers), adaptive halting (the model's own Q rule), and
`--scaling verify` (inference/scaling.py: an answer that breaks the rules thinks longer, then
again on views of the puzzle) at several budgets. For each it prints exact accuracy overall and
on the hardest band, the mean ACT steps per puzzle (all attempts counted) and puzzles/s, and
ends with
    hardest band (19+ blanks): exact A.AAA at S.S ACT steps/puzzle (fixed 8: B.BBB at 8.0)
for the largest budget, then McNemar's paired test (evaluation/stats.py) of each run against the
one below it on the same puzzles: adaptive against fixed, every budget against adaptive (the
plain run scaling starts from). Rerun it on an idle machine (the load average is printed beside the
numbers); the ratios between rows, not the absolute times, are the result.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.data.tasks import get_task  # noqa: E402
from hrm_eval.evaluation.stats import paired_test  # noqa: E402
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy  # noqa: E402
from hrm_eval.inference.runtime import apply_threads  # noqa: E402
from hrm_eval.inference.scaling import ScaledRunner, ScalingPolicy  # noqa: E402
from hrm_eval.models.checkpoint import load_checkpoint  # noqa: E402

DEFAULT = ROOT / "checkpoints" / "sudoku6-hard-hrm"


def held_out(data: Path, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = np.load(data / "test" / "all__inputs.npy").astype(np.int64)[:limit]
    labels = np.load(data / "test" / "all__labels.npy").astype(np.int64)[:limit]
    return torch.from_numpy(inputs), torch.from_numpy(labels)


def timed(runner: Any, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[Any, float]:
    ids = torch.zeros(len(x), dtype=torch.long)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    rows = runner.run_all(x, ids, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return rows, time.perf_counter() - start


def solved(rows: Any, y: torch.Tensor) -> np.ndarray:
    return (rows.preds.cpu() == y).all(1).numpy()


def measure(rows: Any, y: torch.Tensor, seconds: float, band: np.ndarray) -> dict[str, float]:
    exact = solved(rows, y)
    total = rows.act_steps_total if getattr(rows, "act_steps_total", None) is not None else rows.steps
    steps = total.double().numpy()
    return {
        "exact": float(exact.mean()),
        "band_exact": float(exact[band].mean()),
        "steps": float(steps.mean()),
        "band_steps": float(steps[band].mean()),
        "puzzles_per_s": len(y) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT))
    ap.add_argument("--data", default=None, help="a built dataset directory (default: the checkpoint's heldout/)")
    ap.add_argument("--task", default="sudoku6")
    ap.add_argument("--band", type=int, nargs=2, default=(19, 27), metavar=("LO", "HI"), help="the hardest band")
    ap.add_argument("--budgets", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: the cores)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cpu":
        apply_threads(args.threads or os.cpu_count() or 1)
    ckpt = Path(args.checkpoint)
    data = Path(args.data) if args.data else (ckpt if ckpt.is_dir() else ckpt.parent) / "heldout"
    task = get_task(args.task)
    model = load_checkpoint(ckpt, device=device, dtype="float32").model
    x, y = held_out(data, args.limit)
    lo, hi = args.band
    blanks = task.difficulty(x.numpy())
    band = (blanks >= lo) & (blanks <= hi)
    limit = model.config.halt_max_steps
    load = os.getloadavg()
    print(
        f"{ckpt} on {data}: {len(x)} puzzles, {int(band.sum())} with {lo}-{hi} blanks; device {device}, float32, "
        f"{torch.get_num_threads()} threads; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )

    runs: list[tuple[str, dict[str, float]]] = []
    exact: dict[str, np.ndarray] = {}  # per-puzzle solved, for the paired tests
    common = dict(slots=args.slots, device=device)
    for name, runner in (
        (f"fixed {limit}", ACTEngine(model, halting=HaltingPolicy("fixed"), **common)),  # type: ignore[arg-type]
        ("adaptive", ACTEngine(model, halting=HaltingPolicy("adaptive"), **common)),  # type: ignore[arg-type]
    ):
        rows, seconds = timed(runner, x, y, device)
        runs.append((name, measure(rows, y, seconds, band)))
        exact[name] = solved(rows, y)
    for budget in args.budgets:
        policy = ScalingPolicy("verify", budget=budget, views=args.views)
        runner = ScaledRunner(model, task, policy, halting=HaltingPolicy("adaptive"), **common)  # type: ignore[arg-type]
        rows, seconds = timed(runner, x, y, device)
        runs.append((f"verify, budget {budget}", measure(rows, y, seconds, band)))
        exact[runs[-1][0]] = solved(rows, y)

    head = f"{'run':<20} {'exact':>7} {'steps':>7} {f'exact {lo}-{hi}':>11} {f'steps {lo}-{hi}':>11} {'puzzles/s':>10}"
    print(head)
    fixed = runs[0][1]
    for name, m in runs:
        print(
            f"{name:<20} {m['exact']:>7.3f} {m['steps']:>7.2f} {m['band_exact']:>11.3f} {m['band_steps']:>11.2f} "
            f"{m['puzzles_per_s']:>10.1f}  ({m['puzzles_per_s'] / fixed['puzzles_per_s']:.2f}x fixed)"
        )
    best = runs[-1][1]
    print(
        f"hardest band ({lo}+ blanks): exact {best['band_exact']:.3f} at {best['band_steps']:.1f} ACT steps/puzzle "
        f"(fixed {limit}: {fixed['band_exact']:.3f} at {fixed['band_steps']:.1f})"
    )
    print(f"paired tests (same puzzles; overall, then the {lo}-{hi} band):")
    pairs = [("adaptive", f"fixed {limit}")] + [(name, "adaptive") for name, _ in runs[2:]]
    for a, b in pairs:
        for rows_of in (slice(None), band):
            print("  " + paired_test(exact[a][rows_of], exact[b][rows_of], a, b)["statement"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
