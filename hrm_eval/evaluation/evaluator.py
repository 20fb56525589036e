"""The evaluation loop: every puzzle through the ACT engine, scored as it finishes.

    dataset batches -> ACTEngine (continuous batching; fixed halting = the public numbers)
                    -> finished rows -> per-row metrics (the loss head's definitions) + task
                       verifier -> Accumulator (records in dataset order, streamed to
                       per_puzzle.jsonl) -> exact sums -> aggregate metrics, Q-value analysis

One loop for every case: a plain `evaluate` is the one-shard case of `evaluate_shard` (one
process, nothing done before). A shard of a torchrun and/or resumed evaluation runs the
dataset batches its rank owns, less the rows a resume log holds; rows that leave the process
(resume log, other ranks) travel as payloads (hrm_eval.evaluation.payload).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleBatch, PuzzleDataset
from hrm_eval.data.open import resolve_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.accumulator import Accumulator, ScoredRow
from hrm_eval.evaluation.all_preds import PredictionSpool
from hrm_eval.evaluation.distributed import DistContext
from hrm_eval.evaluation.payload import Payload, from_payload, to_payload
from hrm_eval.evaluation.result import EvaluationResult
from hrm_eval.evaluation.scoring import RowScores, score_rows
from hrm_eval.evaluation.stats import rate_interval
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy
from hrm_eval.inference.runner import ACTRunner, FinishedRows, PuzzleChunk
from hrm_eval.inference.scaling import ScaledRunner, ScalingPolicy, scaling_summary
from hrm_eval.models import ACTModel
from hrm_eval.models.base import RecursiveReasoningModel
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.logging import ProgressLog

log = logging.getLogger("hrm_eval")


@dataclass
class ShardPlan:
    """How one process takes part in `Evaluator.evaluate_shard`: its rank (`ctx`, which dataset
    batches are its own), the rows finished before (`done`: payloads from a resume log, by
    position), where newly finished rows go (`on_rows`: the resume log) and `after_rows`, a
    test hook called after each group of finished rows."""

    ctx: DistContext = field(default_factory=DistContext)
    done: dict[int, Payload] = field(default_factory=dict)
    on_rows: Callable[[list[Payload]], None] | None = None
    after_rows: Callable[[], None] | None = None


@dataclass(frozen=True)
class RowOutputs:
    """What an evaluation keeps of its finished rows beyond the sums (see `Evaluator.evaluate`)."""

    save_predictions: bool = False
    keep_answers: bool = False
    records_path: str | Path | None = None
    predictions_dir: str | Path | None = None


class _ShardRows:
    """This rank's finished rows: straight into the accumulator on rank 0, else kept as
    payloads until they are gathered there."""

    def __init__(self, acc: Accumulator | None, total: int, *, keep_logits: bool, send: bool):
        self.acc, self.keep_logits, self.send = acc, keep_logits, send
        self.outbox: list[Payload] = []
        self.row_batches = np.full(total, -1, np.int64)  # [N]
        self.evaluated = 0

    def add_payload(self, p: Payload) -> None:
        i, row = from_payload(p)
        self.row_batches[i] = int(p["batch"])
        if self.acc is not None:
            self.acc.push(i, row)
        else:
            self.outbox.append(p)

    def add_rows(
        self, rows: list[tuple[int, ScoredRow]], batches: dict[int, int], log: Callable[[list[Payload]], None] | None
    ) -> None:
        """Rows just evaluated. Their payloads go to `log` (the resume log) before their records
        are written: whatever the records file shows is in the log, whenever the run is killed."""
        numbered = [(i, batches.pop(i), row) for i, row in rows]
        payloads = [to_payload(i, b, row, self.keep_logits) for i, b, row in numbered] if log or self.send else []
        if log is not None:
            log(payloads)
        for n, (i, b, row) in enumerate(numbered):
            self.row_batches[i] = b
            self.evaluated += 1
            if self.acc is not None:
                self.acc.push(i, row)
            else:
                self.outbox.append(payloads[n])

    def message(self, skipped: int, engine: dict[str, Any]) -> dict[str, Any]:
        return {"rows": self.outbox, "evaluated": self.evaluated, "skipped": skipped, "engine": engine}


class Evaluator:
    """Evaluate one ACT model: `Evaluator(model, task=task).evaluate(dataset)`, or in a notebook
    `Evaluator(model, device, config).evaluate(dataset)`.

    `model`: an ACTModel, or an inner model (`HRMModel(config)`, wrapped in ACT here).
    `config`: an EvalConfig (`load_config("configs/eval_config.yaml")`); it supplies the
    device, batch size, halting policy, limit and task (detected from the dataset when it
    names none) wherever the arguments leave them out. `batch_size` is the number of engine
    slots (puzzles in flight). `halting` is the halting policy; the default, fixed, gives the
    public numbers. `cast_weights` stores the weights in the forward dtype once (for a model the
    caller owns; not for one in training). `runner`: another ACTRunner to run the puzzles
    (hrm_eval.inference.runner; e.g. hrm_eval.inference.onnx_runner.OnnxACTRunner, built with
    the same slots and halting). `scaling`: test-time scaling (hrm_eval.inference.scaling; off
    by default, or as the config says)."""

    def __init__(
        self,
        model: ACTModel | RecursiveReasoningModel,
        device: str | torch.device | None = None,
        config: Any | None = None,
        *,
        batch_size: int | None = None,
        task: PuzzleTask | None = None,
        progress: bool | None = None,
        halting: HaltingPolicy | None = None,
        compile: bool = False,
        cast_weights: bool = False,
        runner: ACTRunner | None = None,
        scaling: ScalingPolicy | None = None,
    ):
        if isinstance(model, RecursiveReasoningModel):
            model = ACTModel(model)
        self.settings = config
        self.device = _device(device if device is not None else getattr(config, "device", "cpu"))
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.batch_size: int = batch_size or int(getattr(config, "batch_size", DEFAULT_BATCH_SIZE))
        self.task = task
        self.progress = progress if progress is not None else getattr(config, "progress", True)
        self.halting = halting or _policy(config)
        self.compile = compile
        self.cast_weights = cast_weights
        self.runner = runner
        if scaling is None:
            scaling = ScalingPolicy.from_settings(config) if hasattr(config, "scaling") else ScalingPolicy()
        self.scaling = scaling

    def evaluate(
        self,
        dataset: PuzzleDataset,
        *,
        limit: int | None = None,
        save_predictions: bool = False,
        keep_answers: bool = False,
        records_path: str | Path | None = None,
        predictions_dir: str | Path | None = None,
    ) -> EvaluationResult:
        """`records_path`: stream per-puzzle records there (JSON lines, dataset order).
        `save_predictions` keeps what the public `all_preds` files hold (logits included): in
        `result.predictions`, or with `predictions_dir` spooled there in chunks as rows finish
        (`result.prediction_spool`; memory flat in the number of puzzles);
        `keep_answers` keeps only the argmax answers and q_halt (what ARC voting needs)."""
        outputs = RowOutputs(save_predictions, keep_answers, records_path, predictions_dir)
        result = self.evaluate_shard(dataset, ShardPlan(), outputs, limit)
        assert result is not None  # one process is rank 0, which returns the result
        return result

    def evaluate_shard(
        self, dataset: PuzzleDataset, plan: ShardPlan, outputs: RowOutputs, limit: int | None = None
    ) -> EvaluationResult | None:
        """`evaluate` for one rank of `plan.ctx` (see hrm_eval.evaluation.distributed): this rank
        runs the dataset batches it owns, minus the rows in `plan.done`; each finished row goes
        to `plan.on_rows` (the resume log) as a payload. Rank 0 accumulates its rows, the done
        ones and, at the end, every other rank's, in dataset order, and returns the result the
        single-process `evaluate` would; the other ranks return None."""
        ctx = plan.ctx
        limit, task, total, engine = self._setup(dataset, limit)
        acc = None
        if ctx.is_main:  # the other ranks send their rows to rank 0
            acc = self._accumulator(dataset, task, engine.limit, total, outputs)
        shard = _ShardRows(acc, total, keep_logits=outputs.save_predictions, send=not ctx.is_main)
        done = {i: p for i, p in plan.done.items() if i < total and ctx.owns(int(p["batch"]))}
        for i in sorted(done):
            shard.add_payload(done[i])
        start = time.perf_counter()
        try:
            parts = self._run(dataset, plan, engine, shard, done, limit=limit, total=total, task=task)
        finally:
            if acc is not None:
                acc.close()
        if acc is None or parts is None:
            return None
        result = self._result(acc, shard, parts, time.perf_counter() - start, engine)
        if ctx.distributed:
            result.engine["per_rank"] = [p["engine"] for p in parts]
        return result

    def _setup(self, dataset: PuzzleDataset, limit: int | None) -> tuple[int | None, PuzzleTask | None, int, ACTRunner]:
        """(limit, task, puzzle count, engine) of one evaluation: the config fills what the
        arguments leave out; the engine is the runner given (onnxruntime) or an ACTEngine."""
        if limit is None and self.settings is not None:
            limit = self.settings.limit
        total = len(dataset) if limit is None else min(limit, len(dataset))
        task = self._task_for(dataset)
        if self.runner is not None:
            if self.scaling.enabled:
                raise HRMEvalError("--scaling runs on the torch backend (the ACT engine), not onnxruntime")
            return limit, task, total, self.runner
        common = dict(slots=self.batch_size, device=self.device, halting=self.halting, cast_weights=self.cast_weights)
        if self.scaling.enabled:
            if task is None:
                raise HRMEvalError("--scaling verify needs the puzzles' task for its rule check (give --task)")
            scaled = ScaledRunner(self.model, task, self.scaling, seq_len=dataset.metadata.seq_len, **common)  # type: ignore[arg-type]
            if self.compile:
                scaled.engine.compile()
            return limit, task, total, scaled
        engine = ACTEngine(self.model, **common)  # type: ignore[arg-type]
        if self.compile:
            engine.compile()
        return limit, task, total, engine

    def _accumulator(
        self, dataset: PuzzleDataset, task: PuzzleTask | None, steps: int, total: int, outputs: RowOutputs
    ) -> Accumulator:
        spool = PredictionSpool(outputs.predictions_dir) if outputs.save_predictions else None
        return Accumulator(
            self.model,
            dataset,
            task,
            steps,
            total,
            spool,
            outputs.keep_answers,
            self.config.vocab_size,
            outputs.records_path,
        )

    def _task_for(self, dataset: PuzzleDataset) -> PuzzleTask | None:
        """The task given, else the config's (checked against the dataset), else the dataset's own."""
        if self.task is not None or self.settings is None:
            return self.task
        return resolve_task(self.settings.task, dataset)

    def _run(
        self,
        dataset: PuzzleDataset,
        plan: ShardPlan,
        engine: ACTRunner,
        shard: _ShardRows,
        done: dict[int, Payload],
        *,
        limit: int | None,
        total: int,
        task: PuzzleTask | None,
    ) -> list[dict[str, Any]] | None:
        """This rank's rows through the engine (less those `done`), then every rank's message
        gathered on rank 0: the list of them there, None on the other ranks."""
        ctx = plan.ctx
        bar = tqdm(
            total=total, unit="puzzle", desc="evaluate", disable=not (self.progress and ctx.is_main), dynamic_ncols=True
        )
        bar.update(ctx.add_done(len(done)) - bar.n)
        # progress events for the log (rank 0, global counts); the bar shows them on the console
        counts = ProgressLog(log, total, console=not self.progress) if ctx.is_main else None
        inflight: dict[int, tuple[PuzzleBatch, int]] = {}
        batches: dict[int, int] = {}
        try:
            chunks = _chunks(dataset, self.batch_size, limit, inflight, owns=ctx.owns, skip=done, batches=batches)
            for fin in engine.run(chunks):
                shard.add_rows(self._finished(fin, inflight, task), batches, plan.on_rows)
                bar.update(ctx.add_done(len(fin)) - bar.n)
                # the running exact accuracy, where rank 0 holds every row so far (one process)
                exact = _exact(shard.acc) if not ctx.distributed else {}
                if exact:
                    bar.set_postfix(exact=f"{exact['exact']:.3f}")
                if counts is not None:
                    counts.update(bar.n - counts.done, **exact)
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

    def _finished(
        self, fin: FinishedRows, inflight: dict[int, tuple[PuzzleBatch, int]], task: PuzzleTask | None
    ) -> list[tuple[int, ScoredRow]]:
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
            (i, ScoredRow(batch, j, _one(scores, k), fin, k))
            for k, (i, (batch, j)) in enumerate(zip(fin.index.tolist(), where))
        ]

    def _result(
        self, acc: Accumulator, shard: _ShardRows, parts: list[dict[str, Any]], elapsed: float, engine: ACTRunner
    ) -> EvaluationResult:
        """Rank 0's result over every rank's rows, with the dataset batch of each row (which rank
        ran it) and how many rows were evaluated or skipped (resumed)."""
        result = acc.result(elapsed, self.halting.describe(self.config.halt_max_steps), engine.stats())
        result.row_batches = shard.row_batches
        arrays = acc.scaling_arrays()
        if arrays is not None and isinstance(engine, ScaledRunner):
            result.test_time_scaling = {
                "settings": engine.scaling.describe(),
                **scaling_summary(
                    arrays["exact"],
                    arrays["verified"],
                    arrays["act_steps_total"],
                    arrays["attempts"],
                    arrays["verified_at_step"],
                    engine.budget,
                    difficulty=arrays["difficulty"] if acc.difficulty_name else None,
                    difficulty_name=acc.difficulty_name,
                    checks_rules=engine.task.checks_rules,
                ),
            }
            _scaling_intervals(result.test_time_scaling, arrays, acc.difficulty_name)
        result.rows_run = {
            "evaluated": sum(p["evaluated"] for p in parts),
            "skipped": sum(p["skipped"] for p in parts),
        }
        return result


def _exact(acc: Accumulator | None) -> dict[str, float]:
    """{"exact": the solved share of the rows counted so far}, or {} before any."""
    if acc is None or not acc.counted:
        return {}
    return {"exact": acc.solved / acc.counted}


def _device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else resolve_device(str(device))


def _policy(config: Any | None) -> HaltingPolicy:
    """The halting policy an EvalConfig names (a sweep's is fixed); fixed without one."""
    if config is None:
        return HaltingPolicy()
    return HaltingPolicy(
        config.halting, threshold=config.halt_threshold, min_steps=config.min_steps, max_steps=config.max_steps
    )


def _chunks(
    dataset: PuzzleDataset,
    batch_size: int,
    limit: int | None,
    inflight: dict[int, tuple[PuzzleBatch, int]],
    *,
    owns: Callable[[int], bool] | None = None,
    skip: Container[int] = (),
    batches: dict[int, int] | None = None,
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


def _one(scores: RowScores, k: int) -> RowScores:
    """Row k of a batch's scores, as a batch of one."""
    sl = slice(k, k + 1)
    return RowScores(
        {name: v[sl] for name, v in scores.rows.items()},
        scores.valid[sl],
        scores.answers[sl],
        None if scores.verified is None else scores.verified[sl],
    )


def _scaling_intervals(summary: dict[str, Any], arrays: dict[str, np.ndarray], difficulty_name: str | None) -> None:
    """Wilson intervals beside test-time scaling's rates, overall and per difficulty row."""
    if not summary.get("puzzles"):
        return
    # verified_rate, or accepted_rate on a task without rules (accepted by the Q head's confidence)
    accepted = "verified_rate" if "verified_rate" in summary else "accepted_rate"
    summary["exact_accuracy_ci95"] = rate_interval(arrays["exact"])
    summary[f"{accepted}_ci95"] = rate_interval(arrays["verified"])
    for row in (summary.get("by_difficulty") or {}).get("rows", []):
        sel = arrays["difficulty"] == row[difficulty_name]
        row["exact_accuracy_ci95"] = rate_interval(arrays["exact"][sel])
        row[f"{accepted}_ci95"] = rate_interval(arrays["verified"][sel])
