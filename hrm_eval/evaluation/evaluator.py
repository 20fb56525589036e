"""The evaluation loop: every puzzle through the ACT engine, scored as it finishes.

    dataset batches -> ACTEngine (continuous batching; fixed halting = the public numbers)
                    -> finished rows -> per-row metrics (the loss head's definitions) + task
                       verifier -> records in dataset order (streamed to per_puzzle.jsonl)
                    -> exact sums -> aggregate metrics, Q-value analysis

Finished rows leave the engine in the order they halt; a small reorder buffer hands them on
in dataset order, so records, sums and saved predictions do not depend on the slot count.
Memory stays flat in the number of puzzles: records stream to a file, only their compact
per-step arrays (N x T numbers) are kept for the halting analysis.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Container, Dict, Iterator, List, Optional, TextIO, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleBatch, PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.all_preds import PredictionSpool
from hrm_eval.evaluation.calibration import calibration_analysis
from hrm_eval.evaluation.distributed import DistContext
from hrm_eval.evaluation.halting import by_difficulty, halting_analysis
from hrm_eval.evaluation.metrics import MetricSums, first_correct_step, step_efficiency_summary
from hrm_eval.evaluation.scoring import RowScores, score_rows
from hrm_eval.inference.engine import ACTEngine, FinishedRows, HaltingMode, HaltingPolicy, PuzzleChunk
from hrm_eval.models import ACTModel
from hrm_eval.models.base import RecursiveReasoningModel
from hrm_eval.utils.logging import ProgressLog

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("hrm_eval")

ANSWER_KEYS = ("inputs", "puzzle_identifiers", "preds", "q_halt_logits")
# results.json holds the per-puzzle records up to this many; beyond it they live only in
# per_puzzle.jsonl (a 100k-puzzle results.json would be ~100 MB of JSON to load for a summary).
RECORDS_IN_RESULTS_CAP = 10_000
# ... and up to about this many bytes of them (ARC records carry two 30x30 grids: several KB each).
RECORDS_IN_RESULTS_BYTES = 32 << 20


@dataclass
class EvaluationResult:
    aggregate_metrics: Dict[str, Any]
    per_set_metrics: Dict[str, Dict[str, float]]
    q_value_analysis: Dict[str, Any]
    per_puzzle_metrics: Optional[List[Dict[str, Any]]]  # None when over the cap (see records_file)
    halting: Dict[str, Any] = field(default_factory=dict)
    engine: Dict[str, Any] = field(default_factory=dict)
    records_file: Optional[str] = None
    predictions: Optional[Dict[str, torch.Tensor]] = None  # public all_preds layout (with logits), in memory
    # save_predictions with a predictions_dir: the same rows spooled to disk (`.write` makes the files)
    prediction_spool: Optional[PredictionSpool] = None
    answers: Optional[Dict[str, torch.Tensor]] = None  # compact: inputs, puzzle_identifiers, preds, q_halt_logits
    step_arrays: Optional[Dict[str, np.ndarray]] = None  # q_halt / q_continue / exact [N, T] (halting sweep)
    by_difficulty: Optional[Dict[str, Any]] = None  # exact accuracy and steps per difficulty (Sudoku: blanks)
    row_batches: Optional[np.ndarray] = None  # [N] dataset batch of each row (evaluate_shard: which rank's it is)
    rows_run: Dict[str, int] = field(default_factory=dict)  # evaluate_shard: puzzles evaluated / skipped (resumed)

    def to_pandas(self) -> "pd.DataFrame":
        """One row per puzzle (the per-puzzle records, in dataset order), read back from
        per_puzzle.jsonl when they were too many to keep in memory."""
        return records_frame(self.per_puzzle_metrics if self.per_puzzle_metrics is not None else self.records_file)

    def summary(self) -> "pd.DataFrame":
        """The aggregate metrics and the Q head's calibration at the halting step, one row each
        (index `metric`, column `value`)."""
        return summary_frame(self.aggregate_metrics, self.q_value_analysis)


# Integer columns that are null where they do not apply (unsolved puzzles): nullable Int64,
# not floats, so a step stays 3 and not 3.0.
NULLABLE_INT_COLUMNS = ("first_correct_step",)


def records_frame(records: Optional[List[Dict[str, Any]] | str | Path]) -> "pd.DataFrame":
    """Per-puzzle records (a list, or a per_puzzle.jsonl path) as a DataFrame, one row per puzzle."""
    import pandas as pd

    if records is None:
        return pd.DataFrame()
    if isinstance(records, (str, Path)):
        frame = pd.read_json(records, lines=True, dtype=False)
    else:
        frame = pd.DataFrame.from_records(records)
    for column in NULLABLE_INT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def summary_frame(aggregate: Dict[str, Any], q_value_analysis: Dict[str, Any]) -> "pd.DataFrame":
    """A results dict's headline numbers as a DataFrame (also `results.summary()`)."""
    import pandas as pd

    values: Dict[str, Any] = {k: v for k, v in aggregate.items() if isinstance(v, (int, float)) or v is None}
    at_halt = q_value_analysis.get("calibration", {}).get("at_halt", {})
    for key in ("ece", "brier", "auroc"):
        if key in at_halt:
            values[f"q_halt_{key}"] = at_halt[key]
    return pd.DataFrame({"value": pd.Series(values, dtype=object)}).rename_axis("metric")


@dataclass
class _Row:
    """One finished puzzle with everything the accumulators need, waiting for its turn."""

    batch: PuzzleBatch
    j: int  # row within batch
    scores: RowScores  # this row's scores (batch of one)
    fin: FinishedRows
    k: int  # row within fin


class Evaluator:
    """Evaluate one ACT model: `Evaluator(model, task=task).evaluate(dataset)`, or in a notebook
    `Evaluator(model, device, config).evaluate(dataset)`.

    `model`: an ACTModel, or an inner model (`HRMModel(config)`, wrapped in ACT here).
    `config`: an EvalConfig (`load_config("configs/eval_config.yaml")`); it supplies the
    device, batch size, halting policy, limit and task (detected from the dataset when it
    names none) wherever the arguments leave them out. `batch_size` is the number of engine
    slots (puzzles in flight). `halting` is the halting policy; the default, fixed, gives the
    public numbers. `cast_weights` stores the weights in the forward dtype once (for a model the
    caller owns; not for one in training). `runner`: another engine with ACTEngine's interface
    to run the puzzles (e.g. hrm_eval.inference.onnx_runner.OnnxACTRunner, built with the same
    slots and halting)."""

    def __init__(
        self,
        model: ACTModel | RecursiveReasoningModel,
        device: str | torch.device | None = None,
        config: Optional[Any] = None,
        *,
        batch_size: Optional[int] = None,
        task: Optional[PuzzleTask] = None,
        progress: Optional[bool] = None,
        halting: Optional[HaltingPolicy] = None,
        compile: bool = False,
        cast_weights: bool = False,
        runner: Optional[Any] = None,
    ):
        if isinstance(model, RecursiveReasoningModel):
            model = ACTModel(model)
        self.settings = config
        self.device = _device(device if device is not None else getattr(config, "device", "cpu"))
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.batch_size: int = batch_size or int(getattr(config, "batch_size", 64))
        self.task = task
        self.progress = progress if progress is not None else getattr(config, "progress", True)
        self.halting = halting or _policy(config)
        self.compile = compile
        self.cast_weights = cast_weights
        self.runner = runner

    def evaluate(
        self,
        dataset: PuzzleDataset,
        *,
        limit: Optional[int] = None,
        save_predictions: bool = False,
        keep_answers: bool = False,
        records_path: Optional[str | Path] = None,
        predictions_dir: Optional[str | Path] = None,
    ) -> EvaluationResult:
        """`records_path`: stream per-puzzle records there (JSON lines, dataset order).
        `save_predictions` keeps what the public `all_preds` files hold (logits included): in
        `result.predictions`, or with `predictions_dir` spooled there in chunks as rows finish
        (`result.prediction_spool`; memory flat in the number of puzzles);
        `keep_answers` keeps only the argmax answers and q_halt (what ARC voting needs)."""
        limit, task, total, engine = self._setup(dataset, limit)
        spool = PredictionSpool(predictions_dir) if save_predictions else None
        acc = self._accumulator(dataset, task, engine, total, spool, keep_answers, records_path)
        inflight: Dict[int, Tuple[PuzzleBatch, int]] = {}
        bar = tqdm(total=total, unit="puzzle", desc="evaluate", disable=not self.progress, dynamic_ncols=True)
        counts = ProgressLog(log, total, console=not self.progress)  # the bar shows them on the console
        start = time.perf_counter()
        try:
            for fin in engine.run(_chunks(dataset, self.batch_size, limit, inflight)):
                for i, row in self._finished(fin, inflight, task):
                    acc.push(i, row)
                bar.update(len(fin))
                if acc.counted:
                    bar.set_postfix(exact=f"{acc.solved / acc.counted:.3f}")
                counts.update(len(fin), **({"exact": acc.solved / acc.counted} if acc.counted else {}))
        finally:
            bar.close()
            acc.close()
        elapsed = time.perf_counter() - start
        return acc.result(elapsed, self.halting.describe(self.config.halt_max_steps), engine.stats())

    def _setup(
        self, dataset: PuzzleDataset, limit: Optional[int]
    ) -> Tuple[Optional[int], Optional[PuzzleTask], int, Any]:
        """(limit, task, puzzle count, engine) of one evaluation: the config fills what the
        arguments leave out; the engine is the runner given (onnxruntime) or an ACTEngine."""
        if limit is None and self.settings is not None:
            limit = self.settings.limit
        total = len(dataset) if limit is None else min(limit, len(dataset))
        engine = self.runner or ACTEngine(
            self.model, slots=self.batch_size, device=self.device, halting=self.halting, cast_weights=self.cast_weights
        )
        if self.compile and self.runner is None:
            engine.compile()
        return limit, self._task_for(dataset), total, engine

    def _accumulator(
        self,
        dataset: PuzzleDataset,
        task: Optional[PuzzleTask],
        engine: Any,
        total: int,
        spool: Optional[PredictionSpool],
        keep_answers: bool,
        records_path: Optional[str | Path],
    ) -> "_Accumulator":
        return _Accumulator(
            self.model,
            dataset,
            task,
            engine.limit,
            total,
            spool,
            keep_answers,
            self.config.vocab_size,
            records_path,
        )

    def _task_for(self, dataset: PuzzleDataset) -> Optional[PuzzleTask]:
        """The task given, else the config's (checked against the dataset), else the dataset's own."""
        if self.task is not None or self.settings is None:
            return self.task
        from hrm_eval.data.open import resolve_task

        return resolve_task(self.settings.task, dataset)

    def _finished(
        self, fin: FinishedRows, inflight: Dict[int, Tuple[PuzzleBatch, int]], task: Optional[PuzzleTask]
    ) -> List[Tuple[int, _Row]]:
        """The engine's finished rows, scored, each with its position in evaluation order."""
        where = [inflight.pop(i) for i in fin.index.tolist()]
        scores = score_rows(
            fin.logits,
            torch.stack([pb.labels[j] for pb, j in where]),
            fin.q_halt_logits,
            loss_type=self.config.loss_type,
            halted=torch.ones(len(fin), dtype=torch.bool),
            inputs=torch.stack([pb.inputs[j] for pb, j in where]),
            task=task,
        )
        return [
            (i, _Row(batch, j, _one(scores, k), fin, k))
            for k, (i, (batch, j)) in enumerate(zip(fin.index.tolist(), where))
        ]

    # ---- one shard of a distributed and/or resumable evaluation --------------------------------
    def evaluate_shard(
        self,
        dataset: PuzzleDataset,
        *,
        plan: "ShardPlan",
        limit: Optional[int] = None,
        save_predictions: bool = False,
        keep_answers: bool = False,
        records_path: Optional[str | Path] = None,
        predictions_dir: Optional[str | Path] = None,
    ) -> Optional[EvaluationResult]:
        """`evaluate` for one rank of `plan.ctx` (see hrm_eval.evaluation.distributed): this rank
        runs the dataset batches it owns, minus the rows in `plan.done`; each finished row goes
        to `plan.on_rows` (the resume log) as a payload. Rank 0 accumulates its rows, the done
        ones and, at the end, every other rank's, in dataset order, and returns the result the
        single-process `evaluate` would; the other ranks return None."""
        ctx = plan.ctx
        limit, task, total, engine = self._setup(dataset, limit)
        acc = None
        if ctx.is_main:  # the other ranks send their rows to rank 0
            spool = PredictionSpool(predictions_dir) if save_predictions else None
            acc = self._accumulator(dataset, task, engine, total, spool, keep_answers, records_path)
        shard = _ShardRows(acc, total, keep_logits=save_predictions, send=not ctx.is_main)
        done = {i: p for i, p in plan.done.items() if i < total and ctx.owns(int(p["batch"]))}
        for i in sorted(done):
            shard.add_payload(done[i])
        start = time.perf_counter()
        try:
            parts = self._run_shard(dataset, plan, engine, shard, done, limit=limit, total=total, task=task)
        finally:
            if acc is not None:
                acc.close()
        if acc is None or parts is None:
            return None
        result = self._shard_result(acc, shard, parts, time.perf_counter() - start, engine)
        if ctx.distributed:
            result.engine["per_rank"] = [p["engine"] for p in parts]
        return result

    def _run_shard(
        self,
        dataset: PuzzleDataset,
        plan: "ShardPlan",
        engine: Any,
        shard: "_ShardRows",
        done: Dict[int, "Payload"],
        *,
        limit: Optional[int],
        total: int,
        task: Optional[PuzzleTask],
    ) -> Optional[List[Dict[str, Any]]]:
        """This rank's rows through the engine (less those `done`), then every rank's message
        gathered on rank 0: the list of them there, None on the other ranks."""
        ctx = plan.ctx
        bar = tqdm(
            total=total, unit="puzzle", desc="evaluate", disable=not (self.progress and ctx.is_main), dynamic_ncols=True
        )
        bar.update(ctx.add_done(len(done)) - bar.n)
        # progress events for the log (rank 0, global counts); the bar shows them on the console
        counts = ProgressLog(log, total, console=not self.progress) if ctx.is_main else None
        inflight: Dict[int, Tuple[PuzzleBatch, int]] = {}
        batches: Dict[int, int] = {}
        try:
            chunks = _chunks(dataset, self.batch_size, limit, inflight, owns=ctx.owns, skip=done, batches=batches)
            for fin in engine.run(chunks):
                shard.add_rows(self._finished(fin, inflight, task), batches, plan.on_rows)
                bar.update(ctx.add_done(len(fin)) - bar.n)
                if counts is not None:
                    counts.update(bar.n - counts.done)
                ctx.check_peers()
                if plan.after_rows is not None:
                    plan.after_rows()
            ctx.wait_all(lambda n: bar.update(n - bar.n))
            if counts is not None and counts.done < total:
                counts.update(total - counts.done)
            parts = ctx.gather(shard.message(len(done), engine.stats()))
            for part in parts[1:] if parts is not None else []:
                for p in part["rows"]:
                    shard.add_payload(p)
        finally:
            bar.close()
        return parts

    def _shard_result(
        self, acc: "_Accumulator", shard: "_ShardRows", parts: List[Dict[str, Any]], elapsed: float, engine: Any
    ) -> EvaluationResult:
        """Rank 0's result over every rank's rows, with the dataset batch of each row (which rank
        ran it) and how many rows were evaluated or skipped (resumed)."""
        result = acc.result(elapsed, self.halting.describe(self.config.halt_max_steps), engine.stats())
        result.row_batches = shard.row_batches
        result.rows_run = {
            "evaluated": sum(p["evaluated"] for p in parts),
            "skipped": sum(p["skipped"] for p in parts),
        }
        return result


def _device(device: str | torch.device) -> torch.device:
    from hrm_eval.utils.device import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(str(device))


def _policy(config: Optional[Any]) -> HaltingPolicy:
    """The halting policy an EvalConfig names (sweep: its fixed run); fixed without one."""
    if config is None:
        return HaltingPolicy()
    mode: HaltingMode = "fixed" if config.halting == "sweep" else config.halting
    return HaltingPolicy(mode, threshold=config.halt_threshold, min_steps=config.min_steps, max_steps=config.max_steps)


def _chunks(
    dataset: PuzzleDataset,
    batch_size: int,
    limit: Optional[int],
    inflight: Dict[int, Tuple[PuzzleBatch, int]],
    *,
    owns: Optional[Callable[[int], bool]] = None,
    skip: Container[int] = (),
    batches: Optional[Dict[int, int]] = None,
) -> Iterator[PuzzleChunk]:
    """The dataset as engine chunks; index = position in evaluation order. A shard keeps the
    batches it `owns` (by batch number) less the positions in `skip`; `batches` records the
    batch number of each position handed out."""
    position = 0
    for b, pb in enumerate(dataset.iter_batches(batch_size, limit=limit)):
        n = len(pb.example_index)
        if owns is None or owns(b):
            keep = [j for j in range(n) if position + j not in skip]
            for j in keep:
                inflight[position + j] = (pb, j)
                if batches is not None:
                    batches[position + j] = b
            if len(keep) == n:
                yield PuzzleChunk(torch.arange(position, position + n), pb.inputs, pb.puzzle_identifiers, pb.labels)
            elif keep:
                rows = torch.tensor(keep)
                yield PuzzleChunk(rows + position, pb.inputs[rows], pb.puzzle_identifiers[rows], pb.labels[rows])
        position += n


class _Accumulator:
    """Takes finished rows in any order, consumes them in dataset order."""

    def __init__(
        self,
        model: ACTModel,
        dataset: PuzzleDataset,
        task: Optional[PuzzleTask],
        T: int,
        total: int,
        spool: Optional[PredictionSpool],
        keep_answers: bool,
        vocab_size: int,
        records_path: Optional[str | Path],
    ):
        self.model, self.dataset, self.task, self.T = model, dataset, task, T
        self.waiting: Dict[int, _Row] = {}
        self.next = 0
        self.per_set: Dict[str, MetricSums] = {}
        self.counted = self.solved = self.verified = 0
        self.records: Optional[List[Dict[str, Any]]] = []
        self.records_path = Path(records_path) if records_path is not None else None
        self._records_file: Optional[TextIO] = None
        if self.records_path is not None:
            self.records_path.parent.mkdir(parents=True, exist_ok=True)
            self._records_file = open(self.records_path.with_name(self.records_path.name + ".partial"), "w")
        # Compact per-step arrays for the halting analysis: [N, T] each.
        self.q_halt = np.full((total, T), np.nan, np.float32)
        self.q_continue = np.full((total, T), np.nan, np.float32)
        self.exact = np.zeros((total, T), bool)
        self.steps = np.zeros(total, np.int32)
        self.first_correct = np.zeros(total, np.int32)  # 0 where not solved (or not known)
        self.valid = np.zeros(total, bool)
        self.solved_rows = np.zeros(total, bool)
        self.difficulty_name = task.difficulty_name if task is not None else None  # e.g. "blanks"
        self.difficulty = np.zeros(total, np.int32)
        self.records_bytes = 0
        self.saved = spool  # the all_preds rows (save_predictions), spooled as they are consumed
        self.answers: Optional[Dict[str, List[torch.Tensor]]] = {k: [] for k in ANSWER_KEYS} if keep_answers else None
        self.answer_dtype = torch.uint8 if vocab_size <= 256 else torch.int32

    def push(self, index: int, row: _Row) -> None:
        self.waiting[index] = row
        while self.next in self.waiting:
            self._consume(self.next, self.waiting.pop(self.next))
            self.next += 1

    def _consume(self, i: int, row: _Row) -> None:
        pb, j, fin, k = row.batch, row.j, row.fin, row.k
        m = {name: v[0] for name, v in row.scores.rows.items()}
        steps = int(fin.steps[k])
        valid = bool(row.scores.valid[0])
        self.per_set.setdefault(pb.set_name, MetricSums()).add(row.scores, fin.steps[k : k + 1])
        self.q_halt[i], self.q_continue[i] = fin.q_halt_by_step[k].numpy(), fin.q_continue_by_step[k].numpy()
        if fin.exact_by_step is not None:
            self.exact[i] = fin.exact_by_step[k].numpy()
        self.steps[i], self.valid[i], self.solved_rows[i] = steps, valid, bool(m["exact"])
        pred = row.scores.answers[0]
        record = self._record(pb, j, m, fin, k, row.scores.verified, pred)
        self.first_correct[i] = record.get("first_correct_step") or 0
        if self.difficulty_name is not None and self.task is not None:
            self.difficulty[i] = int(self.task.difficulty(pb.inputs[j].numpy()[None])[0])
            record[self.difficulty_name] = int(self.difficulty[i])
        if valid:
            self.counted += 1
            self.solved += int(bool(m["exact"]))
            self.verified += int(bool(record.get("verified", False)))
        self._emit(record)
        if self.saved is not None:
            self.saved.add(
                {
                    "inputs": pb.inputs[j],
                    "labels": pb.labels[j],
                    "puzzle_identifiers": pb.puzzle_identifiers[j],
                    "logits": fin.logits[k],
                    "q_halt_logits": fin.q_halt_logits[k],
                    "q_continue_logits": fin.q_continue_logits[k],
                }
            )
        if self.answers is not None:
            for key, v in (
                ("inputs", pb.inputs[j].to(self.answer_dtype)),
                ("puzzle_identifiers", pb.puzzle_identifiers[j]),
                ("preds", pred.to(self.answer_dtype)),
                ("q_halt_logits", fin.q_halt_logits[k]),
            ):
                self.answers[key].append(v)

    def _record(
        self,
        pb: PuzzleBatch,
        j: int,
        m: Dict[str, torch.Tensor],
        fin: FinishedRows,
        k: int,
        verified: Optional[torch.Tensor],
        pred: torch.Tensor,
    ) -> Dict[str, Any]:
        ex, identifier, steps = int(pb.example_index[j]), int(pb.puzzle_identifiers[j]), int(fin.steps[k])
        q_halt = float(fin.q_halt_logits[k])
        record: Dict[str, Any] = {
            "puzzle_id": self.dataset.example_name(pb.set_name, ex),
            "set": pb.set_name,
            "example_index": ex,
            "puzzle_index": int(pb.puzzle_index[j]),
            "puzzle_identifier": identifier,
            "identifier_name": self.dataset.identifier_name(identifier),
            "solved": bool(m["exact"]),
            "accuracy": float(m["token_accuracy"]),
            "num_steps": steps,
            "lm_loss": float(m["lm_loss"]),
            "q_halt_logit": q_halt,
            "q_continue_logit": float(fin.q_continue_logits[k]),
            "q_halt_probability": 1.0 / (1.0 + math.exp(-q_halt)) if q_halt > -700 else 0.0,
            "q_halt_by_step": [round(float(x), 5) for x in fin.q_halt_by_step[k, :steps]],
            "halt_step": self._rule_step(fin, k),
        }
        if fin.exact_by_step is not None:
            record["solved_by_step"] = [bool(x) for x in fin.exact_by_step[k, :steps]]
            first = first_correct_step(record["solved_by_step"]) if record["solved"] else None
            record["first_correct_step"] = first
            record["step_efficiency"] = first / steps if first is not None else None
        if verified is not None:
            record["verified"] = bool(verified[0])
        if self.task is not None:  # the natural form (sudoku: board text; ARC: grid), to look at failures
            record["puzzle"] = self.task.decode(pb.inputs[j].numpy())
            record["answer"] = self.task.decode_answer(pred.numpy())
        return record

    def _rule_step(self, fin: FinishedRows, k: int) -> int:
        """1-based step at which the model's own Q rule halts (or would have, in a fixed run)."""
        steps = int(fin.steps[k])
        wants = self.model.wants_to_halt(fin.q_halt_by_step[k, :steps], fin.q_continue_by_step[k, :steps])
        wants[-1] = True
        return int(wants.int().argmax()) + 1

    def _emit(self, record: Dict[str, Any]) -> None:
        if self._records_file is not None:
            from hrm_eval.utils.io import json_line

            line = json_line(record)
            self._records_file.write(line + "\n")
            self.records_bytes += len(line) + 1
        if self.records is not None:
            self.records.append(record)
            over = len(self.records) > RECORDS_IN_RESULTS_CAP or self.records_bytes > RECORDS_IN_RESULTS_BYTES
            if self._records_file is not None and over:
                self.records = None  # the file has them all; results.json will point at it

    def close(self) -> None:
        """Flush the records file; it gets its final name only when complete (no half-written file).
        An incomplete evaluation's spooled predictions are removed: they are never written."""
        if self.saved is not None and self.next < len(self.steps):
            self.saved.remove()
        if self._records_file is None:
            return
        self._records_file.close()
        self._records_file = None
        partial = self.records_path.with_name(self.records_path.name + ".partial")  # type: ignore[union-attr]
        if self.next == len(self.steps):
            partial.replace(self.records_path)  # type: ignore[arg-type]

    def result(self, elapsed: float, halting: Dict[str, Any], engine: Dict[str, Any]) -> EvaluationResult:
        sums = MetricSums()
        for set_sums in self.per_set.values():
            sums.merge(set_sums)
        count = sums.count
        aggregate: Dict[str, Any] = dict(sums.reduced())
        aggregate.update(
            total_puzzles=count,
            solve_rate=aggregate["exact_accuracy"],
            average_steps=aggregate["steps"],
            average_accuracy=aggregate["accuracy"],
            time_per_puzzle=elapsed / count if count else 0.0,
            wall_time_seconds=elapsed,
            puzzles_per_second=count / elapsed if elapsed > 0 else 0.0,
        )
        if self.task is not None:
            aggregate["verified_solve_rate"] = self.verified / count if count else 0.0
        v = self.valid
        aggregate.update(step_efficiency_summary(self.first_correct[v], self.steps[v]))
        arrays = {
            "q_halt": self.q_halt[v],
            "q_continue": self.q_continue[v],
            "exact": self.exact[v],
            "steps": self.steps[v],
            "solved": self.solved_rows[v],
        }
        fixed = halting["mode"] == "fixed" and halting["max_steps"] == self.T
        analysis = halting_analysis(arrays, self.model, fixed=fixed)
        difficulty = None
        if self.difficulty_name is not None and v.any():
            difficulty = by_difficulty(arrays, self.difficulty[v], self.difficulty_name, self.model, fixed=fixed)
        analysis["calibration"] = calibration_analysis(arrays)
        return EvaluationResult(
            aggregate_metrics=aggregate,
            per_set_metrics={k: s.reduced() | {"count": s.count} for k, s in self.per_set.items()},
            q_value_analysis=analysis,
            per_puzzle_metrics=self.records,
            halting=halting,
            engine=engine,
            records_file=str(self.records_path) if self.records_path is not None else None,
            predictions=self.saved.tensors() if self.saved is not None and self.saved.directory is None else None,
            prediction_spool=self.saved,
            answers=_stack(self.answers),
            step_arrays=arrays,
            by_difficulty=difficulty,
        )


def _one(scores: RowScores, k: int) -> RowScores:
    """Row k of a batch's scores, as a batch of one."""
    sl = slice(k, k + 1)
    return RowScores(
        {name: v[sl] for name, v in scores.rows.items()},
        scores.valid[sl],
        scores.answers[sl],
        None if scores.verified is None else scores.verified[sl],
    )


def _stack(parts: Optional[Dict[str, List[torch.Tensor]]]) -> Optional[Dict[str, torch.Tensor]]:
    if parts is None:
        return None
    return {k: torch.stack(v) if v else torch.empty(0) for k, v in parts.items()}


# ---- shards and finished rows as payloads (torchrun, --resume) -----------------------------------
Payload = Dict[str, Any]  # one finished puzzle as plain tensors / numbers (torch.save, weights_only)


@dataclass
class ShardPlan:
    """How one process takes part in `Evaluator.evaluate_shard`: its rank (`ctx`, which dataset
    batches are its own), the rows finished before (`done`: payloads from a resume log, by
    position), where newly finished rows go (`on_rows`: the resume log) and `after_rows`, a
    test hook called after each group of finished rows."""

    ctx: DistContext = field(default_factory=DistContext)
    done: Dict[int, Payload] = field(default_factory=dict)
    on_rows: Optional[Callable[[List[Payload]], None]] = None
    after_rows: Optional[Callable[[], None]] = None


class _ShardRows:
    """This rank's finished rows: straight into the accumulator on rank 0, else kept as
    payloads until they are gathered there."""

    def __init__(self, acc: Optional[_Accumulator], total: int, *, keep_logits: bool, send: bool):
        self.acc, self.keep_logits, self.send = acc, keep_logits, send
        self.outbox: List[Payload] = []
        self.row_batches = np.full(total, -1, np.int64)  # [N]
        self.evaluated = 0

    def add_payload(self, p: Payload) -> None:
        i, row = _row_from_payload(p)
        self.row_batches[i] = int(p["batch"])
        if self.acc is not None:
            self.acc.push(i, row)
        else:
            self.outbox.append(p)

    def add_rows(
        self, rows: List[Tuple[int, _Row]], batches: Dict[int, int], log: Optional[Callable[[List[Payload]], None]]
    ) -> None:
        """Rows just evaluated. Their payloads go to `log` (the resume log) before their records
        are written: whatever the records file shows is in the log, whenever the run is killed."""
        numbered = [(i, batches.pop(i), row) for i, row in rows]
        payloads = [_payload(i, b, row, self.keep_logits) for i, b, row in numbered] if log or self.send else []
        if log is not None:
            log(payloads)
        for n, (i, b, row) in enumerate(numbered):
            self.row_batches[i] = b
            self.evaluated += 1
            if self.acc is not None:
                self.acc.push(i, row)
            else:
                self.outbox.append(payloads[n])

    def message(self, skipped: int, engine: Dict[str, Any]) -> Dict[str, Any]:
        return {"rows": self.outbox, "evaluated": self.evaluated, "skipped": skipped, "engine": engine}


def _payload(position: int, batch: int, row: _Row, keep_logits: bool) -> Payload:
    """One finished row, self-contained (copies, not views: a saved view would drag its whole
    batch along). The logits ([L, V] per row) are kept only when predictions are saved: every
    other field `_Accumulator._consume` reads of a row is here."""
    pb, j, fin, k, s = row.batch, row.j, row.fin, row.k, row.scores
    finished = {
        name: None if getattr(fin, name) is None else getattr(fin, name)[k].clone()
        for name in FinishedRows.__dataclass_fields__
        if name not in ("index", "logits")
    }
    return {
        "position": position,
        "batch": batch,
        "set_name": pb.set_name,
        "example_index": int(pb.example_index[j]),
        "puzzle_index": int(pb.puzzle_index[j]),
        "inputs": pb.inputs[j].clone(),
        "labels": pb.labels[j].clone(),
        "puzzle_identifier": pb.puzzle_identifiers[j].clone(),
        "scores": {name: v[0].clone() for name, v in s.rows.items()},
        "valid": s.valid[0].clone(),
        "answers": s.answers[0].clone(),
        "verified": None if s.verified is None else s.verified[0].clone(),
        "finished": finished,
        "logits": fin.logits[k].clone() if keep_logits else None,
    }


def _row_from_payload(p: Payload) -> Tuple[int, _Row]:
    """A payload as the one-row `_Row` the accumulator takes (batch of one, j = k = 0)."""
    batch = PuzzleBatch(
        set_name=p["set_name"],
        example_index=np.array([p["example_index"]]),
        puzzle_index=np.array([p["puzzle_index"]]),
        inputs=p["inputs"][None],
        labels=p["labels"][None],
        puzzle_identifiers=p["puzzle_identifier"].reshape(1),
    )
    scores = RowScores(
        {name: v.reshape(1) for name, v in p["scores"].items()},
        p["valid"].reshape(1),
        p["answers"][None],
        None if p["verified"] is None else p["verified"].reshape(1),
    )
    fields = {name: None if v is None else v[None] for name, v in p["finished"].items()}
    logits = p["logits"][None] if p["logits"] is not None else torch.empty(1, 0)
    fin = FinishedRows(index=torch.tensor([p["position"]]), logits=logits, **fields)  # type: ignore[arg-type]
    return int(p["position"]), _Row(batch, 0, scores, fin, 0)
