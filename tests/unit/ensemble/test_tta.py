"""Test-time augmentation: every view is a valid puzzle, and every prediction is mapped back.

The mapping back is tested with a model whose answer is the label (in the frame it is shown):
through every view it must still score 1.0. A negative control shows that the check would
catch a missing inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_eval.data.build import build_dataset
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.generate import generate_csvs
from hrm_eval.data.tasks import get_task
from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.ensemble.strategies import vote
from hrm_eval.ensemble.tta import make_views
from hrm_eval.inference.views import logits_from_view, to_view, tokens_from_view
from hrm_eval.members.predictions import collect_rows, predict
from hrm_eval.models.losses import IGNORE_LABEL_ID
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import MAZE_BUILT, SUDOKU_BUILT
from tests.unit.ensemble.conftest import label_echo, stand_in_member


@pytest.fixture(scope="module")
def small_sudoku(tmp_path_factory):
    """Generated 4x4 and 6x6 boards (the 9x9 and maze ones are the public fixtures)."""
    root = tmp_path_factory.mktemp("tta")
    out = {}
    for task in ("sudoku4", "sudoku6"):
        generate_csvs(task, root / task / "raw", num_train=0, num_test=8, seed=3)
        build_dataset(task, root / task / "raw", root / task / "data")
        out[task] = root / task / "data"
    return out


def datasets(small_sudoku):
    return {
        "sudoku": (SUDOKU_BUILT, 8),
        "sudoku4": (small_sudoku["sudoku4"], 8),
        "sudoku6": (small_sudoku["sudoku6"], 8),
        "maze": (MAZE_BUILT, 8),
    }


@pytest.mark.parametrize("task_name", ["sudoku", "sudoku4", "sudoku6", "maze"])
def test_every_view_is_a_valid_distinct_puzzle_and_inverts(task_name, small_sudoku):
    path, n_views = datasets(small_sudoku)[task_name]
    task = get_task(task_name)
    rows = collect_rows(PuzzleDataset(path), limit=6)
    L = rows.inputs.shape[1]
    views = make_views(task, n_views, seq_len=L, vocab_size=task.vocab_size, seed=0)
    assert len(views) == n_views and views[0].is_identity
    seen = set()
    for view in views:
        key = (view.token_map.numpy().tobytes(), view.cell_map.numpy().tobytes())
        assert key not in seen
        seen.add(key)
        vin, vlab = to_view(rows.inputs, view), to_view(rows.labels, view)
        assert torch.equal(tokens_from_view(vin, view), rows.inputs)
        assert torch.equal(tokens_from_view(vlab, view), rows.labels)
        for i in range(len(rows)):  # the transformed label solves the transformed puzzle
            assert task.verify(vin[i].numpy(), vlab[i].numpy(), vlab[i].numpy())
        if not view.is_identity:
            assert not torch.equal(vin, rows.inputs)


@pytest.mark.parametrize("task_name", ["sudoku", "sudoku4", "sudoku6", "maze"])
def test_label_echo_model_scores_one_through_every_view(task_name, small_sudoku):
    torch.manual_seed(0)
    path, n_views = datasets(small_sudoku)[task_name]
    task = get_task(task_name)
    dataset = PuzzleDataset(path)
    rows = collect_rows(dataset, limit=6)
    meta = dataset.metadata
    views = make_views(task, n_views, seq_len=meta.seq_len, vocab_size=meta.vocab_size, seed=0)
    model = label_echo(
        meta.vocab_size, meta.seq_len, [(to_view(rows.inputs, v), to_view(rows.labels, v)) for v in views]
    )
    preds = predict(model, rows, views, batch_size=4)
    scored = rows.labels != IGNORE_LABEL_ID
    for v in range(n_views):
        answer = preds["logits"][v].argmax(-1)
        assert torch.equal(torch.where(scored, answer, rows.labels), rows.labels), f"view {v} is not mapped back"

    ctx = EnsembleContext([stand_in_member(model)], [preds], rows, task)
    index = np.arange(len(rows))
    for v in range(n_views):
        single = ctx.member_scored(0, index, view=v).metrics
        assert single["exact_accuracy"] == 1.0 and single["accuracy"] == 1.0 and single["verified_solve_rate"] == 1.0
    tta = ctx.score(index, vote, [1.0], list(range(n_views))).metrics
    assert tta["exact_accuracy"] == 1.0 and tta["verified_solve_rate"] == 1.0 and tta["total_puzzles"] == len(rows)


def test_a_missing_inverse_would_be_caught():
    """Negative control: the same echo model, its view-frame logits left unmapped, fails."""
    torch.manual_seed(0)
    dataset = PuzzleDataset(SUDOKU_BUILT)
    rows = collect_rows(dataset, limit=4)
    views = make_views(get_task("sudoku"), 3, seq_len=81, vocab_size=11, seed=0)
    model = label_echo(11, 81, [(to_view(rows.inputs, v), to_view(rows.labels, v)) for v in views])
    from hrm_eval.inference.engine import ACTEngine

    out = ACTEngine(model).run_all(to_view(rows.inputs, views[1]), rows.puzzle_identifiers)
    assert not torch.equal(out.logits.argmax(-1), rows.labels)
    assert torch.equal(logits_from_view(out.logits, views[1]).argmax(-1), rows.labels)


def test_views_are_seeded_and_bad_requests_are_one_line_errors():
    sudoku = get_task("sudoku")
    a = make_views(sudoku, 4, seq_len=81, vocab_size=11, seed=5)
    b = make_views(sudoku, 4, seq_len=81, vocab_size=11, seed=5)
    assert all(torch.equal(x.cell_map, y.cell_map) and torch.equal(x.token_map, y.token_map) for x, y in zip(a, b))
    with pytest.raises(HRMEvalError, match="8 dihedral"):
        make_views(get_task("maze"), 9, seq_len=225, vocab_size=6)
    with pytest.raises(HRMEvalError, match="ARC"):
        make_views(get_task("arc"), 2, seq_len=900, vocab_size=12)
    with pytest.raises(HRMEvalError, match="at least 1"):
        make_views(sudoku, 0, seq_len=81, vocab_size=11)
    with pytest.raises(HRMEvalError, match="known task"):
        make_views(None, 2, seq_len=81, vocab_size=11)
