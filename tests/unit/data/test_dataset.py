"""Reading a public dataset directory with PuzzleDataset: memory-mapping, label mapping, batch
order, `limit`, and one-line errors naming the file for every kind of damage."""

from __future__ import annotations

import json
import re
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
    assert [(b.set_name, len(b.example_index)) for b in batches] == [
        ("all", 16),
        ("all", 16),
        ("all", 8),
        ("second", 10),
    ]
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


@pytest.mark.parametrize(
    "damage",
    [
        _token_out_of_vocab,
        _puzzle_indices_short,
        _group_indices_decreasing,
        _float_inputs,
        _wrong_seq_len,
        _missing_npy,
        _malformed_dataset_json,
        _dataset_json_missing_field,
        _identifiers_too_short,
        _identifier_out_of_range,
        _truncated_npy,
    ],
)
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


# ---- hostile dataset.json / arrays (issue 16) ------------------------------------------------------------
def _set_names(root: Path, sets) -> Path:
    f = root / "test" / "dataset.json"
    meta = json.loads(f.read_text())
    meta["sets"] = sets
    f.write_text(json.dumps(meta))
    return f


@pytest.mark.parametrize("name", ["../../x", "..", ".", "a/b", "/etc/passwd", "a\\b", "", "all\n", "x y"])
def test_set_names_must_be_plain_names(copy, name):
    # A decoy set outside the split folder: the old reader joined "../../x" to the path and read it.
    outside = copy.parent
    for field in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"):
        np.save(outside / f"x__{field}.npy", npy(field))
    meta_file = _set_names(copy, [name])
    with pytest.raises(HRMEvalError) as e:
        PuzzleDataset(copy)
    msg = str(e.value)
    assert msg.startswith(f"{meta_file}: field 'sets'") and repr(name) in msg and "\n" not in msg


def test_plain_set_names_with_dots_and_dashes_still_read(copy):
    for field in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"):
        (copy / "test" / f"all__{field}.npy").rename(copy / "test" / f"v1.0-x_y__{field}.npy")
    _set_names(copy, ["v1.0-x_y"])
    assert len(PuzzleDataset(copy)) == 40


def test_no_sets_and_repeated_sets(copy):
    meta_file = _set_names(copy, [])
    with pytest.raises(HRMEvalError, match=r"dataset.json: field 'sets': no sets listed") as e:
        PuzzleDataset(copy)
    assert str(e.value).startswith(str(meta_file))
    _set_names(copy, ["all", "all"])
    with pytest.raises(HRMEvalError, match="set names repeat"):
        PuzzleDataset(copy)


def test_empty_split_is_an_error_not_zero_accuracy(copy):
    for field in ("inputs", "labels"):
        np.save(copy / "test" / f"all__{field}.npy", np.zeros((0, 81), np.uint8))
    for field in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
        np.save(copy / "test" / f"all__{field}.npy", np.zeros(1 if field != "puzzle_identifiers" else 0, np.int32))
    with pytest.raises(HRMEvalError, match="hold no examples"):
        PuzzleDataset(copy)


def test_short_puzzle_identifiers_are_reported_as_such(copy):
    np.save(copy / "test" / "all__puzzle_identifiers.npy", npy("puzzle_identifiers")[:35])
    with pytest.raises(HRMEvalError) as e:
        PuzzleDataset(copy)
    assert str(e.value) == (
        f"{copy / 'test' / 'all__puzzle_identifiers.npy'}: 35 puzzle identifiers, but "
        f"puzzle_indices (41 offsets) describes 40 puzzles (one identifier per puzzle)"
    )


@pytest.mark.parametrize(
    "text,words",
    [
        (b'{"pad_id": 0, "sets": ["al\xffl"]}', "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"pad_id": 1' + b"0" * 5000 + b"}", "too many digits"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_unreadable_dataset_json(copy, text, words):
    f = copy / "test" / "dataset.json"
    f.write_bytes(text)
    with pytest.raises(HRMEvalError) as e:
        PuzzleDataset(copy)
    assert str(e.value).startswith(f"{f}: ") and words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("vocab_size", 0, "greater than or equal to 1 (got 0)"),
        ("seq_len", -81, "greater than or equal to 1 (got -81)"),
        ("mean_puzzle_examples", float("nan"), "finite number"),
    ],
)
def test_dataset_json_values_are_range_checked(copy, field, value, words):
    f = copy / "test" / "dataset.json"
    meta = json.loads(f.read_text())
    meta[field] = value
    f.write_text(json.dumps(meta))
    with pytest.raises(HRMEvalError, match=re.escape(f"field '{field}': ") + ".*" + re.escape(words)):
        PuzzleDataset(copy)


def test_identifiers_json_not_utf8(copy):
    (copy / "identifiers.json").write_bytes(b'["<blank>\xc3"]')
    with pytest.raises(HRMEvalError, match=r"identifiers.json: not UTF-8 text"):
        PuzzleDataset(copy)


def test_npy_header_declaring_terabytes_allocates_nothing(copy):
    # An index array (once read whole) whose header claims 2^40 entries: it must fail as a short file,
    # not try to allocate 4 TB (the memory limit of tests/e2e/cli/test_fuzz_subprocess.py checks the same from outside).
    f = copy / "test" / "all__puzzle_indices.npy"
    raw = f.read_bytes()
    f.write_bytes(raw.replace(b"'shape': (41,), ", b"'shape': (1099511627776,), "))
    with pytest.raises(HRMEvalError, match=r"cannot read .*all__puzzle_indices.npy: mmap length is greater"):
        PuzzleDataset(copy)
