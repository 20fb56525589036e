"""Export formats on the bundled models: file size, speed and accuracy of PyTorch, ONNX fp32 and
ONNX int8 (onnxruntime), side by side.

    python benchmarks/export_formats.py                 # both bundled models, 1000 test puzzles
    python benchmarks/export_formats.py --quick         # 200 puzzles (a smoke run)
    python benchmarks/export_formats.py --threads 4

For each model (checkpoints/sudoku6-hrm, checkpoints/sudoku6-hard-hrm, on their test splits) and
halting rule (fixed, adaptive) it times, in one process and on the same puzzles:
  torch       the ACT engine (continuous batching), fp32
  onnx fp32   the exported ACT step in onnxruntime (OnnxACTRunner)
  onnx int8   the same with int8 linear weights (onnxruntime quantize_dynamic)
and reports puzzles/s, exact and token accuracy, argmax agreement with torch fp32, and the
file sizes (step_<N>, model.safetensors, model.onnx, model.int8.onnx). Each timing is the best
of --repeats runs (the first run warms up). Prints a Markdown table (the README's Export table).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.data.open import open_dataset  # noqa: E402
from hrm_eval.export import write_model_folder  # noqa: E402
from hrm_eval.export.quantize import compare_outputs  # noqa: E402
from hrm_eval.export.runtime import dataset_rows, export_graphs  # noqa: E402
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy  # noqa: E402
from hrm_eval.inference.onnx_runner import OnnxACTRunner, make_session  # noqa: E402
from hrm_eval.inference.runner import FinishedRows  # noqa: E402
from hrm_eval.models.checkpoint import load_checkpoint  # noqa: E402

MODELS = {
    "sudoku6-hrm": ROOT / "checkpoints" / "sudoku6-hrm",
    "sudoku6-hard-hrm": ROOT / "checkpoints" / "sudoku6-hard-hrm",
}


def best_of(repeats: int, run: Callable[[], FinishedRows]) -> tuple[FinishedRows, float]:
    out, best = run(), float("inf")  # warm-up (first-call allocations, onnxruntime's lazy init)
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return out, best


def bench_model(name: str, folder: Path, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    dataset = open_dataset(folder / "data", split="test")
    loaded = load_checkpoint(folder, dataset=dataset.metadata, dtype="float32")
    inputs, ids, labels = dataset_rows(dataset, args.limit, args.batch_size)
    write_model_folder(loaded, tmp / name)
    graphs = export_graphs(loaded, tmp / name, quantize="int8")
    sizes = {
        "torch": loaded.path.stat().st_size,
        "safetensors": (tmp / name / "model.safetensors").stat().st_size,
        "onnx fp32": graphs["float32"].stat().st_size,
        "onnx int8": graphs["int8"].stat().st_size,
    }
    sessions = {kind: make_session(p, threads=args.threads) for kind, p in graphs.items()}
    rows = []
    for mode in ("fixed", "adaptive"):
        policy = HaltingPolicy(mode)  # type: ignore[arg-type]
        engine = ACTEngine(loaded.model, slots=args.batch_size, halting=policy)
        runners: dict[str, Callable[[], FinishedRows]] = {"torch": lambda e=engine: e.run_all(inputs, ids)}
        for kind, label in (("float32", "onnx fp32"), ("int8", "onnx int8")):
            runner = OnnxACTRunner(sessions[kind], loaded.config, slots=args.batch_size, halting=policy)
            runners[label] = lambda r=runner: r.run_all(inputs, ids)
        reference = None
        for label, run in runners.items():
            out, seconds = best_of(args.repeats, run)
            reference = reference or out
            cost = compare_outputs(reference, out, labels)
            rows.append(
                {
                    "model": name,
                    "halting": mode,
                    "format": label,
                    "size_mb": sizes[label] / 1e6,
                    "puzzles_per_s": len(inputs) / seconds,
                    "mean_steps": float(out.steps.float().mean()),
                    "exact": cost.exact_accuracy_int8,
                    "token": cost.token_accuracy_int8,
                    "agreement": cost.argmax_agreement,
                }
            )
            print(f"  {name} {mode:8s} {label:9s} {rows[-1]['puzzles_per_s']:8.1f} puzzles/s", file=sys.stderr)
        print(f"  {name}: safetensors {sizes['safetensors'] / 1e6:.2f} MB", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | halting | format | file MB | puzzles/s | mean steps | exact | token acc. | argmax agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['halting']} | {r['format']} | {r['size_mb']:.2f} | {r['puzzles_per_s']:.0f} | "
            f"{r['mean_steps']:.2f} | {r['exact']:.4f} | {r['token']:.4f} | {r['agreement']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 puzzles, one repeat")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and onnxruntime alike")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = p.parse_args()
    if args.quick:
        args.limit, args.repeats = 200, 1
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hrm-eval-bench-") as tmp:
        for name in args.models:
            rows += bench_model(name, MODELS[name], args, Path(tmp))
    print(
        f"{args.limit} test puzzles per model, batch {args.batch_size}, {args.threads} thread(s), "
        f"best of {args.repeats}"
    )
    print("exact / token accuracy against the labels; argmax agreement with torch fp32 on scored tokens\n")
    print(table(rows))


if __name__ == "__main__":
    main()
