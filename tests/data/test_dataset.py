"""Reading a public dataset directory with PuzzleDataset: memory-mapping, label mapping, batch
order, `limit`, and one-line errors naming the file for every kind of damage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.utils import HRMEvalError
from tests.conftest import SUDOKU_BUILT

SPLIT = SUDOKU_BUILT / "test"


def npy(field: str, root: Path = SUDOKU_BUILT, set_name: str = "all") -> np.ndarray:
    return np.load(root / "test" / f"{set_name}__{field}.npy")


@pytest.fixture
def copy(tmp_path) -> Path:
    dst = tmp_path / "sudoku"
    shutil.copytree(SUDOKU_BUILT, dst)
    return dst


def test_reads_the_built_fixture_memory_mapped():
    ds = PuzzleDataset(SUDOKU_BUILT)
    assert ds.metadata.vocab_size == 11 and ds.metadata.seq_len == 81 and ds.metadata.sets == ["all"]
    assert len(ds) == 40 and ds.identifiers == ["<blank>"]
    a = ds.sets["all"]
    assert isinstance(a["inputs"], np.memmap) and isinstance(a["labels"], np.memmap)
    np.testing.assert_array_equal(a["inputs"], npy("inputs"))
    # The split folder itself works too (identifiers.json beside it is still found).
    same = PuzzleDataset(SPLIT)
    assert len(same) == 40 and same.identifiers == ["<blank>"]


def test_batches_follow_file_order_and_the_last_is_short():
    ds = PuzzleDataset(SUDOKU_BUILT)
    batches = list(ds.iter_batches(16))
    assert [len(b.example_index) for b in batches] == [16, 16, 8]
    inputs, labels = npy("inputs"), npy("labels")
    np.testing.assert_array_equal(np.concatenate([b.example_index for b in batches]), np.arange(40))
    np.testing.assert_array_equal(np.concatenate([b.inputs.numpy() for b in batches]), inputs.astype(np.int32))
    np.testing.assert_array_equal(np.concatenate([b.labels.numpy() for b in batches]), labels.astype(np.int32))
    for b in batches:
        assert b.inputs.dtype == b.labels.dtype == b.puzzle_identifiers.dtype == torch.int32
        assert b.set_name == "all"
        np.testing.assert_array_equal(b.puzzle_index, b.example_index)  # one example per puzzle
    with pytest.raises(HRMEvalError, match="batch size"):
        next(ds.iter_batches(0))


def test_labels_equal_to_ignore_label_id_become_minus_100(copy):
    labels = npy("labels")
    assert not (labels == 0).any()  # the fixture has none: make some (the given cells)
    given = npy("inputs") != 1
    labels[given] = 0
    np.save(copy / "test" / "all__labels.npy", labels)
    ds = PuzzleDataset(copy)
    got = np.concatenate([b.labels.numpy() for b in ds.iter_batches(7)])
    assert (got[given] == -100).all()
    np.testing.assert_array_equal(got[~given], labels[~given])
    assert (np.asarray(ds.sets["all"]["labels"])[given] == 0).all()  # the file itself is untouched


def test_limit_counts_across_sets(copy):
    split = copy / "test"
    for field in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"):
        arr = npy(field)
        if field == "inputs":
            arr = arr.copy()
            arr[:, 0] = 10  # tell the two sets apart
        np.save(split / f"second__{field}.npy", arr)
    meta = json.loads((split / "dataset.json").read_text())
    meta["sets"] = ["all", "second"]
    (split / "dataset.json").write_text(json.dumps(meta))
    ds = PuzzleDataset(copy)
    assert len(ds) == 80

    batches = list(ds.iter_batches(16, limit=50))
    assert [(b.set_name, len(b.example_index)) for b in batches] == [("all", 16), ("all", 16), ("all", 8), ("second", 10)]
    np.testing.assert_array_equal(batches[-1].example_index, np.arange(10))
    assert (batches[-1].inputs[:, 0] == 10).all()
    assert sum(len(b.example_index) for b in ds.iter_batches(64, limit=30)) == 30
    assert [b.set_name for b in ds.iter_batches(64, limit=30)] == ["all"]
    assert sum(len(b.example_index) for b in ds.iter_batches(64)) == 80
    assert ds.example_name("second", 3) == "second/3"


# ---- damage: each one a one-line HRMEvalError naming the file ------------------------------------------
def _token_out_of_vocab(root: Path) -> str:
    x = npy("inputs")
    x[5, 7] = 11  # vocab_size is 11
    np.save(root / "test" / "all__inputs.npy", x)
    return "all__inputs.npy"


def _puzzle_indices_short(root: Path) -> str:
    pi = npy("puzzle_indices")
    pi[-1] = 39
    np.save(root / "test" / "all__puzzle_indices.npy", pi)
    return "all__puzzle_indices.npy"


def _group_indices_decreasing(root: Path) -> str:
    np.save(root / "test" / "all__group_indices.npy", np.array([0, 20, 10, 40], np.int32))
    return "all__group_indices.npy"


def _float_inputs(root: Path) -> str:
    np.save(root / "test" / "all__inputs.npy", npy("inputs").astype(np.float32))
    return "all__inputs.npy"


def _wrong_seq_len(root: Path) -> str:
    np.save(root / "test" / "all__labels.npy", npy("labels")[:, :80])
    return "all__labels.npy"


def _missing_npy(root: Path) -> str:
    (root / "test" / "all__puzzle_identifiers.npy").unlink()
    return "all__puzzle_identifiers.npy"


def _malformed_dataset_json(root: Path) -> str:
    f = root / "test" / "dataset.json"
    f.write_text(f.read_text()[:-20])
    return "dataset.json"


def _dataset_json_missing_field(root: Path) -> str:
    f = root / "test" / "dataset.json"
    meta = json.loads(f.read_text())
    del meta["vocab_size"]
    f.write_text(json.dumps(meta))
    return "dataset.json"


def _identifiers_too_short(root: Path) -> str:
    f = root / "test" / "dataset.json"
    f.write_text(f.read_text().replace('"num_puzzle_identifiers": 1', '"num_puzzle_identifiers": 2'))
    return "identifiers.json"


def _identifier_out_of_range(root: Path) -> str:
    ids = npy("puzzle_identifiers")
    ids[3] = 1
    np.save(root / "test" / "all__puzzle_identifiers.npy", ids)
    return "all__puzzle_identifiers.npy"


def _truncated_npy(root: Path) -> str:
    f = root / "test" / "all__inputs.npy"
    f.write_bytes(f.read_bytes()[:1000])
    return "all__inputs.npy"


@pytest.mark.parametrize("damage", [_token_out_of_vocab, _puzzle_indices_short, _group_indices_decreasing,
                                    _float_inputs, _wrong_seq_len, _missing_npy, _malformed_dataset_json,
                                    _dataset_json_missing_field, _identifiers_too_short, _identifier_out_of_range,
                                    _truncated_npy])
def test_damaged_copy_is_a_one_line_error_naming_the_file(copy, damage):
    PuzzleDataset(copy)  # intact copy reads
    file_name = damage(copy)
    with pytest.raises(HRMEvalError) as e:
        PuzzleDataset(copy)
    msg = str(e.value)
    assert file_name in msg and "\n" not in msg


def test_error_messages_say_what_is_wrong(copy):
    _token_out_of_vocab(copy)
    with pytest.raises(HRMEvalError, match=r"token 11 outside the vocabulary 0\.\.10"):
        PuzzleDataset(copy)
    _float_inputs(copy)
    with pytest.raises(HRMEvalError, match="dtype float32, expected integer tokens"):
        PuzzleDataset(copy)
    _identifiers_too_short(copy)
    _missing_npy(copy)
    with pytest.raises(HRMEvalError, match="dataset file missing"):
        PuzzleDataset(copy)


def test_not_a_dataset(tmp_path):
    with pytest.raises(HRMEvalError, match="not found"):
        PuzzleDataset(tmp_path / "nothing")
    with pytest.raises(HRMEvalError, match="dataset.json"):
        PuzzleDataset(tmp_path)
