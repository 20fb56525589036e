"""What halting would give: from the per-step Q values and per-step correctness of a fixed run,
the step each halting rule stops at and whether the answer there is right.

A fixed run records, for every puzzle and ACT step t, q_halt[t], q_continue[t] and whether the
answer after step t is exactly right. A rule stops a puzzle at the first step where it says
halt (never before min_steps, always at the last step), so its exact accuracy and mean steps
follow without running the model again. The sweep does this for the model's own rule and a
range of thresholds on sigmoid(q_halt), so a user can pick the operating point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hrm_eval.evaluation.q_reliability import sigmoid
from hrm_eval.evaluation.stats import paired_test, rate_interval
from hrm_eval.inference.halting import ADAPTIVE, FIXED, THRESHOLD
from hrm_eval.models import ACTModel

SWEEP_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def model_rule_name(model: ACTModel) -> str:
    return "q_halt > q_continue" if model.uses_continue_target else "q_halt > 0"


def model_rule(model: ACTModel, q_halt: np.ndarray, q_continue: np.ndarray) -> np.ndarray:
    """[N, T] bool: where the model's own rule (ACTModel.wants_to_halt) says halt."""
    return model.wants_to_halt(torch.from_numpy(q_halt), torch.from_numpy(q_continue)).numpy()


def stop_steps(wants: np.ndarray, min_steps: int = 1) -> np.ndarray:
    """[N] 1-based step at which each row stops: the first step >= min_steps where `wants`, else T."""
    wants = wants.copy()
    wants[:, : min_steps - 1] = False
    wants[:, -1] = True
    return wants.argmax(1) + 1


def simulate(wants: np.ndarray, exact: np.ndarray, min_steps: int = 1) -> dict[str, float]:
    """Exact accuracy and mean steps of the rule `wants` [N, T] on a fixed run's `exact` [N, T]."""
    n = len(exact)
    if n == 0:
        return {"mean_steps": 0.0, "exact_accuracy": 0.0}
    stop = stop_steps(wants, min_steps)
    return {"mean_steps": float(stop.mean()), "exact_accuracy": float(exact[np.arange(n), stop - 1].mean())}


def halting_analysis(arrays: dict[str, np.ndarray], model: ACTModel, *, fixed: bool) -> dict[str, Any]:
    """The results.json `q_value_analysis`. With fixed halting every step is known, so it also
    shows exact accuracy after each step and what the model's own halting would have given;
    with adaptive halting it shows where puzzles actually stopped."""
    q_halt, q_continue, exact, steps = arrays["q_halt"], arrays["q_continue"], arrays["exact"], arrays["steps"]
    n, T = exact.shape if exact.ndim == 2 else (0, 0)
    out: dict[str, Any] = {"halting_rule": model_rule_name(model)}
    if n == 0:
        return out | {
            "exact_accuracy_by_step": [],
            "mean_halt_step": 0.0,
            "halt_step_histogram": [],
            "exact_accuracy_at_halt_step": 0.0,
        }
    if fixed:
        stop = stop_steps(model_rule(model, q_halt, q_continue))
        out["exact_accuracy_by_step"] = exact.mean(0).tolist()
        at_halt = exact[np.arange(n), stop - 1]
        out["exact_accuracy_at_halt_step"] = float(at_halt.mean())
        out["exact_accuracy_at_halt_step_ci95"] = rate_interval(at_halt)
        # adaptive vs fixed on the same puzzles: is halting by Q's loss (or gain) more than noise?
        out["halting_vs_fixed"] = paired_test(at_halt, exact[:, -1], "halting by Q", f"fixed {T} steps")
    else:  # the run already halted by a rule: where it stopped is what it did
        stop = steps.astype(np.int64)
        out["exact_accuracy_at_halt_step"] = float(exact[np.arange(n), stop - 1].mean())
    out["mean_halt_step"] = float(stop.mean())
    out["halt_step_histogram"] = np.bincount(stop, minlength=T + 1)[1:].tolist()
    return out


def by_difficulty(
    arrays: dict[str, np.ndarray], difficulty: np.ndarray, name: str, model: ACTModel, *, fixed: bool
) -> dict[str, Any]:
    """Exact accuracy and mean steps per difficulty value (`name`, e.g. blanks). A fixed run
    also shows what the model's own halting would have given on the same puzzles, so one run
    answers both "how hard is hard" and "does the model think longer on it"."""
    exact, steps = arrays["exact"], arrays["steps"]
    solved = arrays["solved"]
    wants = model_rule(model, arrays["q_halt"], arrays["q_continue"]) if fixed else None
    rows = []
    for value in np.unique(difficulty).tolist():
        sel = difficulty == value
        row: dict[str, Any] = {
            name: int(value),
            "puzzles": int(sel.sum()),
            "exact_accuracy": float(solved[sel].mean()),
            "exact_accuracy_ci95": rate_interval(solved[sel]),
            "mean_steps": float(steps[sel].mean()),
        }
        if wants is not None:
            adaptive = simulate(wants[sel], exact[sel])
            row["model_halting_exact_accuracy"] = adaptive["exact_accuracy"]
            row["model_halting_mean_steps"] = adaptive["mean_steps"]
        rows.append(row)
    return {"measure": name, "rows": rows}


def halting_sweep(
    arrays: dict[str, np.ndarray], model: ACTModel, thresholds: Sequence[float] = SWEEP_THRESHOLDS
) -> list[dict[str, Any]]:
    """Operating points from one fixed run: fixed at every step count, the model's rule, and
    each threshold on sigmoid(q_halt). Each point: rule, mean_steps, exact_accuracy."""
    q_halt, q_continue, exact = arrays["q_halt"], arrays["q_continue"], arrays["exact"]
    T = exact.shape[1]
    points: list[dict[str, Any]] = []
    for t in range(1, T + 1):
        points.append({"rule": f"{FIXED} {t}", "mean_steps": float(t), "exact_accuracy": float(exact[:, t - 1].mean())})
    points.append(
        {"rule": f"{ADAPTIVE} ({model_rule_name(model)})", **simulate(model_rule(model, q_halt, q_continue), exact)}
    )
    prob = sigmoid(q_halt)
    for p in thresholds:
        points.append({"rule": f"{THRESHOLD} {p:g}", **simulate(prob >= p, exact)})
    return points
