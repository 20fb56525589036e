"""ACT inference throughput: the public evaluation loop vs the hrm-eval engine, side by side.

    python benchmarks/act_throughput.py            # both models, this machine's native dtypes
    python benchmarks/act_throughput.py --quick    # fewer puzzles (a smoke run)
    python benchmarks/act_throughput.py --device cuda --batch 256 --seed-puzzles 256   # a GPU

For each model and dtype it times, in one process:
  public    a plain re-implementation of the public evaluation loop: fixed batches (the last
            one padded), every row runs all halt_max_steps, weights cast at every call, the
            input embedding recomputed at every step;
  fixed     the engine with fixed halting (the same outputs; checked: argmax equal, logits
            within fp32 rounding);
  adaptive  the engine with the model's own halting and continuous batching;
  fixed+c, adapt+c   the same with the step compiled (torch.compile; by default for the
            seed-shaped model only, --compile all|none;
            compiling is done first and reported, not timed);
and reports puzzles/s, ACT steps per puzzle, exact accuracy where labels exist, and achieved
GFLOP/s against this machine's measured matmul peak. Models: the seed-shaped HRM (hidden 256,
2+2 layers, 8 heads, sequence 900, vocab 12; random weights with a Q head that halts at varied
steps) and the bundled checkpoint on its test set. bf16 is timed only where the CPU runs it
natively (AMX / AVX-512 BF16) or on a CUDA device with bf16. Ends with
    speedup over the public loop: fixed X.XXx, adaptive Y.YYx (bundled model, <dtype>)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.data.dataset import PuzzleDataset  # noqa: E402
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy  # noqa: E402
from hrm_eval.inference.runtime import cpu_bf16_native  # noqa: E402
from hrm_eval.models import ACTModel, HRMConfig, build_model  # noqa: E402
from hrm_eval.models.checkpoint import load_checkpoint  # noqa: E402
from hrm_eval.models.layers import mlp_width  # noqa: E402
from hrm_eval.models.losses import IGNORE_LABEL_ID  # noqa: E402

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
BUNDLED_HARD = ROOT / "checkpoints" / "sudoku6-hard-hrm"
DEVICE = torch.device("cpu")  # --device  # halt_max_steps 8: where halting matters most
Puzzles = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # inputs [N, L], ids [N], labels [N, L]


# ---- what is timed ------------------------------------------------------------------------------
@torch.inference_mode()
def public_loop(model: ACTModel, puzzles: Puzzles, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The public evaluation: fixed batches (last one padded), all steps for every row, the
    ACT wrapper re-embedding the inputs and casting the weights at every step."""
    inputs, ids, _ = puzzles
    inputs, ids = inputs.to(DEVICE), ids.to(DEVICE)
    n = len(inputs)
    preds, steps = [], []
    for s in range(0, n, batch_size):
        x, i = inputs[s : s + batch_size], ids[s : s + batch_size]
        pad = batch_size - len(x)
        if pad:  # the public loader pads the last batch to full size
            x = torch.cat([x, x[:1].expand(pad, -1)])
            i = torch.cat([i, i[:1].expand(pad)])
        batch = {"inputs": x, "labels": x, "puzzle_identifiers": i}
        carry = model.initial_carry(batch)
        for _ in range(model.config.halt_max_steps):
            carry, out = model(carry, batch)
        preds.append(out["logits"][: batch_size - pad].argmax(-1))
        steps.append(carry.steps[: batch_size - pad])
    return torch.cat(preds).cpu(), torch.cat(steps).cpu()


def engine_run(
    model: ACTModel, puzzles: Puzzles, batch_size: int, policy: HaltingPolicy, compiled: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, ids, _ = puzzles
    engine = ACTEngine(model, slots=batch_size, halting=policy)
    if compiled:
        engine.compile()  # the model's compiled step, built once by compile_warmup
    res = engine.run_all(inputs, ids)
    return res.preds.cpu(), res.steps.cpu()


def compile_warmup(model: ACTModel, puzzles: Puzzles, batch_size: int) -> float:
    """Compile the model's step (torch.compile, dynamic shapes) and warm it up on the same
    puzzles with both halting policies, so that the timed runs meet no new shapes; returns the
    seconds this took (reported, not counted as throughput)."""
    t = time.perf_counter()
    for policy in (HaltingPolicy("fixed"), HaltingPolicy("adaptive")):
        engine = ACTEngine(model, slots=batch_size, halting=policy)
        if not engine.compile():
            raise SystemExit("torch.compile does not work on this machine: rerun with --compile none")
        engine.run_all(puzzles[0], puzzles[1])
    return time.perf_counter() - t


def interleaved(
    loops: dict[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]], repeat: int
) -> dict[str, tuple[float, tuple]]:
    """Each loop's best time over `repeat` rounds, the loops taking turns within a round: on a
    shared machine a slow minute then slows every loop alike instead of one loop's runs."""
    if DEVICE.type == "cuda":  # one untimed run of each first: kernel plans and the allocator warm up
        for fn in loops.values():
            fn()
    best: dict[str, tuple[float, tuple]] = {}
    for _ in range(repeat):
        for name, fn in loops.items():
            t, out = _time(fn)
            if name not in best or t < best[name][0]:
                best[name] = (t, out)
    return best


# ---- models and puzzles -------------------------------------------------------------------------
def seed_shaped(dtype: str, halt_max_steps: int) -> ACTModel:
    torch.manual_seed(0)
    config = HRMConfig(
        hidden_size=256,
        num_heads=8,
        expansion=4,
        H_layers=2,
        L_layers=2,
        H_cycles=2,
        L_cycles=2,
        seq_len=900,
        vocab_size=12,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=0,
        pos_encodings="rope",
        halt_max_steps=halt_max_steps,
        forward_dtype=dtype,
    )
    model = build_model(config).eval().to(DEVICE)
    with torch.no_grad():  # a Q head whose decision depends on the state: puzzles halt at varied steps
        model.inner.q_head.weight.normal_(0, 2.0 / config.hidden_size**0.5)
        model.inner.q_head.bias.copy_(torch.tensor([0.0, 0.5]))
    return model


def random_puzzles(n: int, seq_len: int, vocab: int) -> Puzzles:
    g = torch.Generator().manual_seed(1)
    return (
        torch.randint(1, vocab, (n, seq_len), generator=g, dtype=torch.int32),
        torch.zeros(n, dtype=torch.int32),
        None,
    )


def bundled(dtype: str, run: Path = BUNDLED, data: str = "data", step: int = 3750) -> tuple[ACTModel, Puzzles]:
    ds = PuzzleDataset(run / data, split="test")
    loaded = load_checkpoint(run / f"step_{step}", dataset=ds.metadata, dtype=dtype, device=DEVICE)
    pb = next(ds.iter_batches(len(ds)))
    return loaded.model, (pb.inputs, pb.puzzle_identifiers, pb.labels)


# ---- FLOPs -----------------------------------------------------------------------------------------
def flops_per_row_step(c: HRMConfig) -> float:
    """Multiply-adds x 2 of one ACT step for one puzzle: every layer pass (linears + attention) and the heads."""
    S, h, m = c.full_seq_len, c.hidden_size, mlp_width(c.hidden_size, c.expansion)
    linear = 2 * S * (h * 3 * h + h * h + h * 2 * m + m * h)
    attention = 2 * 2 * S * S * h
    passes = c.H_cycles * c.L_cycles * c.L_layers + c.H_cycles * c.H_layers
    return passes * (linear + attention) + 2 * S * h * c.vocab_size


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeat: int = 5) -> float:
    n = 8192 if DEVICE.type == "cuda" else n  # a GPU needs a large product to reach its peak
    a, b = torch.randn(n, n, dtype=dtype, device=DEVICE), torch.randn(n, n, dtype=dtype, device=DEVICE)
    torch.mm(a, b)
    best = min(_time(lambda: torch.mm(a, b))[0] for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, what fn returned), the GPU's queued work included."""
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


def sync() -> None:
    """Wait for the GPU: its work is queued, and a timer must see it finished."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


# ---- one comparison --------------------------------------------------------------------------------
def compare(
    name: str, model: ACTModel, puzzles: Puzzles, batch: int, repeat: int, peak: float, compile: bool
) -> list[dict]:
    n = len(puzzles[0])
    per_step = flops_per_row_step(model.config)
    fixed, adaptive = HaltingPolicy("fixed"), HaltingPolicy("adaptive")
    loops: dict[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]] = {
        "public": lambda: public_loop(model, puzzles, batch),
        "fixed": lambda: engine_run(model, puzzles, batch, fixed),
        "adaptive": lambda: engine_run(model, puzzles, batch, adaptive),
    }
    compile_s = None
    if compile:
        compile_s = compile_warmup(model, puzzles, batch)
        loops["fixed+c"] = lambda: engine_run(model, puzzles, batch, fixed, True)
        loops["adapt+c"] = lambda: engine_run(model, puzzles, batch, adaptive, True)
    runs = interleaved(loops, repeat)
    p_pub, p_fix = runs["public"][1][0], runs["fixed"][1][0]
    agree = float((p_pub == p_fix).float().mean())
    agree_c = float((p_pub == runs["fixed+c"][1][0]).float().mean()) if compile else None
    labels = puzzles[2]
    rows = []
    for kind, (t, (preds, steps)) in runs.items():
        exact = None
        if labels is not None:
            exact = float((((preds == labels) | (labels == IGNORE_LABEL_ID)).all(-1)).float().mean())
        gflops = per_step * float(steps.float().sum()) / t / 1e9
        rows.append(
            {
                "model": name,
                "loop": kind,
                "puzzles_per_s": n / t,
                "steps": float(steps.float().mean()),
                "exact": exact,
                "gflops": gflops,
                "peak_fraction": gflops / peak,
                "seconds": t,
            }
        )
    rows[1]["argmax_agreement_with_public"] = agree
    if compile:
        rows[3]["argmax_agreement_with_public"] = agree_c
        rows[3]["compile_seconds"] = compile_s
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer puzzles: a smoke run")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--seed-puzzles",
        type=int,
        default=8,
        help="puzzles for the seed-shaped model (~1 s per ACT step each on 2 cores)",
    )
    ap.add_argument("--seed-steps", type=int, default=6, help="halt_max_steps of the seed-shaped model")
    ap.add_argument(
        "--models",
        nargs="+",
        choices=("sudoku6", "hard", "seed"),
        default=["sudoku6", "hard", "seed"],
        help="which models to time: the two bundled ones (on their test / held-out sets), the seed-shaped one",
    )
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="timed runs per row, the best kept (a GPU finishes the small models in ~0.1 s: give it 10)",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the public loop and the engine both run there)")
    ap.add_argument(
        "--compile",
        choices=("none", "seed", "all"),
        default="seed",
        help="which models get the torch.compile rows (fixed+c, adapt+c); compiling a CPU model takes minutes",
    )
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeat = 1 if args.quick else args.repeat
    seed_n, seed_steps = (2, 3) if args.quick else (args.seed_puzzles, args.seed_steps)

    dtypes = ["float32"]
    if DEVICE.type == "cuda":
        native = ["cuda"] if torch.cuda.is_bf16_supported() else []
        where = f"{torch.cuda.get_device_name(DEVICE)} (float32 matmul: TF32 off, torch's default)"
    else:
        native = [k for k, ok in cpu_bf16_native().items() if ok]
        where = f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    if native:
        dtypes.append("bfloat16")
    print(f"torch {torch.__version__}, {where}, native bf16: {', '.join(native) or 'none'}")
    rows: list[dict] = []
    for dtype in dtypes:
        peak = matmul_peak(getattr(torch, dtype))
        print(f"{dtype}: measured matmul peak {peak:.1f} GFLOP/s")
        for name, source in (
            ("bundled sudoku6", (BUNDLED, "data", 3750)),
            ("bundled hard", (BUNDLED_HARD, "heldout", 11250)),
        ):
            if name.split()[-1] not in args.models:
                continue
            model, puzzles = bundled(dtype, *source)  # type: ignore[arg-type]
            if args.quick:
                puzzles = tuple(p[:256] if p is not None else None for p in puzzles)  # type: ignore[assignment]
            rows += [
                r | {"dtype": dtype}
                for r in compare(name, model, puzzles, args.batch, repeat, peak, args.compile == "all")
            ]
        if "seed" not in args.models:
            continue
        seed = seed_shaped(dtype, seed_steps)
        rows += [
            r | {"dtype": dtype}
            for r in compare(
                "seed-shaped 900",
                seed,
                random_puzzles(seed_n, 900, 12),
                min(args.batch, seed_n),
                1,
                peak,
                args.compile != "none",
            )
        ]
    print(
        f"\n{'model':<16} {'dtype':<9} {'loop':<9} {'puzzles/s':>10} {'steps':>6} {'exact':>6} "
        f"{'GFLOP/s':>8} {'of peak':>7} {'vs public':>9}"
    )
    base: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["model"], r["dtype"])
        if r["loop"] == "public":
            base[key] = r["puzzles_per_s"]
        exact = f"{r['exact']:.3f}" if r["exact"] is not None else "-"
        print(
            f"{r['model']:<16} {r['dtype']:<9} {r['loop']:<9} {r['puzzles_per_s']:>10.1f} {r['steps']:>6.2f} "
            f"{exact:>6} {r['gflops']:>8.1f} {r['peak_fraction']:>7.1%} {r['puzzles_per_s'] / base[key]:>8.2f}x"
        )
    for r in rows:
        if "argmax_agreement_with_public" in r and "compile_seconds" not in r:
            print(
                f"{r['model']} {r['dtype']}: engine fixed argmax agreement with the public loop "
                f"{r['argmax_agreement_with_public']:.4f}"
            )
        if "compile_seconds" in r:
            print(
                f"{r['model']} {r['dtype']}: compiled engine ({r['compile_seconds']:.0f} s to compile, not timed) "
                f"argmax agreement with the public loop {r['argmax_agreement_with_public']:.4f}"
            )
    best = dtypes[-1]
    b = {r["loop"]: r["puzzles_per_s"] for r in rows if r["model"] == "bundled sudoku6" and r["dtype"] == best}
    h = {r["loop"]: r["puzzles_per_s"] for r in rows if r["model"] == "bundled hard" and r["dtype"] == best}
    sd = {r["loop"]: r["puzzles_per_s"] for r in rows if r["model"] == "seed-shaped 900" and r["dtype"] == best}
    if h:
        print(f"8-step model (sudoku6-hard-hrm): adaptive {h['adaptive'] / h['public']:.2f}x the public loop", end="")
        print(f", compiled {h['adapt+c'] / h['public']:.2f}x" if "adapt+c" in h else "")
    if sd:
        print(f"seed-shaped model: fixed {sd['fixed'] / sd['public']:.2f}x the public loop", end="")
        print(
            f", compiled {sd['fixed+c'] / sd['public']:.2f}x (outputs equal: argmax above)" if "fixed+c" in sd else ""
        )
    if b:
        print(
            f"speedup over the public loop: fixed {b['fixed'] / b['public']:.2f}x, "
            f"adaptive {b['adaptive'] / b['public']:.2f}x (bundled model, {best})"
        )


if __name__ == "__main__":
    main()
