"""W&B tracking through real wandb in offline mode: the run's own files hold what was logged."""

from __future__ import annotations

import json

import pytest

from hrm_eval.utils.tracking import flatten_metrics, start_run
from tests.unit.utils import wandb_files

pytest.importorskip("wandb")  # the optional extra; the test extra installs it


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default, not the environment's doing
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_results_become_metrics_a_table_and_images(offline, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    records = [
        {"index": i, "solved": i != 1, "steps": 4, "name": f"p{i}", "solved_by_step": [False, True]} for i in range(3)
    ]
    (out / "per_puzzle.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    _png(out / "plots" / "reliability.png")
    results = {
        "aggregate_metrics": {"exact_accuracy": 2 / 3, "accuracy": 0.95, "total_puzzles": 3},
        "q_value_analysis": {"calibration": {"brier": 0.125}},
        "per_puzzle_metrics_file": "per_puzzle.jsonl",
        "provenance": {"checkpoint": "not a metric"},
    }
    tracker = start_run("tests", name="unit", config={"limit": 3}, job_type="evaluate", directory=out)
    tracker.log_results(results, output_dir=out)
    run_dir = tracker.finish()

    assert run_dir.name.startswith("offline-run-") and run_dir.parent == offline / "wandb"  # WANDB_DIR wins
    logged = {k: v for row in wandb_files.history(run_dir) for k, v in row.items()}
    assert logged["aggregate_metrics/exact_accuracy"] == pytest.approx(2 / 3, rel=1e-12)
    assert logged["aggregate_metrics/total_puzzles"] == 3
    assert logged["q_value_analysis/calibration/brier"] == 0.125
    assert not any(k.startswith("provenance") for k in logged)
    assert wandb_files.config(run_dir)["limit"] == 3

    (table,) = wandb_files.media(run_dir, "table")
    data = json.loads(table.read_text())
    assert data["columns"] == ["index", "solved", "steps", "name", "solved_by_step"]
    assert [row[1] for row in data["data"]] == [True, False, True]
    assert data["data"][0][4] == "[false, true]"  # lists become JSON text cells
    (image,) = wandb_files.media(run_dir, "images")
    assert image.name.startswith("reliability") and image.suffix == ".png"


def test_flatten_metrics_keeps_numbers_only():
    results = {"a": {"b": 1, "c": [1, 2], "d": {"e": 0.5, "f": "x"}}, "ok": True, "provenance": {"n": 1}}
    assert flatten_metrics(results) == {"a/b": 1, "a/d/e": 0.5, "ok": 1.0}


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


def test_the_trainer_logs_its_curves_through_the_same_helper(offline, tmp_path):
    from hrm_eval.data.build import build_dataset
    from hrm_eval.data.generate import generate_csvs
    from hrm_eval.training.trainer import train
    from tests.unit.training.conftest import HRM_ARCH, train_config

    generate_csvs("sudoku4", tmp_path / "raw", num_train=64, num_test=8, seed=0)
    build_dataset("sudoku4", tmp_path / "raw", tmp_path / "data")
    config = train_config(tmp_path / "data", HRM_ARCH, max_steps=3, wandb=True, run_name="tiny")
    summary = train(config, output=tmp_path / "run", progress=False)

    (run_dir,) = wandb_files.run_dirs(offline)
    rows = wandb_files.history(run_dir)
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["_step"] for r in train_rows] == [1, 2, 3]  # log_every 1
    assert train_rows[-1]["train/lr"] == pytest.approx(summary.last_metrics["lr"], rel=1e-6)
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    assert evals and evals[-1]["_step"] == 3
    assert wandb_files.config(run_dir)["run_name"] == "tiny"
