"""`deploy.py --mode export --format safetensors` as real processes: the bundled model through the CLI,
and the README's exported folder evaluated on its own run's data."""

from __future__ import annotations

import json

import pytest
import torch

from hrm_eval.inference.engine import ACTEngine
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT, run_cli

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.mark.slow
def test_bundled_model_round_trip_through_the_cli(tmp_path):
    data = BUNDLED / "data"
    out = tmp_path / "folder"
    done = run_cli("--mode", "export", "--checkpoint", str(BUNDLED), "--output", str(out), "--data", str(data),
                   "--limit", "16", "--batch-size", "16")  # fmt: skip
    assert done.returncode == 0, done.stderr
    card = (out / "README.md").read_text()
    assert "| exact_accuracy |" in card and "| total_puzzles | 16 |" in card
    from hrm_eval.data.open import open_dataset

    dataset = open_dataset(data)
    batch = next(dataset.iter_batches(32, limit=32))
    a, b = (load_checkpoint(p, dataset=dataset.metadata) for p in (BUNDLED, out))
    runs = [ACTEngine(x.model, slots=32).run_all(batch.inputs, batch.puzzle_identifiers) for x in (a, b)]
    assert torch.equal(runs[0].logits, runs[1].logits)
    assert torch.equal(runs[0].q_halt_logits, runs[1].q_halt_logits)


@pytest.mark.slow
def test_the_readmes_exported_folder_is_evaluated_on_its_own_runs_data(tmp_path):
    """Issue 27: the README's `--mode evaluate --checkpoint exported/sudoku6-hrm` printed 0.591 (the
    default config's dataset, the other model's) for a model that scores 0.991 on its own data."""
    out = tmp_path / "exported"
    done = run_cli("--mode", "export", "--checkpoint", "checkpoints/sudoku6-hrm", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["data_path"] == "checkpoints/sudoku6-hrm/data"
    evaluated = run_cli("--mode", "evaluate", "--checkpoint", str(out), "--dtype", "float32", "--no-progress",
                        "--output", str(tmp_path / "eval"), "--log-level", "WARNING")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert "data: checkpoints/sudoku6-hrm/data (from the checkpoint's run)" in evaluated.stdout
    assert "exact_accuracy (solve rate)         0.9910" in evaluated.stdout  # the model card's number
