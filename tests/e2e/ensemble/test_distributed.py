"""`torchrun --nproc-per-node 2 deploy.py --mode ensemble|compare` on CPU (gloo), real processes,
against one process: every rank runs a share of each member's puzzles (whole engine batches),
rank 0 gathers them, so with fixed halting in fp32 the member predictions are bit for bit those
of one process and so is every number after them. A failing rank ends the job naming it; a
killed one leaves its finished chunks behind, and the rerun uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hrm_eval.members.predictions import PREDICTION_FIELDS
from hrm_eval.resources import find
from tests.conftest import run_cli, run_torchrun

pytestmark = pytest.mark.slow

RUN = find("checkpoints/sudoku6-hrm")
DATA = RUN / "data"
MEMBERS = [str(RUN / "step_1875"), str(RUN / "step_3750")]


def members_args(mode: str, out: Path, cache: Path, *extra: str, limit: int = 64) -> list:
    return [
        "--mode",
        mode,
        "--data",
        str(DATA),
        "--limit",
        str(limit),
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-progress",
        "--output",
        str(out),
        "--cache-dir",
        str(cache),
        *extra,
    ]


def same_predictions(cache_a: Path, cache_b: Path) -> None:
    """The two caches hold the same files (same keys) with identical tensors."""
    files = sorted(p.name for p in cache_a.glob("*.pt"))
    assert files and files == sorted(p.name for p in cache_b.glob("*.pt"))
    for name in files:
        a, b = (torch.load(c / name, weights_only=True) for c in (cache_a, cache_b))
        for key in PREDICTION_FIELDS:
            assert torch.equal(a[key], b[key]), (name, key)


def numbers(record: dict, keys: tuple) -> tuple:
    """(numeric leaves, other leaves) under `keys`, in order: numbers compared with a tolerance,
    the rest (names, flags, None) exactly."""
    out: list = []
    other: list = []

    def walk(value):
        if isinstance(value, dict):
            for k in sorted(value):
                walk(value[k])
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(value)
        else:
            other.append(value)

    for key in keys:
        walk(record.get(key))
    return out, other


def without_paths(results: dict) -> dict:
    """results.json less what names this run's own folders and processes."""
    out = {k: v for k, v in results.items() if k != "provenance"}
    out["members"] = [{k: v for k, v in m.items() if k != "cache_file"} for m in results["members"]]
    out["strategy"].get("stacker", {}).pop("file", None)
    return out


def test_a_stacking_ensemble_on_two_ranks_equals_one_process(tmp_path):
    # the stacker learns on --calibration-data: the members run there too, sharded the same way
    extra = ["--checkpoints", *MEMBERS, "--strategy", "stacking", "--calibration-data", str(DATA)]
    extra += ["--calibration-split", "train", "--calibration-limit", "48"]
    two = run_torchrun(*members_args("ensemble", tmp_path / "two", tmp_path / "cache2", *extra))
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_cli(*members_args("ensemble", tmp_path / "one", tmp_path / "cache1", *extra))
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("two", "one"))
    assert without_paths(a) == without_paths(b)
    assert a["ensemble"]["total_puzzles"] == 64
    assert (a["provenance"]["evaluation"]["world_size"], a["provenance"]["evaluation"]["dist_backend"]) == (2, "gloo")
    assert b["provenance"]["evaluation"]["world_size"] == 1
    same_predictions(tmp_path / "cache2", tmp_path / "cache1")
    assert not list((tmp_path / "cache2").glob("*.parts"))  # complete: the chunks are gone
    assert two.stdout.count("results:") == 1  # rank 0 alone reports
    # the same meta-learner, fitted on the same gathered predictions
    stackers = [json.loads((tmp_path / d / "stacker.json").read_text()) for d in ("two", "one")]
    assert stackers[0] == stackers[1]


def test_compare_two_ranks_equal_one_process(tmp_path):
    extra = ["--run-dir", str(RUN), "--no-plots"]  # --run-dir: torchrun's parser would take --run
    two = run_torchrun(*members_args("compare", tmp_path / "two", tmp_path / "cache2", *extra))
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_cli(*members_args("compare", tmp_path / "one", tmp_path / "cache1", *extra))
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "checkpoint_comparison.json").read_text()) for d in ("two", "one"))
    assert [r["step"] for r in a["checkpoints"]] == [625, 1875, 3750]
    for ra, rb in zip(a["checkpoints"], b["checkpoints"]):
        # metrics come from the gathered predictions: equal. Weight norms are float64 sums over
        # each checkpoint's tensors, computed by every process with its own thread count
        # (torchrun ranks: 1, the one process: all cores), so summed in another order: 1e-12.
        weights = ("weight_norm", "module_norms", "change_from_previous")
        assert {k: v for k, v in ra.items() if k not in ("cache_file", *weights)} == {
            k: v for k, v in rb.items() if k not in ("cache_file", *weights)
        }
        (floats_a, rest_a), (floats_b, rest_b) = numbers(ra, weights), numbers(rb, weights)
        assert floats_a == pytest.approx(floats_b, rel=1e-12) and rest_a == rest_b
    assert a["recommendation"] == b["recommendation"]
    conv_a, conv_b = dict(a["convergence"]), dict(b["convergence"])  # weight changes: as above
    changes = conv_a.pop("relative_weight_change"), conv_b.pop("relative_weight_change")
    assert conv_a == conv_b and changes[0] == pytest.approx(changes[1], rel=1e-12)
    assert a["provenance"]["evaluation"]["world_size"] == 2
    same_predictions(tmp_path / "cache2", tmp_path / "cache1")


def test_a_failing_ensemble_rank_ends_the_job_naming_it(tmp_path):
    args = members_args("ensemble", tmp_path / "out", tmp_path / "cache", "--checkpoints", *MEMBERS)
    proc = run_torchrun(*args, env={"HRM_EVAL_TEST_FAIL_RANK": "1"}, timeout=240)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: rank 1 of 2: injected failure (HRM_EVAL_TEST_FAIL_RANK=1, a test hook)"]
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_killed_vote_rank_resumes_and_equals_one_process(tmp_path):
    """Rank 1 is SIGKILLed after its first chunk (16 puzzles in batches of 8: of member 1, rank 0
    runs rows 0-8, rank 1 rows 8-16, then dies); that chunk stays in the cache's .parts folder,
    and the rerun on two ranks ends with the predictions and results of an uninterrupted
    one-process run. (Chunks of several views resumed bit for bit: in process, in
    tests/unit/evaluation/test_resume.py.)"""
    extra = ["--checkpoints", *MEMBERS, "--strategy", "vote"]
    args = members_args("ensemble", tmp_path / "two", tmp_path / "cache2", *extra, limit=16)
    killed = run_torchrun(*args, env={"HRM_EVAL_TEST_FAIL_RANK": "1:kill"}, timeout=240)
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    parts = list((tmp_path / "cache2").glob("*.parts/*.pt"))
    assert "view0-rows8-16.pt" in [p.name for p in parts], killed.stderr[-3000:]
    resumed = run_torchrun(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from the finished chunks" in resumed.stderr
    assert resumed.stdout.count("results:") == 1  # rank 0 alone reports
    one = run_cli(*members_args("ensemble", tmp_path / "one", tmp_path / "cache1", *extra, limit=16))
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("two", "one"))
    assert without_paths(a) == without_paths(b)
    assert a["ensemble"]["total_puzzles"] == 16
    assert (a["provenance"]["evaluation"]["world_size"], a["provenance"]["evaluation"]["dist_backend"]) == (2, "gloo")
    same_predictions(tmp_path / "cache2", tmp_path / "cache1")
    assert not list((tmp_path / "cache2").glob("*.parts"))  # complete: the chunks are gone
