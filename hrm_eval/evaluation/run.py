"""`simple_evaluate`: checkpoint + data in, results (and files) out. The one entry point the
CLI, notebooks and the ensemble code share."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.format import DatasetMetadata
from hrm_eval.data.jsonl import read_jsonl_puzzles
from hrm_eval.data.tasks import detect_task, get_task
from hrm_eval.data.tasks.base import PuzzleTask, TaskScorer
from hrm_eval.evaluation.evaluator import EvaluationResult, Evaluator
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION, build_provenance
from hrm_eval.models.loading import LoadedCheckpoint, load_checkpoint
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_torch_save, atomic_write_json

log = logging.getLogger("hrm_eval")


def open_dataset(data: str | Path, *, split: str = "test", task: Optional[str] = None,
                 vocab_size: Optional[int] = None, num_puzzle_identifiers: int = 1) -> PuzzleDataset:
    """A dataset directory, or a `.jsonl` / `.csv` file of puzzles converted in memory."""
    path = Path(data)
    if not path.exists():
        raise HRMEvalError(f"data not found: {path}")
    if path.is_dir():
        return PuzzleDataset(path, split=split)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        inputs, labels, ids, names = read_jsonl_puzzles(path, vocab_size=vocab_size)
    elif suffix == ".csv":
        if task is None:
            raise HRMEvalError(f"{path}: a raw CSV needs its task (--task sudoku|maze|...)")
        inputs, labels, names = get_task(task).read_csv_puzzles(path)
        ids = np.zeros(len(inputs), np.int32)
    else:
        raise HRMEvalError(f"{path}: unknown data file type '{suffix}' (expected a dataset directory, .jsonl or .csv)")
    if vocab_size is None:
        vocab_size = int(max(inputs.max(), labels.max())) + 1
    metadata = DatasetMetadata(pad_id=0, ignore_label_id=None, blank_identifier_id=0, vocab_size=vocab_size,
                               seq_len=int(inputs.shape[1]), num_puzzle_identifiers=num_puzzle_identifiers,
                               total_groups=len(inputs), mean_puzzle_examples=1.0, sets=["all"])
    return PuzzleDataset.from_arrays(inputs, labels, metadata, puzzle_identifiers=ids, names=names, source=str(path))


def resolve_task(name: Optional[str], dataset: PuzzleDataset) -> Optional[PuzzleTask]:
    """The task named (checked against the dataset's layout: one-line error when it does not
    fit), or the one detected from the dataset (None when no task or several fit)."""
    meta = dataset.metadata
    sample = np.asarray(next(iter(dataset.sets.values()))["inputs"][:64])
    if name:
        task = get_task(name)
        # a raw file has no vocabulary of its own: it is read with the checkpoint's
        where = f"the data {dataset.source}" + (" read with the checkpoint's vocabulary" if dataset.in_memory else "")
        task.check_layout(meta.vocab_size, meta.seq_len, sample, where=where)
        return task
    return detect_task(meta.vocab_size, meta.seq_len, sample)


def simple_evaluate(checkpoint: str | Path, data: str | Path, *, output_dir: Optional[str | Path] = None,
                    split: str = "test", task: Optional[str] = None, device: str = "auto",
                    dtype: Optional[str] = None, batch_size: int = DEFAULT_BATCH_SIZE, limit: Optional[int] = None,
                    save_predictions: bool = False, arch_overrides: Optional[Dict[str, Any]] = None,
                    model_config: Optional[Dict[str, Any]] = None, progress: bool = True) -> Dict[str, Any]:
    """Evaluate a checkpoint on a dataset; returns the results dict (also written to
    `<output_dir>/results.json` when output_dir is given)."""
    dev = resolve_device(device)
    data_path = Path(data)
    if data_path.is_dir():
        dataset = open_dataset(data_path, split=split, task=task)
        loaded = load_checkpoint(checkpoint, dataset=dataset.metadata, overrides=arch_overrides,
                                 model_config=model_config, device=dev, dtype=dtype)
    else:
        # Raw puzzle files carry no metadata: the checkpoint's vocabulary decides what is valid.
        probe = load_checkpoint(checkpoint, overrides=arch_overrides, model_config=model_config,
                                dtype=dtype, require_seq_len=False)
        dataset = open_dataset(data_path, split=split, task=task, vocab_size=probe.config.vocab_size,
                               num_puzzle_identifiers=probe.config.num_puzzle_identifiers)
        loaded = load_checkpoint(checkpoint, dataset=dataset.metadata, overrides=arch_overrides,
                                 model_config=model_config, device=dev, dtype=dtype)
    puzzle_task = resolve_task(task, dataset)
    cpu_kind = torch.backends.cpu.get_cpu_capability()
    if dev.type == "cpu" and loaded.config.forward_dtype == "bfloat16" and cpu_kind != "AVX512":
        log.warning("bfloat16 on this CPU (%s, no AVX-512) is emulated and much slower than float32; "
                    "--dtype float32 is faster (numbers then differ from bf16 ones by rounding)",
                    cpu_kind)
    log.info("checkpoint %s (%s, step %s) on %s: %d puzzles, device %s, dtype %s", loaded.path, loaded.config.variant,
             loaded.step, dataset.source, len(dataset) if limit is None else min(limit, len(dataset)), dev,
             loaded.config.forward_dtype)

    evaluator = Evaluator(loaded.model, device=dev, batch_size=batch_size, task=puzzle_task, progress=progress)
    # the task's own scoring (ARC: voting over augmentations); made first so that its data errors come first
    scorer = puzzle_task.scorer(dataset) if puzzle_task is not None else None
    result = evaluator.evaluate(dataset, limit=limit, save_predictions=save_predictions,
                                keep_answers=puzzle_task is not None and puzzle_task.needs_answers)
    results = assemble_results(result, loaded, dataset, puzzle_task, device=str(dev), batch_size=batch_size,
                               limit=limit)
    if scorer is not None and puzzle_task is not None:
        results[puzzle_task.name] = _task_scores(scorer, result, output_dir)
    if output_dir is not None:
        out = Path(output_dir)
        if save_predictions and result.predictions is not None:
            step = loaded.step if loaded.step is not None else 0
            preds_file = atomic_torch_save(out / f"step_{step}_all_preds.0", result.predictions)
            results["predictions_file"] = str(preds_file)
        atomic_write_json(out / "results.json", results)
    return results


def _task_scores(scorer: TaskScorer, result: EvaluationResult, output_dir: Optional[str | Path]) -> Dict[str, Any]:
    """The task's own scores over the kept answers (with output_dir: its score files written there)."""
    a = result.answers or {}
    scorer.add(a["puzzle_identifiers"], a["inputs"], a["preds"], a["q_halt_logits"].float())
    return scorer.summary(scorer.finish(Path(output_dir) if output_dir is not None else None))


def assemble_results(result: EvaluationResult, loaded: LoadedCheckpoint, dataset: PuzzleDataset,
                     task: Optional[PuzzleTask], *, device: str, batch_size: int,
                     limit: Optional[int]) -> Dict[str, Any]:
    """The results JSON: metrics, per-puzzle records and everything needed to reproduce them."""
    results: Dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "aggregate_metrics": result.aggregate_metrics,
        "q_value_analysis": result.q_value_analysis,
    }
    if len(result.per_set_metrics) > 1:
        results["per_set_metrics"] = result.per_set_metrics
    results["per_puzzle_metrics"] = result.per_puzzle_metrics
    results["provenance"] = build_provenance(checkpoints=[loaded], dataset=dataset, task=task, device=device,
                                             batch_size=batch_size, limit=limit,
                                             evaluation_extra={"act_steps": loaded.config.halt_max_steps})
    return results
