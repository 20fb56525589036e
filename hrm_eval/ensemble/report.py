"""The ensemble's terminal table: members, the ensemble (single view and TTA), the oracle,
ARC pass@k, pairwise agreement, notes and warnings (e.g. an ensemble below its best member)."""

from __future__ import annotations

from typing import Any


def format_ensemble(results: dict[str, Any]) -> str:
    lines = _heading(results) + _metric_table(results) + _agreement_table(results["agreement"])
    paired = results.get("best_member", {}).get("paired_test")
    if paired:
        lines.append(f"against the best member: {paired['statement']}")
    lines += [f"note: {note}" for note in results.get("notes", [])]
    lines += [f"warning: {warning}" for warning in results.get("warnings", [])]
    return "\n".join(lines)


def _heading(results: dict[str, Any]) -> list[str]:
    s = results["strategy"]
    prov = results["provenance"]["dataset"]
    head = (
        f"Ensemble: {s['name']} over {len(results['members'])} members on {prov['scored']} puzzles of "
        f"{prov['path']} [{prov['split']}]"
    )
    lines = [head, "-" * len(head)]
    if s.get("weights_source") not in (None, "n/a"):
        lines.append(f"weights ({s['weights_source']}): " + ", ".join(f"{k} {v:.3f}" for k, v in s["weights"].items()))
    if "calibration" in s:
        c = s["calibration"]
        lines.append(
            f"calibration: {c.get('num_puzzles', '?')} puzzles ({c.get('rule', c.get('reused_from'))}), "
            f"disjoint from the {c.get('num_scored_puzzles', prov['scored'])} scored puzzles"
        )
    return lines


def _metric_table(results: dict[str, Any]) -> list[str]:
    s = results["strategy"]
    tta = "tta" in results
    verified = "verified_solve_rate" in results["ensemble"]
    views = results["tta"]["views"] if tta else 1
    name_w = max([len(m["name"]) for m in results["members"]] + [len(f"ensemble ({s['name']}, {views} views)")]) + 2
    cols = ["exact", "token", "q_halt_acc", "lm_loss"] + (["verified"] if verified else [])
    cols += ["exact(TTA)"] if tta else []
    lines = ["".ljust(name_w) + "".join(c.rjust(12) for c in cols) + "  exact 95% interval"]

    def row(label: str, m: dict[str, Any], tta_exact: float | None = None) -> str:
        vals = [m["exact_accuracy"], m["accuracy"], m["q_halt_accuracy"], m["lm_loss"]]
        if verified:
            vals.append(m.get("verified_solve_rate", float("nan")))
        text = label.ljust(name_w) + "".join(f"{v:12.4f}" for v in vals)
        if tta:
            text += f"{tta_exact:12.4f}" if tta_exact is not None else "".rjust(12)
        ci = m.get("exact_accuracy_ci95")  # of the exact column (Wilson; README: Reading the numbers)
        return text + (f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")

    for m in results["members"]:
        lines.append(row(m["name"], m["metrics"], m.get("tta_metrics", {}).get("exact_accuracy")))
    if tta:
        lines.append(row(f"ensemble ({s['name']}, 1 view)", results["tta"]["single_view"]))
        lines.append(
            row(f"ensemble ({s['name']}, {views} views)", results["ensemble"], results["ensemble"]["exact_accuracy"])
        )
    else:
        lines.append(row(f"ensemble ({s['name']})", results["ensemble"]))
    o = results["oracle"]
    text = "oracle (any member)".ljust(name_w) + f"{o['exact_accuracy']:12.4f}"
    if "any_member_any_view_exact_accuracy" in o:
        text += f"   (any member, any view: {o['any_member_any_view_exact_accuracy']:.4f})"
    lines.append(text)
    if "arc" in results:
        for rule in ("strict", "fractional"):
            lines.append(f"ARC {rule} (ensemble): " + " ".join(f"{k}={v:.4f}" for k, v in results["arc"][rule].items()))
    return lines


def _agreement_table(ag: dict[str, Any]) -> list[str]:
    if len(ag["members"]) < 2:
        return []
    w = max(len(n) for n in ag["members"]) + 2
    lines = [
        "",
        "same answer (fraction of puzzles)",
        "".ljust(w + 4) + "".join(f"m{i + 1}".rjust(7) for i in range(len(ag["members"]))),
    ]
    for i, n in enumerate(ag["members"]):
        lines.append(f"m{i + 1}".ljust(4) + n.ljust(w) + "".join(f"{x:7.3f}" for x in ag["same_answer"][i]))
    return lines
