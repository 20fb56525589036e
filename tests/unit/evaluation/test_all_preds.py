"""--save-predictions streams: the spooled all_preds files equal what the in-memory rows would
give (every key, dtype and value; per-rank splits; bf16 logits bit for bit), nothing of the spool
is left behind, and the memory the spool and its writer hold does not grow with the row count."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.evaluation.all_preds import PREDICTION_KEYS, PredictionSpool
from hrm_eval.evaluation.evaluator import Evaluator
from hrm_eval.evaluation.run import PREDICTIONS_SPOOL, simple_evaluate
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
LIMIT = 40


@pytest.fixture(scope="module")
def in_memory():
    """The bundled model's rows as the in-memory path keeps them (no spool directory)."""
    loaded = load_checkpoint(BUNDLED)
    result = Evaluator(loaded.model, progress=False).evaluate(
        PuzzleDataset(BUNDLED / "data", split="test"), limit=LIMIT, save_predictions=True
    )
    assert result.predictions is not None
    return result.predictions


def rows(preds: dict):
    for i in range(len(preds["inputs"])):
        yield {k: preds[k][i] for k in PREDICTION_KEYS}


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(PREDICTION_KEYS)
    for k in PREDICTION_KEYS:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        assert torch.equal(got[k], want[k]), k


def test_evaluate_writes_the_in_memory_rows_and_removes_its_spool(in_memory, tmp_path):
    out = tmp_path / "out"
    results = simple_evaluate(
        BUNDLED, BUNDLED / "data", output_dir=out, limit=LIMIT, save_predictions=True, progress=False, dtype=None
    )
    assert results["predictions_file"] == str(out / "step_3750_all_preds.0")
    assert_same(torch.load(out / "step_3750_all_preds.0", weights_only=True), in_memory)
    assert not (out / PREDICTIONS_SPOOL).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file of the atomic writes


def test_chunks_and_rank_files_keep_dataset_order(in_memory, tmp_path):
    """Chunks of 7 rows (40 rows: 5 full chunks and a short one), split over 3 ranks by an owner
    pattern that cuts across chunk boundaries; bf16 logits come back bit for bit."""
    preds = dict(in_memory, logits=in_memory["logits"].to(torch.bfloat16))
    spool = PredictionSpool(tmp_path / "spool", chunk_rows=7)
    for row in rows(preds):
        spool.add(row)
    assert len(list((tmp_path / "spool").glob("chunk_*.npz"))) == LIMIT // 7  # the short one is still buffered
    owner = (np.arange(LIMIT) // 5) % 3  # [N] rank of each row
    files = spool.write(tmp_path / "step_1_all_preds", owner, world_size=3)
    assert files == [tmp_path / f"step_1_all_preds.{r}" for r in range(3)]
    for rank, path in enumerate(files):
        keep = torch.from_numpy(owner == rank)
        assert_same(torch.load(path, weights_only=True), {k: v[keep] for k, v in preds.items()})
    assert not (tmp_path / "spool").exists()


def test_no_rows_gives_the_empty_file(tmp_path):
    files = PredictionSpool(tmp_path / "spool").write(tmp_path / "p")
    saved = torch.load(files[0], weights_only=True)
    assert list(saved) == list(PREDICTION_KEYS) and all(v.numel() == 0 for v in saved.values())


def peak_bytes(n_rows: int, tmp: Path) -> int:
    """Peak traced memory (numpy's arrays and Python objects) while `n_rows` rows ([64] tokens,
    [64, 16] fp32 logits: 4.6 KB a row) go through a spool of 32-row chunks and into the file."""
    gen = torch.Generator().manual_seed(0)
    spool = PredictionSpool(tmp / "spool", chunk_rows=32)
    tracemalloc.start()
    try:
        for _ in range(n_rows):  # each row made here and dropped after `add`, as the engine's are
            spool.add(
                {
                    "inputs": torch.randint(0, 16, (64,), dtype=torch.int32, generator=gen),
                    "labels": torch.randint(0, 16, (64,), dtype=torch.int32, generator=gen),
                    "puzzle_identifiers": torch.tensor(1, dtype=torch.int32),
                    "logits": torch.randn(64, 16, generator=gen),
                    "q_halt_logits": torch.randn((), generator=gen),
                    "q_continue_logits": torch.randn((), generator=gen),
                }
            )
        spool.write(tmp / "step_1_all_preds")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    saved = torch.load(tmp / "step_1_all_preds.0", weights_only=True, mmap=True)
    assert saved["logits"].shape == (n_rows, 64, 16)
    return peak


def test_memory_does_not_grow_with_the_row_count(tmp_path):
    """300 vs 3,000 rows (1.4 MB vs 14 MB): the spool holds one chunk of 32 rows (~150 KB) and
    its writer one chunk more, whatever the count. (Measured: ~0.78 MB and ~0.86 MB, most of it
    torch.save's own bookkeeping; holding the rows would add 12 MB.)"""
    small = peak_bytes(300, tmp_path / "small")
    large = peak_bytes(3000, tmp_path / "large")
    row = 64 * 16 * 4 + 2 * 64 * 4  # bytes
    assert large < 3000 * row / 10  # a tenth of the rows' bytes at the most
    assert large - small < (3000 - 300) * row / 20  # 10x the rows: under 5% of the added bytes more
