"""Evaluation memory against dataset size: peak memory of `--mode evaluate` on 1,000 and on
100,000 puzzles, side by side in one run.

    python benchmarks/eval_memory.py                     # 1,000 vs 100,000 puzzles
    python benchmarks/eval_memory.py --large 20000       # a shorter run
    python benchmarks/eval_memory.py --save-predictions  # also writing step_<N>_all_preds.0

What grows with the puzzle count is the evaluator's bookkeeping, not the model, so the model is
a tiny random HRM (hidden 16, one layer per level, 2 ACT steps) on a dataset shaped like the
bundled 6x6 Sudoku (vocabulary 8, sequence 36, random boards), and each size is evaluated by
`deploy.py` in its own process, whose peak resident memory (ru_maxrss from wait4) is reported.
Per-puzzle records stream to per_puzzle.jsonl; results.json keeps them only up to a cap; the
per-step arrays the halting analysis needs are [N, T] numbers. With --save-predictions the
prediction rows (logits [36, 8] fp32 a row: ~1.5 KB with the rest, ~150 MB for 100,000) are
spooled to disk in chunks and assembled in file-backed memmaps: the peak *anonymous* memory
(RssAnon, sampled every 20 ms from /proc) is reported beside the peak RSS, which also counts
the memmaps' file pages while the final file is saved from them. Ends with
    peak memory: 100,000 puzzles X MB, 1,000 puzzles Y MB: +Z MB (budget +200 MB)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.data.format import DatasetMetadata, write_identifiers, write_split  # noqa: E402
from hrm_eval.models import HRMConfig, build_model  # noqa: E402
from hrm_eval.models.checkpoint.format import SAVE_PREFIX  # noqa: E402  (the public checkpoint's key prefix)

VOCAB, SEQ = 8, 36  # the bundled 6x6 Sudoku layout


def write_dataset(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    boards = rng.integers(1, VOCAB, size=(n, SEQ), dtype=np.uint8)  # blank 1, digits 2..7
    meta = DatasetMetadata(
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        vocab_size=VOCAB,
        seq_len=SEQ,
        num_puzzle_identifiers=1,
        total_groups=n,
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
    arrays = {
        "inputs": boards,
        "labels": np.where(boards == 1, rng.integers(2, VOCAB, size=boards.shape), boards),
        "puzzle_identifiers": np.zeros(n, np.int32),
        "puzzle_indices": np.arange(n + 1, dtype=np.int32),
        "group_indices": np.arange(n + 1, dtype=np.int32),
    }
    write_split(root, "test", meta, {"all": arrays})
    write_identifiers(root, ["<blank>"])


def write_checkpoint(run: Path) -> None:
    config = HRMConfig(
        seq_len=SEQ,
        vocab_size=VOCAB,
        num_puzzle_identifiers=1,
        H_cycles=1,
        L_cycles=1,
        H_layers=1,
        L_layers=1,
        hidden_size=16,
        num_heads=2,
        expansion=2,
        puzzle_emb_ndim=0,
        halt_max_steps=2,
        forward_dtype="float32",
    )
    torch.manual_seed(0)
    model = build_model(config)
    run.mkdir(parents=True)
    torch.save({SAVE_PREFIX + k: v for k, v in model.inner.state_dict().items()}, run / "step_1")
    (run / "all_config.yaml").write_text(yaml.safe_dump({"arch": config.to_arch_block()}))


def rss_anon_kb(pid: int) -> int:
    """The process's resident anonymous memory now (KB), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_mb(run: Path, data: Path, out: Path, limit: int, save_predictions: bool) -> tuple[float, float, float]:
    """Evaluate `limit` puzzles in a child process: its peak RSS and peak sampled RssAnon in MB,
    and the wall seconds."""
    cmd = [sys.executable, str(ROOT / "deploy.py"), "--mode", "evaluate", "--checkpoint", str(run)]
    cmd += ["--data", str(data), "--limit", str(limit), "--output", str(out), "--device", "cpu", "--no-progress"]
    cmd += ["--dtype", "float32", "--batch-size", "256"] + (["--save-predictions"] if save_predictions else [])
    start = time.perf_counter()
    # stderr to a file, not a pipe: nobody reads a pipe while the child runs, so it could fill and block it
    with tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err_file, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        anon = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            anon = max(anon, rss_anon_kb(proc.pid))
            time.sleep(0.02)
        err_file.seek(0)
        err = err_file.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it: tell Popen
    if proc.returncode != 0:
        raise SystemExit(f"evaluate failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    return usage.ru_maxrss / 1024, anon / 1024, time.perf_counter() - start  # KB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--save-predictions", action="store_true", help="also write step_<N>_all_preds.0")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run, data = Path(tmp) / "run", Path(tmp) / "data"
        write_checkpoint(run)
        write_dataset(data, args.large)
        rows = []
        for n in (args.small, args.large):
            out = Path(tmp) / f"out-{n}"
            mb, anon, seconds = peak_mb(run, data, out, n, args.save_predictions)
            size = (out / "results.json").stat().st_size / 1e6  # MB
            rows.append((n, mb, anon))
            line = f"{n:>9,} puzzles: peak {mb:7.1f} MB (anonymous {anon:7.1f} MB), {seconds:6.1f} s, "
            line += f"results.json {size * 1000:.0f} KB"
            if args.save_predictions:
                line += f", step_1_all_preds.0 {(out / 'step_1_all_preds.0').stat().st_size / 1e6:.0f} MB"
            print(line, flush=True)
    (n1, m1, a1), (n2, m2, a2) = rows
    print(f"peak memory: {n2:,} puzzles {m2:.0f} MB, {n1:,} puzzles {m1:.0f} MB: {m2 - m1:+.0f} MB (budget +200 MB)")
    print(f"peak anonymous memory: {n2:,} puzzles {a2:.0f} MB, {n1:,} puzzles {a1:.0f} MB: {a2 - a1:+.0f} MB")


if __name__ == "__main__":
    main()
