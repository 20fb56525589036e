"""Halting policies end to end: what a rule would give from a fixed run (hand-computed), and
evaluate with fixed / adaptive / sweep halting on the bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrm_eval.evaluation.halting_analysis import by_difficulty, simulate, stop_steps
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.models import build_model
from hrm_eval.models.config import HRMConfig
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


def test_stop_steps_and_simulate_by_hand():
    wants = np.array([[False, True, False], [False, False, False], [True, True, True]])
    exact = np.array([[False, True, True], [False, False, True], [False, True, True]])
    assert stop_steps(wants).tolist() == [2, 3, 1]  # first 'halt', else the last step
    assert stop_steps(wants, min_steps=2).tolist() == [2, 3, 2]
    got = simulate(wants, exact)
    assert got["mean_steps"] == pytest.approx(2.0)
    assert got["exact_accuracy"] == pytest.approx(2 / 3)  # rows 0 and 1 right where they stop


def test_by_difficulty_by_hand():
    """Three puzzles of difficulty 5 and one of 9, from a fixed 3-step run: per value, the solve
    rate and steps of the run, and what the model's rule (HRM: q_halt > q_continue) would give."""
    config = dict(H_cycles=1, L_cycles=1, H_layers=1, L_layers=1, expansion=2, num_puzzle_identifiers=1)
    model = build_model(HRMConfig(hidden_size=8, num_heads=2, seq_len=4, vocab_size=4, halt_max_steps=3, **config))
    q_halt = np.array([[1.0, 1, 1], [-1, 1, 1], [-1, -1, -1], [-1, -1, 1]], np.float32)
    arrays = {
        "q_halt": q_halt,
        "q_continue": np.zeros_like(q_halt),  # the rule halts where q_halt > 0: steps 1, 2, 3, 3
        "exact": np.array([[True, True, True], [False, True, True], [False, False, False], [False, False, True]]),
        "steps": np.array([3, 3, 3, 3]),
        "solved": np.array([True, True, False, True]),
    }
    table = by_difficulty(arrays, np.array([5, 5, 5, 9]), "blanks", model, fixed=True)
    assert table["measure"] == "blanks"
    five, nine = table["rows"]
    assert (five["blanks"], five["puzzles"], nine["blanks"], nine["puzzles"]) == (5, 3, 9, 1)
    assert five["exact_accuracy"] == pytest.approx(2 / 3) and nine["exact_accuracy"] == 1.0
    assert five["model_halting_mean_steps"] == pytest.approx((1 + 2 + 3) / 3)
    assert five["model_halting_exact_accuracy"] == pytest.approx(2 / 3)  # right at steps 1 and 2, wrong at 3
    assert nine["model_halting_mean_steps"] == 3.0 and nine["model_halting_exact_accuracy"] == 1.0
    adaptive = by_difficulty(arrays, np.array([5, 5, 5, 9]), "blanks", model, fixed=False)
    assert "model_halting_exact_accuracy" not in adaptive["rows"][0]  # only a fixed run knows every step


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("halting")
    kw = dict(device="cpu", limit=200, progress=False)
    fixed = simple_evaluate(BUNDLED, BUNDLED / "data", output_dir=out / "fixed", sweep=True, **kw)
    adaptive = simple_evaluate(BUNDLED, BUNDLED / "data", output_dir=out / "adaptive", halting="adaptive", **kw)
    return out, fixed, adaptive


def test_adaptive_halting_matches_what_the_fixed_run_predicted(runs):
    """The sweep computes the model rule's accuracy and mean steps from the fixed run; running
    with adaptive halting must give exactly those (same answers, same stopping steps)."""
    _, fixed, adaptive = runs
    predicted = next(p for p in fixed["halting_sweep"] if p["rule"].startswith("adaptive"))
    m = adaptive["aggregate_metrics"]
    assert m["exact_accuracy"] == pytest.approx(predicted["exact_accuracy"], abs=1e-12)
    assert m["steps"] == pytest.approx(predicted["mean_steps"], abs=1e-12)
    assert m["steps"] < 4  # it really stops early
    assert fixed["aggregate_metrics"]["exact_accuracy"] - m["exact_accuracy"] <= 0.005
    assert adaptive["provenance"]["evaluation"]["halting"] == {"mode": "adaptive", "max_steps": 4, "min_steps": 1}
    records = adaptive["per_puzzle_metrics"]
    assert [r["num_steps"] for r in records] == [r["halt_step"] for r in records]


def test_records_stream_to_jsonl_in_dataset_order(runs):
    out, fixed, adaptive = runs
    for name in ("fixed", "adaptive"):
        lines = (out / name / "per_puzzle.jsonl").read_text().splitlines()
        assert [json.loads(line) for line in lines] == json.loads((out / name / "results.json").read_text())[
            "per_puzzle_metrics"
        ]
        assert [json.loads(line)["example_index"] for line in lines] == list(range(200))
    assert (out / "fixed" / "halting_sweep.png").stat().st_size > 1000


@pytest.mark.parametrize("halting", ["fixed", "adaptive"])
def test_results_do_not_depend_on_the_slot_count(halting):
    """Continuous batching with 1, 7 or 64 slots (24 puzzles: 7 slots are refilled several
    times, 64 are never all busy): the same answers and steps for every puzzle;
    counts equal exactly, float metrics within float32 kernel noise (see test_evaluate.py)."""
    results = [
        simple_evaluate(
            BUNDLED, BUNDLED / "data", device="cpu", limit=24, progress=False, batch_size=b, halting=halting
        )
        for b in (1, 7, 64)
    ]
    base = results[0]
    for r in results[1:]:
        for key in ("exact_accuracy", "steps", "q_halt_accuracy", "total_puzzles", "verified_solve_rate"):
            assert r["aggregate_metrics"][key] == base["aggregate_metrics"][key], key
        for key in ("lm_loss", "q_halt_loss", "accuracy"):
            assert r["aggregate_metrics"][key] == pytest.approx(base["aggregate_metrics"][key], rel=1e-5), key
        assert [(p["solved"], p["num_steps"]) for p in r["per_puzzle_metrics"]] == [
            (p["solved"], p["num_steps"]) for p in base["per_puzzle_metrics"]
        ]
