"""`evaluate_ensemble`: several checkpoints (and test-time views) in, one scored ensemble out.

    members (one task layout) -> each member once per puzzle and view (cached on disk)
    -> calibration split when the strategy learns something (stacking, learned weights):
       --calibration-data, or a seeded held-out fraction of the groups; never scored
    -> strategy on the scored puzzles -> the same metrics as `evaluate` for the ensemble,
       every member, the oracle (any member right), pairwise agreement, single view vs TTA
    -> results.json (+ stacker.json) written atomically, and a terminal table.
"""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

import hrm_eval
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.ensemble.members import (BUNDLED_RUN, Member, PuzzleRows, collect_rows, load_members, log_probs,
                                       member_predictions, run_checkpoints, run_data_path, checkpoint_layout)
from hrm_eval.ensemble.strategies import (STRATEGIES, Combined, LogisticStacker, Voters, average, check_weights,
                                          feature_names, load_stacker_file, q_vote, stacking, stacking_training_data,
                                          vote, weights_from_accuracy)
from hrm_eval.ensemble.tta import make_views
from hrm_eval.evaluation.metrics import MetricSums
from hrm_eval.evaluation.run import open_dataset, resolve_task
from hrm_eval.models.losses import row_metrics
from hrm_eval.models.loading import resolve_checkpoint_path
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_json

log = logging.getLogger("hrm_eval")
CHUNK = 256                       # puzzles combined at once (bounds float64 memory)
ENSEMBLE_LOSS = "softmax_cross_entropy"  # the ensemble's output is already normalised log-probabilities
RESULTS_FILE = "results.json"
STACKER_FILE = "stacker.json"

Weights = Union[None, str, Sequence[float]]


# ---- scoring one set of answers ----------------------------------------------------------------
@dataclass
class Scored:
    metrics: Dict[str, Any]
    exact: torch.Tensor        # [N] bool
    answers: torch.Tensor      # [N, L]
    q: torch.Tensor            # [N] q_halt logit (confidence)
    support: torch.Tensor      # [N]
    num_candidates: torch.Tensor  # [N]


def _metrics(sums: MetricSums, verified: Optional[int]) -> Dict[str, Any]:
    m: Dict[str, Any] = dict(sums.reduced())
    m["total_puzzles"] = sums.count
    if verified is not None:
        m["verified_solve_rate"] = verified / sums.count if sums.count else 0.0
    return m


def _verified(task: Optional[PuzzleTask], inputs: torch.Tensor, answers: torch.Tensor, labels: torch.Tensor,
              valid: torch.Tensor) -> Optional[int]:
    if task is None:
        return None
    return sum(bool(task.verify(inputs[i].numpy(), answers[i].numpy(), labels[i].numpy()))
               for i in range(len(inputs)) if valid[i])


class Context:
    """Everything the strategies need about the members' predictions on one set of rows."""

    def __init__(self, members: List[Member], preds: List[Dict[str, torch.Tensor]], rows: PuzzleRows,
                 task: Optional[PuzzleTask]):
        self.members, self.preds, self.rows, self.task = members, preds, rows, task
        self.num_views = preds[0]["logits"].shape[0]

    def voters(self, idx: torch.Tensor, member_weights: Sequence[float], view_ids: Sequence[int],
               members: Optional[Sequence[int]] = None) -> Voters:
        members = list(range(len(self.members))) if members is None else list(members)
        logp, q, steps, halted, weight, owner = [], [], [], [], [], []
        for j, m in enumerate(members):
            p = self.preds[m]
            for v in view_ids:
                logp.append(log_probs(p["logits"][v, idx], self.members[m].config.loss_type))
                q.append(p["q_halt"][v, idx].double())
                steps.append(p["steps"][v, idx].double())
                halted.append(p["halted"][v, idx])
                weight.append(member_weights[m] / len(view_ids))
                owner.append(j)
        w = torch.tensor(weight, dtype=torch.float64)
        return Voters(torch.stack(logp), torch.stack(q), torch.stack(steps), torch.stack(halted), w / w.sum(),
                      torch.tensor(owner), len(members))

    def score(self, index: np.ndarray, combine: Callable[[Voters], Combined], member_weights: Sequence[float],
              view_ids: Sequence[int], members: Optional[Sequence[int]] = None) -> Scored:
        sums, verified, parts = MetricSums(), 0, []
        for start in range(0, len(index), CHUNK):
            idx = torch.as_tensor(index[start:start + CHUNK], dtype=torch.long)
            comb = combine(self.voters(idx, member_weights, view_ids, members))
            labels = self.rows.labels[idx]
            rows = row_metrics(comb.logp, labels, comb.q, ENSEMBLE_LOSS)
            valid = sums.add(rows, comb.steps, comb.halted)
            answers = comb.answer
            v = _verified(self.task, self.rows.inputs[idx], answers, labels, valid)
            verified = None if v is None else verified + v
            parts.append((rows["exact"] & valid, answers, comb.q, comb.support, comb.num_candidates))
        cat = [torch.cat(x) for x in zip(*parts)]
        return Scored(_metrics(sums, verified), *cat)

    def member_scored(self, m: int, index: np.ndarray, view: int = 0) -> Scored:
        """One member in one view, scored exactly as `evaluate` scores it (its own loss)."""
        p, cfg = self.preds[m], self.members[m].config
        sums, verified, parts = MetricSums(), 0, []
        for start in range(0, len(index), CHUNK):
            idx = torch.as_tensor(index[start:start + CHUNK], dtype=torch.long)
            logits, labels = p["logits"][view, idx], self.rows.labels[idx]
            rows = row_metrics(logits, labels, p["q_halt"][view, idx], cfg.loss_type)
            valid = sums.add(rows, p["steps"][view, idx], p["halted"][view, idx])
            answers = logits.argmax(-1)
            v = _verified(self.task, self.rows.inputs[idx], answers, labels, valid)
            verified = None if v is None else verified + v
            parts.append((rows["exact"] & valid, answers, p["q_halt"][view, idx].double(),
                          torch.ones(len(idx), dtype=torch.float64), torch.ones(len(idx), dtype=torch.long)))
        cat = [torch.cat(x) for x in zip(*parts)]
        return Scored(_metrics(sums, verified), *cat)


# ---- calibration -------------------------------------------------------------------------------
def held_out_split(groups: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
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
        raise HRMEvalError(f"{what} shares {len(overlap)} puzzles with the scored data; calibration and scored "
                           "puzzles must be disjoint")


# ---- ARC ---------------------------------------------------------------------------------------
def _arc_pool_class():
    from hrm_eval.evaluation.arc_scoring import ArcVotePool

    class WeightedArcVotePool(ArcVotePool):
        """The ARC scorer's pool where a block of rows can count with a weight (a member's
        weight); `by_q` ranks by summed weight x sigmoid(q_halt) (q_vote)."""

        def __init__(self, data_dir, *, test_set=None, by_q: bool = False):
            super().__init__(data_dir, test_set=test_set)
            self.by_q = by_q

        def add_weighted(self, identifiers, inputs, preds, q_halt_logits, weight: float, where: str) -> None:
            main, self.votes = self.votes, {}
            try:
                self.add(identifiers, inputs, preds, q_halt_logits, where=where)
            finally:
                scratch, self.votes = self.votes, main
            for key, table in scratch.items():
                dest = main.setdefault(key, {})
                for h, (count, q_sum) in table.items():
                    stats = dest.setdefault(h, [0, 0.0])
                    stats[0] += weight * count
                    stats[1] += weight * q_sum

        def ranked(self, task_id, index):
            pooled = [(h, _tidy(c), s / c if c else 0.0, s) for h, (c, s) in self.votes.get((task_id, index), {}).items()]
            if self.by_q:
                pooled.sort(key=lambda x: (round(x[3], 12), round(x[1], 12)), reverse=True)
            else:
                pooled.sort(key=lambda x: (round(x[1], 12), round(x[2], 12)), reverse=True)
            return [(h, c, q) for h, c, q, _ in pooled]

    return WeightedArcVotePool


def _tidy(x: float) -> Union[int, float]:
    return int(round(x)) if abs(x - round(x)) < 1e-9 else float(x)


def _arc_test_set(dataset: PuzzleDataset, rows: PuzzleRows):
    """The ARC test set restricted to the tasks that have scored rows (a held-out calibration
    task or a --limit must not count as a failure)."""
    from hrm_eval.data.tasks.arc import parse_puzzle_name
    from hrm_eval.evaluation.arc_scoring import ArcTestSet

    test_set = ArcTestSet(dataset.path)
    present = {parse_puzzle_name(test_set.identifiers[int(i)])[0] for i in rows.puzzle_identifiers.tolist() if int(i) != 0}
    test_set.task_ids = [t for t in test_set.task_ids if t in present]
    return test_set


def _arc_scores(pool) -> Dict[str, Any]:
    scores, _ = pool.result()
    return {"num_tasks": scores["num_tasks"], "strict": scores["strict"], "fractional": scores["fractional"]}


# ---- the entry point -------------------------------------------------------------------------
def evaluate_ensemble(checkpoints: Optional[Sequence[Union[str, Path]]] = None, data: Optional[Union[str, Path]] = None, *,
                      run: Optional[Union[str, Path]] = None, strategy: str = "average", weights: Weights = None,
                      output_dir: Optional[Union[str, Path]] = None, split: str = "test", task: Optional[str] = None,
                      device: str = "auto", dtype: Optional[str] = None, batch_size: int = 64,
                      limit: Optional[int] = None, tta: int = 1, calibration_data: Optional[Union[str, Path]] = None,
                      calibration_split: Optional[str] = None, calibration_fraction: float = 0.2,
                      calibration_limit: Optional[int] = None, stacker: Optional[Union[str, Path]] = None,
                      seed: int = 0, cache_dir: Optional[Union[str, Path]] = None,
                      arch_overrides: Optional[Dict[str, Any]] = None, model_config: Optional[Dict[str, Any]] = None,
                      progress: bool = True) -> Dict[str, Any]:
    """Evaluate an ensemble of checkpoints on a dataset; returns the results dict (also written
    to `<output_dir>/results.json`). With neither `checkpoints` nor `run`, the bundled run's
    checkpoints; `data` defaults to the run's training data (its test split)."""
    if strategy not in STRATEGIES:
        raise HRMEvalError(f"unknown strategy '{strategy}' (choose {', '.join(STRATEGIES)})")
    if batch_size < 1:
        raise HRMEvalError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise HRMEvalError(f"--limit must be at least 1, got {limit}")
    if stacker is not None and strategy != "stacking":
        raise HRMEvalError(f"--stacker applies to --strategy stacking, not {strategy}")
    if strategy == "stacking" and weights is not None:
        raise HRMEvalError("--weights does not apply to --strategy stacking (the meta-learner weighs the members)")
    checkpoints, data = _resolve_members_and_data(checkpoints, data, run)
    dev = resolve_device(device)

    dataset = _open(data, split, task, checkpoints[0])
    members = load_members(checkpoints, dataset, device=dev, dtype=dtype, overrides=arch_overrides,
                           model_config=model_config)
    M = len(members)
    mode = _weight_mode(weights, strategy, M)
    member_weights = check_weights(weights, M) if mode == "given" else [1.0 / M] * M
    if calibration_data is not None and not ((strategy == "stacking" and stacker is None) or mode == "learned"):
        raise HRMEvalError("--calibration-data is used only to fit --strategy stacking or to learn --weights; "
                           f"--strategy {strategy} with {mode} weights learns nothing")
    puzzle_task = resolve_task(task, dataset)
    meta = dataset.metadata
    views = make_views(puzzle_task, tta, seq_len=meta.seq_len, vocab_size=meta.vocab_size, seed=seed)
    rows = collect_rows(dataset, limit)
    fingerprint = dataset.fingerprint()
    cache = Path(cache_dir) if cache_dir is not None else (Path(output_dir) / "cache" if output_dir is not None else None)
    preds, cache_info = [], []
    for m in members:
        p, info = member_predictions(m, rows, views, dataset_fingerprint=fingerprint, split=split, limit=limit,
                                     cache_dir=cache, device=dev, batch_size=batch_size, progress=progress)
        preds.append(p)
        cache_info.append(info)
    ctx = Context(members, preds, rows, puzzle_task)
    notes: List[str] = sorted({w for m in members for w in m.warnings})

    # -- weights and calibration
    needs_cal = (strategy == "stacking" and stacker is None) or mode == "learned"
    hashes = rows.hashes
    scored_idx = np.arange(len(rows))
    calibration: Dict[str, Any] = {}
    cal_ctx: Optional[Context] = None
    cal_idx: Optional[np.ndarray] = None
    if needs_cal:
        if calibration_data is not None:
            cal_set = _open(calibration_data, calibration_split or split, task, checkpoints[0])
            for key in ("vocab_size", "seq_len"):
                if getattr(cal_set.metadata, key) != getattr(meta, key):
                    raise HRMEvalError(f"--calibration-data {calibration_data}: {key} {getattr(cal_set.metadata, key)} "
                                       f"differs from the scored data's {getattr(meta, key)}")
            cal_rows = collect_rows(cal_set, calibration_limit)
            cal_fp = cal_set.fingerprint()
            cal_preds = [member_predictions(m, cal_rows, views, dataset_fingerprint=cal_fp,
                                            split=calibration_split or split, limit=calibration_limit, cache_dir=cache,
                                            device=dev, batch_size=batch_size, progress=progress)[0] for m in members]
            cal_ctx = Context(members, cal_preds, cal_rows, puzzle_task)
            scored_set = set(hashes)
            cal_hashes = cal_rows.hashes
            cal_idx = np.array([i for i, h in enumerate(cal_hashes) if h not in scored_set], dtype=np.int64)
            calibration = {"source": str(calibration_data), "split": calibration_split or split,
                           "fingerprint_sha256": cal_fp, "limit": calibration_limit,
                           "rule": "--calibration-data",
                           "dropped_because_also_scored": int(len(cal_rows) - len(cal_idx))}
        else:
            cal_idx, scored_idx = held_out_split(rows.groups, calibration_fraction, seed)
            cal_ctx = ctx
            cal_hashes = hashes
            scored_set = {hashes[i] for i in scored_idx}
            dup = [i for i in cal_idx if hashes[i] in scored_set]
            cal_idx = np.array([i for i in cal_idx if hashes[i] not in scored_set], dtype=np.int64)
            calibration = {"source": str(data), "split": split, "fingerprint_sha256": fingerprint, "limit": limit,
                           "rule": f"seeded held-out fraction {calibration_fraction} of the puzzle groups (seed {seed})",
                           "dropped_because_also_scored": len(dup)}
        if len(cal_idx) == 0:
            raise HRMEvalError("the calibration split is empty (every calibration puzzle is also scored)")
        cal_puzzle_hashes = sorted({cal_hashes[i] for i in cal_idx})
        assert_disjoint(cal_puzzle_hashes, [hashes[i] for i in scored_idx], "the calibration split")
        calibration.update(num_puzzles=int(len(cal_idx)), num_scored_puzzles=int(len(scored_idx)),
                           overlap_with_scored=0)
    strategy_info: Dict[str, Any] = {"name": strategy, "tta_views": len(views), "seed": seed}

    if mode == "learned":
        cal_members = [cal_ctx.member_scored(m, cal_idx) for m in range(M)]
        member_weights, basis = weights_from_accuracy([s.metrics["exact_accuracy"] for s in cal_members],
                                                      [s.metrics["accuracy"] for s in cal_members])
        strategy_info["validation"] = {m.name: {"exact_accuracy": s.metrics["exact_accuracy"],
                                                "accuracy": s.metrics["accuracy"]} for m, s in zip(members, cal_members)}
        strategy_info["weights_basis"] = basis
    strategy_info["weights"] = {m.name: w for m, w in zip(members, member_weights)}
    strategy_info["weights_source"] = {"given": "--weights", "uniform": "uniform", "learned": "learned on the calibration "
                                       "split (proportional to validation accuracy)"}[mode] if strategy != "stacking" else "n/a"

    fitted: Optional[LogisticStacker] = None
    stacker_file: Optional[Path] = None
    if strategy == "stacking":
        all_views = list(range(len(views)))
        if stacker is not None:
            saved = load_stacker_file(str(stacker))
            fitted = LogisticStacker.from_json(saved, str(stacker))
            _check_stacker_members(saved, members, str(stacker))
            used = set(saved.get("calibration", {}).get("puzzle_hashes", []))
            if not used:
                raise HRMEvalError(f"{stacker} does not list its calibration puzzles; cannot prove they are not scored")
            keep = np.array([i for i in scored_idx if hashes[i] not in used], dtype=np.int64)
            calibration = dict(saved.get("calibration", {}), puzzle_hashes=None, reused_from=str(stacker),
                               excluded_from_scoring=int(len(scored_idx) - len(keep)))
            calibration.pop("puzzle_hashes")
            scored_idx = keep
            if len(scored_idx) == 0:
                raise HRMEvalError(f"every puzzle of {data} was used to fit {stacker}: nothing left to score")
            assert_disjoint(sorted(used), [hashes[i] for i in scored_idx], f"the stacker {stacker}")
            calibration.update(num_scored_puzzles=int(len(scored_idx)), overlap_with_scored=0)
        else:
            X, y = [], []
            for start in range(0, len(cal_idx), CHUNK):
                idx = torch.as_tensor(cal_idx[start:start + CHUNK], dtype=torch.long)
                xs, ys = stacking_training_data(cal_ctx.voters(idx, [1.0 / M] * M, all_views), cal_ctx.rows.labels[idx])
                X.append(xs)
                y.append(ys)
            fitted = LogisticStacker.fit(torch.cat(X), torch.cat(y), feature_names(M))
            if fitted.info["degenerate"]:
                right = "right" if fitted.info["num_positive"] else "wrong"
                notes.append(f"stacking: every candidate answer in the calibration split is {right}; the meta-learner "
                             "has nothing to tell apart and falls back to the vote order")
            if output_dir is not None:
                stacker_file = Path(output_dir) / STACKER_FILE
                atomic_write_json(stacker_file, fitted.to_json({
                    "members": [m.describe() for m in members], "tta_views": len(views),
                    "calibration": dict(calibration, puzzle_hashes=cal_puzzle_hashes)}))
        strategy_info["stacker"] = {"file": str(stacker_file or stacker) if (stacker_file or stacker) else None,
                                    "features": fitted.names, "fit": fitted.info,
                                    "coef": dict(zip(fitted.names, [round(float(c), 6) for c in fitted.coef]))}
    if calibration:
        strategy_info["calibration"] = calibration

    combine = _combiner(strategy, fitted)
    weights_for_combine = [1.0 / M] * M if strategy == "stacking" else member_weights
    all_views = list(range(len(views)))
    ens = ctx.score(scored_idx, combine, weights_for_combine, all_views)

    # -- members, oracle, agreement, TTA
    member_single = [ctx.member_scored(m, scored_idx) for m in range(M)]
    member_rows: List[Dict[str, Any]] = []
    for m, (member, s) in enumerate(zip(members, member_single)):
        rec = member.describe() | {"weight": member_weights[m] if strategy != "stacking" else None,
                                   "metrics": s.metrics} | cache_info[m]
        if len(views) > 1:
            rec["tta_metrics"] = ctx.score(scored_idx, vote, [1.0] * M, all_views, members=[m]).metrics
        member_rows.append(rec)
    exact = torch.stack([s.exact for s in member_single])  # [M, N]
    oracle = {"exact_accuracy": float(exact.any(0).double().mean()), "num_puzzles": int(len(scored_idx)),
              "rule": "a puzzle counts when any member's answer (single view) is exactly right"}
    if len(views) > 1:
        per_view = torch.stack([ctx.member_scored(m, scored_idx, v).exact for m in range(M) for v in all_views])
        oracle["any_member_any_view_exact_accuracy"] = float(per_view.any(0).double().mean())
    agreement = _agreement(members, member_single)

    results: Dict[str, Any] = {"strategy": strategy_info, "ensemble": ens.metrics, "members": member_rows,
                               "oracle": oracle, "agreement": agreement}
    if len(views) > 1:
        single = ctx.score(scored_idx, combine, weights_for_combine, [0])
        results["tta"] = {"views": len(views), "view_names": [v.name for v in views],
                          "single_view": single.metrics, "tta": ens.metrics,
                          "members_single_view": {m.name: s.metrics["exact_accuracy"] for m, s in zip(members, member_single)},
                          "members_tta": {m.name: r["tta_metrics"]["exact_accuracy"] for m, r in zip(members, member_rows)}}
    if puzzle_task is not None and puzzle_task.name == "arc":
        results["arc"] = _arc_results(dataset, rows, scored_idx, ctx, strategy, ens, member_weights, member_rows)
    results["per_puzzle"] = [
        {"puzzle_id": rows.names[i], "solved": bool(ens.exact[j]), "members_solved": [bool(x) for x in exact[:, j]],
         "num_candidates": int(ens.num_candidates[j]), "support": round(float(ens.support[j]), 6),
         "q_halt_probability": round(float(torch.sigmoid(ens.q[j])), 6)}
        for j, i in enumerate(scored_idx.tolist())]
    if notes:
        results["notes"] = notes
    results["provenance"] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"path": dataset.source, "split": split, "fingerprint_sha256": fingerprint,
                    "task": puzzle_task.name if puzzle_task else None, "num_examples": len(dataset),
                    "evaluated": len(rows), "scored": int(len(scored_idx))},
        "evaluation": {"device": str(dev), "dtype": dtype, "batch_size": batch_size, "limit": limit,
                       "cache_dir": str(cache) if cache is not None else None},
        "versions": {"hrm_eval": hrm_eval.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "command": sys.argv,
    }
    if output_dir is not None:
        atomic_write_json(Path(output_dir) / RESULTS_FILE, results)
    return results


# ---- pieces ------------------------------------------------------------------------------------
def _resolve_members_and_data(checkpoints, data, run) -> Tuple[List[Path], Path]:
    if checkpoints and run is not None:
        raise HRMEvalError("give either --checkpoints or --run, not both")
    run_dir = None
    if not checkpoints:
        run_dir = Path(run) if run is not None else BUNDLED_RUN
        if run is None and not run_dir.is_dir():
            raise HRMEvalError(f"no --checkpoints given and the bundled run {run_dir} is not here")
        checkpoints = run_checkpoints(run_dir)
    paths = [resolve_checkpoint_path(c) for c in checkpoints]
    if data is None:
        found = run_data_path(run_dir if run_dir is not None else paths[0].parent)
        if found is None:
            raise HRMEvalError("no data: give --data DIR|FILE (the run's all_config.yaml names no dataset found here)")
        data = found
    return paths, Path(data)


def _open(data, split: str, task: Optional[str], first_checkpoint: Path) -> PuzzleDataset:
    path = Path(data)
    if path.is_dir() or not path.exists():
        return open_dataset(path, split=split, task=task)
    lay = checkpoint_layout(first_checkpoint)  # raw puzzle files: the checkpoint's vocabulary decides what is valid
    return open_dataset(path, split=split, task=task, vocab_size=lay["vocab_size"],
                        num_puzzle_identifiers=lay.get("num_puzzle_identifiers") or 1)


def _weight_mode(weights: Weights, strategy: str, num_members: int) -> str:
    if weights is None:
        return "learned" if strategy == "average" and num_members > 1 else "uniform"
    if isinstance(weights, str):
        if weights not in ("uniform", "learned"):
            raise HRMEvalError(f"--weights: expected numbers, 'uniform' or 'learned', got '{weights}'")
        return "uniform" if num_members == 1 else weights
    return "given"


def _combiner(strategy: str, fitted: Optional[LogisticStacker]) -> Callable[[Voters], Combined]:
    if strategy == "average":
        return average
    if strategy == "vote":
        return vote
    if strategy == "q_vote":
        return q_vote
    return lambda voters: stacking(voters, fitted)


def _check_stacker_members(saved: Dict[str, Any], members: List[Member], where: str) -> None:
    fitted_for = saved.get("members") or []
    if len(fitted_for) != len(members):
        raise HRMEvalError(f"{where} was fitted for {len(fitted_for)} members, this ensemble has {len(members)}")
    for i, (f, m) in enumerate(zip(fitted_for, members), start=1):
        if f.get("sha256") != m.loaded.sha256:
            raise HRMEvalError(f"member {i} ({m.loaded.path}) is not the checkpoint {where} was fitted with "
                               f"({f.get('path')}, sha256 {str(f.get('sha256'))[:12]}... vs {m.loaded.sha256[:12]}...)")


def _agreement(members: List[Member], scored: List[Scored]) -> Dict[str, Any]:
    names = [m.name for m in members]
    M = len(members)
    same = [[1.0] * M for _ in range(M)]
    both = [[0.0] * M for _ in range(M)]
    for i in range(M):
        for j in range(M):
            eq = (scored[i].answers == scored[j].answers).all(-1)
            same[i][j] = float(eq.double().mean()) if len(eq) else 0.0
            both[i][j] = float((scored[i].exact & scored[j].exact).double().mean()) if len(eq) else 0.0
    return {"members": names, "same_answer": same, "both_right": both,
            "rule": "fraction of scored puzzles on which the two members give the identical answer (single view)"}


def _arc_results(dataset: PuzzleDataset, rows: PuzzleRows, scored_idx: np.ndarray, ctx: Context, strategy: str,
                 ens: Scored, member_weights: Sequence[float], member_rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """ARC pass@k: members' answers pooled with the augmentation votes before ranking (vote,
    q_vote), or the per-row ensemble answers pooled over the augmentations (average, stacking)."""
    if not dataset.path.is_dir():
        raise HRMEvalError("ARC scoring needs the dataset directory (identifiers.json and the test split)")
    Pool = _arc_pool_class()
    scored_rows = rows.subset(scored_idx)
    test_set = _arc_test_set(dataset, scored_rows)
    idx = torch.as_tensor(scored_idx, dtype=torch.long)
    ids, inputs = scored_rows.puzzle_identifiers, scored_rows.inputs
    out: Dict[str, Any] = {}
    for m, rec in enumerate(member_rows):
        p = ctx.preds[m]
        pool = Pool(dataset.path, test_set=test_set)
        pool.add_weighted(ids, inputs, p["logits"][0, idx].argmax(-1), p["q_halt"][0, idx], 1.0, where=rec["name"])
        rec["arc"] = _arc_scores(pool)
    pool = Pool(dataset.path, test_set=test_set, by_q=strategy == "q_vote")
    if strategy in ("vote", "q_vote"):
        for m, rec in enumerate(member_rows):
            p = ctx.preds[m]
            pool.add_weighted(ids, inputs, p["logits"][0, idx].argmax(-1), p["q_halt"][0, idx], member_weights[m],
                              where=rec["name"])
        out["rule"] = "every member's answer on every augmented puzzle pooled, then ranked"
    else:
        pool.add_weighted(ids, inputs, ens.answers, ens.q.float(), 1.0, where="ensemble")
        out["rule"] = f"the {strategy} answer of each augmented puzzle pooled over the augmentations, then ranked"
    out.update(_arc_scores(pool))
    return out


# ---- the terminal table ----------------------------------------------------------------------
def format_ensemble(results: Dict[str, Any]) -> str:
    s = results["strategy"]
    prov = results["provenance"]["dataset"]
    tta = "tta" in results
    head = f"Ensemble: {s['name']} over {len(results['members'])} members on {prov['scored']} puzzles of {prov['path']} [{prov['split']}]"
    lines = [head, "-" * len(head)]
    if s.get("weights_source") not in (None, "n/a"):
        lines.append(f"weights ({s['weights_source']}): " + ", ".join(f"{k} {v:.3f}" for k, v in s["weights"].items()))
    if "calibration" in s:
        c = s["calibration"]
        lines.append(f"calibration: {c.get('num_puzzles', '?')} puzzles ({c.get('rule', c.get('reused_from'))}), "
                     f"disjoint from the {c.get('num_scored_puzzles', prov['scored'])} scored puzzles")
    views = results["tta"]["views"] if tta else 1
    name_w = max([len(m["name"]) for m in results["members"]] + [len(f"ensemble ({s['name']}, {views} views)")]) + 2
    cols = ["exact", "token", "q_halt_acc", "lm_loss"] + (["verified"] if "verified_solve_rate" in results["ensemble"] else [])
    cols += ["exact(TTA)"] if tta else []
    lines.append("".ljust(name_w) + "".join(c.rjust(12) for c in cols))

    def row(label: str, m: Dict[str, Any], tta_exact: Optional[float] = None) -> str:
        vals = [m["exact_accuracy"], m["accuracy"], m["q_halt_accuracy"], m["lm_loss"]]
        if "verified_solve_rate" in results["ensemble"]:
            vals.append(m.get("verified_solve_rate", float("nan")))
        text = label.ljust(name_w) + "".join(f"{v:12.4f}" for v in vals)
        if tta:
            text += f"{tta_exact:12.4f}" if tta_exact is not None else "".rjust(12)
        return text

    for m in results["members"]:
        lines.append(row(m["name"], m["metrics"], m.get("tta_metrics", {}).get("exact_accuracy")))
    if tta:
        lines.append(row(f"ensemble ({s['name']}, 1 view)", results["tta"]["single_view"]))
        lines.append(row(f"ensemble ({s['name']}, {results['tta']['views']} views)", results["ensemble"],
                         results["ensemble"]["exact_accuracy"]))
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
    ag = results["agreement"]
    if len(ag["members"]) > 1:
        lines.append("")
        lines.append("same answer (fraction of puzzles)")
        w = max(len(n) for n in ag["members"]) + 2
        lines.append("".ljust(w + 4) + "".join(f"m{i + 1}".rjust(7) for i in range(len(ag["members"]))))
        for i, n in enumerate(ag["members"]):
            lines.append(f"m{i + 1}".ljust(4) + n.ljust(w) + "".join(f"{x:7.3f}" for x in ag["same_answer"][i]))
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
