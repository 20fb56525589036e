"""The accumulator of one evaluation: finished puzzles arrive in the order they halt (from
the engine, or as payloads from a resume log or another rank) and are consumed in dataset
order, so records, sums and saved predictions do not depend on the slot count or the rank
count. Memory stays flat in the number of puzzles: records stream to a file, only compact
per-step arrays (N x T numbers) are kept for the halting analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleBatch, PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.all_preds import PredictionSpool
from hrm_eval.evaluation.halting_analysis import by_difficulty, halting_analysis
from hrm_eval.evaluation.metrics import MetricSums, first_correct_step, step_efficiency_summary
from hrm_eval.evaluation.q_reliability import calibration_analysis
from hrm_eval.evaluation.result import EvaluationResult
from hrm_eval.evaluation.scoring import RowScores
from hrm_eval.evaluation.stats import bootstrap_mean_interval
from hrm_eval.inference.halting import FIXED
from hrm_eval.inference.runner import FinishedRows
from hrm_eval.inference.scaling import ScaledRows
from hrm_eval.models import ACTModel
from hrm_eval.utils.io import json_line

ANSWER_KEYS = ("inputs", "puzzle_identifiers", "preds", "q_halt_logits")
# results.json holds the per-puzzle records up to this many; beyond it they live only in
# per_puzzle.jsonl (a 100k-puzzle results.json would be ~100 MB of JSON to load for a summary).
RECORDS_IN_RESULTS_CAP = 10_000
# ... and up to about this many bytes of them (ARC records carry two 30x30 grids: several KB each).
RECORDS_IN_RESULTS_BYTES = 32 << 20


@dataclass
class ScoredRow:
    """One finished puzzle with everything the accumulator needs, waiting for its turn: row `j`
    of its dataset batch, row `k` of the engine's finished rows, its scores as a batch of one."""

    batch: PuzzleBatch
    j: int  # row within batch
    scores: RowScores  # this row's scores (batch of one)
    fin: FinishedRows
    k: int  # row within fin


class Accumulator:
    """Takes finished rows in any order, consumes them in dataset order."""

    def __init__(
        self,
        model: ACTModel,
        dataset: PuzzleDataset,
        task: PuzzleTask | None,
        T: int,
        total: int,
        spool: PredictionSpool | None,
        keep_answers: bool,
        vocab_size: int,
        records_path: str | Path | None,
    ):
        self.model, self.dataset, self.task, self.T = model, dataset, task, T
        self.waiting: dict[int, ScoredRow] = {}
        self.next = 0
        self.per_set: dict[str, MetricSums] = {}
        self.counted = self.solved = self.verified = 0
        self.records: list[dict[str, Any]] | None = []
        self.records_path = Path(records_path) if records_path is not None else None
        self._records_file: TextIO | None = None
        if self.records_path is not None:
            self.records_path.parent.mkdir(parents=True, exist_ok=True)
            # open for the accumulator's life (rows stream in batch by batch); close() ends it
            self._records_file = open(self.records_path.with_name(self.records_path.name + ".partial"), "w")  # noqa: SIM115
        # Compact per-step arrays for the halting analysis: [N, T] each.
        self.q_halt = np.full((total, T), np.nan, np.float32)
        self.q_continue = np.full((total, T), np.nan, np.float32)
        self.exact = np.zeros((total, T), bool)
        self.steps = np.zeros(total, np.int32)
        self.first_correct = np.zeros(total, np.int32)  # 0 where not solved (or not known)
        self.valid = np.zeros(total, bool)
        self.solved_rows = np.zeros(total, bool)
        # per puzzle, for the intervals of the rates and means (hrm_eval.evaluation.stats)
        self.token_accuracy = np.zeros(total, np.float64)
        self.difficulty_name = task.difficulty_name if task is not None else None  # e.g. "blanks"
        self.difficulty = np.zeros(total, np.int32)
        self.records_bytes = 0
        self.saved = spool  # the all_preds rows (save_predictions), spooled as they are consumed
        self.answers: dict[str, list[torch.Tensor]] | None = {k: [] for k in ANSWER_KEYS} if keep_answers else None
        self.answer_dtype = torch.uint8 if vocab_size <= 256 else torch.int32
        # test-time scaling's cost per puzzle ([N] each), made at the first scaled row
        self.scaled: dict[str, np.ndarray] | None = None

    def push(self, index: int, row: ScoredRow) -> None:
        self.waiting[index] = row
        while self.next in self.waiting:
            self._consume(self.next, self.waiting.pop(self.next))
            self.next += 1

    def _consume(self, i: int, row: ScoredRow) -> None:
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
        self.token_accuracy[i] = float(m["token_accuracy"])
        if self.difficulty_name is not None and self.task is not None:
            self.difficulty[i] = int(self.task.difficulty(pb.inputs[j].numpy()[None])[0])
            record[self.difficulty_name] = int(self.difficulty[i])
        if isinstance(fin, ScaledRows):
            self._scaled_row(i, fin, k, record)
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
        m: dict[str, torch.Tensor],
        fin: FinishedRows,
        k: int,
        verified: torch.Tensor | None,
        pred: torch.Tensor,
    ) -> dict[str, Any]:
        ex, identifier, steps = int(pb.example_index[j]), int(pb.puzzle_identifiers[j]), int(fin.steps[k])
        q_halt = float(fin.q_halt_logits[k])
        record: dict[str, Any] = {
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

    def _scaled_row(self, i: int, fin: ScaledRows, k: int, record: dict[str, Any]) -> None:
        """A scaled puzzle's cost, in its record and in the arrays of the scaling summary."""
        assert fin.attempts is not None and fin.act_steps_total is not None
        assert fin.solved_at_attempt is not None and fin.verified_at_step is not None
        if self.scaled is None:
            n = len(self.steps)
            self.scaled = {key: np.zeros(n, np.int32) for key in ("attempts", "act_steps_total", "verified_at_step")}
        at = int(fin.solved_at_attempt[k])
        record.update(
            attempts=int(fin.attempts[k]),
            act_steps_total=int(fin.act_steps_total[k]),
            solved_at_attempt=at or None,
            selected_by=fin.selected_by[k],
        )
        self.scaled["attempts"][i] = int(fin.attempts[k])
        self.scaled["act_steps_total"][i] = int(fin.act_steps_total[k])
        self.scaled["verified_at_step"][i] = int(fin.verified_at_step[k])

    def scaling_arrays(self) -> dict[str, np.ndarray] | None:
        """The scaled puzzles' arrays over the valid rows (None without scaling): exact,
        verified (chosen by the rule check), ACT steps of all attempts, attempts, the steps spent
        when an answer verified (0: never), difficulty."""
        if self.scaled is None:
            return None
        v = self.valid
        return {
            "exact": self.solved_rows[v],
            "verified": self.scaled["verified_at_step"][v] > 0,
            **{key: values[v] for key, values in self.scaled.items()},
            "difficulty": self.difficulty[v],
        }

    def _rule_step(self, fin: FinishedRows, k: int) -> int:
        """1-based step at which the model's own Q rule halts (or would have, in a fixed run)."""
        steps = int(fin.steps[k])
        wants = self.model.wants_to_halt(fin.q_halt_by_step[k, :steps], fin.q_continue_by_step[k, :steps])
        wants[-1] = True
        return int(wants.int().argmax()) + 1

    def _emit(self, record: dict[str, Any]) -> None:
        if self._records_file is not None:
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

    def result(self, elapsed: float, halting: dict[str, Any], engine: dict[str, Any]) -> EvaluationResult:
        sums = MetricSums()
        for set_sums in self.per_set.values():
            sums.merge(set_sums)
        count = sums.count
        aggregate: dict[str, Any] = dict(sums.reduced())
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
        # Wilson intervals of the rates from the sums; the mean token accuracy's by bootstrap over puzzles
        aggregate.update(sums.rate_intervals(verified=self.task is not None))
        aggregate["accuracy_ci95"] = bootstrap_mean_interval(self.token_accuracy[v])
        arrays = {
            "q_halt": self.q_halt[v],
            "q_continue": self.q_continue[v],
            "exact": self.exact[v],
            "steps": self.steps[v],
            "solved": self.solved_rows[v],
        }
        fixed = halting["mode"] == FIXED and halting["max_steps"] == self.T
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


def _stack(parts: dict[str, list[torch.Tensor]] | None) -> dict[str, torch.Tensor] | None:
    if parts is None:
        return None
    return {k: torch.stack(v) if v else torch.empty(0) for k, v in parts.items()}
