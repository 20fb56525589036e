"""The ensemble's fitting stages, the ones that learn something: plan the calibration split
(the puzzles fitted on), resolve the members' weights, fit or load the stacker. Their
guarantee: nothing learned from is ever scored (calibration and scored puzzles are disjoint
by content hash)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.ensemble.settings import EnsembleSettings
from hrm_eval.ensemble.strategies import (
    LogisticStacker,
    feature_names,
    load_stacker_file,
    stacking_training_data,
    weights_from_accuracy,
)
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION
from hrm_eval.members.predictions import CHUNK, Member, collect_rows, member_predictions, open_data_for_checkpoint
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_json

STACKER_FILE = "stacker.json"


def held_out_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration rows, scored rows): a seeded random `fraction` of the groups (a puzzle and
    its augmentations stay together) is held out for calibration."""
    if not 0 < fraction < 1:
        raise HRMEvalError(f"--calibration-fraction must be between 0 and 1 (exclusive), got {fraction}")
    unique = np.unique(groups)
    if len(unique) < 2:
        raise HRMEvalError("a held-out calibration split needs at least 2 puzzles (groups); give --calibration-data")
    n_cal = min(len(unique) - 1, max(1, int(round(fraction * len(unique)))))
    rng = np.random.default_rng(seed)
    cal_groups = set(rng.permutation(unique)[:n_cal].tolist())
    is_cal = np.array([g in cal_groups for g in groups])
    return np.flatnonzero(is_cal), np.flatnonzero(~is_cal)


def assert_disjoint(cal_hashes: Sequence[str], scored_hashes: Sequence[str], what: str) -> None:
    """The guarantee behind every learned strategy: nothing it learned from is scored."""
    overlap = set(cal_hashes) & set(scored_hashes)
    if overlap:
        raise HRMEvalError(
            f"{what} shares {len(overlap)} puzzles with the scored data; calibration and scored "
            "puzzles must be disjoint"
        )


# ---- stage: plan calibration -------------------------------------------------------------------
@dataclass
class CalibrationPlan:
    """Which rows are scored and, when something is learned, which rows (of which context) it
    is learned from. `info` is what results.json says about it."""

    scored: np.ndarray
    context: EnsembleContext | None = None
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    info: dict[str, Any] = field(default_factory=dict)
    puzzle_hashes: list[str] = field(default_factory=list)

    def learned_from(self) -> EnsembleContext:
        """The context the weights or the stacker are learned from (a plan that learns has one)."""
        if self.context is None:
            raise ValueError("this calibration plan learns nothing: it has no calibration context")
        return self.context


def plan_calibration(
    ctx: EnsembleContext, s: EnsembleSettings, cal_ctx: EnsembleContext | None = None
) -> CalibrationPlan:
    """Everything is scored unless the strategy learns: then --calibration-data (the members'
    predictions there: `calibration_context`), or a seeded held-out fraction of the groups."""
    plan = CalibrationPlan(scored=np.arange(len(ctx.rows)))
    if not s.learns(ctx.num_members):
        return plan
    hashes = ctx.rows.hashes
    if s.calibration_data is not None:
        if cal_ctx is None:
            cal_ctx = calibration_context(ctx, s)
        assert cal_ctx is not None  # a learning strategy with --calibration-data always has one
        scored_set = set(hashes)
        cal_hashes = cal_ctx.rows.hashes
        plan.index = np.array([i for i, h in enumerate(cal_hashes) if h not in scored_set], dtype=np.int64)
        plan.info = {
            "source": str(s.calibration_data),
            "split": s.calibration_split or s.split,
            "fingerprint_sha256": cal_ctx.opened_dataset().fingerprint(),
            "limit": s.calibration_limit,
            "rule": "--calibration-data",
            "dropped_because_also_scored": int(len(cal_hashes) - len(plan.index)),
        }
    else:
        cal_idx, plan.scored = held_out_split(ctx.rows.groups, s.calibration_fraction, s.seed)
        cal_ctx, cal_hashes = ctx, hashes
        scored_set = {hashes[i] for i in plan.scored}
        plan.index = np.array([i for i in cal_idx if hashes[i] not in scored_set], dtype=np.int64)
        plan.info = {
            "source": str(ctx.rows.source),
            "split": s.split,
            "fingerprint_sha256": ctx.opened_dataset().fingerprint(),
            "limit": s.limit,
            "rule": f"seeded held-out fraction {s.calibration_fraction} of the puzzle groups (seed {s.seed})",
            "dropped_because_also_scored": int(len(cal_idx) - len(plan.index)),
        }
    if len(plan.index) == 0:
        raise HRMEvalError("the calibration split is empty (every calibration puzzle is also scored)")
    plan.context = cal_ctx
    plan.puzzle_hashes = sorted({cal_hashes[i] for i in plan.index})
    assert_disjoint(plan.puzzle_hashes, [hashes[i] for i in plan.scored], "the calibration split")
    plan.info.update(num_puzzles=int(len(plan.index)), num_scored_puzzles=int(len(plan.scored)), overlap_with_scored=0)
    return plan


def calibration_context(ctx: EnsembleContext, s: EnsembleSettings) -> EnsembleContext | None:
    """The members' predictions on --calibration-data (same layout as the scored data); None
    when the strategy learns nothing or learns on held-out scored rows. Under torchrun every
    rank runs its share, and only rank 0's context holds the predictions."""
    if not s.learns(ctx.num_members) or s.calibration_data is None:
        return None
    split = s.calibration_split or s.split
    cal_set = open_data_for_checkpoint(
        s.calibration_data, split=split, task=s.task, checkpoint=ctx.members[0].loaded.path
    )
    meta = ctx.opened_dataset().metadata
    for key in ("vocab_size", "seq_len"):
        if getattr(cal_set.metadata, key) != getattr(meta, key):
            raise HRMEvalError(
                f"--calibration-data {s.calibration_data}: {key} {getattr(cal_set.metadata, key)} "
                f"differs from the scored data's {getattr(meta, key)}"
            )
    rows = collect_rows(cal_set, s.calibration_limit)
    fp = cal_set.fingerprint()
    preds = [
        member_predictions(
            m,
            rows,
            ctx.views,
            dataset_fingerprint=fp,
            split=split,
            limit=s.calibration_limit,
            cache_dir=ctx.cache_dir,
            device=ctx.device,
            batch_size=s.batch_size,
            progress=s.progress,
            dist=ctx.dist,
        )[0]
        for m in ctx.members
    ]
    return EnsembleContext(
        ctx.members,
        preds,  # type: ignore[arg-type]  # None on ranks other than 0, which stop before scoring
        rows,
        ctx.task,
        dataset=cal_set,
        views=ctx.views,
        device=ctx.device,
        cache_dir=ctx.cache_dir,
        dist=ctx.dist,
    )


# ---- stage: resolve weights --------------------------------------------------------------------
@dataclass
class MemberWeights:
    mode: str  # given | uniform | learned
    weights: list[float]  # one per member, sums to 1 (stacking: uniform, unused)
    info: dict[str, Any]  # what results.json says about them


def resolve_weights(ctx: EnsembleContext, plan: CalibrationPlan, s: EnsembleSettings) -> MemberWeights:
    """Given numbers, uniform, or proportional to each member's accuracy on the calibration split."""
    M, members = ctx.num_members, ctx.members
    mode = s.weight_mode(M)
    weights = s.given_weights(M) if mode == "given" else [1.0 / M] * M
    info: dict[str, Any] = {}
    if mode == "learned":
        cal = [plan.learned_from().member_scored(m, plan.index) for m in range(M)]
        weights, basis = weights_from_accuracy(
            [c.metrics["exact_accuracy"] for c in cal], [c.metrics["accuracy"] for c in cal]
        )
        info["validation"] = {
            m.name: {"exact_accuracy": c.metrics["exact_accuracy"], "accuracy": c.metrics["accuracy"]}
            for m, c in zip(members, cal)
        }
        info["weights_basis"] = basis
    info["weights"] = {m.name: w for m, w in zip(members, weights)}
    sources = {
        "given": "--weights",
        "uniform": "uniform",
        "learned": "learned on the calibration split (proportional to validation accuracy)",
    }
    info["weights_source"] = sources[mode] if s.strategy != "stacking" else "n/a"
    return MemberWeights(mode, weights, info)


# ---- stage: fit or load the stacker ------------------------------------------------------------
def fit_or_load_stacker(
    ctx: EnsembleContext, plan: CalibrationPlan, s: EnsembleSettings, notes: list[str]
) -> tuple[LogisticStacker, dict[str, Any]] | None:
    """(stacker, what results.json says about it) for --strategy stacking, else None. A loaded
    stacker's calibration puzzles are removed from the scored rows."""
    if s.strategy != "stacking":
        return None
    if s.stacker is not None:
        fitted, stacker_file = _load_stacker(ctx, plan, Path(s.stacker)), Path(s.stacker)
    else:
        fitted, stacker_file = _fit_stacker(ctx, plan, notes), None
        if s.output_dir is not None:
            stacker_file = Path(s.output_dir) / STACKER_FILE
            atomic_write_json(
                stacker_file,
                fitted.to_json(
                    {
                        "schema_version": RESULTS_SCHEMA_VERSION,
                        "members": [m.describe() for m in ctx.members],
                        "tta_views": len(ctx.views),
                        "calibration": dict(plan.info, puzzle_hashes=plan.puzzle_hashes),
                    }
                ),
            )
    info = {
        "file": str(stacker_file) if stacker_file else None,
        "features": fitted.names,
        "fit": fitted.info,
        "coef": dict(zip(fitted.names, [round(float(c), 6) for c in fitted.coef])),
    }
    return fitted, info


def _fit_stacker(ctx: EnsembleContext, plan: CalibrationPlan, notes: list[str]) -> LogisticStacker:
    M, cal = ctx.num_members, plan.learned_from()
    all_views = list(range(len(ctx.views)))
    X, y = [], []
    for start in range(0, len(plan.index), CHUNK):
        idx = torch.as_tensor(plan.index[start : start + CHUNK], dtype=torch.long)
        xs, ys = stacking_training_data(cal.voters(idx, [1.0 / M] * M, all_views), cal.rows.labels[idx])
        X.append(xs)
        y.append(ys)
    fitted = LogisticStacker.fit(torch.cat(X), torch.cat(y), feature_names(M))
    if fitted.info["degenerate"]:
        right = "right" if fitted.info["num_positive"] else "wrong"
        notes.append(
            f"stacking: every candidate answer in the calibration split is {right}; the meta-learner "
            "has nothing to tell apart and falls back to the vote order"
        )
    return fitted


def _load_stacker(ctx: EnsembleContext, plan: CalibrationPlan, path: Path) -> LogisticStacker:
    saved = load_stacker_file(str(path))
    fitted = LogisticStacker.from_json(saved, str(path))
    check_stacker_members(saved, ctx.members, str(path))
    used = set(saved.get("calibration", {}).get("puzzle_hashes", []))
    if not used:
        raise HRMEvalError(f"{path} does not list its calibration puzzles; cannot prove they are not scored")
    hashes = ctx.rows.hashes
    keep = np.array([i for i in plan.scored if hashes[i] not in used], dtype=np.int64)
    plan.info = {k: v for k, v in saved.get("calibration", {}).items() if k != "puzzle_hashes"}
    plan.info.update(reused_from=str(path), excluded_from_scoring=int(len(plan.scored) - len(keep)))
    plan.scored = keep
    if len(keep) == 0:
        raise HRMEvalError(f"every puzzle of {ctx.rows.source} was used to fit {path}: nothing left to score")
    assert_disjoint(sorted(used), [hashes[i] for i in keep], f"the stacker {path}")
    plan.info.update(num_scored_puzzles=int(len(keep)), overlap_with_scored=0)
    return fitted


def check_stacker_members(saved: dict[str, Any], members: list[Member], where: str) -> None:
    """A saved stacker applies only to the very checkpoints it was fitted with, in order."""
    fitted_for = saved.get("members") or []
    if len(fitted_for) != len(members):
        raise HRMEvalError(f"{where} was fitted for {len(fitted_for)} members, this ensemble has {len(members)}")
    for i, (f, m) in enumerate(zip(fitted_for, members), start=1):
        if f.get("sha256") != m.loaded.sha256:
            raise HRMEvalError(
                f"member {i} ({m.loaded.path}) is not the checkpoint {where} was fitted with "
                f"({f.get('path')}, sha256 {str(f.get('sha256'))[:12]}... vs {m.loaded.sha256[:12]}...)"
            )
