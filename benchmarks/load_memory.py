"""Checkpoint loading memory: hrm-eval's loader against the plain restore (torch.load, then
load_state_dict into a freshly built model), side by side on one generated checkpoint.

    python benchmarks/load_memory.py                 # a ~930 MB checkpoint (400k-row puzzle table)
    python benchmarks/load_memory.py --puzzles 1000000   # a public-ARC-sized table (~2.3 GB file)

Public ARC checkpoints are mostly their puzzle-embedding table (one row per puzzle identifier
and augmentation). Each way of loading runs in its own process; a thread samples the process's
anonymous resident memory (RssAnon: what cannot be dropped, unlike the file's own pages) every
2 ms. Ends with
    peak anonymous memory: hrm-eval X MB, plain restore Y MB (Y/X), load hrm-eval A s, plain B s
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.models import HRMConfig, build_model  # noqa: E402
from hrm_eval.models.checkpoint.format import SAVE_PREFIX  # noqa: E402  (the public checkpoint's key prefix)

CHILD = """
import sys, threading, time
import torch
from hrm_eval.models import HRMConfig, build_model
from hrm_eval.models.checkpoint import load_checkpoint, strip_prefix
way, path, config = sys.argv[1], sys.argv[2], HRMConfig.model_validate_json(sys.argv[3])
def anon_mb():
    line = next(l for l in open("/proc/self/status") if l.startswith("RssAnon"))
    return int(line.split()[1]) / 1024
base, peak, done = anon_mb(), [anon_mb()], []
def sample():
    while not done:
        peak[0] = max(peak[0], anon_mb()); time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
if way == "hrm-eval":
    model = load_checkpoint(path, overrides={"seq_len": config.seq_len}).model
else:  # the plain restore: the file read into memory, a model built (and initialised), then copied into
    model = build_model(config)
    model.inner.load_state_dict(strip_prefix(torch.load(path, map_location="cpu", weights_only=True))[0])
seconds = time.perf_counter() - t
done.append(1)
print(peak[0] - base, seconds)
"""


def make_checkpoint(folder: Path, puzzles: int) -> tuple[Path, HRMConfig]:
    # the public ARC run's shape
    config = HRMConfig(
        hidden_size=512, num_heads=8, expansion=4, H_layers=4, L_layers=4, H_cycles=2, L_cycles=2,
        seq_len=900, vocab_size=12, num_puzzle_identifiers=puzzles, puzzle_emb_ndim=512,
        halt_max_steps=16, forward_dtype="bfloat16",
    )  # fmt: skip
    torch.manual_seed(0)
    state = build_model(config).inner.state_dict()
    torch.save({SAVE_PREFIX + k: v for k, v in state.items()}, folder / "step_1")
    (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": config.to_arch_block()}))
    return folder / "step_1", config


def measure(way: str, path: Path, config: HRMConfig) -> tuple[float, float]:
    """(peak anonymous MB above the child's start, seconds) of loading `path` one way."""
    cmd = [sys.executable, "-c", CHILD, way, str(path), config.model_dump_json()]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{way} failed: {proc.stderr.strip().splitlines()[-1:]}")
    mb, seconds = proc.stdout.split()
    return float(mb), float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--puzzles", type=int, default=400_000, help="rows of the puzzle-embedding table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, config = make_checkpoint(Path(tmp), args.puzzles)
        print(f"checkpoint: {path.stat().st_size / 1e6:.0f} MB ({args.puzzles:,} puzzle rows x 512)")
        ours, plain = measure("hrm-eval", path, config), measure("plain", path, config)
    print(
        f"peak anonymous memory: hrm-eval {ours[0]:.0f} MB, plain restore {plain[0]:.0f} MB "
        f"({plain[0] / max(ours[0], 1):.1f}x), load hrm-eval {ours[1]:.1f} s, plain {plain[1]:.1f} s"
    )


if __name__ == "__main__":
    main()
