"""Can the halting head be trusted? Calibration of sigmoid(q_halt) as "my answer is right".

The Q head is trained (public ACTLossHead) with BCE(q_halt, answer exactly right), so
sigmoid(q_halt) claims a probability of being right. Four views of how far to trust it:

- reliability table: puzzles sorted by confidence and cut into bins of (nearly) equal count
  ("equal mass": every bin holds as many puzzles, so no bin's accuracy rests on a handful);
  per bin the mean confidence and the share actually right.
- ECE (expected calibration error) = sum over bins of (bin count / N) * |mean confidence - accuracy|.
- Brier score = mean of (confidence - right)^2 (0 is perfect; always saying 0.5 scores 0.25).
- AUROC of q_halt for "right": the chance that a random right answer gets a higher q_halt
  than a random wrong one (ties count one half), 0.5 = no better than chance. Ranked on the
  logits, which do not saturate to ties as sigmoid does in float32. Undefined when every
  answer is right or every one is wrong: then null, with the reason.

(Named for the Q head's reliability: the ensemble's "calibration split", the held-out puzzles
its stacker or weights are fitted on, is another thing, in `hrm_eval.ensemble.fitting`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_BINS = 10
CALIBRATION_DEFINITION = (
    "confidence = sigmoid(q_halt), read as the chance the answer is exactly right. ECE: puzzles sorted by "
    "confidence into equal-count bins, sum of (bin share) * |mean confidence - share right|. Brier: mean "
    "(confidence - right)^2. AUROC: chance a right answer has a higher q_halt than a wrong one (ties half), "
    "null when all answers are right or all wrong. at_halt: at the step each puzzle stopped; by_step: after "
    "each ACT step, over the puzzles that ran it."
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise 1 / (1 + exp(-x)) in float64, without overflow warnings."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -80.0, 80.0)))


def equal_mass_bins(confidence: np.ndarray, num_bins: int = DEFAULT_BINS) -> list[np.ndarray]:
    """Indices of the puzzles in each bin: sorted by confidence (stable, so ties keep their
    order), cut into min(num_bins, N) bins whose sizes differ by at most one."""
    order = np.argsort(confidence, kind="stable")
    if len(order) == 0:
        return []
    return list(np.array_split(order, min(num_bins, len(order))))


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, num_bins: int = DEFAULT_BINS
) -> list[dict[str, float]]:
    """Per equal-mass bin: count, confidence range, mean confidence, accuracy, gap (accuracy - confidence)."""
    rows = []
    for b in equal_mass_bins(confidence, num_bins):
        conf, acc = float(confidence[b].mean()), float(correct[b].mean())
        rows.append(
            {
                "count": int(len(b)),
                "confidence_low": float(confidence[b].min()),
                "confidence_high": float(confidence[b].max()),
                "mean_confidence": conf,
                "accuracy": acc,
                "gap": acc - conf,
            }
        )
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, num_bins: int = DEFAULT_BINS) -> float:
    n = len(confidence)
    table = reliability_table(confidence, correct, num_bins)
    return float(sum(r["count"] / n * abs(r["gap"]) for r in table)) if n else 0.0


def brier_score(confidence: np.ndarray, correct: np.ndarray) -> float:
    return float(np.mean((confidence - correct.astype(np.float64)) ** 2)) if len(confidence) else 0.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # start of each run of equal values, and the run each sorted position belongs to
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    run = np.cumsum(np.r_[True, sorted_x[1:] != sorted_x[:-1]]) - 1
    ranks = np.empty(len(x), np.float64)
    ranks[order] = (starts[run] + 1 + ends[run]) / 2.0  # mean of ranks start+1 .. end
    return ranks


def auroc(score: np.ndarray, correct: np.ndarray) -> float | None:
    """Area under the ROC curve of `score` for `correct` (Mann-Whitney U with average ranks);
    None when only one class is present."""
    pos = int(correct.sum())
    neg = len(correct) - pos
    if pos == 0 or neg == 0:
        return None
    r = average_ranks(np.asarray(score, np.float64))
    return float((r[correct.astype(bool)].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def calibration_report(
    q_halt_logits: np.ndarray, correct: np.ndarray, *, num_bins: int = DEFAULT_BINS, table: bool = True
) -> dict[str, Any]:
    """ECE, Brier, AUROC (and the reliability table) of sigmoid(q_halt) for `correct`, over the given puzzles."""
    q = np.asarray(q_halt_logits, np.float64)
    y = np.asarray(correct, bool)
    conf = sigmoid(q)
    n, pos = len(q), int(y.sum())
    out: dict[str, Any] = {
        "count": n,
        "correct": pos,
        "mean_confidence": float(conf.mean()) if n else None,
        "accuracy": pos / n if n else None,
        "ece": expected_calibration_error(conf, y, num_bins) if n else None,
        "brier": brier_score(conf, y) if n else None,
        "auroc": auroc(q, y),
    }
    if out["auroc"] is None:
        out["auroc_undefined"] = "no puzzles" if n == 0 else f"all {n} answers {'right' if pos == n else 'wrong'}"
    if table:
        out["reliability"] = reliability_table(conf, y, num_bins) if n else []
    return out


def calibration_analysis(arrays: dict[str, np.ndarray], *, num_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """results.json `q_value_analysis.calibration`: at the step each puzzle stopped (with the
    reliability table) and after every ACT step, over the puzzles that ran that step
    (`arrays`: q_halt [N, T] (NaN where not run), exact [N, T], steps [N])."""
    q_halt, exact, steps = arrays["q_halt"], arrays["exact"], arrays["steps"].astype(np.int64)
    n = len(steps)
    rows = np.arange(n)
    last = np.maximum(steps, 1) - 1
    at_halt = calibration_report(
        q_halt[rows, last] if n else np.zeros(0), exact[rows, last] if n else np.zeros(0, bool), num_bins=num_bins
    )
    by_step = []
    for t in range(q_halt.shape[1] if q_halt.ndim == 2 else 0):
        ran = ~np.isnan(q_halt[:, t])
        if ran.any():
            by_step.append({"step": t + 1} | calibration_report(q_halt[ran, t], exact[ran, t], table=False))
    return {
        "confidence": "sigmoid(q_halt)",
        "binning": f"{num_bins} equal-mass bins",
        "at_halt": at_halt,
        "by_step": by_step,
    }
