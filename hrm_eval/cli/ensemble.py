"""Modes over several checkpoints: ensemble and compare. Both keep member predictions in one
shared cache (outputs/cache by default), keyed by checkpoint, data and settings."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional

from hrm_eval.cli.base import (
    Invocation,
    Mode,
    add_model_flags,
    add_run_flags,
    model_config,
    replaced_note,
    run_on_ranks,
)
from hrm_eval.ensemble.config import CompareConfig, EnsembleConfig, MembersSettings
from hrm_eval.utils.logging import log_metrics
from hrm_eval.utils.paths import default_output

log = logging.getLogger("hrm_eval")
# config fields passed on by name to evaluate_ensemble / compare_checkpoints
ENSEMBLE_SETTINGS = {
    "run",
    "strategy",
    "weights",
    "split",
    "task",
    "dtype",
    "batch_size",
    "limit",
    "tta",
    "calibration_data",
    "calibration_split",
    "calibration_fraction",
    "calibration_limit",
    "stacker",
    "seed",
    "cache_dir",
    "progress",
}
COMPARE_SETTINGS = {"run", "split", "task", "dtype", "batch_size", "limit", "cache_dir", "plots", "progress"}


class Weights(argparse.Action):
    """--weights 0.5 0.3 0.2 | uniform | learned"""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) == 1 and values[0] in ("uniform", "learned"):
            return setattr(namespace, self.dest, values[0])
        try:
            setattr(namespace, self.dest, [float(v) for v in values])
        except ValueError:
            bad = next(v for v in values if not _is_number(v))
            parser.error(f"argument --weights: '{bad}' is not a number (give numbers, or 'uniform' or 'learned')")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def members_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="PATH",
        help="checkpoint files (a run directory means its newest step); default: the bundled run",
    )
    g.add_argument(
        "--run",
        "--run-dir",  # the spelling to use under torchrun, whose own parser takes --run for its --run-path
        dest="run",
        help="every step_<N> of this training run directory",
    )
    g.add_argument("--data", dest="data_path", help="dataset (default: the run's training data, its test split)")
    add_run_flags(g)
    g.add_argument("--cache-dir", help="member prediction cache, shared by ensemble and compare")


# ---- ensemble ------------------------------------------------------------------------------------
def ensemble_arguments(g: argparse._ArgumentGroup) -> None:
    members_arguments(g)
    g.add_argument("--strategy", choices=("average", "vote", "q_vote", "stacking"), help="how members are combined")
    g.add_argument(
        "--weights",
        nargs="+",
        metavar="W",
        action=Weights,
        help="one weight per checkpoint, or 'uniform' / 'learned' (average default: learned from "
        "validation accuracy on the calibration split)",
    )
    g.add_argument(
        "--tta",
        type=int,
        metavar="N",
        help="N test-time views per puzzle, the puzzle itself first (sudoku relabelling and symmetries, "
        "maze dihedral transforms)",
    )
    g.add_argument("--calibration-data", help="puzzles to fit stacking / learn weights on (never scored)")
    g.add_argument("--calibration-split", help="split of --calibration-data (default: --split)")
    g.add_argument(
        "--calibration-fraction",
        type=float,
        help="without --calibration-data, this seeded fraction of --data is held out",
    )
    g.add_argument("--calibration-limit", type=int, help="use only the first N calibration puzzles")
    g.add_argument("--stacker", help="reuse a fitted stacker.json instead of fitting one")
    g.add_argument("--seed", type=int)
    add_model_flags(g)


def members_output(cfg: MembersSettings, mode: str, *names: Optional[str]) -> Path:
    """--output, or a fresh outputs/<mode>/<run or first checkpoint's folder>-...-<time> folder."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    source = cfg.run or (Path(cfg.checkpoints[0]).parent if cfg.checkpoints else "bundled")
    return default_output(mode, source, *names)


def run_ensemble(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.ensemble import evaluate_ensemble, format_ensemble

    cfg = inv.config(EnsembleConfig)
    out = members_output(cfg, "ensemble", cfg.strategy)
    settings = cfg.model_dump(include=ENSEMBLE_SETTINGS)
    settings.update(arch_overrides=cfg.arch_overrides or None, model_config=model_config(cfg.model_config_path))
    done = run_on_ranks(
        cfg, "ensemble", cfg.device, out, "results.json", evaluate_ensemble, cfg.checkpoints, cfg.data_path, **settings
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
    ensemble_arguments,
    run_ensemble,
    EnsembleConfig,
)


# ---- compare -------------------------------------------------------------------------------------
def compare_arguments(g: argparse._ArgumentGroup) -> None:
    members_arguments(g)
    g.add_argument("--no-plots", dest="plots", action="store_false", help="do not draw the PNG plots")


def run_compare(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.compare import REPORT_FILE, compare_checkpoints

    cfg = inv.config(CompareConfig)
    out = members_output(cfg, "compare")
    settings = cfg.model_dump(include=COMPARE_SETTINGS)
    done = run_on_ranks(
        cfg,
        "compare",
        cfg.device,
        out,
        REPORT_FILE,
        compare_checkpoints,
        cfg.checkpoints,
        data=cfg.data_path,
        **settings,
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
    compare_arguments,
    run_compare,
    CompareConfig,
)
