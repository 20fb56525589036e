"""Modes over several checkpoints: ensemble and compare. Both keep member predictions in one
shared cache (the API's default_cache_dir() unless --cache-dir), keyed by checkpoint, data and settings."""

from __future__ import annotations

import logging
from pathlib import Path

from hrm_eval.cli.base import (
    Invocation,
    Mode,
    model_config,
    passed_on,
    replaced_note,
    run_on_ranks,
)
from hrm_eval.ensemble.config import CompareConfig, EnsembleConfig, MembersSettings
from hrm_eval.utils.logging import log_metrics
from hrm_eval.utils.paths import default_output

log = logging.getLogger("hrm_eval")


# ---- ensemble ------------------------------------------------------------------------------------
def members_output(cfg: MembersSettings, mode: str, *names: str | None) -> Path:
    """--output, or a fresh outputs/<mode>/<run or first checkpoint's folder>-...-<time> folder."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    source = cfg.run or (Path(cfg.checkpoints[0]).parent if cfg.checkpoints else "bundled")
    return default_output(mode, source, *names)


def run_ensemble(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.ensemble import evaluate_ensemble, format_ensemble
    from hrm_eval.ensemble.settings import EnsembleSettings

    cfg = inv.config(EnsembleConfig)
    out = members_output(cfg, "ensemble", cfg.strategy)
    settings = EnsembleSettings.from_config(
        cfg, arch_overrides=cfg.arch_overrides or None, model_config=model_config(cfg.model_config_path)
    )
    done = run_on_ranks(
        cfg,
        "ensemble",
        cfg.device,
        out,
        "results.json",
        evaluate_ensemble,
        cfg.checkpoints,
        cfg.data_path,
        settings=settings,
    )
    if done is None:  # a rank other than 0
        return 0
    results, existed = done
    log_metrics(log, results.get("ensemble", {}), "ensemble metrics", strategy=cfg.strategy)
    print(format_ensemble(results))
    print(f"results: {out / 'results.json'}{replaced_note(existed)}")
    if results["strategy"].get("stacker", {}).get("file"):
        print(f"stacker: {results['strategy']['stacker']['file']}")
    return 0


ENSEMBLE = Mode(
    "ensemble",
    "Combine several checkpoints' predictions (average, vote, q_vote, stacking; TTA).",
    run_ensemble,
    EnsembleConfig,
)


# ---- compare -------------------------------------------------------------------------------------
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
