"""`--mode ensemble`. Ensemble and compare keep member predictions in one shared cache (the
API's default_cache_dir() unless --cache-dir), keyed by checkpoint, data and settings."""

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
from hrm_eval.ensemble.config import EnsembleConfig, MembersSettings
from hrm_eval.utils.logging import log_metrics
from hrm_eval.utils.paths import default_output

log = logging.getLogger("hrm_eval")


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
    # the config's fields of EnsembleSettings' names; the model's settings in the loader's form
    model = {"arch_overrides": cfg.arch_overrides or None, "model_config": model_config(cfg.model_config_path)}
    settings = EnsembleSettings.build(None, **(passed_on(cfg, EnsembleSettings) | model))
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
