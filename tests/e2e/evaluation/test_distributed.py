"""`torchrun --nproc-per-node 2 deploy.py --mode evaluate` on CPU (gloo), real processes,
against one process: the bundled model and the HRM parity fixture give the same metrics and
per-puzzle records (fixed halting, fp32: bit for bit), the public per-rank prediction files,
and a failing or killed rank ends the job non-zero within bounded time, naming the rank."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.resources import find
from tests.conftest import HRM_FIXTURES, SUDOKU_BUILT, run_torchrun

pytestmark = pytest.mark.slow

BUNDLED = ("checkpoints/sudoku6-hrm", "checkpoints/sudoku6-hrm/data")
TIMING = ("time_per_puzzle", "wall_time_seconds", "puzzles_per_second")
# Counted quantities (argmax answers, steps, halting decisions): exact whatever the arithmetic.
COUNTED = ("exact_accuracy", "solve_rate", "q_halt_accuracy", "steps", "average_steps", "total_puzzles")
# Adaptive halting: continuous batching refills slots in the order puzzles halt, so a puzzle may
# share its batch with other puzzles than in one process. A float32 matmul's rounding may depend
# on the batch (CPU kernel blocking): a few ulps (~1e-7 relative) per op through ~10 layers; 1e-5
# leaves 10x margin and a wrongly counted puzzle still moves a mean over 64 puzzles by > 1e-3.
FLOAT_REL = 1e-5


def torchrun(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_torchrun("--mode", "evaluate", *args, env=env, timeout=timeout)


def common(checkpoint, data, out: Path, *extra: str) -> list:
    return ["--checkpoint", str(checkpoint), "--data", str(data), "--output", str(out), "--device", "cpu"] + [
        "--dtype",
        "float32",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


def one_process(checkpoint, data, out: Path, **kw) -> dict:
    simple_evaluate(
        str(find(checkpoint)),
        str(find(data)),
        output_dir=out,
        device="cpu",
        dtype="float32",
        threads=1,
        progress=False,
        **kw,
    )
    return json.loads((out / "results.json").read_text())


def records(out: Path) -> list:
    return [json.loads(line) for line in (out / "per_puzzle.jsonl").read_text().splitlines()]


def metrics(results: dict) -> dict:
    return {k: v for k, v in results["aggregate_metrics"].items() if k not in TIMING}


def test_bundled_model_two_ranks_equal_one_process_bit_for_bit(tmp_path):
    args = common(find(BUNDLED[0]), find(BUNDLED[1]), tmp_path / "two", "--limit", "64", "--batch-size", "8")
    proc = torchrun(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    one = one_process(*BUNDLED, tmp_path / "one", limit=64, batch_size=8)
    assert metrics(two) == metrics(one)
    assert two["aggregate_metrics"]["total_puzzles"] == 64
    assert two["q_value_analysis"] == one["q_value_analysis"]
    assert two["per_puzzle_metrics"] == one["per_puzzle_metrics"]
    # the streamed file, byte for byte: same records, same (dataset) order
    assert (tmp_path / "two" / "per_puzzle.jsonl").read_bytes() == (tmp_path / "one" / "per_puzzle.jsonl").read_bytes()
    evaluation = two["provenance"]["evaluation"]
    assert (evaluation["world_size"], evaluation["dist_backend"]) == (2, "gloo")
    assert (one["provenance"]["evaluation"]["world_size"], one["provenance"]["evaluation"]["dist_backend"]) == (
        1,
        "none",
    )
    # each rank ran 4 of the 8 batches, 4 ACT steps per puzzle
    assert [r["act_steps_computed"] for r in evaluation["engine"]["per_rank"]] == [32 * 4, 32 * 4]
    assert not (tmp_path / "two" / "resume").exists()  # complete: the streamed rows are gone


def test_parity_fixture_two_ranks_equal_one_process_with_prediction_files(tmp_path):
    """rope_f32 on the 40-puzzle built Sudoku fixture, batch 8: rank 0 runs batches 0, 2, 4 and
    rank 1 batches 1, 3; their step_1000_all_preds.<rank> files hold exactly those rows."""
    ckpt = HRM_FIXTURES["rope_f32"]
    proc = torchrun(*common(ckpt, SUDOKU_BUILT, tmp_path / "two", "--batch-size", "8", "--save-predictions"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    one = one_process(ckpt, SUDOKU_BUILT, tmp_path / "one", batch_size=8, save_predictions=True)
    assert metrics(two) == metrics(one)
    assert records(tmp_path / "two") == records(tmp_path / "one")
    single = torch.load(tmp_path / "one" / "step_1000_all_preds.0", weights_only=True)
    parts = [torch.load(tmp_path / "two" / f"step_1000_all_preds.{r}", weights_only=True) for r in (0, 1)]
    rows = {0: [i for i in range(40) if (i // 8) % 2 == 0], 1: [i for i in range(40) if (i // 8) % 2 == 1]}
    assert set(single) == set(parts[0]) == set(parts[1])
    for rank, part in enumerate(parts):
        for key, value in part.items():
            assert torch.equal(value, single[key][rows[rank]]), (rank, key)
    assert two["predictions_files"] == [str(tmp_path / "two" / f"step_1000_all_preds.{r}") for r in (0, 1)]


def test_adaptive_halting_two_ranks_match_one_process(tmp_path):
    """Ranks finish at different times (adaptive halting): none hangs, the counts are exact."""
    args = common(*(find(x) for x in BUNDLED), tmp_path / "two", "--limit", "64", "--batch-size", "8")
    proc = torchrun(*args, "--halting", "adaptive")
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    one = one_process(*BUNDLED, tmp_path / "one", limit=64, batch_size=8, halting="adaptive")
    assert two["aggregate_metrics"]["average_steps"] < 4  # adaptive really stopped early
    for key, value in metrics(one).items():
        if key in COUNTED:
            assert two["aggregate_metrics"][key] == value, key
        else:
            assert two["aggregate_metrics"][key] == pytest.approx(value, rel=FLOAT_REL), key
    a, b = records(tmp_path / "two"), records(tmp_path / "one")
    assert [(r["puzzle_id"], r["solved"], r["num_steps"]) for r in a] == [
        (r["puzzle_id"], r["solved"], r["num_steps"]) for r in b
    ]
    assert [r["lm_loss"] for r in a] == pytest.approx([r["lm_loss"] for r in b], rel=FLOAT_REL)


@pytest.mark.parametrize("how", ["error", "kill"])
def test_a_failing_rank_ends_the_job_naming_the_rank(tmp_path, how):
    """Rank 1 fails after its first finished puzzles (the documented test hook): with an error,
    its one line names it and why; killed (SIGKILL, as the OOM killer does), torchrun names it.
    Either way the job ends non-zero well within the collective timeout, and no results are written."""
    hook = "1" if how == "error" else "1:kill"
    args = common(*(find(x) for x in BUNDLED), tmp_path / "out", "--limit", "64", "--batch-size", "8")
    start = time.monotonic()
    proc = torchrun(*args, env={"HRM_EVAL_TEST_FAIL_RANK": hook}, timeout=240)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 120  # HRM_EVAL_DIST_TIMEOUT: nobody waited for a collective to time out
    assert not (tmp_path / "out" / "results.json").exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    if how == "error":
        assert errors == [f"error: rank 1 of 2: injected failure (HRM_EVAL_TEST_FAIL_RANK={hook}, a test hook)"]
    else:
        assert errors == []
        assert "rank      : 1" in proc.stderr or "rank: 1" in proc.stderr, proc.stderr[-3000:]
        assert "SIGKILL" in proc.stderr
