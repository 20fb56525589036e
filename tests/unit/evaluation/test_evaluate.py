"""simple_evaluate end to end on the fixtures: batch-size invariance, the results.json and
predictions files, raw CSV input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import FIXTURES, HRM_FIXTURES, SUDOKU_BUILT

CKPT = HRM_FIXTURES["rope_f32"]
SUDOKU_CSV = FIXTURES / "official_data" / "sudoku_raw" / "test.csv"
PUBLIC = ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss")
AGGREGATE_KEYS = {
    *PUBLIC,
    "total_puzzles",
    "solve_rate",
    "average_steps",
    "average_accuracy",
    "time_per_puzzle",
    "verified_solve_rate",
}
TIMING = ("time_per_puzzle", "wall_time_seconds", "puzzles_per_second")
# Counts and argmax-derived rates: exact arithmetic whatever the CPU, so compared exactly.
COUNTED = (
    "exact_accuracy",
    "solve_rate",
    "q_halt_accuracy",
    "steps",
    "average_steps",
    "total_puzzles",
    "verified_solve_rate",
)
# Losses come from float32 logits, and the order in which a float32 matmul sums depends on the
# CPU kernel (AVX2 / AVX-512 / AMX blocking) and on the batch size: a few float32 ulps (2^-23 ~
# 1.2e-7 relative) per op, through ~10 layers. 1e-5 relative leaves that margin 10x over (the
# largest difference seen, AVX-512 vs AVX2, is 2.5e-9) and still catches a wrongly counted row,
# which moves a mean over 40 puzzles by more than 1e-3.
FLOAT_REL = 1e-5
PRED_KEYS = {"inputs", "labels", "puzzle_identifiers", "logits", "q_halt_logits", "q_continue_logits"}


def evaluate(data, **kw):
    kw.setdefault("batch_size", 40)
    return simple_evaluate(CKPT, data, device="cpu", progress=False, **kw)


def load_preds(folder: Path) -> dict:
    return torch.load(folder / "step_1000_all_preds.0", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """rope_f32 on the whole SUDOKU_BUILT test split, files written."""
    out = tmp_path_factory.mktemp("eval") / "out"
    results = evaluate(SUDOKU_BUILT, output_dir=out, save_predictions=True)
    return out, results


@pytest.fixture(scope="module")
def half_solved(tmp_path_factory, full_run) -> Path:
    """SUDOKU_BUILT with every other puzzle's labels set to the model's own answer, so that
    `solved` and q_halt_accuracy vary between puzzles."""
    dst = tmp_path_factory.mktemp("data") / "sudoku"
    shutil.copytree(SUDOKU_BUILT, dst)
    preds = load_preds(full_run[0])["logits"].argmax(-1).numpy()
    labels = np.load(dst / "test" / "all__labels.npy")
    labels[::2] = np.clip(preds[::2], 1, 10)
    np.save(dst / "test" / "all__labels.npy", labels.astype(np.uint8))
    return dst


def assert_same_aggregate(got: dict, expected: dict) -> None:
    """Counted metrics exactly, token accuracy to float64 summation order (per-row ratios summed
    in batches of different sizes), losses to FLOAT_REL."""
    for key in AGGREGATE_KEYS - set(TIMING):
        if key in COUNTED:
            assert got[key] == expected[key], key
        elif key in ("accuracy", "average_accuracy"):
            assert got[key] == pytest.approx(expected[key], rel=1e-12), key
        else:
            assert got[key] == pytest.approx(expected[key], rel=FLOAT_REL), key


def test_results_do_not_depend_on_the_batch_size(half_solved, tmp_path):
    runs = {
        bs: evaluate(half_solved, batch_size=bs, output_dir=tmp_path / str(bs), save_predictions=True) for bs in (7, 40)
    }
    small, big = runs[7], runs[40]
    assert [r["solved"] for r in small["per_puzzle_metrics"]] == [r["solved"] for r in big["per_puzzle_metrics"]]
    assert 0 < sum(r["solved"] for r in big["per_puzzle_metrics"]) < 40
    assert_same_aggregate(small["aggregate_metrics"], big["aggregate_metrics"])
    for a, b in zip(small["per_puzzle_metrics"], big["per_puzzle_metrics"]):
        assert a["puzzle_id"] == b["puzzle_id"]
        assert a["accuracy"] == b["accuracy"]  # a count ratio per row
        for key in ("lm_loss", "q_halt_logit"):  # abs: a logit can sit near 0
            assert a[key] == pytest.approx(b[key], rel=FLOAT_REL, abs=1e-6), key
    p7, p40 = load_preds(tmp_path / "7"), load_preds(tmp_path / "40")
    assert torch.equal(p7["logits"].argmax(-1), p40["logits"].argmax(-1))
    assert torch.equal(p7["inputs"], p40["inputs"]) and torch.equal(p7["labels"], p40["labels"])
    assert small["provenance"]["evaluation"]["batch_size"] == 7


def test_results_json_holds_metrics_records_and_provenance(full_run):
    out, returned = full_run
    results = json.loads((out / "results.json").read_text())
    saved, given = results["aggregate_metrics"], returned["aggregate_metrics"]
    assert saved == given  # JSON keeps every float exactly (the intervals are [lo, hi] lists)
    assert results["schema_version"] == RESULTS_SCHEMA_VERSION == 1

    m = results["aggregate_metrics"]
    assert set(m) >= AGGREGATE_KEYS
    assert m["total_puzzles"] == 40 and m["steps"] == 4.0 and m["average_steps"] == 4.0
    assert m["solve_rate"] == m["exact_accuracy"] and m["average_accuracy"] == m["accuracy"]
    assert m["time_per_puzzle"] > 0

    records = results["per_puzzle_metrics"]
    assert len(records) == 40
    for i, r in enumerate(records):
        assert {
            "puzzle_id",
            "identifier_name",
            "solved",
            "num_steps",
            "accuracy",
            "q_halt_logit",
            "q_continue_logit",
            "lm_loss",
            "halt_step",
        } <= set(r)
        assert r["puzzle_id"] == str(i) and r["identifier_name"] == "<blank>" and r["num_steps"] == 4

    prov = results["provenance"]
    ckpt = CKPT / "step_1000"
    assert prov["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert Path(prov["checkpoint"]["path"]).resolve() == ckpt.resolve() and prov["checkpoint"]["step"] == 1000
    assert prov["checkpoint"]["config_sources"]["num_heads"] == "all_config.yaml"
    assert prov["dataset"]["fingerprint_sha256"] == PuzzleDataset(SUDOKU_BUILT).fingerprint()
    assert len(prov["dataset"]["fingerprint_sha256"]) == 64 and prov["dataset"]["task"] == "sudoku"
    assert prov["versions"]["torch"] == torch.__version__ and prov["versions"]["numpy"] == np.__version__
    assert prov["evaluation"]["device"] == "cpu" and prov["evaluation"]["dtype"] == "float32"
    assert prov["model_config"]["hidden_size"] == 64 and prov["model_config"]["family"] == "hrm"


def test_predictions_file_is_public_and_agrees_with_the_metrics(full_run):
    out, results = full_run
    preds = load_preds(out)  # weights_only=True: plain tensors only
    assert set(preds) == PRED_KEYS
    assert tuple(preds["logits"].shape) == (40, 81, 11)
    assert tuple(preds["inputs"].shape) == tuple(preds["labels"].shape) == (40, 81)
    for k in ("puzzle_identifiers", "q_halt_logits", "q_continue_logits"):
        assert tuple(preds[k].shape) == (40,), k
    np.testing.assert_array_equal(preds["inputs"].numpy(), np.load(SUDOKU_BUILT / "test" / "all__inputs.npy"))

    # The metrics, recomputed from the saved arrays (spec: mean over rows of per-row accuracy).
    labels, hit = preds["labels"], preds["logits"].argmax(-1) == preds["labels"]
    mask = labels != -100
    row_acc = (hit & mask).sum(-1) / mask.sum(-1)
    exact = ((hit | ~mask).all(-1)).double()
    m = results["aggregate_metrics"]
    assert m["accuracy"] == pytest.approx(float(row_acc.double().mean()), abs=1e-9)
    assert m["exact_accuracy"] == pytest.approx(float(exact.mean()), abs=1e-9)
    q_ok = ((preds["q_halt_logits"] >= 0).double() == exact).double().mean()
    assert m["q_halt_accuracy"] == pytest.approx(float(q_ok), abs=1e-9)
    recs = results["per_puzzle_metrics"]
    assert [r["q_halt_logit"] for r in recs] == pytest.approx(preds["q_halt_logits"].tolist(), abs=1e-6)
    assert [r["accuracy"] for r in recs] == pytest.approx(row_acc.tolist(), abs=1e-6)


def test_raw_csv_gives_the_built_directory_numbers(full_run):
    built = full_run[1]
    raw = evaluate(SUDOKU_CSV, task="sudoku", batch_size=16)
    assert_same_aggregate(raw["aggregate_metrics"], built["aggregate_metrics"])
    a, b = built["per_puzzle_metrics"], raw["per_puzzle_metrics"]
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]
    assert [r["solved"] for r in a] == [r["solved"] for r in b]
    assert b[0]["puzzle_id"] == "test:2"  # file stem and line (after the header)
    assert raw["provenance"]["dataset"]["task"] == "sudoku"


def test_limit_evaluates_the_first_puzzles(full_run):
    results = evaluate(SUDOKU_BUILT, limit=6, batch_size=4)
    assert results["aggregate_metrics"]["total_puzzles"] == 6
    assert [r["puzzle_id"] for r in results["per_puzzle_metrics"]] == [str(i) for i in range(6)]
    first = full_run[1]["per_puzzle_metrics"][:6]
    assert [r["accuracy"] for r in results["per_puzzle_metrics"]] == pytest.approx([r["accuracy"] for r in first])


@pytest.mark.parametrize("name", ["rope_f32", "attn_f32"])
def test_q_value_analysis_follows_the_public_q_values(name):
    """Halting step = first ACT step where the family's Q rule says halt (HRM: q_halt > q_continue,
    TRM with no_ACT_continue: q_halt > 0), computed by hand from the public outputs."""
    from hrm_eval.data.format import DatasetMetadata
    from hrm_eval.evaluation.evaluator import Evaluator
    from tests.conftest import TRM_FIXTURES, expected_outputs

    folder = {**HRM_FIXTURES, **TRM_FIXTURES}[name]
    exp = expected_outputs(folder)
    probe = load_checkpoint(folder, require_seq_len=False)
    meta = DatasetMetadata(
        pad_id=0,
        ignore_label_id=None,
        blank_identifier_id=0,
        vocab_size=probe.config.vocab_size,
        seq_len=exp["inputs"].shape[1],
        num_puzzle_identifiers=probe.config.num_puzzle_identifiers,
        total_groups=len(exp["inputs"]),
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
    loaded = load_checkpoint(folder, dataset=meta)
    dataset = PuzzleDataset.from_arrays(
        exp["inputs"], exp["labels"], meta, puzzle_identifiers=exp["puzzle_identifiers"]
    )
    result = Evaluator(loaded.model, batch_size=6, progress=False).evaluate(dataset)

    qh, qc = exp["q_halt_logits"], exp["q_continue_logits"]  # [T, B]
    wants = (qh > 0) if loaded.config.family == "trm" else (qh > qc)
    wants[-1] = True
    expected_halt = wants.argmax(0) + 1
    assert [r["halt_step"] for r in result.per_puzzle_metrics] == expected_halt.tolist()
    q = result.q_value_analysis
    assert q["mean_halt_step"] == pytest.approx(expected_halt.mean())
    assert sum(q["halt_step_histogram"]) == len(expected_halt)
    # exact accuracy after the last step is the headline metric
    assert q["exact_accuracy_by_step"][-1] == pytest.approx(result.aggregate_metrics["exact_accuracy"])
    for r, t in zip(result.per_puzzle_metrics, range(len(expected_halt))):
        np.testing.assert_allclose(r["q_halt_by_step"], qh[:, t], atol=1e-4)


@pytest.mark.parametrize("with_config", [True, False], ids=["all_config", "assumed"])
def test_summary_says_when_architecture_values_were_assumed(tmp_path, capsys, with_config):
    """Issue 16: without all_config.yaml the bundled model's assumed num_heads, cycles and ACT
    steps are wrong and it solves nothing; the summary says both, and points at --mode inspect."""
    from hrm_eval.cli import main
    from hrm_eval.resources import find

    first = find("checkpoints/sudoku6-hrm")  # the first bundled model: 4 heads, 2+2 cycles, 4 steps
    (tmp_path / "ckpt").mkdir()
    shutil.copy(first / "step_625", tmp_path / "ckpt" / "step_625")
    if with_config:
        shutil.copy(first / "all_config.yaml", tmp_path / "ckpt" / "all_config.yaml")
    # float32: --dtype auto picks bf16 on an AVX-512 BF16 / AMX CPU and says so in a note of its own
    argv = ["--checkpoint", str(tmp_path / "ckpt" / "step_625"), "--data", str(first / "data"), "--dtype", "float32"]
    rc = main(["--mode", "evaluate", *argv, "--limit", "4", "--output", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    solved = json.loads((tmp_path / "out" / "results.json").read_text())["aggregate_metrics"]["exact_accuracy"]
    if with_config:
        assert solved > 0 and notes == []
    else:
        assert solved == 0.0 and len(notes) == 2, out
        assert "ASSUMED architecture values" in notes[0] and "num_heads" in notes[0] and "--arch" in notes[0]
        assert f"--mode inspect --checkpoint {tmp_path / 'ckpt' / 'step_625'}" in notes[1]
