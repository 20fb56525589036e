"""Puzzles as JSON lines: the same numbers as the dataset directory they came from, and
`<file>:<line>` errors for malformed lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hrm_eval.data.jsonl import read_jsonl_puzzles
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.utils import HRMEvalError
from tests.conftest import HRM_FIXTURES, SUDOKU_BUILT

CKPT = HRM_FIXTURES["rope_f32"]
METRICS = (
    "accuracy",
    "exact_accuracy",
    "q_halt_accuracy",
    "steps",
    "lm_loss",
    "q_halt_loss",
    "total_puzzles",
    "solve_rate",
    "average_steps",
    "average_accuracy",
    "verified_solve_rate",
)


def evaluate(data, **kw):
    return simple_evaluate(CKPT, data, device="cpu", batch_size=40, progress=False, **kw)


@pytest.fixture(scope="module")
def half_solved(tmp_path_factory) -> Path:
    """SUDOKU_BUILT with the labels of every other puzzle replaced by the model's own answer (so
    that `solved` varies) and the given cells of puzzle 1 marked ignored (label 0)."""
    dst = tmp_path_factory.mktemp("jsonl") / "sudoku"
    shutil.copytree(SUDOKU_BUILT, dst)
    preds_dir = dst.parent / "preds"
    evaluate(dst, output_dir=preds_dir, save_predictions=True)
    import torch

    preds = torch.load(preds_dir / "step_1000_all_preds.0", weights_only=True)["logits"].argmax(-1).numpy()
    labels = np.load(dst / "test" / "all__labels.npy")
    inputs = np.load(dst / "test" / "all__inputs.npy")
    labels[::2] = np.clip(preds[::2], 1, 10)  # a 0 would become "ignored"
    labels[1][inputs[1] != 1] = 0
    np.save(dst / "test" / "all__labels.npy", labels.astype(np.uint8))
    return dst


def write_jsonl(dataset_dir: Path, path: Path) -> Path:
    inputs = np.load(dataset_dir / "test" / "all__inputs.npy").astype(int)
    labels = np.load(dataset_dir / "test" / "all__labels.npy").astype(int)
    labels[labels == 0] = -100  # ignore_label_id 0 -> the JSONL's -100
    with open(path, "w") as f:
        for i, (x, y) in enumerate(zip(inputs, labels)):
            f.write(
                json.dumps(
                    {
                        "puzzle_id": f"p{i}",
                        "input_sequence": x.tolist(),
                        "target_sequence": y.tolist(),
                        "puzzle_identifier": 0,
                    }
                )
                + "\n"
            )
    return path


def test_jsonl_round_trip_gives_the_directory_numbers(half_solved, tmp_path):
    jsonl = write_jsonl(half_solved, tmp_path / "sudoku.jsonl")
    inputs, labels, ids, names = read_jsonl_puzzles(jsonl)
    assert inputs.shape == labels.shape == (40, 81) and inputs.dtype == np.int32 and ids.tolist() == [0] * 40
    assert names[:2] == ["p0", "p1"] and (labels[1] == -100).any()

    from_dir, from_jsonl = evaluate(half_solved), evaluate(jsonl)
    a, b = from_dir["aggregate_metrics"], from_jsonl["aggregate_metrics"]
    for key in METRICS:
        assert b[key] == pytest.approx(a[key], abs=1e-9), key
    assert 0 < a["exact_accuracy"] < 1  # the comparison covers solved and unsolved puzzles
    pa, pb = from_dir["per_puzzle_metrics"], from_jsonl["per_puzzle_metrics"]
    assert [r["solved"] for r in pa] == [r["solved"] for r in pb]
    assert [r["accuracy"] for r in pa] == pytest.approx([r["accuracy"] for r in pb], abs=1e-9)
    assert [r["puzzle_id"] for r in pb] == [f"p{i}" for i in range(40)]
    assert from_jsonl["provenance"]["dataset"]["path"] == str(jsonl)


def test_jsonl_token_outside_the_checkpoint_vocabulary_names_the_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    good = json.dumps({"input_sequence": [1] * 81, "target_sequence": [2] * 81})
    f.write_text(good + "\n\n" + json.dumps({"input_sequence": [11] + [1] * 80, "target_sequence": [2] * 81}) + "\n")
    with pytest.raises(HRMEvalError) as e:
        evaluate(f)
    assert str(e.value) == f"{f}:3: input_sequence has token 11 outside the vocabulary 0..10"
    f.write_text(good + "\n" + json.dumps({"input_sequence": [1] * 81, "target_sequence": [2] * 80 + [12]}) + "\n")
    with pytest.raises(HRMEvalError) as e:
        evaluate(f)
    assert str(e.value) == f"{f}:2: target_sequence has token 12 outside the vocabulary 0..10"


GOOD = json.dumps({"puzzle_id": "a", "input_sequence": [1, 2, 3], "target_sequence": [2, -100, 4]})


@pytest.mark.parametrize(
    "bad,words",
    [
        ('{"input_sequence": [1, 2, 3], "target_sequence": [1, 2,', "not valid JSON"),
        ('{"input_sequence": [1, 2, 3]}', "missing field target_sequence"),
        ('{"input_sequence": [1, 2, 3], "target_sequence": [1, 2]}', "target_sequence 2"),
        ('{"input_sequence": [1, 2, 3, 4], "target_sequence": [1, 2, 3, 4]}', "differs from the first puzzle's 3"),
        ('{"input_sequence": [1, -2, 3], "target_sequence": [1, 2, 3]}', "negative token"),
        ('{"input_sequence": [1, 2, 3], "target_sequence": [1, -5, 3]}', "negative token"),
        ('{"input_sequence": [1, 2.5, 3], "target_sequence": [1, 2, 3]}', "list of integer"),
        ('{"input_sequence": [1, 2, 3], "target_sequence": [1, 99999999999, 3]}', "token id above"),
        ('{"input_sequence": [1, 2, 3], "target_sequence": [1, 2, 3], "puzzle_identifier": true}', "puzzle_identifier"),
        ("[1, 2, 3]", "JSON object"),
        ('{"input_sequence": [], "target_sequence": []}', "input_sequence is empty"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"input_sequence": [1, 2, 3], "target_sequence": [1, 2, 3' + "0" * 5000 + "]}", "too many digits"),
    ],
)
def test_malformed_line_error_names_file_and_line(tmp_path, bad, words):
    f = tmp_path / "puzzles.jsonl"
    f.write_text(f"{GOOD}\n\n{bad}\n{GOOD}\n")
    with pytest.raises(HRMEvalError) as e:
        read_jsonl_puzzles(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}:3: ") and words in msg and "\n" not in msg


def test_good_lines_and_empty_file(tmp_path):
    f = tmp_path / "ok.jsonl"
    f.write_text(f"{GOOD}\n\n{GOOD}\n")
    inputs, labels, ids, names = read_jsonl_puzzles(f)
    assert inputs.tolist() == [[1, 2, 3]] * 2 and labels.tolist() == [[2, -100, 4]] * 2 and names == ["a", "a"]
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(HRMEvalError, match="no puzzles"):
        read_jsonl_puzzles(tmp_path / "empty.jsonl")
    with pytest.raises(HRMEvalError, match="not found"):
        read_jsonl_puzzles(tmp_path / "missing.jsonl")


def test_line_that_is_not_utf8_is_named(tmp_path):
    f = tmp_path / "puzzles.jsonl"
    f.write_bytes(f"{GOOD}\n".encode() + b'{"puzzle_id": "\xff\xfe", "input_sequence": [1]}\n')
    with pytest.raises(HRMEvalError) as e:
        read_jsonl_puzzles(f)
    assert str(e.value) == f"{f}:2: not UTF-8 text (invalid start byte at byte 15 of the line)"
