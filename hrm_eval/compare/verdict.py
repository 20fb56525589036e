"""The verdict over measured checkpoints: which one to use (`recommend`, never one with NaN/Inf,
not simply the latest) and a convergence statement only where the measurements support one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hrm_eval.evaluation.stats import paired_test, wilson_interval

RANK_METRICS = ("exact_accuracy", "accuracy")  # higher is better, in this order; then lower lm_loss
PLATEAU_WINDOW = 3


def _standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p on n puzzles, with the Laplace estimate
    (k + 1) / (n + 2) so that 0 / n and n / n do not claim zero uncertainty."""
    if n <= 0:
        return float("inf")
    q = (p * n + 1) / (n + 2)
    return math.sqrt(q * (1 - q) / n)


def recommend(records: list[dict[str, Any]], solved: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The best checkpoint by measured metrics (exact accuracy, then token accuracy, then lower
    lm_loss); checkpoints with NaN/Inf or without metrics are never recommended. With `solved`
    (each checkpoint's per-puzzle solved vector on the same puzzles), the best is tested against
    the runner-up (McNemar exact); when the difference is not significant the earlier of the two
    is recommended (fewer training steps for the same measured quality), and the reason says so."""
    cands = [r for r in records if r.get("metrics") and not r["nonfinite"]]
    if not cands:
        return {
            "checkpoint": None,
            "reason": "no checkpoint was evaluated (no data, or every checkpoint holds NaN/Inf)",
        }
    key = lambda r: tuple(r["metrics"][k] for k in RANK_METRICS) + (-r["metrics"]["lm_loss"],)  # noqa: E731
    ranked = sorted(cands, key=key, reverse=True)
    paired = None
    if len(ranked) > 1 and solved and ranked[0]["name"] in solved and ranked[1]["name"] in solved:
        first, second = ranked[0]["name"], ranked[1]["name"]
        paired = paired_test(solved[first], solved[second], first, second)
        if not paired["significant"] and _earlier(ranked[1], ranked[0]):
            ranked[0], ranked[1] = ranked[1], ranked[0]
    best = ranked[0]
    m = best["metrics"]
    n = m["total_puzzles"]
    se = _standard_error(m["exact_accuracy"], n)
    ci = m.get("exact_accuracy_ci95") or wilson_interval(round(m["exact_accuracy"] * n), n)
    rec = {
        "checkpoint": best["name"],
        "path": best["path"],
        "step": best["step"],
        "metrics": {k: m[k] for k in ("exact_accuracy", "accuracy", "lm_loss")},
        "num_puzzles": n,
        "exact_accuracy_standard_error": se,
        "exact_accuracy_ci95": ci,
    }
    if paired is not None and paired["a"] != best["name"]:
        reason = (
            f"the earlier checkpoint: {paired['a']} measures higher but is not significantly better "
            f"({paired['statement']}), so the one with fewer training steps is preferred; exact accuracy "
            f"{m['exact_accuracy']:.4f} (95% interval {ci[0]:.4f}-{ci[1]:.4f}) on {n} puzzles"
        )
    else:
        reason = (
            f"highest exact accuracy {m['exact_accuracy']:.4f} (95% interval {ci[0]:.4f}-{ci[1]:.4f}, "
            f"+/- {se:.4f} standard error) on {n} puzzles, token accuracy {m['accuracy']:.4f}"
        )
    if paired is not None:
        rec["paired_test"] = paired
    if len(ranked) > 1:
        rec["runner_up"] = ranked[1]["name"]
        if paired is None:
            reason += _runner_up_reason(best, ranked[1])
        elif paired["a"] == best["name"]:
            verdict = "ahead beyond noise" if paired["significant"] else "not significantly better on these puzzles"
            reason += f"; against the runner-up: {paired['statement']} ({verdict})"
    latest = max((r for r in records if r["step"] is not None), key=lambda r: r["step"], default=None)
    if latest is not None and latest["name"] != best["name"]:
        reason += f"; not the latest checkpoint ({latest['name']})"
    rec["reason"] = reason
    return rec


def _earlier(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """a has fewer training steps than b (both known)."""
    return a["step"] is not None and b["step"] is not None and a["step"] < b["step"]


def _runner_up_reason(best: dict[str, Any], second: dict[str, Any]) -> str:
    """How far the recommended checkpoint is ahead of the next best, against measurement noise."""
    m, other = best["metrics"], second["metrics"]
    n = m["total_puzzles"]
    gap = m["exact_accuracy"] - other["exact_accuracy"]
    # 2 standard errors of the difference of two accuracies on these n puzzles
    noise = 2 * math.hypot(_standard_error(m["exact_accuracy"], n), _standard_error(other["exact_accuracy"], n))
    if gap == 0:
        if m["accuracy"] != other["accuracy"]:
            tie = (
                f"; tied on exact accuracy with {second['name']}, ahead on token accuracy "
                f"({m['accuracy']:.4f} vs {other['accuracy']:.4f})"
            )
        else:
            tie = f"; tied with {second['name']} on exact and token accuracy, ahead on lm_loss"
        return tie + "; the difference is not significant on this data"
    if gap <= noise:
        return (
            f"; the runner-up {second['name']} is within measurement noise (exact accuracy gap {gap:.4f} "
            f"<= 2 standard errors {noise:.4f}), so either is a sound choice on this data"
        )
    return f"; ahead of the runner-up {second['name']} by {gap:.4f} (beyond 2 standard errors {noise:.4f})"


def convergence(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A statement only where the measurements support it: the last PLATEAU_WINDOW evaluated
    checkpoints (by step) agree within 2 standard errors on exact accuracy and the weights'
    relative change is not growing; otherwise say what the numbers show instead."""
    ev = [r for r in records if r.get("metrics") and not r["nonfinite"] and r["step"] is not None]
    ev.sort(key=lambda r: r["step"])
    if len(ev) < PLATEAU_WINDOW:
        return {
            "status": "insufficient",
            "statement": f"no convergence statement: {len(ev)} evaluated checkpoint(s) "
            f"with steps, at least {PLATEAU_WINDOW} are needed",
        }
    w = _Window.of(ev[-PLATEAU_WINDOW:])
    status, statement = _convergence_verdict(w)
    return {
        "window_steps": w.steps,
        "exact_accuracy": w.acc,
        "spread": w.spread,
        "noise_2se": w.noise,
        "relative_weight_change": w.changes,
        "status": status,
        "statement": statement,
    }


@dataclass
class _Window:
    """The last evaluated checkpoints, by step: what a convergence statement rests on."""

    steps: list[int]
    acc: list[float]  # exact accuracy of each
    n: int  # puzzles: the fewest any of them was measured on
    changes: list[float | None]  # relative weight change of each interval between them

    @classmethod
    def of(cls, last: list[dict[str, Any]]) -> _Window:
        return cls(
            steps=[r["step"] for r in last],
            acc=[r["metrics"]["exact_accuracy"] for r in last],
            n=min(r["metrics"]["total_puzzles"] for r in last),
            changes=[r.get("change_from_previous", {}).get("relative") for r in last[1:]],
        )

    @property
    def mean(self) -> float:
        return float(np.mean(self.acc))

    @property
    def noise(self) -> float:
        """2 standard errors of a difference between two accuracies on n puzzles."""
        return 2 * math.sqrt(2) * _standard_error(self.mean, self.n)

    @property
    def spread(self) -> float:
        return max(self.acc) - min(self.acc)

    @property
    def trend(self) -> float:
        return self.acc[-1] - self.acc[0]

    @property
    def growing(self) -> bool:
        """The weights move more each interval (the last change over 1.5 times the first):
        not settled, whatever the accuracy says."""
        known = [c for c in self.changes if c is not None]
        return len(known) == len(self.changes) and len(known) >= 2 and known[-1] > known[0] * 1.5

    @property
    def steps_text(self) -> str:
        return ", ".join(str(s) for s in self.steps)


def _convergence_verdict(w: _Window) -> tuple[str, str]:
    """(status, statement) for the window: the first of these that the numbers show."""
    steps, acc, noise = w.steps_text, w.acc, w.noise
    if max(acc) == 0.0:
        return "no_progress", (
            f"no convergence statement: exact accuracy is 0 at steps {steps} "
            "(the model solves none of these puzzles yet)"
        )
    if w.spread <= noise and not w.growing:
        return "plateau", _plateau_statement(w)
    if w.trend > noise:
        return "improving", (
            f"not converged: exact accuracy still rises over steps {steps} "
            f"({acc[0]:.4f} -> {acc[-1]:.4f}, beyond noise {noise:.4f})"
        )
    if w.trend < -noise:
        return "degrading", (
            f"not converged: exact accuracy falls over steps {steps} "
            f"({acc[0]:.4f} -> {acc[-1]:.4f}, beyond noise {noise:.4f}); check for overfitting or instability"
        )
    why = (
        "the weights' change per interval is growing"
        if w.growing
        else f"spread {w.spread:.4f} exceeds noise {noise:.4f}"
    )
    return "unclear", f"no convergence statement: over steps {steps} {why}"


def _plateau_statement(w: _Window) -> str:
    """What the plateau is (at the ceiling, or within noise), and that it proves nothing more."""
    if w.mean >= 1.0 - 1e-12:
        text = f"plateau at the ceiling: exact accuracy 1.0 at steps {w.steps_text}"
    else:
        text = (
            f"plateau in the measurements: exact accuracy at steps {w.steps_text} is "
            f"{', '.join(f'{a:.4f}' for a in w.acc)}, spread {w.spread:.4f} within noise ({w.noise:.4f} = "
            f"2 standard errors of a difference on {w.n} puzzles)"
        )
    if all(c is not None for c in w.changes):
        text += "; relative weight change per interval " + ", ".join(f"{c:.2e}" for c in w.changes)
    return text + (
        ". The last checkpoints agree within measurement noise: a "
        "plateau in these measurements on this data, not a proof of convergence"
    )
