"""Training through real processes: two CPU ranks under torchrun (gloo) stay identical and split the
batch; a bad training config is exit status 2 of the real process. The in-process training tests:
tests/unit/training/test_trainer.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.training.trainer import train, train_batches
from tests.conftest import ROOT, one_line, run_cli, run_torchrun
from tests.unit.training.conftest import (
    HRM_ARCH,
    free_port,
    read_saved,
    train_config,
    train_fields,
    write_yaml,
)
from tests.unit.training.test_trainer import bad_config, one_line_error


# ---- 3. two ranks with torchrun (gloo) ------------------------------------------------------
@pytest.mark.slow
def test_torchrun_two_cpu_ranks_stay_identical_and_split_the_batch(sudoku4_data, tmp_path):
    # No exploration: the run is then deterministic, and must match one process on the whole batch.
    arch = dict(HRM_ARCH, halt_exploration_prob=0.0)
    fields = train_fields(sudoku4_data, arch, max_steps=6)
    cfg = write_yaml(tmp_path / "ddp.yaml", fields)
    out = tmp_path / "ddp"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
    )
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    for _attempt in range(2):  # the free port may be taken between bind and use: one retry
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            str(ROOT / "tests" / "e2e" / "training" / "ddp_worker.py"),
            str(cfg),
            str(out),
            str(tmp_path / "ddp-resumed"),
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        if proc.returncode == 0 or "address already in use" not in (proc.stdout + proc.stderr).lower():
            break
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])

    ranks = [torch.load(out / f"rank{r}.pt", map_location="cpu", weights_only=True) for r in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert all(r["steps"] == 6 for r in ranks)

    # The batch was split: each rank saw 8 of the 16 rows of each global batch, and together exactly them.
    dataset = PuzzleDataset(sudoku4_data, split="train")
    whole = list(train_batches(dataset, 16, 0, 1, np.random.default_rng([fields["seed"], 0])))[:6]
    for k, batch in enumerate(whole):
        parts = [r["inputs"][k] for r in ranks]
        assert [p.shape[0] for p in parts] == [8, 8]
        rows = sorted(map(tuple, torch.cat(parts).tolist()))
        assert rows == sorted(map(tuple, batch["inputs"].tolist())), f"global batch {k}"
    assert len(ranks[0]["inputs"]) == len(ranks[1]["inputs"]) == 6

    # Both ranks hold the same weights, and rank 0 saved exactly them.
    saved = read_saved(out / "step_6")
    assert sorted(p.name for p in out.glob("step_*")) == ["step_6", "step_6.optim"]  # written once, by rank 0
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys() == saved.keys()
    for k in saved:
        assert torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]), k
        assert torch.equal(ranks[0]["state"][k], saved[k]), k

    # Interrupted at step 3 (rows still mid-puzzle: HRM_ARCH runs 2 ACT steps) and resumed: each
    # rank took back its own carry and RNG state from the file rank 0 wrote, and the run ends
    # exactly where the uninterrupted one did.
    state = torch.load(tmp_path / "ddp-resumed" / "step_3.optim", map_location="cpu", weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    carries = [r["carry"] for r in state["ranks"]]
    assert all(c["halted"].shape == (8,) and not bool(c["halted"].any()) for c in carries)
    assert not torch.equal(carries[0]["current_data"]["inputs"], carries[1]["current_data"]["inputs"])
    assert not torch.equal(state["ranks"][0]["rng"]["torch"], state["ranks"][1]["rng"]["torch"])  # seed + rank
    resumed = read_saved(tmp_path / "ddp-resumed" / "step_6")
    for k in saved:
        assert torch.equal(resumed[k], saved[k]), k

    # Gradients were combined over both halves: same result as one process on the full batch
    # (up to the order of floating-point sums).
    single = train(train_config(sudoku4_data, arch, max_steps=6), output=tmp_path / "single", progress=False)
    for k, v in single.model.inner.state_dict().items():
        torch.testing.assert_close(saved[k], v, rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.slow
def test_bad_training_config_exit_status_of_the_real_process(sudoku4_data, tmp_path):
    cfg, needles = bad_config(sudoku4_data, tmp_path, "unknown field")
    proc = run_cli(
        "--mode", "train", "--config", str(cfg), "--output", str(tmp_path / "out"), "--no-progress", timeout=120
    )
    one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_refusal_is_exit_status_2_of_the_real_process(sudoku4_data, tmp_path):
    """An output folder holding another run's steps (in-process: tests/unit/training/test_output_safety.py)."""
    fields = train_fields(sudoku4_data, HRM_ARCH, run_name="tiny-run", max_steps=2)
    fields.pop("checkpoint_path", None)
    cfg = write_yaml(tmp_path / "train.yaml", fields)
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "step_7").write_bytes(b"old")
    proc = run_cli("--mode", "train", "--config", str(cfg), "--output", str(out), "--no-progress", timeout=120)
    one_line(proc.returncode, proc.stderr, "step_7", "--overwrite")
    assert isinstance(proc, subprocess.CompletedProcess) and (out / "step_7").read_bytes() == b"old"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["error", "kill"])
def test_a_failing_training_rank_ends_the_job_naming_the_rank(sudoku4_data, tmp_path, how):
    """`torchrun ... deploy.py --mode train` with rank 1 failing after its first step (the test
    hook HRM_EVAL_TEST_FAIL_RANK, as for evaluation): with an error, one line names the rank and
    why and rank 0 adds nothing (torchrun then prints its own report); killed, torchrun's report
    names the rank.
    Either way the job ends non-zero well within the collective timeout, and no step is written."""
    fields = train_fields(sudoku4_data, HRM_ARCH, max_steps=6)
    cfg = write_yaml(tmp_path / "train.yaml", fields)
    hook = "1" if how == "error" else "1:kill"
    start = time.monotonic()
    # the collective timeout stays at its default (run_torchrun sets 120 s): ending early is the job's
    env = {"HRM_EVAL_TEST_FAIL_RANK": hook, "HRM_EVAL_DIST_TIMEOUT": "1800"}
    args = ("--mode", "train", "--config", str(cfg), "--output", str(tmp_path / "out"), "--no-progress")
    proc = run_torchrun(*args, env=env, timeout=240)
    assert proc.returncode != 0
    assert time.monotonic() - start < 120  # nobody waited for a collective to time out
    assert not list((tmp_path / "out").glob("step_*"))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    if how == "error":
        assert errors == [f"error: rank 1 of 2: injected failure (HRM_EVAL_TEST_FAIL_RANK={hook}, a test hook)"]
    else:
        assert "rank      : 1" in proc.stderr or "rank: 1" in proc.stderr, proc.stderr[-3000:]
        assert "SIGKILL" in proc.stderr
        # Rank 0 was waiting in the gradient all-reduce: torchrun's SIGTERM or the cut connection
        # reaches it first. In the second case it says so in one line naming itself.
        assert len(errors) <= 1 and all(e.startswith("error: rank 0 of 2: RuntimeError: ") for e in errors), errors
