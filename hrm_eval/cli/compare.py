"""`--mode compare`: the checkpoints' reports side by side and a recommendation. Member
predictions come from the cache ensemble also uses (cli/ensemble.py)."""

from __future__ import annotations

import logging

from hrm_eval.cli.base import Invocation, Mode, passed_on, replaced_note, run_on_ranks
from hrm_eval.cli.ensemble import members_output
from hrm_eval.ensemble.config import CompareConfig

log = logging.getLogger("hrm_eval")


def run_compare(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.compare import REPORT_FILE, compare_checkpoints

    cfg = inv.config(CompareConfig)
    out = members_output(cfg, "compare")
    settings = passed_on(cfg, compare_checkpoints)
    done = run_on_ranks(
        cfg, "compare", cfg.device, out, REPORT_FILE, compare_checkpoints, data=cfg.data_path, **settings
    )
    if done is None:  # a rank other than 0
        return 0
    report, existed = done
    log.info(
        "compared %d checkpoints; recommendation %s",
        len(report["checkpoints"]),
        report["recommendation"]["checkpoint"],
        extra={"event": "metrics", "metrics": {r["name"]: r.get("metrics") for r in report["checkpoints"]}},
    )
    for r in report["checkpoints"]:
        m = r.get("metrics")
        measured = f"exact {m['exact_accuracy']:.4f} token {m['accuracy']:.4f}" if m else r["evaluation"]
        flags = f"  [{'; '.join(r['flags'])}]" if r["flags"] else ""
        print(f"{r['name']:<24} step {str(r['step']):>7}  {measured}{flags}")
    rec = report["recommendation"]
    print(
        f"recommendation: {rec['checkpoint']}: {rec['reason']}"
        if rec["checkpoint"]
        else f"recommendation: none ({rec['reason']})"
    )
    print(f"convergence: {report['convergence']['statement']}")
    print(f"report: {out / REPORT_FILE}{replaced_note(existed)}")
    return 0


COMPARE = Mode(
    "compare",
    "Compare checkpoints (a run's steps): accuracy, agreement, convergence, a recommendation.",
    run_compare,
    CompareConfig,
)
