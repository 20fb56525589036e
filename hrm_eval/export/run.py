"""`export_model`: a checkpoint in, a model folder out (what `--mode export` calls, after it
has evaluated the checkpoint on --data with `simple_evaluate`).

--format safetensors   DIR/model.safetensors + config.json + README.md (results with --data)
--format onnx          DIR/model.onnx + config.json + README.md
  --quantize int8      + DIR/model.int8.onnx, refused when (with --data) exact accuracy
                       drops more than max_accuracy_drop points against fp32
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.open import resolve_task
from hrm_eval.export.config import MAX_EXACT_DROP_POINTS
from hrm_eval.export.folder import MODEL_CARD, check_target, folder_config, model_card, write_model_folder
from hrm_eval.export.onnx import INT8_ONNX_FILE, ONNX_FILE
from hrm_eval.export.runtime import export_graphs, measure_int8_cost, report_cost
from hrm_eval.inference.checkpoint import load_with_data
from hrm_eval.inference.onnx_runner import make_session
from hrm_eval.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, LoadedCheckpoint, load_checkpoint
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write, atomic_write_json, atomic_write_text, sha256_file

log = logging.getLogger("hrm_eval")


def export_model(
    checkpoint: str | Path,
    output_dir: str | Path,
    *,
    format: str = "safetensors",
    quantize: str | None = None,
    data: str | Path | None = None,
    split: str = "test",
    task: str | None = None,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_accuracy_drop: float = MAX_EXACT_DROP_POINTS,
    threads: int | None = None,
    arch_overrides: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export; returns {'files': {...}, 'results': the `results` given or None, 'quantization':
    cost or None}. `results`: the checkpoint's evaluation on `data` (`simple_evaluate`, in
    PyTorch: the ONNX graph matches it to 1e-4, tested), for the model card; the caller
    evaluates (`--mode export --data` does), export only writes. `data` is where the int8
    cost is measured and the task layout is read. Into a folder holding an earlier export only
    with `overwrite`; never over files it did not write."""
    check_format(format, quantize)
    out = Path(output_dir)
    weights = [WEIGHTS_FILE] if format == "safetensors" else [ONNX_FILE, *([INT8_ONNX_FILE] if quantize else [])]
    check_target(out, [*weights, CONFIG_FILE, MODEL_CARD], overwrite)
    loaded, dataset, layout = _load(checkpoint, data, split, task, format, arch_overrides, model_config)
    if format == "safetensors":
        files = {"weights": write_model_folder(loaded, out, task=layout, results=results)}
        return {"files": files, "results": results, "quantization": None}
    files, cost = _write_onnx(loaded, out, dataset, quantize, limit, batch_size, max_accuracy_drop, threads)
    hashes = {kind: sha256_file(p) for kind, p in files.items()}  # each file read once
    config = folder_config(loaded, task=layout, weights_sha256=hashes["float32"])
    config["weights"] = {kind: {"file": p.name, "sha256": hashes[kind]} for kind, p in files.items()}
    config["arch"]["forward_dtype"] = "float32"
    if cost is not None:
        config["quantization"] = cost.as_dict()
    atomic_write_json(out / CONFIG_FILE, config)
    atomic_write_text(out / MODEL_CARD, model_card(config, results))
    return {"files": files, "results": results, "quantization": cost.as_dict() if cost else None}


def check_format(format: str, quantize: str | None) -> None:
    """Refuse a quantization the format does not take (before anything is evaluated)."""
    if quantize is not None and format != "onnx":
        raise HRMEvalError(f"--quantize {quantize} is for --format onnx (safetensors keeps the exact weights)")


def _load(
    checkpoint: str | Path,
    data: str | Path | None,
    split: str,
    task: str | None,
    format: str,
    arch_overrides: dict[str, Any] | None,
    model_config: dict[str, Any] | None,
) -> tuple[LoadedCheckpoint, PuzzleDataset | None, dict[str, Any] | None]:
    """The checkpoint (float32 for ONNX), checked against the data when given, and the task layout."""
    dtype = "float32" if format == "onnx" else None
    options: dict[str, Any] = {"overrides": arch_overrides, "model_config": model_config, "dtype": dtype}
    if data is None:
        return load_checkpoint(checkpoint, **options), None, None
    loaded, dataset = load_with_data(checkpoint, data, split=split, task=task, **options)
    found = resolve_task(task, dataset)
    layout = {"name": found.name if found else None, "vocab_size": loaded.config.vocab_size}
    layout["seq_len"] = loaded.config.seq_len
    return loaded, dataset, layout


def _write_onnx(
    loaded: LoadedCheckpoint,
    out: Path,
    dataset: PuzzleDataset | None,
    quantize: str | None,
    limit: int | None,
    batch_size: int,
    max_accuracy_drop: float,
    threads: int | None,
) -> tuple[dict[str, Path], Any]:
    """The graphs, staged in a temporary folder; the int8 one is kept only if its cost is acceptable."""
    with tempfile.TemporaryDirectory(prefix="hrm-eval-export-") as tmp:
        staged = export_graphs(loaded, Path(tmp), quantize=quantize)
        cost = None
        if "int8" in staged and dataset is not None:
            sessions = {kind: make_session(p, threads=threads) for kind, p in staged.items()}
            cost = measure_int8_cost(sessions, loaded, dataset, limit=limit, batch_size=batch_size)
            cost.threshold_points = max_accuracy_drop
            report_cost(cost, "against fp32")
            if not cost.acceptable:
                raise HRMEvalError(
                    f"--quantize int8: exact accuracy drops {cost.exact_drop_points:.2f} points "
                    f"({cost.exact_accuracy_fp32:.4f} -> {cost.exact_accuracy_int8:.4f}), more than "
                    f"--max-accuracy-drop {max_accuracy_drop}; int8 model not written"
                )
        elif "int8" in staged:
            log.warning("int8 accuracy cost not measured: give --data to measure it (and refuse a costly one)")
        names = {"float32": ONNX_FILE, "int8": INT8_ONNX_FILE}
        files = {kind: _copy(p, out / names[kind]) for kind, p in staged.items()}
    return files, cost


def _copy(source: Path, dest: Path) -> Path:
    def write(tmp: str) -> None:
        shutil.copyfile(source, tmp)

    return atomic_write(dest, write)
