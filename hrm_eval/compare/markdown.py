"""CHECKPOINT_EVALUATION_REPORT.md: the comparison's JSON as markdown, one section after another."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def format_report(report: dict[str, Any]) -> str:
    """CHECKPOINT_EVALUATION_REPORT.md: the report's JSON as markdown, one section after another."""
    recs = report["checkpoints"]
    # every module any checkpoint has, in first-seen order: the rows of both per-module tables
    modules = list(OrderedDict.fromkeys(k for r in recs for k in r["module_norms"]))
    lines = _header_section(report)
    lines += _summary_section(recs)
    lines += _recommendation_section(report["recommendation"])
    lines += _calibration_section(recs)
    lines += ["", "## Convergence", "", report["convergence"]["statement"] + "."]
    lines += _findings_section(report["findings"])
    lines += _module_norms_section(recs, modules)
    lines += _module_change_section(recs, modules)
    lines += _plots_section(report["plots"])
    return "\n".join(lines) + "\n"


def _fmt(x: Any, spec: str = ".4f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def _row(cells: Sequence[str]) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(cells) + " |"


def _header_section(report: dict[str, Any]) -> list[str]:
    """Title, date, the checkpoints (and their run) and the data they were measured on."""
    d = report["data"]
    run = f" from run `{report['run']}`" if report["run"] else ""
    lines = ["# Checkpoint evaluation report", "", f"- created: {report['created']}"]
    lines.append(f"- checkpoints: {len(report['checkpoints'])}{run}")
    if d["path"]:
        limit = f" (first {d['limit']})" if d["limit"] else ""
        task = f", task {d['task']}" if d["task"] else ""
        lines.append(f"- data: `{d['path']}` [{d['split']}], {d['num_puzzles']} puzzles{limit}{task}")
    else:
        lines.append("- data: none (weights only; give --data to measure metrics)")
    return lines + [""]


def _summary_section(recs: list[dict[str, Any]]) -> list[str]:
    """One row per checkpoint: metrics, NaN/Inf counts, weight norm and change, flags."""
    return [
        "## Summary",
        "",
        "| checkpoint | step | exact acc [95% interval] | token acc | lm_loss | q_halt acc | NaN/Inf | weight norm "
        "| rel. change | flags |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
        *(_row(_summary_cells(r)) for r in recs),
    ]


def _summary_cells(r: dict[str, Any]) -> list[str]:
    m = r.get("metrics") or {}
    change = (r.get("change_from_previous") or {}).get("relative")
    nan, inf = sum(x["nan"] for x in r["nonfinite"]), sum(x["inf"] for x in r["nonfinite"])
    nonfinite = "none" if not r["nonfinite"] else f"**{nan} NaN, {inf} Inf**"
    # a checkpoint without flags that was not evaluated says why in the flags column
    flags = "; ".join(r["flags"]) or ("" if r["evaluation"] == "ok" else r["evaluation"])
    return [
        r["name"],
        _fmt(r["step"]),
        _with_interval(m, "exact_accuracy"),
        *(_fmt(m.get(k)) for k in ("accuracy", "lm_loss", "q_halt_accuracy")),
        nonfinite,
        _fmt(r["weight_norm"], ".3f"),
        _fmt(change, ".2e"),
        flags,
    ]


def _with_interval(m: dict[str, Any], key: str) -> str:
    """`0.9400 [0.8753, 0.9769]` where the metrics carry the 95% interval (`*_ci95`)."""
    ci = m.get(f"{key}_ci95")
    return _fmt(m.get(key)) + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def _recommendation_section(rec: dict[str, Any]) -> list[str]:
    text = f"**{rec['checkpoint']}** (`{rec['path']}`): {rec['reason']}." if rec["checkpoint"] else rec["reason"] + "."
    return ["", "## Recommendation", "", text]


def _calibration_section(recs: list[dict[str, Any]]) -> list[str]:
    """Can each checkpoint's halting head be trusted: sigmoid(q_halt) against exactness."""
    measured = [r for r in recs if r.get("calibration")]
    if not measured:
        return []
    lines = [
        "",
        "## Q-head calibration",
        "",
        "sigmoid(q_halt) read as the chance the answer is exactly right, at the last ACT step "
        "(ECE over equal-mass bins, Brier, AUROC of q_halt for exactness; lower ECE / Brier is better).",
        "",
        "| checkpoint | ECE | Brier | AUROC | mean confidence | exact |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in measured:
        c = r["calibration"]
        auroc = _fmt(c["auroc"]) if c["auroc"] is not None else f"n/a ({c['auroc_undefined']})"
        cells = [r["name"], _fmt(c["ece"]), _fmt(c["brier"]), auroc, _fmt(c["mean_confidence"]), _fmt(c["accuracy"])]
        lines.append(_row(cells))
    return lines


def _findings_section(findings: list[str]) -> list[str]:
    listed = [f"- {f}" for f in findings] or ["- none: no NaN/Inf, every module moved between checkpoints"]
    return ["", "## Findings", "", *listed]


def _module_table_head(names: list[str]) -> list[str]:
    """Header and alignment rows of a table with one row per module, one column per checkpoint."""
    return ["| module | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]


def _module_norms_section(recs: list[dict[str, Any]], modules: list[str]) -> list[str]:
    lines = ["", "## Weight norms by module", "", *_module_table_head([r["name"] for r in recs])]
    for mod in modules:
        lines.append(_row([mod, *(_fmt(r["module_norms"].get(mod), ".3f") for r in recs)]))
    return lines


def _module_change_section(recs: list[dict[str, Any]], modules: list[str]) -> list[str]:
    """Each checkpoint's change by module from the one before it (none for a single checkpoint)."""
    if len(recs) < 2:
        return []
    later = recs[1:]
    lines = ["", "## Relative change from the previous checkpoint, by module", ""]
    lines += _module_table_head([r["name"] for r in later])
    for mod in modules:
        lines.append(_row([mod, *(_change_cell(r.get("change_from_previous") or {}, mod) for r in later)]))
    return lines


def _change_cell(change: dict[str, Any], mod: str) -> str:
    """A module's relative change over one interval: a bold 0 marks weights that did not move,
    n/a an interval that has no comparison (another architecture, or an unreadable checkpoint)."""
    if not change.get("comparable"):
        return "n/a"
    if mod in change.get("did_not_move", []):
        return "**0 (did not move)**"
    return _fmt((change.get("modules") or {}).get(mod), ".2e")


def _plots_section(plots: dict[str, Any]) -> list[str]:
    lines = ["", "## Plots", ""]
    if "skipped" in plots:
        return lines + [f"Skipped: {plots['skipped']}."]
    return lines + [f"![{k}](plots/{Path(v).name})" for k, v in plots.items()]
