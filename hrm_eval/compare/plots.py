"""The comparison's plots (metric vs step, weight change vs step), when matplotlib is installed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hrm_eval.utils.io import atomic_write


def _write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def write_plots(records: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """metric_vs_step.png and weight_change_vs_step.png; skipped (with the reason) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {"skipped": "matplotlib is not installed (pip install 'hrm-eval[plots]')"}
    # x: the step, or the checkpoint's place in the given order when some step is unknown
    xs = [r["step"] if r["step"] is not None else i for i, r in enumerate(records)]
    xlabel = "step" if all(r["step"] is not None for r in records) else "checkpoint (order given)"
    files = {}
    for name, draw in (("metric_vs_step", _draw_metrics), ("weight_change_vs_step", _draw_weight_change)):
        fig, ax = plt.subplots(figsize=(6.4, 4))
        draw(ax, xs, xlabel, records)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        _write_bytes(out_dir / "plots" / f"{name}.png", buf.getvalue())
        files[name] = str(out_dir / "plots" / f"{name}.png")
    return files


def _draw_metrics(ax: Any, xs: list[int], xlabel: str, records: list[dict[str, Any]]) -> None:
    """Exact and token accuracy by checkpoint; a dashed red line where a checkpoint holds NaN/Inf."""
    for key, label in (("exact_accuracy", "exact accuracy"), ("accuracy", "token accuracy")):
        pts = [(x, r["metrics"][key]) for x, r in zip(xs, records) if r.get("metrics")]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    bad = [x for x, r in zip(xs, records) if r["nonfinite"]]
    for x in bad:
        ax.axvline(x, color="red", linestyle="--", alpha=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("metric")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Metrics by checkpoint" + (" (red: NaN/Inf)" if bad else ""))
    ax.grid(alpha=0.3)
    ax.legend()


def _draw_weight_change(ax: Any, xs: list[int], xlabel: str, records: list[dict[str, Any]]) -> None:
    """The whole model's relative change from the previous checkpoint, on a log scale."""
    pts = [
        (x, r["change_from_previous"]["relative"])
        for x, r in zip(xs, records)
        if (r.get("change_from_previous") or {}).get("relative")
    ]
    if pts:
        ax.plot(*zip(*pts), marker="o", label="whole model")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("relative weight change from previous")
    ax.set_title("Weight change by checkpoint")
    ax.grid(alpha=0.3)
    if pts:
        ax.legend()
