"""A loaded checkpoint as onnxruntime sessions (fp32, and int8 on request), and the measured
cost of int8: what `evaluate --backend onnxruntime [--quantize int8]`, `--mode export` and the
benchmark share."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.export.onnx import INT8_ONNX_FILE, ONNX_FILE, export_onnx
from hrm_eval.export.quantize import QuantizationCost, compare_outputs, quantize_int8
from hrm_eval.inference.engine import HaltingPolicy
from hrm_eval.inference.onnx_runner import OnnxACTRunner, make_session
from hrm_eval.models.checkpoint import LoadedCheckpoint

log = logging.getLogger("hrm_eval")
QUANTIZE_CHOICES = ("int8",)


def export_graphs(loaded: LoadedCheckpoint, folder: Path, *, quantize: str | None = None) -> dict[str, Path]:
    """model.onnx (fp32) in `folder`, and model.int8.onnx with quantize='int8'."""
    files = {"float32": export_onnx(loaded, folder / ONNX_FILE)}
    if quantize == "int8":
        files["int8"] = quantize_int8(files["float32"], folder / INT8_ONNX_FILE)
    return files


def onnx_sessions(loaded: LoadedCheckpoint, *, quantize: str | None, threads: int | None) -> dict[str, Any]:
    """{'float32': session[, 'int8': session]} for a checkpoint loaded in float32 (exported to a
    temporary folder; the sessions hold the graphs in memory)."""
    with tempfile.TemporaryDirectory(prefix="hrm-eval-onnx-") as tmp:
        files = export_graphs(loaded, Path(tmp), quantize=quantize)
        return {kind: make_session(path.read_bytes(), threads=threads) for kind, path in files.items()}


def dataset_rows(dataset: PuzzleDataset, limit: int | None, batch_size: int) -> tuple[torch.Tensor, ...]:
    """(inputs [n, L], puzzle_identifiers [n], labels [n, L]) of the first `limit` examples."""
    batches = list(dataset.iter_batches(batch_size, limit=limit))
    return tuple(torch.cat([getattr(b, k) for b in batches]) for k in ("inputs", "puzzle_identifiers", "labels"))


def measure_int8_cost(
    sessions: dict[str, Any],
    loaded: LoadedCheckpoint,
    dataset: PuzzleDataset,
    *,
    limit: int | None,
    batch_size: int,
    halting: HaltingPolicy | None = None,
) -> QuantizationCost:
    """int8 against fp32 (both in onnxruntime, same halting) on the first `limit` puzzles."""
    inputs, ids, labels = dataset_rows(dataset, limit, batch_size)
    out = {
        kind: OnnxACTRunner(sessions[kind], loaded.config, slots=batch_size, halting=halting).run_all(inputs, ids)
        for kind in ("float32", "int8")
    }
    return compare_outputs(out["float32"], out["int8"], labels)


def report_cost(cost: QuantizationCost, what: str) -> None:
    log.log(
        logging.INFO if cost.acceptable else logging.WARNING,
        "int8 %s: exact accuracy %.4f -> %.4f (%+.2f points, limit %.1f), token accuracy %.4f -> %.4f, "
        "argmax agreement %.4f on %d puzzles",
        what,
        cost.exact_accuracy_fp32,
        cost.exact_accuracy_int8,
        -cost.exact_drop_points,
        cost.threshold_points,
        cost.token_accuracy_fp32,
        cost.token_accuracy_int8,
        cost.argmax_agreement,
        cost.puzzles,
    )
