"""The default bundled model (checkpoints/sudoku6-hard-hrm): re-measured on a fixed sample of its
held-out puzzles, which training never saw. Numbers measured on the full 2,000 are in its model
card; the sample's are asserted with margin for the sampling, not for the arithmetic (answers
are argmax decisions, the same on every CPU kind)."""

from __future__ import annotations

import csv

import pytest

from hrm_eval.evaluation import simple_evaluate
from tests.conftest import ROOT

RUN = ROOT / "checkpoints" / "sudoku6-hard-hrm"
SAMPLE = 300  # the first 300 of the 2,000 held-out puzzles (measured: 0.943 exact, fixed and adaptive)
FINAL = "step_11250"


def _blanks() -> list:
    with open(RUN / "raw" / "heldout.csv", newline="") as f:
        return [int(r["rating"]) for r in csv.DictReader(f)][:SAMPLE]


@pytest.fixture(scope="module")
def runs():
    kw = dict(device="cpu", limit=SAMPLE, progress=False)
    fixed = simple_evaluate(RUN / FINAL, RUN / "heldout", **kw)
    adaptive = simple_evaluate(RUN / FINAL, RUN / "heldout", halting="adaptive", **kw)
    return fixed, adaptive


def test_the_held_out_set_is_disjoint_from_training():
    def questions(name):
        with open(RUN / "raw" / name, newline="") as f:
            return {r["question"] for r in csv.DictReader(f)}

    train, test, heldout = questions("train.csv"), questions("test.csv"), questions("heldout.csv")
    assert (len(train), len(test), len(heldout)) == (40000, 1000, 2000)
    assert not (train & heldout) and not (test & heldout) and not (train & test)


def test_final_checkpoint_solves_the_sample_with_fixed_and_adaptive_halting(runs):
    fixed, adaptive = runs
    assert fixed["aggregate_metrics"]["exact_accuracy"] >= 0.9
    assert fixed["aggregate_metrics"]["verified_solve_rate"] >= 0.9
    # adaptive: at most 0.5 point below fixed, at most 60% of the 8 steps
    assert adaptive["aggregate_metrics"]["exact_accuracy"] >= fixed["aggregate_metrics"]["exact_accuracy"] - 0.005
    assert adaptive["aggregate_metrics"]["steps"] <= 0.6 * 8


def test_harder_puzzles_think_longer(runs):
    _, adaptive = runs
    steps = [r["num_steps"] for r in adaptive["per_puzzle_metrics"]]
    blanks = _blanks()
    easy = [s for s, b in zip(steps, blanks) if b <= 14]
    hard = [s for s, b in zip(steps, blanks) if b >= 19]
    assert sum(easy) / len(easy) < 3 < 4.5 < sum(hard) / len(hard)  # measured: 2.04 and 5.11


def test_results_have_the_table_by_blank_count(runs):
    """results.json `by_difficulty`: the blank count is read from each input; it must agree with
    the generator's rating column, and the table's rows with the per-puzzle records."""
    fixed, adaptive = runs
    blanks = _blanks()
    assert [r["blanks"] for r in fixed["per_puzzle_metrics"]] == blanks
    table = fixed["by_difficulty"]
    assert table["measure"] == "blanks"
    assert [r["blanks"] for r in table["rows"]] == sorted(set(blanks))
    assert sum(r["puzzles"] for r in table["rows"]) == SAMPLE
    for row in table["rows"]:
        solved = [r["solved"] for r in fixed["per_puzzle_metrics"] if r["blanks"] == row["blanks"]]
        assert row["exact_accuracy"] == pytest.approx(sum(solved) / len(solved))
        assert row["mean_steps"] == 8.0
    # the fixed run's prediction for the model's halting equals the adaptive run, per blank count
    for f, a in zip(table["rows"], adaptive["by_difficulty"]["rows"]):
        assert f["model_halting_mean_steps"] == pytest.approx(a["mean_steps"])
        assert f["model_halting_exact_accuracy"] == pytest.approx(a["exact_accuracy"])


def test_every_rate_has_its_95_percent_interval(runs):
    """Issue 24: results carry a Wilson interval beside each rate and a bootstrap interval beside
    the mean token accuracy, computed from the same per-puzzle records the rates come from."""
    from hrm_eval.evaluation.stats import bootstrap_mean_interval, wilson_interval

    fixed, _ = runs
    m, records = fixed["aggregate_metrics"], fixed["per_puzzle_metrics"]
    solved = sum(r["solved"] for r in records)
    assert m["exact_accuracy_ci95"] == wilson_interval(solved, SAMPLE)
    assert m["exact_accuracy_ci95"][0] < m["exact_accuracy"] < m["exact_accuracy_ci95"][1]
    assert m["verified_solve_rate_ci95"] == wilson_interval(sum(r["verified"] for r in records), SAMPLE)
    assert m["accuracy_ci95"] == bootstrap_mean_interval([r["accuracy"] for r in records])
    lo, hi = m["q_halt_accuracy_ci95"]
    assert lo < m["q_halt_accuracy"] < hi or m["q_halt_accuracy"] == 1.0
    for row in fixed["by_difficulty"]["rows"]:
        k = sum(r["solved"] for r in records if r["blanks"] == row["blanks"])
        assert row["exact_accuracy_ci95"] == wilson_interval(k, row["puzzles"])
    assert "Wilson" in fixed["metric_definitions"]["intervals"]
    assert "McNemar" in fixed["metric_definitions"]["paired_test"]


def test_halting_by_q_is_tested_against_fixed_on_the_same_puzzles(runs):
    """The fixed run's McNemar test of the model's own halting against all 8 steps: its table is
    the one the adaptive run's per-puzzle records give against the fixed run's."""
    from hrm_eval.evaluation.stats import mcnemar_exact

    fixed, adaptive = runs
    t = fixed["q_value_analysis"]["halting_vs_fixed"]
    q = [r["solved"] for r in adaptive["per_puzzle_metrics"]]
    f = [r["solved"] for r in fixed["per_puzzle_metrics"]]
    assert t["a_only"] == sum(a and not b for a, b in zip(q, f))
    assert t["b_only"] == sum(b and not a for a, b in zip(q, f))
    assert t["both"] == sum(a and b for a, b in zip(q, f)) and t["num_puzzles"] == SAMPLE
    assert t["p_value"] == mcnemar_exact(t["a_only"], t["b_only"])
    assert t["statement"].startswith(f"halting by Q solves {t['a_only']} puzzles fixed 8 steps misses")


@pytest.mark.slow
def test_compare_of_two_bundled_checkpoints_on_300_puzzles_reports_the_paired_test(tmp_path):
    """The bundled hard model's last two checkpoints on the same 300 held-out puzzles: the paired
    test's table must add up to each checkpoint's measured exact accuracy, and the verdict must
    follow its p-value (measured: 13 vs 4 discordant puzzles, p = 0.049)."""
    from hrm_eval.compare import REPORT_FILE, compare_checkpoints
    from hrm_eval.evaluation.stats import mcnemar_exact, wilson_interval

    run = RUN
    report = compare_checkpoints(
        [run / "step_10000", run / "step_11250"],
        data=run / "heldout",
        output_dir=tmp_path,
        device="cpu",
        limit=300,
        progress=False,
        plots=False,
    )
    m = {r["name"]: r["metrics"] for r in report["checkpoints"]}
    rec = report["recommendation"]
    t = rec["paired_test"]
    assert t["num_puzzles"] == 300 and t["a"] == "step_11250" and t["b"] == "step_10000"
    # the 2x2 table reproduces both measured accuracies
    assert (t["both"] + t["a_only"]) / 300 == pytest.approx(m["step_11250"]["exact_accuracy"])
    assert (t["both"] + t["b_only"]) / 300 == pytest.approx(m["step_10000"]["exact_accuracy"])
    assert t["both"] + t["a_only"] + t["b_only"] + t["neither"] == 300
    assert t["p_value"] == mcnemar_exact(t["a_only"], t["b_only"])
    assert (t["a_only"], t["b_only"]) == (13, 4) and t["p_value"] == pytest.approx(0.049041748046875)
    assert t["significant"] and rec["checkpoint"] == "step_11250"
    assert "p = 0.049" in rec["reason"] and "ahead beyond noise" in rec["reason"]
    k = round(m["step_11250"]["exact_accuracy"] * 300)
    assert rec["exact_accuracy_ci95"] == m["step_11250"]["exact_accuracy_ci95"] == wilson_interval(k, 300)
    md = (tmp_path / REPORT_FILE).read_text()
    assert "exact acc [95% interval]" in md and "McNemar exact" in md
