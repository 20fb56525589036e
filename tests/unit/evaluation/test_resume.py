"""--resume in this process: it needs --output; the row log survives a frame cut short by a kill;
member predictions resume from the chunks saved. A real killed evaluation resumed:
tests/e2e/evaluation/test_resume_killed.py."""

from __future__ import annotations

import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks import get_task
from hrm_eval.ensemble.tta import make_views
from hrm_eval.evaluation.resume import RowLog, read_log
from hrm_eval.members.predictions import collect_rows, predict
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import HRM_FIXTURES, SUDOKU_BUILT, run_main


def test_resume_needs_output(capsys):
    proc = run_main(capsys, "--mode", "evaluate", "--resume", "--limit", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --resume needs --output: the run to resume lives there"


def test_row_log_keeps_whole_frames_and_drops_one_cut_short(tmp_path):
    path = tmp_path / "rows.0.x.log"
    log = RowLog(path)
    rows = [{"position": i, "q": torch.tensor([0.1 * i, float("nan")]), "name": f"p{i}"} for i in range(3)]
    log.append(rows[:2])
    log.append(rows[2:])
    log.close()
    whole = path.read_bytes()
    back = list(read_log(path))
    assert [r["position"] for r in back] == [0, 1, 2] and back[2]["name"] == "p2"
    assert torch.equal(back[1]["q"][:1], rows[1]["q"][:1]) and torch.isnan(back[1]["q"][1])
    path.write_bytes(whole[:-5])  # killed in the middle of the last frame
    assert [r["position"] for r in read_log(path)] == [0, 1]


@pytest.mark.slow
def test_member_predictions_resume_from_the_chunks_a_killed_run_saved(tmp_path):
    """The ensemble / compare member cache: chunks of 8 puzzles (2 batches of 4) saved as they
    finish; a run that lost the last chunks recomputes only those, and the predictions are
    bit for bit those of one uninterrupted pass."""
    dataset = PuzzleDataset(SUDOKU_BUILT)
    loaded = load_checkpoint(HRM_FIXTURES["rope_f32"], dataset=dataset.metadata, device="cpu")
    rows = collect_rows(dataset)
    meta = dataset.metadata
    views = make_views(get_task("sudoku"), 2, seq_len=meta.seq_len, vocab_size=meta.vocab_size, seed=0)
    whole = predict(loaded.model, rows, views, batch_size=4)
    parts = tmp_path / "member.parts"
    chunked = predict(loaded.model, rows, views, batch_size=4, parts_dir=parts, part_batches=2)
    names = sorted(p.name for p in parts.iterdir())
    assert len(names) == 2 * 5  # 2 views x 40 puzzles / 8
    for k in whole:
        assert torch.equal(chunked[k], whole[k]), k
    lost = [n for n in names if n.startswith("view1-") and not n.startswith(("view1-rows0-", "view1-rows8-"))]
    for n in lost:
        (parts / n).unlink()
    kept = {n: (parts / n).stat().st_mtime_ns for n in names if n not in lost}
    resumed = predict(loaded.model, rows, views, batch_size=4, parts_dir=parts, part_batches=2)
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k
    assert {n: (parts / n).stat().st_mtime_ns for n in kept} == kept  # loaded, not recomputed
    assert sorted(p.name for p in parts.iterdir()) == names  # the lost ones computed again
