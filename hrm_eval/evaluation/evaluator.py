"""The evaluation loop: run every puzzle through the ACT model and score it.

    dataset batches -> ACT steps (halt_max_steps each, as the public evaluation) -> per-row
    metrics at the last step (public numbers) + per-step Q traces (halting analysis) +
    task verifier -> aggregate / per-puzzle results.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.metrics import MetricSums
from hrm_eval.evaluation.scoring import RowScores, score_rows
from hrm_eval.models import ACTModel
from hrm_eval.models.losses import IGNORE_LABEL_ID

PREDICTION_KEYS = ("inputs", "labels", "puzzle_identifiers", "logits", "q_halt_logits", "q_continue_logits")
ANSWER_KEYS = ("inputs", "puzzle_identifiers", "preds", "q_halt_logits")


@dataclass
class BatchOutput:
    """What one batch produced after its last ACT step (CPU tensors)."""
    logits: torch.Tensor             # [B, L, V] forward dtype
    q_halt_logits: torch.Tensor      # [B] fp32
    q_continue_logits: torch.Tensor  # [B] fp32
    steps: torch.Tensor              # [B] int32
    halted: torch.Tensor             # [B] bool
    q_halt_by_step: torch.Tensor     # [T, B]
    q_continue_by_step: torch.Tensor  # [T, B]
    exact_by_step: torch.Tensor      # [T, B] bool: answer exactly right after step t


@dataclass
class EvaluationResult:
    aggregate_metrics: Dict[str, Any]
    per_set_metrics: Dict[str, Dict[str, float]]
    q_value_analysis: Dict[str, Any]
    per_puzzle_metrics: List[Dict[str, Any]]
    predictions: Optional[Dict[str, torch.Tensor]] = None  # public all_preds layout (with logits)
    answers: Optional[Dict[str, torch.Tensor]] = None      # compact: inputs, puzzle_identifiers, preds, q_halt_logits


class Evaluator:
    """Evaluate one ACT model: `Evaluator(model).evaluate(dataset)`."""

    def __init__(self, model: ACTModel, *, device: str | torch.device = "cpu", batch_size: int = 64,
                 task: Optional[PuzzleTask] = None, progress: bool = True):
        self.model = model.to(device).eval()
        self.config = model.config
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.task = task
        self.progress = progress

    @torch.inference_mode()
    def run_batch(self, batch: Dict[str, torch.Tensor]) -> BatchOutput:
        """All rows start together and run exactly halt_max_steps ACT steps."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        labels = batch["labels"]
        scored = labels != IGNORE_LABEL_ID
        carry = self.model.initial_carry(batch)
        q_halts, q_conts, exacts = [], [], []
        for _ in range(self.config.halt_max_steps):
            carry, out = self.model(carry, batch)
            q_halts.append(out["q_halt_logits"])
            q_conts.append(out["q_continue_logits"])
            exacts.append(((out["logits"].argmax(-1) == labels) | ~scored).all(-1))
            if carry.halted.all():
                break
        return BatchOutput(
            logits=out["logits"].cpu(), q_halt_logits=out["q_halt_logits"].cpu(),
            q_continue_logits=out["q_continue_logits"].cpu(), steps=carry.steps.cpu(), halted=carry.halted.cpu(),
            q_halt_by_step=torch.stack(q_halts).cpu(), q_continue_by_step=torch.stack(q_conts).cpu(),
            exact_by_step=torch.stack(exacts).cpu())

    def evaluate(self, dataset: PuzzleDataset, *, limit: Optional[int] = None,
                 save_predictions: bool = False, keep_answers: bool = False) -> EvaluationResult:
        """`save_predictions` keeps everything the public `all_preds` files hold (logits included);
        `keep_answers` keeps only the argmax answers and q_halt (what ARC voting needs)."""
        total = len(dataset) if limit is None else min(limit, len(dataset))
        per_set: Dict[str, MetricSums] = {}
        done = solved = 0  # for the progress bar
        per_puzzle: List[Dict[str, Any]] = []
        saved: Dict[str, List[torch.Tensor]] = {k: [] for k in PREDICTION_KEYS}
        answers: Dict[str, List[torch.Tensor]] = {k: [] for k in ANSWER_KEYS}
        answer_dtype = torch.uint8 if self.config.vocab_size <= 256 else torch.int32
        T = self.config.halt_max_steps
        exact_by_step = np.zeros(T)
        halt_steps: List[int] = []
        solved_at_halt = 0
        start = time.perf_counter()
        bar = tqdm(total=total, unit="puzzle", desc="evaluate", disable=not self.progress, dynamic_ncols=True)
        for pb in dataset.iter_batches(self.batch_size, limit=limit):
            out = self.run_batch(pb.as_model_batch("cpu"))
            scores = score_rows(out.logits, pb.labels, out.q_halt_logits, loss_type=self.config.loss_type,
                                halted=out.halted, inputs=pb.inputs, task=self.task)
            valid = per_set.setdefault(pb.set_name, MetricSums()).add(scores, out.steps)
            done += int(valid.sum())
            solved += int(scores.exact.sum())

            preds = scores.answers
            halt_step = _first_halt_step(self.model, out.q_halt_by_step, out.q_continue_by_step)  # [B]
            rows_idx = valid.nonzero().flatten()
            exact_by_step += out.exact_by_step[:, rows_idx].sum(1).numpy()
            halt_steps.extend(halt_step[rows_idx].tolist())
            solved_at_halt += int(out.exact_by_step[halt_step[rows_idx] - 1, rows_idx].sum())
            for i in rows_idx.tolist():
                per_puzzle.append(self._puzzle_record(dataset, pb, i, scores, out, int(halt_step[i])))
            if save_predictions:
                for k, v in (("inputs", pb.inputs), ("labels", pb.labels),
                             ("puzzle_identifiers", pb.puzzle_identifiers), ("logits", out.logits),
                             ("q_halt_logits", out.q_halt_logits), ("q_continue_logits", out.q_continue_logits)):
                    saved[k].append(v)
            if keep_answers:
                for k, v in (("inputs", pb.inputs.to(answer_dtype)), ("puzzle_identifiers", pb.puzzle_identifiers),
                             ("preds", preds.to(answer_dtype)), ("q_halt_logits", out.q_halt_logits)):
                    answers[k].append(v)
            bar.update(len(pb.example_index))
            if done:
                bar.set_postfix(exact=f"{solved / done:.3f}")
        bar.close()
        elapsed = time.perf_counter() - start
        sums = MetricSums()
        for set_sums in per_set.values():
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
        )
        if self.task is not None:
            aggregate["verified_solve_rate"] = sums.verified_rate()
        q_analysis = {
            "halting_rule": "q_halt > 0" if not self.model.uses_continue_target else "q_halt > q_continue",
            "exact_accuracy_by_step": (exact_by_step / count).tolist() if count else [],
            "mean_halt_step": float(np.mean(halt_steps)) if halt_steps else 0.0,
            "halt_step_histogram": np.bincount(halt_steps, minlength=T + 1)[1:].tolist() if halt_steps else [],
            "exact_accuracy_at_halt_step": solved_at_halt / count if count else 0.0,
        }
        predictions = {k: torch.cat(v) for k, v in saved.items() if v} if save_predictions else None
        return EvaluationResult(
            aggregate_metrics=aggregate,
            per_set_metrics={k: v.reduced() | {"count": v.count} for k, v in per_set.items()},
            q_value_analysis=q_analysis, per_puzzle_metrics=per_puzzle, predictions=predictions,
            answers={k: torch.cat(v) for k, v in answers.items() if v} if keep_answers else None)

    def _puzzle_record(self, dataset: PuzzleDataset, pb, i: int, scores: RowScores, out: BatchOutput,
                       halt_step: int) -> Dict[str, Any]:
        ex = int(pb.example_index[i])
        identifier = int(pb.puzzle_identifiers[i])
        q_halt = float(out.q_halt_logits[i])
        rows = scores.rows
        record: Dict[str, Any] = {
            "puzzle_id": dataset.example_name(pb.set_name, ex),
            "set": pb.set_name,
            "example_index": ex,
            "puzzle_index": int(pb.puzzle_index[i]),
            "puzzle_identifier": identifier,
            "identifier_name": dataset.identifier_name(identifier),
            "solved": bool(rows["exact"][i]),
            "accuracy": float(rows["token_accuracy"][i]),
            "num_steps": int(out.steps[i]),
            "lm_loss": float(rows["lm_loss"][i]),
            "q_halt_logit": q_halt,
            "q_continue_logit": float(out.q_continue_logits[i]),
            "q_halt_probability": 1.0 / (1.0 + math.exp(-q_halt)) if q_halt > -700 else 0.0,
            "q_halt_by_step": [round(float(x), 5) for x in out.q_halt_by_step[:, i]],
            "solved_by_step": [bool(x) for x in out.exact_by_step[:, i]],
            "halt_step": halt_step,
        }
        if scores.verified is not None:
            record["verified"] = bool(scores.verified[i])
        return record


def _first_halt_step(model: ACTModel, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
    """1-based step at which the model's own Q rule would have halted (else the last step)."""
    wants = model.wants_to_halt(q_halt, q_continue)  # [T, B]
    wants[-1] = True
    return wants.float().argmax(0) + 1
