"""evaluate with test-time scaling on the default model's held-out puzzles: results.json's
test_time_scaling agrees with the per-puzzle records it summarises, beats the plain run on the
same puzzles, and --scaling off is the plain run; scaled rows survive the resume log's codec."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleBatch
from hrm_eval.data.tasks import get_task
from hrm_eval.evaluation.accumulator import ScoredRow
from hrm_eval.evaluation.payload import from_payload, to_payload
from hrm_eval.evaluation.resume import build_manifest
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.evaluation.scoring import RowScores, score_rows
from hrm_eval.inference.scaling import ScaledRunner, ScalingPolicy
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT

HARD = ROOT / "checkpoints" / "sudoku6-hard-hrm"
TIMING = ("time_per_puzzle", "wall_time_seconds", "puzzles_per_second")
COMMON = dict(
    task="sudoku6", device="cpu", dtype="float32", threads=1, progress=False, halting="adaptive", batch_size=32
)


@pytest.fixture(scope="module")
def puzzles(tmp_path_factory) -> Path:
    """48 held-out puzzles: 16 with 6-18 blanks, 32 with 24-27 (where one attempt misses most)."""
    with open(HARD / "raw" / "heldout.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    easy = [r for r in rows if r[1].count(".") < 19][:16]
    hard = [r for r in rows if r[1].count(".") >= 24][:32]
    path = tmp_path_factory.mktemp("data") / "mixed.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *easy, *hard])
    return path


@pytest.fixture(scope="module")
def plain(puzzles, tmp_path_factory):
    return simple_evaluate(str(HARD), str(puzzles), output_dir=tmp_path_factory.mktemp("plain"), **COMMON)


@pytest.fixture(scope="module")
def scaled(puzzles, tmp_path_factory):
    out = tmp_path_factory.mktemp("scaled")
    return simple_evaluate(str(HARD), str(puzzles), output_dir=out, scaling="verify", budget=64, **COMMON), out


def test_the_summary_is_the_records_summed(scaled):
    results, out = scaled
    t = results["test_time_scaling"]
    records = [json.loads(line) for line in (out / "per_puzzle.jsonl").read_text().splitlines()]
    assert len(records) == t["puzzles"] == 48
    assert t["settings"] == {"mode": "verify", "budget": 64, "attempt_steps": 8, "views": 8, "noise": 0.0, "seed": 0}
    assert t["mean_act_steps"] == pytest.approx(np.mean([r["act_steps_total"] for r in records]))
    assert t["mean_attempts"] == pytest.approx(np.mean([r["attempts"] for r in records]))
    assert t["exact_accuracy"] == pytest.approx(np.mean([r["solved"] for r in records]))
    assert t["exact_accuracy"] == results["aggregate_metrics"]["exact_accuracy"]
    assert t["verified_rate"] == pytest.approx(np.mean([r["selected_by"] == "verified" for r in records]))
    for r in records:
        assert r["num_steps"] <= r["act_steps_total"] <= 64
        assert (r["solved_at_attempt"] is not None) == (r["selected_by"] == "verified") == r["verified"]
    by = {row["blanks"]: row for row in t["by_difficulty"]["rows"]}
    assert sum(row["puzzles"] for row in by.values()) == 48
    for blanks, row in by.items():
        mine = [r for r in records if r["blanks"] == blanks]
        assert row["puzzles"] == len(mine)
        assert row["mean_act_steps"] == pytest.approx(np.mean([r["act_steps_total"] for r in mine]))
    frontier = t["frontier"]
    assert frontier[-1] == {"budget": 64, "exact_accuracy": t["exact_accuracy"], "mean_act_steps": t["mean_act_steps"]}
    assert (out / "scaling_frontier.png").stat().st_size > 1000  # matplotlib is in the test extra


def test_scaling_beats_the_plain_run_on_the_same_puzzles(plain, scaled):
    results, _ = scaled
    p, s = plain["aggregate_metrics"]["exact_accuracy"], results["aggregate_metrics"]["exact_accuracy"]
    assert s >= p + 0.15  # 24-27 blanks: one attempt leaves ~30% unsolved, scaling almost none
    assert s >= 0.95
    solved_plain = [r["solved"] for r in plain["per_puzzle_metrics"]]
    solved_scaled = [r["solved"] for r in results["per_puzzle_metrics"]]
    assert not any(a and not b for a, b in zip(solved_plain, solved_scaled))  # no puzzle lost
    assert "test_time_scaling" not in plain and "attempts" not in plain["per_puzzle_metrics"][0]


def test_scaling_off_is_the_plain_run(puzzles, plain, tmp_path):
    off = simple_evaluate(str(HARD), str(puzzles), output_dir=tmp_path, scaling="off", budget=64, **COMMON)
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMING}  # noqa: E731
    assert drop(off["aggregate_metrics"]) == drop(plain["aggregate_metrics"])
    assert off["per_puzzle_metrics"] == plain["per_puzzle_metrics"]
    assert off["q_value_analysis"] == plain["q_value_analysis"]


def test_scaled_rows_survive_the_resume_codec_and_the_manifest_names_scaling():
    model = load_checkpoint(HARD).model
    x = torch.from_numpy(np.load(HARD / "heldout" / "test" / "all__inputs.npy")[-4:].astype(np.int64))
    y = torch.from_numpy(np.load(HARD / "heldout" / "test" / "all__labels.npy")[-4:].astype(np.int64))
    rows = ScaledRunner(model, get_task("sudoku6"), ScalingPolicy("verify", budget=40)).run_all(x, ids(4), y)
    batch = PuzzleBatch("all", np.arange(4), np.arange(4), x, y, ids(4))
    scores = score_rows(rows.logits, y, rows.q_halt_logits, loss_type=model.config.loss_type, halted=ids(4) == 0)
    for k in range(4):
        one = RowScores(
            {n: v[k : k + 1] for n, v in scores.rows.items()}, scores.valid[k : k + 1], scores.answers[k : k + 1], None
        )
        _, back = from_payload(to_payload(k, 0, ScoredRow(batch, k, one, rows, k), keep_logits=False))
        for name in ("attempts", "act_steps_total", "solved_at_attempt", "verified_at_step"):
            assert int(getattr(back.fin, name)[0]) == int(getattr(rows, name)[k]), name
        assert back.fin.selected_by == [rows.selected_by[k]]
    base = dict(
        checkpoint_sha256="x", dataset_fingerprint="y", split="test", limit=None, dtype="float32",
        halting={"mode": "adaptive"}, batch_size=8, model_config={}, task="sudoku6", device_type="cpu",
        keep_logits=False,
    )  # fmt: skip
    assert "scaling" not in build_manifest(**base)  # plain manifests are what they were
    assert build_manifest(**base, scaling={"budget": 40}) != build_manifest(**base, scaling={"budget": 64})


def ids(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.long)
