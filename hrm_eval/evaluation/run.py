"""`simple_evaluate`: checkpoint + data in, results (and files) out. The one entry point the
CLI, notebooks and the ensemble code share."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.open import resolve_task
from hrm_eval.data.tasks.base import PuzzleTask, TaskScorer
from hrm_eval.evaluation.config import EvalConfig
from hrm_eval.evaluation.distributed import DistContext, failure_hook
from hrm_eval.evaluation.evaluator import Evaluator, RowOutputs, ShardPlan
from hrm_eval.evaluation.halting_analysis import halting_sweep
from hrm_eval.evaluation.metrics import STEP_EFFICIENCY_DEFINITION
from hrm_eval.evaluation.plots import plot_frontier, plot_reliability, plot_sweep
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION, build_provenance
from hrm_eval.evaluation.q_reliability import CALIBRATION_DEFINITION
from hrm_eval.evaluation.result import EvaluationResult, records_frame, summary_frame
from hrm_eval.evaluation.resume import ResumeState, build_manifest, dataset_row_check
from hrm_eval.evaluation.stats import INTERVALS_DEFINITION, PAIRED_TEST_DEFINITION
from hrm_eval.export.runtime import measure_int8_cost, onnx_sessions, report_cost
from hrm_eval.inference.checkpoint import load_with_data
from hrm_eval.inference.engine import HaltingPolicy
from hrm_eval.inference.onnx_runner import OnnxACTRunner
from hrm_eval.inference.runtime import (
    DtypeChoice,
    apply_threads,
    check_memory,
    choose_dtype,
    choose_threads,
    cpu_bf16_native,
)
from hrm_eval.inference.scaling import ScalingPolicy
from hrm_eval.models.checkpoint import LoadedCheckpoint, load_checkpoint
from hrm_eval.models.config import read_arch_fields
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write, atomic_write_json
from hrm_eval.utils.logging import log_metrics
from hrm_eval.utils.validation import validation_error_line

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("hrm_eval")
RECORDS_FILE = "per_puzzle.jsonl"
CSV_FILE = "per_puzzle.csv"
PREDICTIONS_SPOOL = "all_preds.partial"  # the chunks of --save-predictions until the files are written
__all__ = ["simple_evaluate", "assemble_results", "results_frames", "RECORDS_FILE"]


def simple_evaluate(
    checkpoint: str | Path | None = None,
    data: str | Path | None = None,
    *,
    config: EvalConfig | None = None,
    model_config: dict[str, Any] | None = None,
    formats: Sequence[str] | None = None,
    dist: DistContext | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset; returns the results dict (also written to
    `<output_dir>/results.json`, with the per-puzzle records streamed to `per_puzzle.jsonl`,
    when output_dir is given).

    `halting`: fixed (every puzzle runs halt_max_steps, the public numbers), adaptive (the
    model's own Q rule) or threshold (sigmoid(q_halt) >= halt_threshold); `hrm_eval.inference.halting`.
    `sweep`: the analysis of a fixed run: exact accuracy against mean steps for fixed 1..T steps,
    the model's rule and a range of thresholds (`results["halting_sweep"]`); needs fixed halting.
    `dtype`: None keeps the checkpoint's forward_dtype; "auto" takes bf16 where the device runs
    it natively; or a dtype name. `formats`: with "csv", also per_puzzle.csv beside results.json.
    `results_frames(results)` gives the returned dict's per-puzzle table and summary as DataFrames.
    With output_dir, finished puzzles are also streamed to `<output_dir>/resume/` and `resume`
    skips those of an earlier, interrupted run with the same settings (hrm_eval.evaluation.resume);
    its logged rows are checked, and `resume="strict"` stops at one that cannot be trusted instead
    of evaluating it again.
    `dist`: this process's rank under torchrun (hrm_eval.evaluation.distributed.init_from_env);
    every rank evaluates its shard, rank 0 returns the results and writes the files, the
    other ranks return {}.
    `backend`: torch (the ACT engine) or onnxruntime (one exported ACT step, fp32, CPU);
    `quantize='int8'` runs int8 linear weights in onnxruntime and also the fp32 graph on the
    same puzzles, to report the cost (`results["quantization"]`; a warning above 1 point).
    `scaling='verify'`: test-time scaling (README: Thinking longer): an answer that breaks the
    task's rules thinks longer, then again on `views` of the puzzle, up to `budget` ACT steps
    per puzzle; `results["test_time_scaling"]` holds its accuracy, cost and frontier.

    The settings are `EvalConfig`'s fields (hrm_eval.evaluation.config, where each one's default
    and meaning live; the same as `--mode evaluate`'s flags): given as keywords
    (`simple_evaluate(checkpoint, data, limit=100, halting="adaptive")`), as `config=EvalConfig(...)`,
    or both (the keywords win). A keyword given None keeps the default. `model_config`: the
    architecture fields for a checkpoint without all_config.yaml (default: read from
    `model_config_path`); `formats` (default: json, and `output_format`)."""
    cfg = evaluate_config(checkpoint, data, config, settings)
    output_dir, batch_size, limit, compile = cfg.output_dir, cfg.batch_size, cfg.limit, cfg.compile
    backend, quantize, device = cfg.backend, cfg.quantize, cfg.device
    dtype: str | None = cfg.dtype
    save_predictions = cfg.save_predictions
    if model_config is None and cfg.model_config_path:
        model_config = read_arch_fields(cfg.model_config_path)
    formats = formats if formats is not None else ("json", cfg.output_format)
    if quantize is not None:
        backend = "onnxruntime"
    if backend == "onnxruntime":
        device, dtype = onnx_settings(device, dtype, compile)
    policy = HaltingPolicy(
        cfg.halting,
        threshold=cfg.halt_threshold,
        min_steps=cfg.min_steps,
        max_steps=cfg.max_steps,
    )
    scaled = ScalingPolicy.from_settings(cfg)
    load_options = {"overrides": cfg.arch_overrides or None, "model_config": model_config}
    s = _setup(
        cfg.checkpoint,
        cfg.data_path,
        cfg.split,
        cfg.task,
        device,
        dtype,
        cfg.threads,
        policy,
        dist or DistContext(),
        load_options,
    )
    total = len(s.dataset) if limit is None else min(limit, len(s.dataset))
    need = s.loaded.config.run_bytes(min(batch_size, total), total)
    check_memory(need, s.device if backend == "torch" else torch.device("cpu"), f"evaluating {total} puzzles")
    _log_start(s, limit)
    # the task's own scoring (ARC: voting over augmentations); made first so that its data errors come first
    scorer = s.task.scorer(s.dataset) if s.task is not None else None
    evaluator, cost = _evaluator(
        s, backend, quantize, batch_size=batch_size, progress=cfg.progress, compile=compile, limit=limit, scaling=scaled
    )
    # what computes the numbers: the device type, or onnxruntime and its weights (a resume must not mix them)
    runs_on = s.device.type if backend == "torch" else f"onnxruntime-{quantize or 'float32'}"
    state = _resume_state(output_dir, cfg.resume, s, runs_on, limit, batch_size, save_predictions, scaled)
    result = _run(evaluator, s, state, output_dir, limit=limit, save_predictions=save_predictions)
    if result is None:  # not rank 0: its rows went there
        return {}
    results = assemble_results(
        result, s.loaded, s.dataset, s.task, device=str(s.device), batch_size=batch_size, limit=limit
    )
    run_facts = {"compile": compile, "backend": backend, "quantization": quantize or "none"}
    _complete(results, result, s, run_facts, cost=cost, sweep=cfg.sweep, scorer=scorer, output_dir=output_dir)
    if output_dir is not None:
        _write_outputs(Path(output_dir), results, result, s.loaded, save_predictions, formats, s.dist.world_size)
        if state is not None:
            state.remove()  # complete: the streamed rows are in the files now
    log_metrics(log, results["aggregate_metrics"], checkpoint_sha256=s.loaded.sha256)
    return results


def evaluate_config(
    checkpoint: str | Path | None, data: str | Path | None, config: EvalConfig | None, settings: dict[str, Any]
) -> EvalConfig:
    """The EvalConfig of one `simple_evaluate` call: `config` (or the defaults), then the
    checkpoint, data and keyword settings given (None: not given). A name that is no setting is a
    TypeError, as for any function; a value out of range is one line naming it."""
    unknown = sorted(set(settings) - set(EvalConfig.model_fields))
    if unknown:
        raise TypeError(f"simple_evaluate() got an unexpected keyword argument '{unknown[0]}'")
    given = {"checkpoint": checkpoint, "data_path": data, **settings}
    given = {k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None}
    base = config.model_dump() if config is not None else {}
    try:
        return EvalConfig(**{**base, **given})
    except ValidationError as e:
        raise HRMEvalError(validation_error_line(e, schema=EvalConfig)) from None


@dataclass
class _Setup:
    """What one evaluation runs on, settled before its first puzzle."""

    device: torch.device
    threads: int
    policy: HaltingPolicy
    dist: DistContext
    loaded: LoadedCheckpoint
    dataset: PuzzleDataset
    task: PuzzleTask | None
    dtype_choice: DtypeChoice


def _setup(
    checkpoint: str | Path,
    data: str | Path,
    split: str,
    task: str | None,
    device: str,
    dtype: str | None,
    threads: int | None,
    policy: HaltingPolicy,
    dist: DistContext,
    load_options: dict[str, Any],
) -> _Setup:
    """The device and its threads, then the checkpoint (in the chosen dtype), the data and its task."""
    dev = resolve_device(device)
    n_threads = choose_threads(threads, dev)
    if dev.type == "cpu":
        apply_threads(n_threads)
    loaded, dataset, dtype_choice = _load(
        checkpoint, data, split=split, task=task, dtype=dtype, device=dev, **load_options
    )
    return _Setup(dev, n_threads, policy, dist, loaded, dataset, resolve_task(task, dataset), dtype_choice)


def _log_start(s: _Setup, limit: int | None) -> None:
    total = len(s.dataset) if limit is None else min(limit, len(s.dataset))
    log.info(
        "checkpoint %s (%s, step %s) on %s: %d puzzles, device %s, dtype %s (%s), halting %s, threads %d",
        s.loaded.path,
        s.loaded.config.variant,
        s.loaded.step,
        s.dataset.source,
        total,
        s.device,
        s.dtype_choice.dtype,
        s.dtype_choice.reason,
        s.policy.mode,
        s.threads,
        extra={
            "event": "checkpoint",
            "checkpoint": str(s.loaded.path),
            "checkpoint_sha256": s.loaded.sha256,
            "step": s.loaded.step,
            "data": str(s.dataset.source),
            "puzzles_total": total,
            "device": str(s.device),
            "dtype": s.dtype_choice.dtype,
            "halting": s.policy.mode,
        },
    )


def _run(
    evaluator: Evaluator,
    s: _Setup,
    state: ResumeState | None,
    output_dir: str | Path | None,
    *,
    limit: int | None,
    save_predictions: bool,
) -> EvaluationResult | None:
    """Every puzzle through the evaluator: as this rank's shard (one process: the whole dataset)
    and/or the rest of a resumed run. None on ranks other than 0 (their rows went there)."""
    records = Path(output_dir) / RECORDS_FILE if output_dir is not None else None
    keep_answers = s.task is not None and s.task.needs_answers
    spool = None
    if save_predictions and output_dir is not None:  # spooled there as rows finish: memory flat in the puzzle count
        spool = Path(output_dir) / PREDICTIONS_SPOOL
    outputs = RowOutputs(save_predictions, keep_answers, records, spool)
    plan = ShardPlan(s.dist, state.done if state else {}, state.append if state else None, failure_hook(s.dist))
    result = evaluator.evaluate_shard(s.dataset, plan, outputs, limit)
    if state is not None:
        state.close()
    return result


def _evaluator(
    s: _Setup,
    backend: str,
    quantize: str | None,
    *,
    batch_size: int,
    progress: bool,
    compile: bool,
    limit: int | None,
    scaling: ScalingPolicy,
) -> tuple[Evaluator, Any]:
    """(the Evaluator on the ACT engine or onnxruntime, the measured int8 cost or None)."""
    runner, cost = None, None
    if backend == "onnxruntime":
        runner, cost = _onnx_runner(s.loaded, s.dataset, s.policy, quantize, s.threads, batch_size, limit)
    evaluator = Evaluator(
        s.loaded.model,
        device=s.device,
        batch_size=batch_size,
        task=s.task,
        progress=progress,
        halting=s.policy,
        compile=compile,
        cast_weights=True,
        runner=runner,
        scaling=scaling,
    )
    return evaluator, cost


def _complete(
    results: dict[str, Any],
    result: EvaluationResult,
    s: _Setup,
    run_facts: dict[str, Any],
    *,
    cost: Any,
    sweep: bool,
    scorer: TaskScorer | None,
    output_dir: str | Path | None,
) -> None:
    """What goes into the results beyond the metrics: how they were computed (`run_facts`:
    compile, backend, quantization), resumed counts, the int8 cost, the halting sweep, the
    task's own scores."""
    results["provenance"]["evaluation"].update(
        dtype_choice=s.dtype_choice.reason,
        dtype_changed=s.dtype_choice.changed,
        threads=s.threads,
        halting=result.halting,
        engine=result.engine,
        compile=run_facts["compile"],
        **s.dist.describe(),
        backend=run_facts["backend"],
        quantization=run_facts["quantization"],
    )
    if result.rows_run.get("skipped"):
        results["provenance"]["evaluation"]["resumed"] = result.rows_run
    if cost is not None:
        results["quantization"] = cost.as_dict()
    if sweep:
        results["halting_sweep"] = halting_sweep(result.step_arrays, s.loaded.model)  # type: ignore[arg-type]
    if scorer is not None and s.task is not None:
        results[s.task.name] = _task_scores(scorer, result, output_dir)


def _resume_state(
    output_dir: str | Path | None,
    resume: bool | str,
    s: _Setup,
    runs_on: str,
    limit: int | None,
    batch_size: int,
    save_predictions: bool,
    scaling: ScalingPolicy,
) -> ResumeState | None:
    """The resume folder in output_dir (checked on --resume by rank 0, then read by every rank)."""
    if output_dir is None:
        if resume:
            raise HRMEvalError("--resume needs --output: the directory of the run to resume")
        return None
    loaded, dist = s.loaded, s.dist
    manifest = build_manifest(
        checkpoint_sha256=loaded.sha256,
        dataset_fingerprint=s.dataset.fingerprint(),
        split=str(s.dataset.split),
        limit=limit,
        dtype=loaded.config.forward_dtype,
        halting=s.policy.describe(loaded.config.halt_max_steps),
        batch_size=batch_size,
        model_config=loaded.config.model_dump(),
        task=s.task.name if s.task is not None else None,
        device_type=runs_on,
        keep_logits=save_predictions,
        **({"scaling": dataclasses.asdict(scaling)} if scaling.enabled else {}),
    )
    state = ResumeState(Path(output_dir), manifest, dist.rank)
    if dist.is_main:
        state.prepare(resume)
    dist.barrier()  # the manifest is checked (or the folder cleared) before any rank reads it
    total = len(s.dataset) if limit is None else min(limit, len(s.dataset))
    state.start(resume, dataset_row_check(s.dataset, total))
    dist.barrier()  # every rank has read the logs before any appends to them
    if state.done and dist.is_main:
        log.info("--resume: %d puzzles already done in %s; evaluating the rest", len(state.done), state.dir)
    return state


def onnx_settings(device: str, dtype: str | None, compile: bool) -> tuple[str, str]:
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
    quantize: str | None,
    threads: int,
    batch_size: int,
    limit: int | None,
) -> tuple[Any, Any]:
    """(an onnxruntime runner for the evaluation, the measured int8 cost or None)."""
    sessions = onnx_sessions(loaded, quantize=quantize, threads=threads)
    cost = None
    if quantize is not None:
        cost = measure_int8_cost(sessions, loaded, dataset, limit=limit, batch_size=batch_size)
        report_cost(cost, "against fp32")
    session = sessions["int8" if quantize else "float32"]
    return OnnxACTRunner(session, loaded.config, slots=batch_size, halting=policy), cost


def _task_scores(scorer: TaskScorer, result: EvaluationResult, output_dir: str | Path | None) -> dict[str, Any]:
    """The task's own scores over the kept answers (with output_dir: its score files written there)."""
    a = result.answers or {}
    scorer.add(a["puzzle_identifiers"], a["inputs"], a["preds"], a["q_halt_logits"].float())
    return scorer.summary(scorer.finish(Path(output_dir) if output_dir is not None else None))


def _load(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str,
    task: str | None,
    dtype: str | None,
    device: torch.device,
    **options: Any,
) -> tuple[LoadedCheckpoint, PuzzleDataset, DtypeChoice]:
    """The checkpoint (in the chosen dtype) and the dataset it is evaluated on. `options`:
    load_checkpoint's overrides and model_config."""
    fixed_dtype = None if dtype == "auto" else dtype
    loaded, dataset = load_with_data(
        checkpoint, data, split=split, task=task, device=device, dtype=fixed_dtype, **options
    )
    if dtype == "auto":
        choice = choose_dtype("auto", loaded.config.forward_dtype, device)
        if choice.dtype != loaded.config.forward_dtype:
            loaded = load_checkpoint(checkpoint, dataset=dataset.metadata, device=device, dtype=choice.dtype, **options)
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
    out: Path,
    results: dict[str, Any],
    result: EvaluationResult,
    loaded: LoadedCheckpoint,
    save_predictions: bool,
    formats: Sequence[str] = ("json",),
    world_size: int = 1,
) -> None:
    if save_predictions and result.prediction_spool is not None:
        step = loaded.step if loaded.step is not None else 0
        owner = result.row_batches % world_size if result.row_batches is not None else None  # [N] rank of each row
        files = result.prediction_spool.write(out / f"step_{step}_all_preds", owner, world_size)
        results["predictions_file"] = str(files[0])
        if len(files) > 1:
            results["predictions_files"] = [str(f) for f in files]
    if result.records_file is not None:
        results["per_puzzle_metrics_file"] = RECORDS_FILE
    if "halting_sweep" in results:
        plot = plot_sweep(results["halting_sweep"], out / "halting_sweep.png")
        if plot:
            results["halting_sweep_plot"] = Path(plot).name  # beside results.json, like per_puzzle.jsonl
    if results.get("test_time_scaling", {}).get("frontier"):
        plot = plot_frontier(results["test_time_scaling"]["frontier"], out / "scaling_frontier.png")
        if plot:
            results["test_time_scaling"]["frontier_plot"] = Path(plot).name
    plot = plot_reliability(results["q_value_analysis"].get("calibration", {}), out / "reliability.png")
    if plot:
        results["q_value_analysis"]["calibration"]["plot"] = Path(plot).name
    atomic_write_json(out / "results.json", results)
    if "csv" in formats:
        write_per_puzzle_csv(result, out / CSV_FILE)


def write_per_puzzle_csv(result: EvaluationResult, path: Path) -> Path:
    """The per-puzzle records as a CSV table (pandas; list values as JSON text), written atomically."""
    frame = result.to_pandas()
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)

    def write(tmp: str) -> None:
        frame.to_csv(tmp, index=False)

    atomic_write(path, write)
    return path


def assemble_results(
    result: EvaluationResult,
    loaded: LoadedCheckpoint,
    dataset: PuzzleDataset,
    task: PuzzleTask | None,
    *,
    device: str,
    batch_size: int,
    limit: int | None,
) -> dict[str, Any]:
    """The results JSON: metrics, per-puzzle records and everything needed to reproduce them."""
    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "aggregate_metrics": result.aggregate_metrics,
        "metric_definitions": {
            "step_efficiency": STEP_EFFICIENCY_DEFINITION,
            "calibration": CALIBRATION_DEFINITION,
            "intervals": INTERVALS_DEFINITION,
            "paired_test": PAIRED_TEST_DEFINITION,
        },
        "q_value_analysis": result.q_value_analysis,
    }
    if len(result.per_set_metrics) > 1:
        results["per_set_metrics"] = result.per_set_metrics
    if result.by_difficulty is not None:
        results["by_difficulty"] = result.by_difficulty
    if result.test_time_scaling is not None:
        results["test_time_scaling"] = result.test_time_scaling
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


def results_frames(results: dict[str, Any], output_dir: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-puzzle table, summary) of a `simple_evaluate` results dict as DataFrames, as
    `EvaluationResult.to_pandas()` / `.summary()` give them. Records beyond the results.json cap
    are read from per_puzzle.jsonl in `output_dir`."""
    records: Any | None = results.get("per_puzzle_metrics")
    if records is None and output_dir is not None and (Path(output_dir) / RECORDS_FILE).is_file():
        records = Path(output_dir) / RECORDS_FILE
    per_puzzle = records_frame(records)
    return per_puzzle, summary_frame(results["aggregate_metrics"], results.get("q_value_analysis", {}))
