"""`compare_checkpoints`: NaN/Inf and frozen layers are flagged, the recommendation follows the
measured metrics (never a NaN checkpoint, not simply the latest), convergence is claimed only
when the numbers support it, and the plots are written."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hrm_eval.compare import (
    JSON_FILE,
    REPORT_FILE,
    compare_checkpoints,
    convergence,
    module_of,
    recommend,
    weight_change,
)
from hrm_eval.ensemble import evaluate_ensemble
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.members import predictions as predictions_module
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import SUDOKU_BUILT
from tests.unit.ensemble.conftest import LIMIT


def test_compare_flags_nan_and_frozen_layer_and_writes_report_and_plots(broken_run, tmp_path):
    out = tmp_path / "report"
    report = compare_checkpoints(
        run=broken_run, data=SUDOKU_BUILT, output_dir=out, device="cpu", limit=LIMIT, progress=False
    )
    recs = {r["name"]: r for r in report["checkpoints"]}
    assert [r["step"] for r in report["checkpoints"]] == [1000, 2000, 3000, 4000]
    # NaN found, named, and the checkpoint not evaluated
    assert recs["step_3000"]["nonfinite"] == [{"tensor": "lm_head.weight", "nan": 1, "inf": 0}]
    assert "metrics" not in recs["step_3000"] and "NaN" in recs["step_3000"]["evaluation"]
    assert any("NaN/Inf" in f and "lm_head.weight" in f for f in recs["step_3000"]["flags"])
    # the frozen layer, and only it (H_init / L_init are constant by design)
    assert recs["step_2000"]["change_from_previous"]["did_not_move"] == ["L_level.layers.1"]
    assert recs["step_2000"]["change_from_previous"]["modules"]["L_level.layers.1"] == 0.0
    assert recs["step_2000"]["change_from_previous"]["modules"]["lm_head"] > 0.01
    assert recs["step_4000"]["change_from_previous"]["did_not_move"] == []
    assert set(recs["step_1000"]["module_norms"]) >= {
        "embed_tokens",
        "lm_head",
        "q_head",
        "H_level.layers.0",
        "L_level.layers.1",
    }
    # metrics are evaluate's numbers
    plain = simple_evaluate(broken_run / "step_1000", SUDOKU_BUILT, device="cpu", limit=LIMIT, progress=False)
    for k in ("exact_accuracy", "accuracy", "lm_loss", "q_halt_accuracy"):
        assert recs["step_1000"]["metrics"][k] == plain["aggregate_metrics"][k]
    # the recommendation is a finite, measured checkpoint
    rec = report["recommendation"]
    assert rec["checkpoint"] in ("step_1000", "step_2000", "step_4000")
    best = max(
        (r for r in report["checkpoints"] if r.get("metrics")),
        key=lambda r: (r["metrics"]["exact_accuracy"], r["metrics"]["accuracy"], -r["metrics"]["lm_loss"]),
    )
    assert rec["checkpoint"] == best["name"]
    # files
    md = (out / REPORT_FILE).read_text()
    assert "step_3000" in md and "NaN" in md and "did not move" in md and "## Recommendation" in md
    saved = json.loads((out / JSON_FILE).read_text())
    assert saved["findings"] == report["findings"] and len(saved["findings"]) == 2
    try:
        import matplotlib  # noqa: F401  (the optional `plots` extra)
    except ImportError:
        assert "matplotlib" in report["plots"]["skipped"] and "Skipped" in md
    else:
        for name in ("metric_vs_step", "weight_change_vs_step"):
            png = out / "plots" / f"{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
            assert f"plots/{name}.png" in md
    # a second report reuses the cached member predictions
    again = compare_checkpoints(
        run=broken_run, data=SUDOKU_BUILT, output_dir=out, device="cpu", limit=LIMIT, progress=False, plots=False
    )
    assert [r.get("cache") for r in again["checkpoints"]] == ["hit", "hit", None, "hit"]


def test_compare_after_ensemble_reuses_the_members_predictions(fixture_run, monkeypatch, tmp_path):
    """One default cache: the ensemble's member predictions are what compare measures, so the
    second command runs no model (predict is made to fail) and reports evaluate's numbers."""
    ckpts = [fixture_run / f"step_{s}" for s in (1000, 2000, 3000)]
    ens = evaluate_ensemble(ckpts, SUDOKU_BUILT, strategy="vote", device="cpu", limit=LIMIT, progress=False)
    assert [m["cache"] for m in ens["members"]] == ["miss"] * 3
    monkeypatch.setattr(predictions_module, "predict", lambda *a, **k: pytest.fail("a member ran again"))
    report = compare_checkpoints(
        ckpts, data=SUDOKU_BUILT, output_dir=tmp_path / "cmp", device="cpu", limit=LIMIT, plots=False, progress=False
    )
    recs = report["checkpoints"]
    assert [r["cache"] for r in recs] == ["hit"] * 3
    assert [r["cache_file"] for r in recs] == [m["cache_file"] for m in ens["members"]]
    assert [r["metrics"] for r in recs] == [m["metrics"] for m in ens["members"]]
    saved = json.loads((tmp_path / "cmp" / JSON_FILE).read_text())
    assert saved["schema_version"] == RESULTS_SCHEMA_VERSION
    prov = saved["provenance"]
    assert prov["evaluation"]["dtype"] == "float32" and prov["dataset"]["task"] == "sudoku"
    assert [c["sha256"] for c in prov["checkpoints"]] == [r["sha256"] for r in recs]


def test_compare_without_data_reports_weights_only(broken_run, tmp_path):
    report = compare_checkpoints(
        [broken_run / "step_1000", broken_run / "step_2000"], data=None, output_dir=tmp_path, device="cpu", plots=False
    )
    # the fixture's all_config.yaml names a data_path that does not exist here
    assert report["data"]["path"] is None and report["recommendation"]["checkpoint"] is None
    assert all(r["evaluation"].startswith("skipped") for r in report["checkpoints"])
    assert report["checkpoints"][1]["change_from_previous"]["did_not_move"] == ["L_level.layers.1"]
    garbage = tmp_path / "step_9"
    garbage.write_bytes(b"not a checkpoint")
    report = compare_checkpoints(
        [broken_run / "step_1000", garbage, broken_run / "step_2000"], output_dir=tmp_path, device="cpu", plots=False
    )
    assert report["checkpoints"][1]["flags"][0].startswith("unreadable: cannot read checkpoint")
    assert report["checkpoints"][2]["change_from_previous"]["previous"] == "step_1000"
    with pytest.raises(HRMEvalError, match="either --checkpoints or --run"):
        compare_checkpoints([broken_run / "step_1000"], run=broken_run, output_dir=tmp_path)


def record(step, exact, n=1000, change=None, accuracy=None, lm_loss=1.0):
    r = {
        "name": f"step_{step}",
        "path": f"run/step_{step}",
        "step": step,
        "nonfinite": [],
        "metrics": {
            "exact_accuracy": exact,
            "accuracy": accuracy if accuracy is not None else exact,
            "lm_loss": lm_loss,
            "total_puzzles": n,
        },
    }
    if change is not None:
        r["change_from_previous"] = {"relative": change}
    return r


def test_recommendation_follows_measurements_not_the_latest():
    recs = [record(1000, 0.50), record(2000, 0.80, change=0.1), record(3000, 0.60, change=0.05)]
    rec = recommend(recs)
    assert rec["checkpoint"] == "step_2000" and "not the latest" in rec["reason"] and "beyond" in rec["reason"]
    recs.append(dict(record(4000, 0.99), nonfinite=[{"tensor": "x", "nan": 1, "inf": 0}]))
    assert recommend(recs)["checkpoint"] == "step_2000"
    close = recommend([record(1000, 0.801), record(2000, 0.800)])
    assert close["checkpoint"] == "step_1000" and "within measurement noise" in close["reason"]


def test_convergence_is_stated_only_when_the_numbers_support_it():
    assert convergence([record(1000, 0.5), record(2000, 0.6)])["status"] == "insufficient"
    rising = [record(1000, 0.5), record(2000, 0.6, change=0.1), record(3000, 0.7, change=0.05)]
    assert convergence(rising)["status"] == "improving"
    flat = [record(1000, 0.90), record(2000, 0.901, change=0.01), record(3000, 0.899, change=0.005)]
    c = convergence(flat)
    assert c["status"] == "plateau" and "not a proof" in c["statement"]
    assert convergence([record(s, 0.0) for s in (1, 2, 3)])["status"] == "no_progress"
    noisy_small = [record(1, 0.5, n=20), record(2, 0.6, n=20, change=0.1), record(3, 0.55, n=20, change=0.05)]
    assert convergence(noisy_small)["status"] == "plateau"  # 20 puzzles cannot tell these apart
    falling = [record(1, 0.9), record(2, 0.8, change=0.1), record(3, 0.7, change=0.1)]
    assert convergence(falling)["status"] == "degrading"


def test_module_grouping_and_incomparable_architectures():
    assert module_of("H_level.layers.0.mlp.down_proj.weight") == "H_level.layers.0"
    assert module_of("lm_head.weight") == "lm_head" and module_of("H_init") == "H_init"
    a = {"w.weight": torch.ones(2, 2)}
    assert weight_change(a, {"w.weight": torch.ones(3, 2)})["comparable"] is False
    same = weight_change(a, {"w.weight": torch.ones(2, 2)})
    assert same["did_not_move"] == ["w"] and same["relative"] == 0.0


def test_recommendation_prefers_the_earlier_checkpoint_when_the_gap_is_not_significant():
    """Issue 24: McNemar on the per-puzzle solved vectors decides, not the ranking alone."""
    import numpy as np

    later, earlier = record(2000, 0.52, n=100), record(1000, 0.50, n=100)
    # both solve 45; step_2000 alone 7, step_1000 alone 5: p = 2 * P(Bin(12, 1/2) <= 5) = 0.774
    a = np.array([1] * 45 + [1] * 7 + [0] * 5 + [0] * 43, bool)
    b = np.array([1] * 45 + [0] * 7 + [1] * 5 + [0] * 43, bool)
    rec = recommend([earlier, later], {"step_2000": a, "step_1000": b})
    assert rec["checkpoint"] == "step_1000" and rec["runner_up"] == "step_2000"
    assert rec["paired_test"]["p_value"] == pytest.approx(2 * sum(math.comb(12, i) for i in range(6)) / 2**12)
    assert "step_2000 solves 7 puzzles step_1000 misses, step_1000 solves 5 step_2000 misses" in rec["reason"]
    assert "not significantly better" in rec["reason"] and "fewer training steps" in rec["reason"]
    # a significant gap keeps the better one: 20 vs 2 discordant puzzles
    a = np.array([1] * 40 + [1] * 20 + [0] * 2 + [0] * 38, bool)
    b = np.array([1] * 40 + [0] * 20 + [1] * 2 + [0] * 38, bool)
    rec = recommend(
        [earlier, dict(later, metrics=dict(later["metrics"], exact_accuracy=0.60))], {"step_2000": a, "step_1000": b}
    )
    assert rec["checkpoint"] == "step_2000" and rec["paired_test"]["significant"]
    assert "(ahead beyond noise)" in rec["reason"]
