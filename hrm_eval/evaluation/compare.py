"""`compare_checkpoints`: a report on several checkpoints of one run (or any list).

Per checkpoint: its step, NaN/Inf findings, weight norms by module, the relative change from
the previous checkpoint (by module, with modules whose weights did not move flagged), and its
metrics on the data (the same numbers as `evaluate`; predictions in the cache shared with the ensemble).
Then a recommendation from the measured metrics, a convergence statement only where the
measurements support one, and plots (metric vs step, weight change vs step) when matplotlib is
installed (`pip install 'hrm-eval[plots]'`).

Writes `CHECKPOINT_EVALUATION_REPORT.md`, `checkpoint_comparison.json`, the summary table as
`checkpoint_comparison.csv` (pandas; `comparison_frame(report)` gives it as a DataFrame) and `plots/*.png`.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.open import resolve_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.calibration import calibration_report
from hrm_eval.evaluation.distributed import DistContext
from hrm_eval.evaluation.predictions import (
    Member,
    PuzzleRows,
    collect_rows,
    default_cache_dir,
    member_names,
    member_predictions,
    open_data_for_checkpoint,
    resolve_checkpoints,
    run_data_path,
    score_member,
)
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION, build_provenance
from hrm_eval.evaluation.views import identity_view
from hrm_eval.models import ACTModel
from hrm_eval.models.loading import (
    LoadedCheckpoint,
    find_nonfinite,
    load_checkpoint,
    read_state_dict,
    step_of,
    strip_prefix,
)
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("hrm_eval")
REPORT_FILE = "CHECKPOINT_EVALUATION_REPORT.md"
CSV_FILE = "checkpoint_comparison.csv"
JSON_FILE = "checkpoint_comparison.json"
# Buffers that are constant by design (the initial recurrent states): never "did not move".
CONSTANT_TENSORS = ("H_init", "L_init")
RANK_METRICS = ("exact_accuracy", "accuracy")  # higher is better, in this order; then lower lm_loss
PLATEAU_WINDOW = 3


def module_of(key: str) -> str:
    """`H_level.layers.0.mlp.down_proj.weight` -> `H_level.layers.0`; `lm_head.weight` -> `lm_head`."""
    m = re.match(r"^(.*?\.layers\.\d+)\.", key)
    if m:
        return m.group(1)
    return key.rsplit(".", 1)[0] if "." in key else key


def _finite_or_none(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def weight_statistics(sd: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """Norms by module (L2 over all of a module's floating-point values) and the whole norm."""
    sq: Dict[str, float] = OrderedDict()
    for k, v in sd.items():
        if v.is_floating_point():
            sq[module_of(k)] = sq.get(module_of(k), 0.0) + float(v.double().pow(2).sum())
    total = sum(sq.values())
    return {
        "weight_norm": _finite_or_none(math.sqrt(total)) if total >= 0 else None,
        "module_norms": {k: _finite_or_none(math.sqrt(s)) if s >= 0 else None for k, s in sq.items()},
    }


def weight_change(prev: Dict[str, torch.Tensor], cur: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """Relative change ||cur - prev|| / ||prev|| overall and by module, and the modules whose
    trained tensors are bit-identical to the previous checkpoint's."""
    if set(prev) != set(cur) or any(prev[k].shape != cur[k].shape for k in cur):
        return {"comparable": False, "reason": "different tensors or shapes (another architecture)"}
    diff: Dict[str, float] = OrderedDict()
    base: Dict[str, float] = OrderedDict()
    moved: Dict[str, bool] = OrderedDict()
    for k, v in cur.items():
        if not v.is_floating_point():
            continue
        mod = module_of(k)
        d = v.double() - prev[k].double()
        diff[mod] = diff.get(mod, 0.0) + float(d.pow(2).sum())
        base[mod] = base.get(mod, 0.0) + float(prev[k].double().pow(2).sum())
        if k not in CONSTANT_TENSORS:
            moved[mod] = moved.get(mod, False) or not torch.equal(v, prev[k])
    rel = {m: _finite_or_none(math.sqrt(diff[m]) / math.sqrt(base[m])) if base[m] > 0 else None for m in diff}
    total_d, total_b = sum(diff.values()), sum(base.values())
    return {
        "comparable": True,
        "relative": _finite_or_none(math.sqrt(total_d) / math.sqrt(total_b)) if total_b > 0 else None,
        "modules": rel,
        "did_not_move": [m for m, mv in moved.items() if not mv],
    }


def _standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p on n puzzles, with the Laplace estimate
    (k + 1) / (n + 2) so that 0 / n and n / n do not claim zero uncertainty."""
    if n <= 0:
        return float("inf")
    q = (p * n + 1) / (n + 2)
    return math.sqrt(q * (1 - q) / n)


def recommend(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The best checkpoint by measured metrics (exact accuracy, then token accuracy, then lower
    lm_loss); checkpoints with NaN/Inf or without metrics are never recommended."""
    cands = [r for r in records if r.get("metrics") and not r["nonfinite"]]
    if not cands:
        return {
            "checkpoint": None,
            "reason": "no checkpoint was evaluated (no data, or every checkpoint holds NaN/Inf)",
        }
    key = lambda r: tuple(r["metrics"][k] for k in RANK_METRICS) + (-r["metrics"]["lm_loss"],)  # noqa: E731
    ranked = sorted(cands, key=key, reverse=True)
    best = ranked[0]
    m = best["metrics"]
    n = m["total_puzzles"]
    se = _standard_error(m["exact_accuracy"], n)
    rec = {
        "checkpoint": best["name"],
        "path": best["path"],
        "step": best["step"],
        "metrics": {k: m[k] for k in ("exact_accuracy", "accuracy", "lm_loss")},
        "num_puzzles": n,
        "exact_accuracy_standard_error": se,
    }
    reason = (
        f"highest exact accuracy {m['exact_accuracy']:.4f} (+/- {se:.4f} standard error) on {n} puzzles, "
        f"token accuracy {m['accuracy']:.4f}"
    )
    if len(ranked) > 1:
        rec["runner_up"] = ranked[1]["name"]
        reason += _runner_up_reason(best, ranked[1])
    latest = max((r for r in records if r["step"] is not None), key=lambda r: r["step"], default=None)
    if latest is not None and latest["name"] != best["name"]:
        reason += f"; not the latest checkpoint ({latest['name']})"
    rec["reason"] = reason
    return rec


def _runner_up_reason(best: Dict[str, Any], second: Dict[str, Any]) -> str:
    """How far the recommended checkpoint is ahead of the next best, against measurement noise."""
    m, other = best["metrics"], second["metrics"]
    n = m["total_puzzles"]
    gap = m["exact_accuracy"] - other["exact_accuracy"]
    # 2 standard errors of the difference of two accuracies on these n puzzles
    noise = 2 * math.hypot(_standard_error(m["exact_accuracy"], n), _standard_error(other["exact_accuracy"], n))
    if gap == 0:
        if m["accuracy"] != other["accuracy"]:
            tie = (
                f"; tied on exact accuracy with {second['name']}, ahead on token accuracy "
                f"({m['accuracy']:.4f} vs {other['accuracy']:.4f})"
            )
        else:
            tie = f"; tied with {second['name']} on exact and token accuracy, ahead on lm_loss"
        return tie + "; the difference is not significant on this data"
    if gap <= noise:
        return (
            f"; the runner-up {second['name']} is within measurement noise (exact accuracy gap {gap:.4f} "
            f"<= 2 standard errors {noise:.4f}), so either is a sound choice on this data"
        )
    return f"; ahead of the runner-up {second['name']} by {gap:.4f} (beyond 2 standard errors {noise:.4f})"


def convergence(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A statement only where the measurements support it: the last PLATEAU_WINDOW evaluated
    checkpoints (by step) agree within 2 standard errors on exact accuracy and the weights'
    relative change is not growing; otherwise say what the numbers show instead."""
    ev = [r for r in records if r.get("metrics") and not r["nonfinite"] and r["step"] is not None]
    ev.sort(key=lambda r: r["step"])
    if len(ev) < PLATEAU_WINDOW:
        return {
            "status": "insufficient",
            "statement": f"no convergence statement: {len(ev)} evaluated checkpoint(s) "
            f"with steps, at least {PLATEAU_WINDOW} are needed",
        }
    w = _Window.of(ev[-PLATEAU_WINDOW:])
    status, statement = _convergence_verdict(w)
    return {
        "window_steps": w.steps,
        "exact_accuracy": w.acc,
        "spread": w.spread,
        "noise_2se": w.noise,
        "relative_weight_change": w.changes,
        "status": status,
        "statement": statement,
    }


@dataclass
class _Window:
    """The last evaluated checkpoints, by step: what a convergence statement rests on."""

    steps: List[int]
    acc: List[float]  # exact accuracy of each
    n: int  # puzzles: the fewest any of them was measured on
    changes: List[Optional[float]]  # relative weight change of each interval between them

    @classmethod
    def of(cls, last: List[Dict[str, Any]]) -> _Window:
        return cls(
            steps=[r["step"] for r in last],
            acc=[r["metrics"]["exact_accuracy"] for r in last],
            n=min(r["metrics"]["total_puzzles"] for r in last),
            changes=[r.get("change_from_previous", {}).get("relative") for r in last[1:]],
        )

    @property
    def mean(self) -> float:
        return float(np.mean(self.acc))

    @property
    def noise(self) -> float:
        """2 standard errors of a difference between two accuracies on n puzzles."""
        return 2 * math.sqrt(2) * _standard_error(self.mean, self.n)

    @property
    def spread(self) -> float:
        return max(self.acc) - min(self.acc)

    @property
    def trend(self) -> float:
        return self.acc[-1] - self.acc[0]

    @property
    def growing(self) -> bool:
        """The weights move more each interval (the last change over 1.5 times the first):
        not settled, whatever the accuracy says."""
        known = [c for c in self.changes if c is not None]
        return len(known) == len(self.changes) and len(known) >= 2 and known[-1] > known[0] * 1.5

    @property
    def steps_text(self) -> str:
        return ", ".join(str(s) for s in self.steps)


def _convergence_verdict(w: _Window) -> Tuple[str, str]:
    """(status, statement) for the window: the first of these that the numbers show."""
    steps, acc, noise = w.steps_text, w.acc, w.noise
    if max(acc) == 0.0:
        return "no_progress", (
            f"no convergence statement: exact accuracy is 0 at steps {steps} "
            "(the model solves none of these puzzles yet)"
        )
    if w.spread <= noise and not w.growing:
        return "plateau", _plateau_statement(w)
    if w.trend > noise:
        return "improving", (
            f"not converged: exact accuracy still rises over steps {steps} "
            f"({acc[0]:.4f} -> {acc[-1]:.4f}, beyond noise {noise:.4f})"
        )
    if w.trend < -noise:
        return "degrading", (
            f"not converged: exact accuracy falls over steps {steps} "
            f"({acc[0]:.4f} -> {acc[-1]:.4f}, beyond noise {noise:.4f}); check for overfitting or instability"
        )
    why = (
        "the weights' change per interval is growing"
        if w.growing
        else f"spread {w.spread:.4f} exceeds noise {noise:.4f}"
    )
    return "unclear", f"no convergence statement: over steps {steps} {why}"


def _plateau_statement(w: _Window) -> str:
    """What the plateau is (at the ceiling, or within noise), and that it proves nothing more."""
    if w.mean >= 1.0 - 1e-12:
        text = f"plateau at the ceiling: exact accuracy 1.0 at steps {w.steps_text}"
    else:
        text = (
            f"plateau in the measurements: exact accuracy at steps {w.steps_text} is "
            f"{', '.join(f'{a:.4f}' for a in w.acc)}, spread {w.spread:.4f} within noise ({w.noise:.4f} = "
            f"2 standard errors of a difference on {w.n} puzzles)"
        )
    if all(c is not None for c in w.changes):
        text += "; relative weight change per interval " + ", ".join(f"{c:.2e}" for c in w.changes)
    return text + (
        ". The last checkpoints agree within measurement noise: a "
        "plateau in these measurements on this data, not a proof of convergence"
    )


def _write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def write_plots(records: List[Dict[str, Any]], out_dir: Path) -> Dict[str, Any]:
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


def _draw_metrics(ax: Any, xs: List[int], xlabel: str, records: List[Dict[str, Any]]) -> None:
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


def _draw_weight_change(ax: Any, xs: List[int], xlabel: str, records: List[Dict[str, Any]]) -> None:
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


@dataclass
class CompareData:
    """The puzzles every checkpoint is measured on (None when no data was given or found)."""

    dataset: PuzzleDataset
    rows: PuzzleRows
    task: Optional[PuzzleTask]
    fingerprint: str
    split: str
    limit: Optional[int]


@dataclass
class RunOptions:
    """How every checkpoint of a comparison is run (and where its predictions are cached)."""

    device: torch.device
    dtype: Optional[str]
    cache: Path
    batch_size: int
    progress: bool
    dist: DistContext

    def prediction_options(self) -> Dict[str, Any]:
        """Where and how `member_predictions` runs a checkpoint (the dtype is the loader's)."""
        return dict(
            cache_dir=self.cache, device=self.device, batch_size=self.batch_size, progress=self.progress, dist=self.dist
        )


def compare_checkpoints(
    checkpoints: Optional[Sequence[Union[str, Path]]] = None,
    *,
    run: Optional[Union[str, Path]] = None,
    data: Optional[Union[str, Path]] = None,
    output_dir: Union[str, Path] = "outputs/compare",
    split: str = "test",
    task: Optional[str] = None,
    device: str = "auto",
    dtype: Optional[str] = None,
    batch_size: int = 64,
    limit: Optional[int] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    plots: bool = True,
    progress: bool = True,
    dist: Optional[DistContext] = None,
) -> Dict[str, Any]:
    """Compare checkpoints (given order; a run's by step) and write the report; returns its JSON.
    Member predictions come from (and go to) the prediction cache shared with the ensemble
    (`cache_dir`, default `default_cache_dir()`). Under torchrun (`dist`) every rank runs a share
    of each checkpoint's puzzles; rank 0 writes the report, the other ranks return {}."""
    paths, data_home = resolve_checkpoints(checkpoints, run)
    data = data if data is not None else run_data_path(data_home)
    out, dev = Path(output_dir), resolve_device(device)
    dist = dist if dist is not None else DistContext()
    measured = _open_compare_data(data, paths[0], split=split, task=task, limit=limit)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    opts = RunOptions(dev, dtype, cache, batch_size, progress, dist)
    records, evaluated = _checkpoint_records(paths, measured, opts)
    if not dist.is_main:
        return {}
    report: Dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": str(data_home) if not checkpoints else None,
        "data": _data_record(data, measured, split, limit),
        "checkpoints": records,
        "recommendation": recommend(records),
        "convergence": convergence(records),
        "findings": [f"{r['name']}: {f}" for r in records for f in r["flags"]],
    }
    report["plots"] = write_plots(records, out) if plots else {"skipped": "--no-plots"}
    report["provenance"] = _provenance(evaluated, measured, opts, limit)
    _write_report(report, out)
    return report


def _checkpoint_records(
    paths: List[Path], measured: Optional[CompareData], opts: RunOptions
) -> Tuple[List[Dict[str, Any]], List[LoadedCheckpoint]]:
    """(one record per checkpoint, the checkpoints that were evaluated), in the given order; each
    checkpoint's weights are compared with those of the last readable checkpoint before it."""
    records: List[Dict[str, Any]] = []
    evaluated: List[LoadedCheckpoint] = []
    prev: Optional[Tuple[str, Dict[str, torch.Tensor]]] = None
    for path, name in zip(paths, member_names(paths)):
        rec, sd, loaded = _checkpoint_record(path, name, prev, measured, opts)
        records.append(rec)
        if loaded is not None:
            evaluated.append(loaded)
        if sd is not None:
            prev = (name, sd)
    return records, evaluated


def _provenance(
    evaluated: List[LoadedCheckpoint], measured: Optional[CompareData], opts: RunOptions, limit: Optional[int]
) -> Dict[str, Any]:
    """What was measured and how: the evaluated checkpoints' facts, the data, the run settings."""
    return build_provenance(
        checkpoints=evaluated,
        dataset=measured.dataset if measured else None,
        task=measured.task if measured else None,
        device=str(opts.device),
        batch_size=opts.batch_size,
        limit=limit,
        evaluation_extra={"requested_dtype": opts.dtype, "cache_dir": str(opts.cache), **opts.dist.describe()},
    )


def _write_report(report: Dict[str, Any], out: Path) -> None:
    """The JSON, the markdown report and the summary table as CSV (each written atomically)."""
    atomic_write_json(out / JSON_FILE, report)
    atomic_write_text(out / REPORT_FILE, format_report(report))
    table = comparison_frame(report)
    atomic_write(out / CSV_FILE, lambda tmp: table.to_csv(tmp, index=False))


def comparison_frame(report: Dict[str, Any]) -> "pd.DataFrame":
    """One row per checkpoint: step, metrics, Q-head calibration, weight norm and change (the
    report's summary table as a DataFrame; also written as checkpoint_comparison.csv)."""
    import pandas as pd

    rows = []
    for r in report["checkpoints"]:
        m, c = r.get("metrics") or {}, r.get("calibration") or {}
        rows.append(
            {
                "checkpoint": r["name"],
                "step": r["step"],
                **{k: m.get(k) for k in ("exact_accuracy", "accuracy", "lm_loss", "q_halt_accuracy")},
                **{f"q_halt_{k}": c.get(k) for k in ("ece", "brier", "auroc")},
                "weight_norm": r.get("weight_norm"),
                "relative_change": (r.get("change_from_previous") or {}).get("relative"),
                "evaluation": r["evaluation"],
                "path": r["path"],
            }
        )
    return pd.DataFrame(rows)


def _open_compare_data(
    data: Optional[Union[str, Path]], first: Path, *, split: str, task: Optional[str], limit: Optional[int]
) -> Optional[CompareData]:
    if data is None:
        return None
    dataset = open_data_for_checkpoint(data, split=split, task=task, checkpoint=first)
    return CompareData(
        dataset, collect_rows(dataset, limit), resolve_task(task, dataset), dataset.fingerprint(), split, limit
    )


def _data_record(
    data: Optional[Union[str, Path]], measured: Optional[CompareData], split: str, limit: Optional[int]
) -> Dict[str, Any]:
    return {
        "path": str(data) if data is not None else None,
        "split": split,
        "limit": limit,
        "num_puzzles": len(measured.rows) if measured is not None else 0,
        "task": measured.task.name if measured is not None and measured.task is not None else None,
        "fingerprint_sha256": measured.fingerprint if measured is not None else None,
    }


def _checkpoint_record(
    path: Path,
    name: str,
    prev: Optional[Tuple[str, Dict[str, torch.Tensor]]],
    measured: Optional[CompareData],
    opts: RunOptions,
) -> Tuple[Dict[str, Any], Optional[Dict[str, torch.Tensor]], Optional[LoadedCheckpoint]]:
    """(record, state dict for the next comparison, the loaded checkpoint without its model)."""
    try:
        sd, _ = strip_prefix(read_state_dict(path))
    except HRMEvalError as e:  # one unreadable file in a run is a finding, not the end of the report
        return _unreadable_record(path, name, e), None, None
    nonfinite = find_nonfinite(sd)
    rec: Dict[str, Any] = {
        "name": name,
        "path": str(path),
        "step": step_of(path),
        "nonfinite": [{"tensor": k, "nan": nan, "inf": inf} for k, nan, inf in nonfinite],
    }
    rec.update(weight_statistics(sd))
    flags = [_nonfinite_flag(nonfinite)] if nonfinite else []
    if prev is not None:
        change = weight_change(prev[1], sd)
        change["previous"] = prev[0]
        rec["change_from_previous"] = change
        if change.get("did_not_move"):
            flags.append(f"did not move since {prev[0]}: " + ", ".join(change["did_not_move"]))
    loaded = None
    if measured is None:
        rec["evaluation"] = "skipped: no data (give --data)"
    elif nonfinite:
        rec["evaluation"] = "skipped: the checkpoint holds NaN/Inf values"
    else:
        loaded = _measure(path, name, rec, measured, opts)
    rec["flags"] = flags
    return rec, sd, loaded


def _unreadable_record(path: Path, name: str, error: HRMEvalError) -> Dict[str, Any]:
    return {
        "name": name,
        "path": str(path),
        "step": step_of(path),
        "nonfinite": [],
        "weight_norm": None,
        "module_norms": {},
        "evaluation": "skipped: unreadable",
        "flags": [f"unreadable: {error}"],
    }


def _nonfinite_flag(nonfinite: List[Tuple[str, int, int]]) -> str:
    """`NaN/Inf in 2 tensor(s): a (1 NaN, 0 Inf), b (0 NaN, 3 Inf)`: the first five tensors named."""
    named = ", ".join(f"{k} ({nan} NaN, {inf} Inf)" for k, nan, inf in nonfinite[:5])
    return f"NaN/Inf in {len(nonfinite)} tensor(s): {named}" + (" ..." if len(nonfinite) > 5 else "")


def _measure(
    path: Path,
    name: str,
    rec: Dict[str, Any],
    measured: CompareData,
    opts: RunOptions,
) -> LoadedCheckpoint:
    """The checkpoint's metrics on the data, as `evaluate` gives them (predictions cached);
    under torchrun, on rank 0 (the others run their share of the puzzles)."""
    try:
        loaded = load_checkpoint(path, dataset=measured.dataset.metadata, device=opts.device, dtype=opts.dtype)
    except HRMEvalError as e:
        raise HRMEvalError(f"{path}: {e}") from e
    rec["sha256"] = loaded.sha256
    meta = measured.dataset.metadata
    view = [identity_view(meta.seq_len, meta.vocab_size)]
    preds, info = member_predictions(
        Member(name, loaded),
        measured.rows,
        view,
        dataset_fingerprint=measured.fingerprint,
        split=measured.split,
        limit=measured.limit,
        **opts.prediction_options(),
    )
    if preds is None:  # a rank other than 0: its share is with rank 0
        return dataclasses.replace(loaded, model=cast(ACTModel, None))
    scored = score_member(
        preds, measured.rows, np.arange(len(measured.rows)), loss_type=loaded.config.loss_type, task=measured.task
    )
    rec["metrics"] = scored.metrics
    # compare runs every puzzle for halt_max_steps: this is the Q head at the last step
    rec["calibration"] = calibration_report(scored.q.numpy(), scored.exact.numpy())
    rec["evaluation"] = "ok"
    rec.update(info)
    # provenance needs the checkpoint's facts, not its weights: let the model go
    return dataclasses.replace(loaded, model=cast(ACTModel, None))


# ---- the markdown report -----------------------------------------------------------------------
def format_report(report: Dict[str, Any]) -> str:
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


def _header_section(report: Dict[str, Any]) -> List[str]:
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


def _summary_section(recs: List[Dict[str, Any]]) -> List[str]:
    """One row per checkpoint: metrics, NaN/Inf counts, weight norm and change, flags."""
    return [
        "## Summary",
        "",
        "| checkpoint | step | exact acc | token acc | lm_loss | q_halt acc | NaN/Inf | weight norm "
        "| rel. change | flags |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
        *(_row(_summary_cells(r)) for r in recs),
    ]


def _summary_cells(r: Dict[str, Any]) -> List[str]:
    m = r.get("metrics") or {}
    change = (r.get("change_from_previous") or {}).get("relative")
    nan, inf = sum(x["nan"] for x in r["nonfinite"]), sum(x["inf"] for x in r["nonfinite"])
    nonfinite = "none" if not r["nonfinite"] else f"**{nan} NaN, {inf} Inf**"
    # a checkpoint without flags that was not evaluated says why in the flags column
    flags = "; ".join(r["flags"]) or ("" if r["evaluation"] == "ok" else r["evaluation"])
    return [
        r["name"],
        _fmt(r["step"]),
        *(_fmt(m.get(k)) for k in ("exact_accuracy", "accuracy", "lm_loss", "q_halt_accuracy")),
        nonfinite,
        _fmt(r["weight_norm"], ".3f"),
        _fmt(change, ".2e"),
        flags,
    ]


def _recommendation_section(rec: Dict[str, Any]) -> List[str]:
    if rec["checkpoint"]:
        text = f"**{rec['checkpoint']}** (`{rec['path']}`): {rec['reason']}."
    else:
        text = rec["reason"] + "."
    return ["", "## Recommendation", "", text]


def _calibration_section(recs: List[Dict[str, Any]]) -> List[str]:
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


def _findings_section(findings: List[str]) -> List[str]:
    listed = [f"- {f}" for f in findings] or ["- none: no NaN/Inf, every module moved between checkpoints"]
    return ["", "## Findings", "", *listed]


def _module_table_head(names: List[str]) -> List[str]:
    """Header and alignment rows of a table with one row per module, one column per checkpoint."""
    return ["| module | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]


def _module_norms_section(recs: List[Dict[str, Any]], modules: List[str]) -> List[str]:
    lines = ["", "## Weight norms by module", "", *_module_table_head([r["name"] for r in recs])]
    for mod in modules:
        lines.append(_row([mod, *(_fmt(r["module_norms"].get(mod), ".3f") for r in recs)]))
    return lines


def _module_change_section(recs: List[Dict[str, Any]], modules: List[str]) -> List[str]:
    """Each checkpoint's change by module from the one before it (none for a single checkpoint)."""
    if len(recs) < 2:
        return []
    later = recs[1:]
    lines = ["", "## Relative change from the previous checkpoint, by module", ""]
    lines += _module_table_head([r["name"] for r in later])
    for mod in modules:
        lines.append(_row([mod, *(_change_cell(r.get("change_from_previous") or {}, mod) for r in later)]))
    return lines


def _change_cell(change: Dict[str, Any], mod: str) -> str:
    """A module's relative change over one interval: a bold 0 marks weights that did not move,
    n/a an interval that has no comparison (another architecture, or an unreadable checkpoint)."""
    if not change.get("comparable"):
        return "n/a"
    if mod in change.get("did_not_move", []):
        return "**0 (did not move)**"
    return _fmt((change.get("modules") or {}).get(mod), ".2e")


def _plots_section(plots: Dict[str, Any]) -> List[str]:
    lines = ["", "## Plots", ""]
    if "skipped" in plots:
        return lines + [f"Skipped: {plots['skipped']}."]
    return lines + [f"![{k}](plots/{Path(v).name})" for k, v in plots.items()]
