"""`evaluate_ensemble`: several checkpoints (and test-time views) in, one scored ensemble out.

The stages, in order (each a function below or in `calibration`):
    open_ensemble        members (one task layout) -> each member once per puzzle and view
                         (the shared prediction cache)
    calibration_context  the same on --calibration-data, when a strategy learns there
                         (under torchrun every rank runs a share of both; rank 0 goes on alone)
    plan_calibration     the rows a learning strategy is fitted on (--calibration-data, or a
                         seeded held-out fraction of the groups); never scored
    resolve_weights      given, uniform, or learned on the calibration rows
    fit_or_load_stacker  --strategy stacking only
    score_ensemble       the strategy on the scored rows, the same metrics as `evaluate`
    analyse              every member, the oracle (any member right), pairwise agreement,
                         single view vs TTA, and whether the ensemble beats its best member
    task_scores          ARC pass@k (members pooled with the augmentation votes)
    provenance, output   results.json (+ stacker.json) written atomically
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_eval.data.open import resolve_task
from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.ensemble.fitting import (
    CalibrationPlan,
    MemberWeights,
    calibration_context,
    fit_or_load_stacker,
    plan_calibration,
    resolve_weights,
)
from hrm_eval.ensemble.settings import EnsembleSettings
from hrm_eval.ensemble.strategies import (
    Combined,
    LogisticStacker,
    Voters,
    average,
    q_vote,
    stacking,
    vote,
)
from hrm_eval.ensemble.task_scores import ensemble_task_scores
from hrm_eval.ensemble.tta import make_views
from hrm_eval.evaluation.distributed import DistContext
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION, build_provenance
from hrm_eval.evaluation.stats import paired_test
from hrm_eval.members.load import load_members
from hrm_eval.members.predictions import (
    Scored,
    collect_rows,
    default_cache_dir,
    member_predictions,
    open_data_for_checkpoint,
    resolve_checkpoints,
    run_data_path,
)
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_json

log = logging.getLogger("hrm_eval")
RESULTS_FILE = "results.json"


def evaluate_ensemble(
    checkpoints: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    *,
    settings: EnsembleSettings | None = None,
    dist: DistContext | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate an ensemble of checkpoints on a dataset; returns the results dict (also written
    to `<output_dir>/results.json`). How: `settings` and/or `EnsembleSettings` fields as keywords
    (`strategy="vote"`, `limit=64`, ...). With neither `checkpoints` nor `run`, the bundled
    run's checkpoints; `data` defaults to the run's training data (its test split).
    Under torchrun (`dist`), ranks other than 0 run their share of the members and return {}."""
    s = EnsembleSettings.build(settings, **options)
    ctx, notes = open_ensemble(checkpoints, data, s, dist if dist is not None else DistContext())
    cal_ctx = calibration_context(ctx, s)
    if not ctx.dist.is_main:
        return {}
    plan = plan_calibration(ctx, s, cal_ctx)
    weights = resolve_weights(ctx, plan, s)
    stacker = fit_or_load_stacker(ctx, plan, s, notes)
    combination = Combination.for_strategy(s.strategy, weights, stacker[0] if stacker else None)
    ens = combination.score(ctx, plan.scored)

    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "strategy": strategy_record(ctx, s, plan, weights, stacker),
    }
    analysis = analyse(ctx, plan.scored, combination, ens, s)
    results.update(analysis.record)
    results.update(ensemble_task_scores(ctx, plan.scored, s.strategy, ens, weights.weights, results["members"]))
    results["per_puzzle"] = per_puzzle_records(ctx, plan.scored, ens, analysis.member_exact)
    if notes:
        results["notes"] = notes
    if analysis.warnings:
        results["warnings"] = analysis.warnings
    results["provenance"] = ensemble_provenance(ctx, plan, s)
    write_results(results, s)
    return results


# ---- stage: open the members and their predictions ---------------------------------------------
def open_ensemble(
    checkpoints: Sequence[str | Path] | None,
    data: str | Path | None,
    s: EnsembleSettings,
    dist: DistContext | None = None,
) -> tuple[EnsembleContext, list[str]]:
    """(the members' predictions on the scored data, notes about the members). Every mistake
    that needs no model run is reported before any member runs."""
    paths, data_home = resolve_checkpoints(checkpoints, s.run)
    if data is None:
        data = run_data_path(data_home)
        if data is None:
            raise HRMEvalError("no data: give --data DIR|FILE (the run's all_config.yaml names no dataset found here)")
    dev = resolve_device(s.device)
    dataset = open_data_for_checkpoint(data, split=s.split, task=s.task, checkpoint=paths[0])
    members = load_members(
        paths, dataset, device=dev, dtype=s.dtype, overrides=s.arch_overrides, model_config=s.model_config
    )
    s.check_against_members(len(members))
    task = resolve_task(s.task, dataset)
    meta = dataset.metadata
    views = make_views(task, s.tta, seq_len=meta.seq_len, vocab_size=meta.vocab_size, seed=s.seed)
    rows = collect_rows(dataset, s.limit)
    cache = Path(s.cache_dir) if s.cache_dir is not None else default_cache_dir()
    ctx = EnsembleContext(
        members,
        [],
        rows,
        task,
        dataset=dataset,
        views=views,
        device=dev,
        cache_dir=cache,
        dist=dist if dist is not None else DistContext(),
    )
    fingerprint = dataset.fingerprint()
    for m in members:
        p, info = member_predictions(
            m,
            rows,
            views,
            dataset_fingerprint=fingerprint,
            split=s.split,
            limit=s.limit,
            cache_dir=cache,
            device=dev,
            batch_size=s.batch_size,
            progress=s.progress,
            dist=ctx.dist,
        )
        ctx.preds.append(p)  # type: ignore[arg-type]  # None on ranks other than 0
        ctx.cache_info.append(info)
    return ctx, sorted({w for m in members for w in m.warnings})


# ---- stage: score ------------------------------------------------------------------------------
@dataclass
class Combination:
    """How the members' voters become one answer per puzzle, and with which member weights."""

    combine: Callable[[Voters], Combined]
    weights: list[float]

    @classmethod
    def for_strategy(cls, strategy: str, weights: MemberWeights, fitted: LogisticStacker | None) -> Combination:
        if strategy == "stacking":  # the meta-learner weighs the members; voters enter uniformly
            if fitted is None:
                raise ValueError("the stacking strategy needs its fitted stacker")
            M, stacker = len(weights.weights), fitted
            return cls(lambda voters: stacking(voters, stacker), [1.0 / M] * M)
        return cls({"average": average, "vote": vote, "q_vote": q_vote}[strategy], weights.weights)

    def score(self, ctx: EnsembleContext, index: np.ndarray, view_ids: Sequence[int] | None = None) -> Scored:
        """Scored on rows `index` over `view_ids` (default: every view)."""
        views = list(range(ctx.num_views)) if view_ids is None else list(view_ids)
        return ctx.score(index, self.combine, self.weights, views)


def strategy_record(
    ctx: EnsembleContext,
    s: EnsembleSettings,
    plan: CalibrationPlan,
    weights: MemberWeights,
    stacker: tuple[LogisticStacker, dict[str, Any]] | None,
) -> dict[str, Any]:
    info: dict[str, Any] = {"name": s.strategy, "tta_views": len(ctx.views), "seed": s.seed, **weights.info}
    if stacker is not None:
        info["stacker"] = stacker[1]
    if plan.info:
        info["calibration"] = plan.info
    return info


# ---- stage: analyse ----------------------------------------------------------------------------
@dataclass
class Analysis:
    record: dict[str, Any]  # ensemble, members, oracle, agreement, tta, best_member (results.json)
    member_exact: torch.Tensor  # [M, N] bool: each member exactly right (single view) on the scored rows
    warnings: list[str]


def analyse(
    ctx: EnsembleContext, scored: np.ndarray, combination: Combination, ens: Scored, s: EnsembleSettings
) -> Analysis:
    """The ensemble next to every member (single view, and TTA), the oracle, pairwise agreement
    and whether the ensemble scores below its best member."""
    M, multi_view = ctx.num_members, ctx.num_views > 1
    single = [ctx.member_scored(m, scored) for m in range(M)]
    member_rows: list[dict[str, Any]] = []
    for m, (member, sc) in enumerate(zip(ctx.members, single)):
        rec = (
            member.describe()
            | {"weight": combination.weights[m] if s.strategy != "stacking" else None, "metrics": sc.metrics}
            | ctx.cache_info[m]
        )
        if multi_view:
            rec["tta_metrics"] = ctx.score(scored, vote, [1.0] * M, list(range(ctx.num_views)), members=[m]).metrics
        member_rows.append(rec)
    exact = torch.stack([sc.exact for sc in single])  # [M, N]
    out: dict[str, Any] = {
        "ensemble": ens.metrics,
        "members": member_rows,
        "oracle": oracle(ctx, scored, exact),
        "agreement": agreement(ctx, single),
    }
    if multi_view:
        out["tta"] = {
            "views": ctx.num_views,
            "view_names": [v.name for v in ctx.views],
            "single_view": combination.score(ctx, scored, [0]).metrics,
            "tta": ens.metrics,
            "members_single_view": {r["name"]: r["metrics"]["exact_accuracy"] for r in member_rows},
            "members_tta": {r["name"]: r["tta_metrics"]["exact_accuracy"] for r in member_rows},
        }
    best = out["best_member"] = best_member(ens, member_rows, s.strategy)
    # the ensemble against its best member on the same puzzles (single view for the member)
    ens_name = f"the ensemble ({s.strategy})"
    best_index = [r["name"] for r in member_rows].index(best["name"])
    best["paired_test"] = paired_test(ens.exact.numpy(), exact[best_index].numpy(), ens_name, best["name"])
    out["ensemble_below_best_member"] = best["ensemble_below"]
    return Analysis(out, exact, [best["warning"]] if best["ensemble_below"] else [])


def oracle(ctx: EnsembleContext, scored: np.ndarray, exact: torch.Tensor) -> dict[str, Any]:
    """Upper bound of any answer-picking strategy: a puzzle counts when any member is right."""
    out: dict[str, Any] = {
        "exact_accuracy": float(exact.any(0).double().mean()),
        "num_puzzles": int(len(scored)),
        "rule": "a puzzle counts when any member's answer (single view) is exactly right",
    }
    if ctx.num_views > 1:
        per_view = torch.stack(
            [ctx.member_scored(m, scored, v).exact for m in range(ctx.num_members) for v in range(ctx.num_views)]
        )
        out["any_member_any_view_exact_accuracy"] = float(per_view.any(0).double().mean())
    return out


def agreement(ctx: EnsembleContext, scored: list[Scored]) -> dict[str, Any]:
    M = ctx.num_members
    same = [[1.0] * M for _ in range(M)]
    both = [[0.0] * M for _ in range(M)]
    for i in range(M):
        for j in range(M):
            eq = (scored[i].answers == scored[j].answers).all(-1)
            same[i][j] = float(eq.double().mean()) if len(eq) else 0.0
            both[i][j] = float((scored[i].exact & scored[j].exact).double().mean()) if len(eq) else 0.0
    return {
        "members": [m.name for m in ctx.members],
        "same_answer": same,
        "both_right": both,
        "rule": "fraction of scored puzzles on which the two members give the identical answer (single view)",
    }


def best_member(ens: Scored, member_rows: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
    """The member with the highest exact accuracy (single view, as `evaluate` gives it), and
    whether the ensemble scores below it: an ensemble that does is worse than not ensembling."""
    best = max(member_rows, key=lambda r: (r["metrics"]["exact_accuracy"], r["metrics"]["accuracy"]))
    b, e = best["metrics"]["exact_accuracy"], ens.metrics["exact_accuracy"]
    out: dict[str, Any] = {
        "name": best["name"],
        "exact_accuracy": b,
        "ensemble_exact_accuracy": e,
        "ensemble_below": e < b,
    }
    if e < b:
        out["warning"] = (
            f"the ensemble ({strategy}) scores below its best member {best['name']}: exact accuracy "
            f"{e:.4f} vs {b:.4f} on {ens.metrics['total_puzzles']} puzzles; use that checkpoint alone "
            "or another strategy/weights"
        )
        log.warning("%s", out["warning"])
    return out


def per_puzzle_records(
    ctx: EnsembleContext, scored: np.ndarray, ens: Scored, member_exact: torch.Tensor
) -> list[dict[str, Any]]:
    return [
        {
            "puzzle_id": ctx.rows.names[i],
            "solved": bool(ens.exact[j]),
            "members_solved": [bool(x) for x in member_exact[:, j]],
            "num_candidates": int(ens.num_candidates[j]),
            "support": round(float(ens.support[j]), 6),
            "q_halt_probability": round(float(torch.sigmoid(ens.q[j])), 6),
        }
        for j, i in enumerate(scored.tolist())
    ]


# ---- stage: provenance and output --------------------------------------------------------------
def ensemble_provenance(ctx: EnsembleContext, plan: CalibrationPlan, s: EnsembleSettings) -> dict[str, Any]:
    return build_provenance(
        checkpoints=[m.loaded for m in ctx.members],
        dataset=ctx.dataset,
        task=ctx.task,
        device=str(ctx.device),
        batch_size=s.batch_size,
        limit=s.limit,
        dataset_extra={"evaluated": len(ctx.rows), "scored": int(len(plan.scored))},
        evaluation_extra={"requested_dtype": s.dtype, "cache_dir": str(ctx.cache_dir), **ctx.dist.describe()},
    )


def write_results(results: dict[str, Any], s: EnsembleSettings) -> None:
    if s.output_dir is not None:
        atomic_write_json(Path(s.output_dir) / RESULTS_FILE, results)
