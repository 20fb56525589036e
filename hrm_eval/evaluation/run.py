"""`simple_evaluate`: checkpoint + data in, results (and files) out. The one entry point the
CLI, notebooks and the ensemble code share."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.format import DatasetMetadata
from hrm_eval.data.jsonl import read_jsonl_puzzles
from hrm_eval.data.tasks import detect_task, get_task
from hrm_eval.data.tasks.base import PuzzleTask, TaskScorer
from hrm_eval.evaluation.evaluator import EvaluationResult, Evaluator
from hrm_eval.evaluation.halting import halting_sweep
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION, build_provenance
from hrm_eval.inference.engine import HaltingPolicy
from hrm_eval.inference.runtime import DtypeChoice, apply_threads, choose_dtype, choose_threads, cpu_bf16_native
from hrm_eval.models.loading import LoadedCheckpoint, load_checkpoint
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_torch_save, atomic_write, atomic_write_json

log = logging.getLogger("hrm_eval")
RECORDS_FILE = "per_puzzle.jsonl"


def open_dataset(
    data: str | Path,
    *,
    split: str = "test",
    task: Optional[str] = None,
    vocab_size: Optional[int] = None,
    num_puzzle_identifiers: int = 1,
) -> PuzzleDataset:
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
    metadata = DatasetMetadata(
        pad_id=0,
        ignore_label_id=None,
        blank_identifier_id=0,
        vocab_size=vocab_size,
        seq_len=int(inputs.shape[1]),
        num_puzzle_identifiers=num_puzzle_identifiers,
        total_groups=len(inputs),
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
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


def simple_evaluate(
    checkpoint: str | Path,
    data: str | Path,
    *,
    output_dir: Optional[str | Path] = None,
    split: str = "test",
    task: Optional[str] = None,
    device: str = "auto",
    dtype: Optional[str] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: Optional[int] = None,
    save_predictions: bool = False,
    arch_overrides: Optional[Dict[str, Any]] = None,
    model_config: Optional[Dict[str, Any]] = None,
    progress: bool = True,
    halting: str = "fixed",
    halt_threshold: float = 0.5,
    min_steps: int = 1,
    max_steps: Optional[int] = None,
    threads: Optional[int] = None,
    compile: bool = False,
    backend: str = "torch",
    quantize: Optional[str] = None,
) -> Dict[str, Any]:
    """Evaluate a checkpoint on a dataset; returns the results dict (also written to
    `<output_dir>/results.json`, with the per-puzzle records streamed to `per_puzzle.jsonl`,
    when output_dir is given).

    `halting`: fixed (every puzzle runs halt_max_steps, the public numbers), adaptive (the
    model's own Q rule), threshold (sigmoid(q_halt) >= halt_threshold), or sweep (one fixed run,
    then exact accuracy against mean steps for the model's rule and a range of thresholds).
    `dtype`: None keeps the checkpoint's forward_dtype; "auto" takes bf16 where the device runs
    it natively; or a dtype name.
    `backend`: torch (the ACT engine) or onnxruntime (one exported ACT step, fp32, CPU);
    `quantize='int8'` runs int8 linear weights in onnxruntime and also the fp32 graph on the
    same puzzles, to report the cost (`results["quantization"]`; a warning above 1 point)."""
    if quantize is not None:
        backend = "onnxruntime"
    if backend == "onnxruntime":
        device, dtype = _onnx_settings(device, dtype, compile)
    dev = resolve_device(device)
    n_threads = choose_threads(threads, dev)
    if dev.type == "cpu":
        apply_threads(n_threads)
    policy = HaltingPolicy(
        "fixed" if halting == "sweep" else halting,  # type: ignore[arg-type]
        threshold=halt_threshold,
        min_steps=min_steps,
        max_steps=max_steps,
    )
    loaded, dataset, dtype_choice = _load(
        checkpoint,
        data,
        split=split,
        task=task,
        dtype=dtype,
        device=dev,
        arch_overrides=arch_overrides,
        model_config=model_config,
    )
    puzzle_task = resolve_task(task, dataset)
    log.info(
        "checkpoint %s (%s, step %s) on %s: %d puzzles, device %s, dtype %s (%s), halting %s, threads %d",
        loaded.path,
        loaded.config.variant,
        loaded.step,
        dataset.source,
        len(dataset) if limit is None else min(limit, len(dataset)),
        dev,
        dtype_choice.dtype,
        dtype_choice.reason,
        policy.mode,
        n_threads,
    )
    # the task's own scoring (ARC: voting over augmentations); made first so that its data errors come first
    scorer = puzzle_task.scorer(dataset) if puzzle_task is not None else None
    runner, cost = None, None
    if backend == "onnxruntime":
        runner, cost = _onnx_runner(loaded, dataset, policy, quantize, n_threads, batch_size, limit)
    evaluator = Evaluator(
        loaded.model,
        device=dev,
        batch_size=batch_size,
        task=puzzle_task,
        progress=progress,
        halting=policy,
        compile=compile,
        cast_weights=True,
        runner=runner,
    )
    records = Path(output_dir) / RECORDS_FILE if output_dir is not None else None
    result = evaluator.evaluate(
        dataset,
        limit=limit,
        save_predictions=save_predictions,
        keep_answers=puzzle_task is not None and puzzle_task.needs_answers,
        records_path=records,
    )
    results = assemble_results(
        result, loaded, dataset, puzzle_task, device=str(dev), batch_size=batch_size, limit=limit
    )
    results["provenance"]["evaluation"].update(
        dtype_choice=dtype_choice.reason,
        dtype_changed=dtype_choice.changed,
        threads=n_threads,
        halting=result.halting,
        engine=result.engine,
        compile=compile,
        backend=backend,
        quantization=quantize or "none",
    )
    if cost is not None:
        results["quantization"] = cost.as_dict()
    if halting == "sweep":
        results["halting_sweep"] = halting_sweep(result.step_arrays, loaded.model)  # type: ignore[arg-type]
    if scorer is not None and puzzle_task is not None:
        results[puzzle_task.name] = _task_scores(scorer, result, output_dir)
    if output_dir is not None:
        _write_outputs(Path(output_dir), results, result, loaded, save_predictions)
    return results


def _onnx_settings(device: str, dtype: Optional[str], compile: bool) -> Tuple[str, str]:
    """(device, dtype) for the onnxruntime backend: the CPU, float32 (what the graph computes)."""
    if device not in ("auto", "cpu"):
        raise HRMEvalError(f"--device {device}: the onnxruntime backend runs on the CPU (--device cpu)")
    if dtype not in (None, "auto", "float32"):
        raise HRMEvalError(f"--dtype {dtype}: the onnxruntime backend computes in float32")
    if compile:
        raise HRMEvalError("--compile is for the torch backend (onnxruntime optimises the graph itself)")
    return "cpu", "float32"


def _onnx_runner(
    loaded: LoadedCheckpoint,
    dataset: PuzzleDataset,
    policy: HaltingPolicy,
    quantize: Optional[str],
    threads: int,
    batch_size: int,
    limit: Optional[int],
) -> Tuple[Any, Any]:
    """(an onnxruntime runner for the evaluation, the measured int8 cost or None)."""
    from hrm_eval.export.runtime import measure_int8_cost, onnx_sessions, report_cost
    from hrm_eval.inference.onnx_runner import OnnxACTRunner

    sessions = onnx_sessions(loaded, quantize=quantize, threads=threads)
    cost = None
    if quantize is not None:
        cost = measure_int8_cost(sessions, loaded, dataset, limit=limit, batch_size=batch_size)
        report_cost(cost, "against fp32")
    session = sessions["int8" if quantize else "float32"]
    return OnnxACTRunner(session, loaded.config, slots=batch_size, halting=policy), cost


def _task_scores(scorer: TaskScorer, result: EvaluationResult, output_dir: Optional[str | Path]) -> Dict[str, Any]:
    """The task's own scores over the kept answers (with output_dir: its score files written there)."""
    a = result.answers or {}
    scorer.add(a["puzzle_identifiers"], a["inputs"], a["preds"], a["q_halt_logits"].float())
    return scorer.summary(scorer.finish(Path(output_dir) if output_dir is not None else None))


def _load(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str,
    task: Optional[str],
    dtype: Optional[str],
    device: torch.device,
    arch_overrides: Optional[Dict[str, Any]],
    model_config: Optional[Dict[str, Any]],
) -> Tuple[LoadedCheckpoint, PuzzleDataset, DtypeChoice]:
    """The checkpoint (in the chosen dtype) and the dataset it is evaluated on."""
    data_path = Path(data)
    fixed_dtype = None if dtype == "auto" else dtype
    if data_path.is_dir():
        dataset = open_dataset(data_path, split=split, task=task)
    else:
        # Raw puzzle files carry no metadata: the checkpoint's vocabulary decides what is valid.
        probe = load_checkpoint(
            checkpoint, overrides=arch_overrides, model_config=model_config, dtype=fixed_dtype, require_seq_len=False
        )
        dataset = open_dataset(
            data_path,
            split=split,
            task=task,
            vocab_size=probe.config.vocab_size,
            num_puzzle_identifiers=probe.config.num_puzzle_identifiers,
        )

    def load(d: Optional[str]) -> LoadedCheckpoint:
        return load_checkpoint(
            checkpoint,
            dataset=dataset.metadata,
            overrides=arch_overrides,
            model_config=model_config,
            device=device,
            dtype=d,
        )

    loaded = load(fixed_dtype)
    if dtype == "auto":
        choice = choose_dtype("auto", loaded.config.forward_dtype, device)
        if choice.dtype != loaded.config.forward_dtype:
            loaded = load(choice.dtype)
    else:  # None (the checkpoint's own) or an explicit request: nothing to decide
        choice = choose_dtype(None, loaded.config.forward_dtype, device)
        if dtype is not None:
            choice = DtypeChoice(dtype, "requested", False)
    if device.type == "cpu" and choice.dtype == "bfloat16" and not any(cpu_bf16_native().values()):
        log.warning(
            "bfloat16 on this CPU (%s, no AMX / AVX-512 BF16) is emulated and much slower than float32; "
            "--dtype float32 or --dtype auto is faster (numbers then differ from bf16 ones by rounding)",
            torch.backends.cpu.get_cpu_capability(),
        )
    return loaded, dataset, choice


def _write_outputs(
    out: Path, results: Dict[str, Any], result: EvaluationResult, loaded: LoadedCheckpoint, save_predictions: bool
) -> None:
    if save_predictions and result.predictions is not None:
        step = loaded.step if loaded.step is not None else 0
        preds_file = atomic_torch_save(out / f"step_{step}_all_preds.0", result.predictions)
        results["predictions_file"] = str(preds_file)
    if result.records_file is not None:
        results["per_puzzle_metrics_file"] = RECORDS_FILE
    if "halting_sweep" in results:
        plot = _plot_sweep(results["halting_sweep"], out / "halting_sweep.png")
        if plot:
            results["halting_sweep_plot"] = plot
    atomic_write_json(out / "results.json", results)


def _plot_sweep(points: List[Dict[str, Any]], path: Path) -> Optional[str]:
    """exact accuracy against mean ACT steps, one marker per rule (needs the plots extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    fixed = [p for p in points if p["rule"].startswith("fixed")]
    ax.plot([p["mean_steps"] for p in fixed], [p["exact_accuracy"] for p in fixed], "o-", label="fixed steps")
    for p in points:
        if not p["rule"].startswith("fixed"):
            ax.plot(p["mean_steps"], p["exact_accuracy"], "s" if p["rule"].startswith("adaptive") else "^")
            ax.annotate(p["rule"].replace("threshold ", "p>="), (p["mean_steps"], p["exact_accuracy"]), fontsize=7)
    ax.set_xlabel("mean ACT steps")
    ax.set_ylabel("exact accuracy")
    ax.set_title("Halting: accuracy against thinking time")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(buf.getvalue())

    atomic_write(path, write)
    return str(path)


def assemble_results(
    result: EvaluationResult,
    loaded: LoadedCheckpoint,
    dataset: PuzzleDataset,
    task: Optional[PuzzleTask],
    *,
    device: str,
    batch_size: int,
    limit: Optional[int],
) -> Dict[str, Any]:
    """The results JSON: metrics, per-puzzle records and everything needed to reproduce them."""
    results: Dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "aggregate_metrics": result.aggregate_metrics,
        "q_value_analysis": result.q_value_analysis,
    }
    if len(result.per_set_metrics) > 1:
        results["per_set_metrics"] = result.per_set_metrics
    if result.per_puzzle_metrics is not None:
        results["per_puzzle_metrics"] = result.per_puzzle_metrics
    results["provenance"] = build_provenance(
        checkpoints=[loaded],
        dataset=dataset,
        task=task,
        device=device,
        batch_size=batch_size,
        limit=limit,
        evaluation_extra={"act_steps": loaded.config.halt_max_steps, "halting": result.halting},
    )
    return results
