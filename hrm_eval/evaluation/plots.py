"""PNG plots of one evaluation (need the plots extra: `pip install 'hrm-eval[plots]'`); each
returns the path written, or None when matplotlib is not installed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hrm_eval.inference.halting import ADAPTIVE, FIXED, THRESHOLD
from hrm_eval.utils.io import atomic_write


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt: Any, fig: Any, path: Path) -> str:
    """The figure as a PNG at `path`, written atomically (never a half-written file)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(buf.getvalue())

    atomic_write(path, write)
    return str(path)


def plot_sweep(points: list[dict[str, Any]], path: Path) -> str | None:
    """Exact accuracy against mean ACT steps, one marker per halting rule."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    fixed = [p for p in points if p["rule"].startswith(FIXED)]
    ax.plot([p["mean_steps"] for p in fixed], [p["exact_accuracy"] for p in fixed], "o-", label="fixed steps")
    for p in points:
        if not p["rule"].startswith(FIXED):
            ax.plot(p["mean_steps"], p["exact_accuracy"], "s" if p["rule"].startswith(ADAPTIVE) else "^")
            ax.annotate(p["rule"].replace(f"{THRESHOLD} ", "p>="), (p["mean_steps"], p["exact_accuracy"]), fontsize=7)
    return _accuracy_against_steps(plt, fig, ax, path, "mean ACT steps", "Halting: accuracy against thinking time")


def plot_reliability(calibration: dict[str, Any], path: Path) -> str | None:
    """Reliability diagram of sigmoid(q_halt) at the halting step: share right against mean
    confidence per equal-mass bin (the diagonal is perfect calibration), with ECE / Brier / AUROC."""
    plt = _pyplot()
    at_halt = calibration.get("at_halt", {})
    table = at_halt.get("reliability") or []
    if plt is None or not table:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    conf = [b["mean_confidence"] for b in table]
    acc = [b["accuracy"] for b in table]
    ax.plot(conf, acc, "o-", label="equal-mass bins")
    for b in table:  # how wide each bin's confidence range is
        ax.plot([b["confidence_low"], b["confidence_high"]], [b["accuracy"]] * 2, color="C0", alpha=0.4)
    auroc = at_halt.get("auroc")
    ax.set_title(
        f"Q head at halt: ECE {at_halt['ece']:.3f}, Brier {at_halt['brier']:.3f}, "
        f"AUROC {'n/a' if auroc is None else f'{auroc:.3f}'}",
        fontsize=9,
    )
    ax.set_xlabel("confidence: mean sigmoid(q_halt)")
    ax.set_ylabel("share exactly right")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(plt, fig, path)


def plot_frontier(points: list[dict[str, Any]], path: Path, plain: dict[str, float] | None = None) -> str | None:
    """Test-time scaling's frontier: exact accuracy against mean ACT steps per puzzle, one point
    per budget (all attempts counted), with the plain run beside it when given."""
    plt = _pyplot()
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["mean_act_steps"] for p in points], [p["exact_accuracy"] for p in points], "o-", label="verify")
    for p in points[:: max(1, len(points) // 6)] + points[-1:]:
        ax.annotate(str(p["budget"]), (p["mean_act_steps"], p["exact_accuracy"]), fontsize=7)
    if plain is not None:
        ax.plot(plain["mean_act_steps"], plain["exact_accuracy"], "s", label="plain run")
    xlabel, title = (
        "mean ACT steps per puzzle (all attempts)",
        "Test-time scaling: accuracy against compute (labels: budget)",
    )
    return _accuracy_against_steps(plt, fig, ax, path, xlabel, title)


def _accuracy_against_steps(plt: Any, fig: Any, ax: Any, path: Path, xlabel: str, title: str) -> str:
    """The axes, grid and legend of an exact-accuracy-against-ACT-steps plot, saved to `path`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("exact accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(plt, fig, path)
