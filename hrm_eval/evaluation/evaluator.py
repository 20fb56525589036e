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

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, TextIO, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleBatch, PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.halting import halting_analysis
from hrm_eval.evaluation.metrics import MetricSums
from hrm_eval.evaluation.scoring import RowScores, score_rows
from hrm_eval.inference.engine import ACTEngine, FinishedRows, HaltingPolicy, PuzzleChunk
from hrm_eval.models import ACTModel

PREDICTION_KEYS = ("inputs", "labels", "puzzle_identifiers", "logits", "q_halt_logits", "q_continue_logits")
ANSWER_KEYS = ("inputs", "puzzle_identifiers", "preds", "q_halt_logits")
# results.json holds the per-puzzle records up to this many; beyond it they live only in
# per_puzzle.jsonl (a 100k-puzzle results.json would be ~100 MB of JSON to load for a summary).
RECORDS_IN_RESULTS_CAP = 10_000


@dataclass
class EvaluationResult:
    aggregate_metrics: Dict[str, Any]
    per_set_metrics: Dict[str, Dict[str, float]]
    q_value_analysis: Dict[str, Any]
    per_puzzle_metrics: Optional[List[Dict[str, Any]]]  # None when over the cap (see records_file)
    halting: Dict[str, Any] = field(default_factory=dict)
    engine: Dict[str, Any] = field(default_factory=dict)
    records_file: Optional[str] = None
    predictions: Optional[Dict[str, torch.Tensor]] = None  # public all_preds layout (with logits)
    answers: Optional[Dict[str, torch.Tensor]] = None  # compact: inputs, puzzle_identifiers, preds, q_halt_logits
    step_arrays: Optional[Dict[str, np.ndarray]] = None  # q_halt / q_continue / exact [N, T] (halting sweep)


@dataclass
class _Row:
    """One finished puzzle with everything the accumulators need, waiting for its turn."""

    batch: PuzzleBatch
    j: int  # row within batch
    scores: RowScores  # this row's scores (batch of one)
    fin: FinishedRows
    k: int  # row within fin


class Evaluator:
    """Evaluate one ACT model: `Evaluator(model, task=task).evaluate(dataset)`.

    `batch_size` is the number of engine slots (puzzles in flight). `halting` is the
    halting policy; the default, fixed, gives the public numbers. `cast_weights` stores the
    weights in the forward dtype once (for a model the caller owns; not for one in training).
    `runner`: another engine with ACTEngine's interface to run the puzzles (e.g.
    hrm_eval.inference.onnx_runner.OnnxACTRunner, built with the same slots and halting)."""

    def __init__(
        self,
        model: ACTModel,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        task: Optional[PuzzleTask] = None,
        progress: bool = True,
        halting: Optional[HaltingPolicy] = None,
        compile: bool = False,
        cast_weights: bool = False,
        runner: Optional[Any] = None,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.batch_size = batch_size
        self.task = task
        self.progress = progress
        self.halting = halting or HaltingPolicy()
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
    ) -> EvaluationResult:
        """`records_path`: stream per-puzzle records there (JSON lines, dataset order).
        `save_predictions` keeps what the public `all_preds` files hold (logits included);
        `keep_answers` keeps only the argmax answers and q_halt (what ARC voting needs)."""
        total = len(dataset) if limit is None else min(limit, len(dataset))
        engine = self.runner or ACTEngine(
            self.model, slots=self.batch_size, device=self.device, halting=self.halting, cast_weights=self.cast_weights
        )
        if self.compile and self.runner is None:
            engine.compile()
        acc = _Accumulator(
            self.model,
            dataset,
            self.task,
            engine.limit,
            total,
            save_predictions,
            keep_answers,
            self.config.vocab_size,
            records_path,
        )
        inflight: Dict[int, Tuple[PuzzleBatch, int]] = {}
        bar = tqdm(total=total, unit="puzzle", desc="evaluate", disable=not self.progress, dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for fin in engine.run(_chunks(dataset, self.batch_size, limit, inflight)):
                where = [inflight.pop(i) for i in fin.index.tolist()]
                scores = score_rows(
                    fin.logits,
                    torch.stack([pb.labels[j] for pb, j in where]),
                    fin.q_halt_logits,
                    loss_type=self.config.loss_type,
                    halted=torch.ones(len(fin), dtype=torch.bool),
                    inputs=torch.stack([pb.inputs[j] for pb, j in where]),
                    task=self.task,
                )
                for k, (i, (batch, j)) in enumerate(zip(fin.index.tolist(), where)):
                    acc.push(i, _Row(batch, j, _one(scores, k), fin, k))
                bar.update(len(fin))
                if acc.counted:
                    bar.set_postfix(exact=f"{acc.solved / acc.counted:.3f}")
        finally:
            bar.close()
            acc.close()
        elapsed = time.perf_counter() - start
        return acc.result(elapsed, self.halting.describe(self.config.halt_max_steps), engine.stats())


def _chunks(
    dataset: PuzzleDataset, batch_size: int, limit: Optional[int], inflight: Dict[int, Tuple[PuzzleBatch, int]]
) -> Iterator[PuzzleChunk]:
    """The dataset as engine chunks; index = position in evaluation order."""
    position = 0
    for pb in dataset.iter_batches(batch_size, limit=limit):
        n = len(pb.example_index)
        for j in range(n):
            inflight[position + j] = (pb, j)
        yield PuzzleChunk(torch.arange(position, position + n), pb.inputs, pb.puzzle_identifiers, pb.labels)
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
        save_predictions: bool,
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
        self.valid = np.zeros(total, bool)
        self.saved: Optional[Dict[str, List[torch.Tensor]]] = (
            {k: [] for k in PREDICTION_KEYS} if save_predictions else None
        )
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
        self.steps[i], self.valid[i] = steps, valid
        pred = row.scores.answers[0]
        record = self._record(pb, j, m, fin, k, row.scores.verified)
        if valid:
            self.counted += 1
            self.solved += int(bool(m["exact"]))
            self.verified += int(bool(record.get("verified", False)))
        self._emit(record)
        if self.saved is not None:
            for key, v in (
                ("inputs", pb.inputs[j]),
                ("labels", pb.labels[j]),
                ("puzzle_identifiers", pb.puzzle_identifiers[j]),
                ("logits", fin.logits[k]),
                ("q_halt_logits", fin.q_halt_logits[k]),
                ("q_continue_logits", fin.q_continue_logits[k]),
            ):
                self.saved[key].append(v)
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
        if verified is not None:
            record["verified"] = bool(verified[0])
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

            self._records_file.write(json_line(record) + "\n")
        if self.records is not None:
            self.records.append(record)
            if self._records_file is not None and len(self.records) > RECORDS_IN_RESULTS_CAP:
                self.records = None  # the file has them all; results.json will point at it

    def close(self) -> None:
        """Flush the records file; it gets its final name only when complete (no half-written file)."""
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
        arrays = {
            "q_halt": self.q_halt[v],
            "q_continue": self.q_continue[v],
            "exact": self.exact[v],
            "steps": self.steps[v],
        }
        analysis = halting_analysis(
            arrays, self.model, fixed=halting["mode"] == "fixed" and halting["max_steps"] == self.T
        )
        return EvaluationResult(
            aggregate_metrics=aggregate,
            per_set_metrics={k: s.reduced() | {"count": s.count} for k, s in self.per_set.items()},
            q_value_analysis=analysis,
            per_puzzle_metrics=self.records,
            halting=halting,
            engine=engine,
            records_file=str(self.records_path) if self.records_path is not None else None,
            predictions=_stack(self.saved),
            answers=_stack(self.answers),
            step_arrays=arrays,
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
