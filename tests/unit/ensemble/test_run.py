"""`evaluate_ensemble` end to end on real checkpoints: consistency with `evaluate`, disjoint
calibration for stacking, the prediction cache, TTA reporting, ARC pooling, and user errors."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks import get_task
from hrm_eval.data.tasks.arc import augment_grid, crop_grid, grid_to_sequence, inverse_augment, parse_puzzle_name
from hrm_eval.ensemble import EnsembleSettings, evaluate_ensemble, format_ensemble
from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.ensemble.fitting import assert_disjoint, held_out_split
from hrm_eval.ensemble.task_scores import ensemble_task_scores
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.evaluation.stats import mcnemar_exact
from hrm_eval.members import predictions as predictions_module
from hrm_eval.members.predictions import collect_rows, resolve_checkpoints
from hrm_eval.resources import bundled_run, find
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import SUDOKU_BUILT
from tests.unit.ensemble.conftest import FIXTURE_CKPT, LIMIT, stand_in_member, tiny_checkpoint

FIRST_RUN = str(find("checkpoints/sudoku6-hrm"))  # the first bundled model (the default is sudoku6-hard-hrm)

METRICS = (
    "exact_accuracy",
    "accuracy",
    "q_halt_accuracy",
    "steps",
    "lm_loss",
    "q_halt_loss",
    "verified_solve_rate",
    "total_puzzles",
)


@pytest.fixture(scope="module")
def plain():
    """`evaluate` of the fixture checkpoint: what one-member ensembles must reproduce."""
    return simple_evaluate(FIXTURE_CKPT, SUDOKU_BUILT, device="cpu", limit=LIMIT, progress=False)["aggregate_metrics"]


def assert_same_metrics(
    got,
    expected,
    exact_keys=("exact_accuracy", "accuracy", "q_halt_accuracy", "steps", "verified_solve_rate", "total_puzzles"),
):
    for k in METRICS:
        if k in exact_keys:
            assert got[k] == expected[k], k
        else:  # the ensemble's loss is computed from normalised log-probabilities (float64 round trip)
            assert got[k] == pytest.approx(expected[k], rel=1e-6, abs=1e-7), k


def test_average_of_one_checkpoint_equals_evaluate(plain, tmp_path):
    res = evaluate_ensemble(
        [FIXTURE_CKPT], SUDOKU_BUILT, strategy="average", device="cpu", limit=LIMIT, output_dir=tmp_path, progress=False
    )
    assert_same_metrics(res["ensemble"], plain)
    assert_same_metrics(res["members"][0]["metrics"], plain, exact_keys=METRICS)  # the member: bit for bit
    assert res["strategy"]["weights_source"] == "uniform" and "calibration" not in res["strategy"]
    assert res["oracle"]["exact_accuracy"] == plain["exact_accuracy"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["ensemble"]["accuracy"] == res["ensemble"]["accuracy"]


def test_vote_over_copies_of_one_checkpoint_equals_it(plain, tmp_path):
    a, b = tmp_path / "a" / "step_1000", tmp_path / "b" / "step_1000"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(FIXTURE_CKPT, p)
        shutil.copy(FIXTURE_CKPT.parent / "all_config.yaml", p.parent)
    for strategy in ("vote", "q_vote"):
        res = evaluate_ensemble(
            [a, b, FIXTURE_CKPT],
            SUDOKU_BUILT,
            strategy=strategy,
            device="cpu",
            limit=LIMIT,
            cache_dir=tmp_path / "cache",
            progress=False,
        )
        assert_same_metrics(res["ensemble"], plain)
        assert [m["name"] for m in res["members"]] == ["a/step_1000", "b/step_1000", "rope_f32/step_1000"]
        assert all(x == 1.0 for row in res["agreement"]["same_answer"] for x in row)
        assert all(p["num_candidates"] == 1 and p["support"] == pytest.approx(1.0) for p in res["per_puzzle"])


def test_each_strategy_runs_and_reports_members_ensemble_oracle(fixture_run, tmp_path, monkeypatch):
    ckpts = [fixture_run / f"step_{s}" for s in (1000, 2000, 3000)]
    out = tmp_path / "out"
    first = evaluate_ensemble(
        ckpts, SUDOKU_BUILT, strategy="vote", device="cpu", limit=LIMIT, output_dir=out, progress=False
    )
    assert [m["cache"] for m in first["members"]] == ["miss"] * 3
    # another strategy on the same members and data: no member runs again
    monkeypatch.setattr(predictions_module, "predict", lambda *a, **k: pytest.fail("member predictions recomputed"))
    for strategy in ("average", "q_vote", "stacking"):
        res = evaluate_ensemble(
            ckpts, SUDOKU_BUILT, strategy=strategy, device="cpu", limit=LIMIT, output_dir=out, progress=False
        )
        assert [m["cache"] for m in res["members"]] == ["hit"] * 3
        assert res["strategy"]["name"] == strategy and len(res["members"]) == 3
        n = res["ensemble"]["total_puzzles"]
        assert all(m["metrics"]["total_puzzles"] == n for m in res["members"]) and len(res["per_puzzle"]) == n
        solved = np.array([p["members_solved"] for p in res["per_puzzle"]])
        assert res["oracle"]["exact_accuracy"] == pytest.approx(solved.any(1).mean() if n else 0.0)
        assert len(res["agreement"]["same_answer"]) == 3
    # average without --weights learns them on a held-out split, disjoint from the scored puzzles
    avg = evaluate_ensemble(
        ckpts, SUDOKU_BUILT, strategy="average", device="cpu", limit=LIMIT, output_dir=out, progress=False
    )
    s = avg["strategy"]
    assert s["weights_source"].startswith("learned") and sum(s["weights"].values()) == pytest.approx(1.0)
    assert s["calibration"]["num_puzzles"] + avg["ensemble"]["total_puzzles"] == LIMIT
    given = evaluate_ensemble(
        ckpts,
        SUDOKU_BUILT,
        strategy="average",
        weights=[1, 0, 0],
        device="cpu",
        limit=LIMIT,
        output_dir=out,
        progress=False,
    )
    assert given["ensemble"]["accuracy"] == given["members"][0]["metrics"]["accuracy"]


def test_stacking_is_fitted_and_scored_on_disjoint_puzzles(fixture_run, tmp_path):
    ckpts = [fixture_run / f"step_{s}" for s in (1000, 2000, 3000)]
    res = evaluate_ensemble(
        ckpts,
        SUDOKU_BUILT,
        strategy="stacking",
        device="cpu",
        limit=LIMIT,
        calibration_fraction=0.5,
        seed=3,
        output_dir=tmp_path / "fit",
        progress=False,
    )
    cal = res["strategy"]["calibration"]
    stacker_file = tmp_path / "fit" / "stacker.json"
    saved = json.loads(stacker_file.read_text())
    assert res["strategy"]["stacker"]["file"] == str(stacker_file)
    rows = collect_rows(PuzzleDataset(SUDOKU_BUILT), LIMIT)
    by_name = dict(zip(rows.names, rows.hashes))
    scored = {by_name[p["puzzle_id"]] for p in res["per_puzzle"]}
    fitted_on = set(saved["calibration"]["puzzle_hashes"])
    assert fitted_on and scored and not (fitted_on & scored)
    assert len(fitted_on) == cal["num_puzzles"] and len(scored) == cal["num_scored_puzzles"]
    assert len(fitted_on) + len(scored) == LIMIT and cal["overlap_with_scored"] == 0
    assert [m["sha256"] for m in saved["members"]] == [m["sha256"] for m in res["members"]]

    # reused on the same data: its calibration puzzles are left out, the rest scored the same way
    again = evaluate_ensemble(
        ckpts,
        SUDOKU_BUILT,
        strategy="stacking",
        stacker=stacker_file,
        device="cpu",
        limit=LIMIT,
        output_dir=tmp_path / "reuse",
        cache_dir=tmp_path / "fit" / "cache",
        progress=False,
    )
    assert {by_name[p["puzzle_id"]] for p in again["per_puzzle"]} == scored
    assert again["ensemble"] == res["ensemble"]
    assert again["strategy"]["calibration"]["excluded_from_scoring"] == len(fitted_on)

    with pytest.raises(HRMEvalError, match="member 2 .* is not the checkpoint"):
        evaluate_ensemble(
            [ckpts[0], ckpts[0], ckpts[2]],
            SUDOKU_BUILT,
            strategy="stacking",
            stacker=stacker_file,
            device="cpu",
            limit=LIMIT,
            cache_dir=tmp_path / "fit" / "cache",
            progress=False,
        )
    # calibration data that is the scored data itself leaves nothing to fit on
    with pytest.raises(HRMEvalError, match="calibration split is empty"):
        evaluate_ensemble(
            ckpts[:2],
            SUDOKU_BUILT,
            strategy="stacking",
            calibration_data=SUDOKU_BUILT,
            device="cpu",
            limit=LIMIT,
            calibration_limit=LIMIT,
            cache_dir=tmp_path / "fit" / "cache",
            progress=False,
        )


def test_without_checkpoints_the_default_bundled_run_is_ensembled():
    paths, home = resolve_checkpoints(None, None)
    assert home == bundled_run() and home.name == "sudoku6-hard-hrm"
    assert [p.name for p in paths] == ["step_2500", "step_3750", "step_5000", "step_7500", "step_10000", "step_11250"]


def test_an_ensemble_below_its_best_member_says_so(tmp_path):
    """The first bundled run (step_625, step_1875, step_3750; its data by default): on its first
    64 test puzzles the uniform average of the three (0.953) solves fewer than step_3750 alone (0.984)."""
    out = tmp_path / "avg"
    res = evaluate_ensemble(
        run=FIRST_RUN, strategy="average", weights="uniform", device="cpu", limit=64, output_dir=out, progress=False
    )
    members = {m["name"]: m["metrics"]["exact_accuracy"] for m in res["members"]}
    assert list(members) == ["step_625", "step_1875", "step_3750"] and max(members, key=members.get) == "step_3750"
    best = res["best_member"]
    assert best["name"] == "step_3750" and best["exact_accuracy"] == members["step_3750"]
    assert best["ensemble_exact_accuracy"] == res["ensemble"]["exact_accuracy"] < members["step_3750"]
    assert res["ensemble_below_best_member"] is True
    assert len(res["warnings"]) == 1 and "below its best member step_3750" in res["warnings"][0]
    assert "warning: the ensemble (average) scores below its best member step_3750" in format_ensemble(res)
    # issue 24: the paired test on the same 64 puzzles; its table gives back both accuracies
    t = best["paired_test"]
    assert (t["a"], t["b"], t["num_puzzles"]) == ("the ensemble (average)", "step_3750", 64)
    assert (t["both"] + t["a_only"]) / 64 == res["ensemble"]["exact_accuracy"]
    assert (t["both"] + t["b_only"]) / 64 == members["step_3750"]
    assert t["p_value"] == mcnemar_exact(t["a_only"], t["b_only"]) and not t["significant"]
    assert f"against the best member: {t['statement']}" in format_ensemble(res)
    saved = json.loads((out / "results.json").read_text())
    assert saved["ensemble_below_best_member"] is True and saved["schema_version"] == RESULTS_SCHEMA_VERSION
    # provenance: the dtype the members ran in (none was requested), every member's file
    prov = saved["provenance"]
    assert prov["evaluation"]["dtype"] == "float32" and prov["evaluation"]["requested_dtype"] is None
    assert [c["sha256"] for c in prov["checkpoints"]] == [m["sha256"] for m in res["members"]]
    # all the weight on the best member: equal to it, so no warning (members come from the cache);
    # the same call through a settings object, as the CLI builds it
    settings = EnsembleSettings(
        run=FIRST_RUN, strategy="average", weights=[0, 0, 1], device="cpu", limit=64, progress=False
    )
    alone = evaluate_ensemble(settings=settings)
    assert [m["cache"] for m in alone["members"]] == ["hit"] * 3
    assert alone["ensemble"]["exact_accuracy"] == members["step_3750"]
    assert alone["ensemble_below_best_member"] is False and "warnings" not in alone
    assert alone["best_member"]["paired_test"]["a_only"] == alone["best_member"]["paired_test"]["b_only"] == 0
    assert alone["best_member"]["paired_test"]["p_value"] == 1.0
    with pytest.raises(TypeError, match="unknown ensemble settings: stratgy"):
        evaluate_ensemble(settings=settings, stratgy="vote")


def test_held_out_split_keeps_groups_together_and_overlap_is_refused():
    groups = np.repeat(np.arange(10), 3)  # a puzzle and two augmentations per group
    cal, scored = held_out_split(groups, 0.3, seed=0)
    assert len(cal) == 9 and len(scored) == 21
    assert not set(groups[cal]) & set(groups[scored])
    again, _ = held_out_split(groups, 0.3, seed=0)
    assert np.array_equal(cal, again)
    with pytest.raises(HRMEvalError, match="shares 1 puzzles"):
        assert_disjoint(["a", "b"], ["b", "c"], "the calibration split")
    with pytest.raises(HRMEvalError, match="between 0 and 1"):
        held_out_split(groups, 1.0, seed=0)


def test_tta_reports_single_view_and_tta(plain, tmp_path):
    res = evaluate_ensemble(
        [FIXTURE_CKPT], SUDOKU_BUILT, strategy="vote", tta=3, device="cpu", limit=8, output_dir=tmp_path, progress=False
    )
    t = res["tta"]
    assert t["views"] == 3 and t["view_names"][0] == "identity"
    assert t["tta"] == res["ensemble"] and res["strategy"]["tta_views"] == 3
    one = evaluate_ensemble([FIXTURE_CKPT], SUDOKU_BUILT, strategy="vote", device="cpu", limit=8, progress=False)
    assert t["single_view"] == one["ensemble"]
    assert "tta_metrics" in res["members"][0] and "any_member_any_view_exact_accuracy" in res["oracle"]


def test_members_must_share_the_task_layout(tmp_path):
    other = tiny_checkpoint(tmp_path / "arc_like", vocab_size=12, seq_len=81)
    with pytest.raises(HRMEvalError) as e:
        evaluate_ensemble([FIXTURE_CKPT, other], SUDOKU_BUILT, device="cpu", limit=4, progress=False)
    msg = str(e.value)
    assert "vocab_size" in msg and f"member 2 ({other})" in msg and "12 tokens" in msg and "11 tokens" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights=[1, 2, 3]), "3 values for 2 members"),
        (dict(weights="heavy"), "expected numbers"),
        (dict(strategy="stacking", weights=[1, 1]), "does not apply to --strategy stacking"),
        (dict(strategy="vote", stacker="x.json"), "applies to --strategy stacking"),
        (dict(strategy="median"), "unknown strategy"),
        (dict(strategy="vote", calibration_data=SUDOKU_BUILT), "learns nothing"),
        (dict(tta=2, task="arc"), r"task arc \(vocab_size 12, seq_len 900\) does not fit the data"),
    ],
)
def test_user_mistakes_are_one_line_errors(kwargs, message, tmp_path):
    kwargs = dict(dict(device="cpu", limit=2, progress=False), **kwargs)
    with pytest.raises(HRMEvalError, match=message) as e:
        evaluate_ensemble([FIXTURE_CKPT, FIXTURE_CKPT], SUDOKU_BUILT, **kwargs)
    assert "\n" not in str(e.value)


def test_no_checkpoints_and_no_bundled_run_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(predictions_module, "bundled_run", lambda: tmp_path / "missing")
    with pytest.raises(HRMEvalError, match="bundled run"):
        evaluate_ensemble(None, SUDOKU_BUILT, progress=False)
    with pytest.raises(HRMEvalError, match="no step_<N>"):
        evaluate_ensemble(None, SUDOKU_BUILT, run=tmp_path, progress=False)


# ---- ARC: members pooled with the augmentation votes --------------------------------------------
ARC_TASKS = {
    "aaaa": {
        "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
        "test": [{"input": [[5, 0, 0]], "output": [[0, 0, 5]]}],
    },
    "cccc": {
        "train": [{"input": [[0, 6], [6, 0]], "output": [[6]]}],
        "test": [{"input": [[8, 8], [0, 8]], "output": [[8, 0]]}],
    },
}


@pytest.fixture(scope="module")
def arc_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("arc")
    for task_id, task in ARC_TASKS.items():
        path = root / "src" / "evaluation" / f"{task_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(task))
    get_task("arc").build(str(root / "src"), str(root / "data"), num_aug=3, seed=0)
    return root / "data"


def one_hot_member(rows, answers, q):
    """Predictions of a stand-in member that gives `answers` [N, 900] with q_halt logits `q`."""
    logits = torch.nn.functional.one_hot(torch.as_tensor(answers).long(), 12).float()[None]
    n = len(rows)
    return {
        "logits": logits,
        "q_halt": torch.as_tensor(q, dtype=torch.float32)[None],
        "q_continue": torch.zeros(1, n),
        "steps": torch.ones(1, n, dtype=torch.int32),
        "halted": torch.ones(1, n, dtype=torch.bool),
    }


def test_arc_members_are_pooled_with_the_augmentation_votes(arc_data):
    """Per task 4 augmented copies. Member A is right on copies 0-1 and gives one wrong grid
    (the same once mapped back) on copies 2-3, more confidently; member B likewise on the
    other copies. Alone, each member's top answer is its wrong grid (2 votes each, higher q);
    pooled, the right grid has 4 votes and wins."""
    dataset = PuzzleDataset(arc_data)
    rows = collect_rows(dataset)
    names = dataset.identifiers
    by_task = {}
    for i, ident in enumerate(rows.puzzle_identifiers.tolist()):
        by_task.setdefault(parse_puzzle_name(names[ident])[0], []).append(i)
    assert all(len(v) == 4 for v in by_task.values())
    answers = rows.labels.clamp_min(0).numpy().astype(np.uint8)  # the right answers, pad where not scored
    a_ans, b_ans = answers.copy(), answers.copy()
    q_a, q_b = np.zeros(len(rows)), np.zeros(len(rows))
    for _task_id, idx in by_task.items():
        for j, i in enumerate(idx):
            _, t, cmap = parse_puzzle_name(names[int(rows.puzzle_identifiers[i])])
            right = inverse_augment(crop_grid(answers[i]), t, cmap)
            for ans, q, bad_copies, shift in ((a_ans, q_a, (2, 3), 1), (b_ans, q_b, (0, 1), 2)):
                if j in bad_copies:
                    wrong = (right + shift) % 10  # the same wrong grid in the original frame
                    ans[i] = grid_to_sequence(augment_grid(wrong.astype(np.uint8), t or 0, cmap))
                    q[i] = 3.0
    softmax_model = SimpleNamespace(config=SimpleNamespace(loss_type="softmax_cross_entropy"))
    ctx = EnsembleContext(
        [stand_in_member(softmax_model, "A"), stand_in_member(softmax_model, "B")],
        [one_hot_member(rows, a_ans, q_a), one_hot_member(rows, b_ans, q_b)],
        rows,
        get_task("arc"),
        dataset=dataset,
    )
    member_rows = [{"name": "A"}, {"name": "B"}]
    pooled = ensemble_task_scores(ctx, np.arange(len(rows)), "vote", None, [0.5, 0.5], member_rows)["arc"]
    assert member_rows[0]["arc"]["strict"]["pass@1"] == 0.0 and member_rows[1]["arc"]["strict"]["pass@1"] == 0.0
    assert member_rows[0]["arc"]["strict"]["pass@2"] == 1.0
    assert pooled["strict"]["pass@1"] == 1.0 and pooled["fractional"]["pass@1"] == 1.0 and pooled["num_tasks"] == 2
    # q_vote: 4 right votes at sigmoid(0) = 0.5 (sum 2.0 x 0.5 weight) against 2 x sigmoid(3) ~ 0.95 (sum 1.9 x 0.5)
    assert (
        ensemble_task_scores(ctx, np.arange(len(rows)), "q_vote", None, [0.5, 0.5], [{"name": "A"}, {"name": "B"}])[
            "arc"
        ]["strict"]["pass@1"]
        == 1.0
    )


def test_the_prediction_cache_is_where_the_readme_says(monkeypatch, tmp_path):
    """README (Ensemble): $HRM_EVAL_CACHE_DIR, else $XDG_CACHE_HOME/hrm-eval/predictions, else
    ~/.cache/hrm-eval/predictions; the CLI's default is the API's (no --cache-dir: None)."""
    from hrm_eval.ensemble.config import CompareConfig, EnsembleConfig
    from hrm_eval.members.predictions import CACHE_ENV, default_cache_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "hrm-eval" / "predictions"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "hrm-eval" / "predictions"
    assert EnsembleConfig().cache_dir is None and CompareConfig().cache_dir is None
