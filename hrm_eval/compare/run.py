"""`compare_checkpoints`: a report on several checkpoints of one run (or any list): running
them (predictions from the cache shared with the ensemble) and writing the report.

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
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from hrm_eval.compare.markdown import format_report
from hrm_eval.compare.plots import write_plots
from hrm_eval.compare.verdict import convergence, recommend
from hrm_eval.compare.weights import weight_change, weight_statistics
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.open import resolve_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.distributed import DistContext
from hrm_eval.evaluation.provenance import RESULTS_SCHEMA_VERSION, build_provenance
from hrm_eval.evaluation.q_reliability import calibration_report
from hrm_eval.inference.views import identity_view
from hrm_eval.members.predictions import (
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
from hrm_eval.models import ACTModel
from hrm_eval.models.checkpoint import (
    LoadedCheckpoint,
    find_nonfinite,
    load_checkpoint,
    read_state_dict,
    step_of,
    strip_prefix,
)
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("hrm_eval")
REPORT_FILE = "CHECKPOINT_EVALUATION_REPORT.md"
CSV_FILE = "checkpoint_comparison.csv"
JSON_FILE = "checkpoint_comparison.json"


@dataclass
class CompareData:
    """The puzzles every checkpoint is measured on (None when no data was given or found)."""

    dataset: PuzzleDataset
    rows: PuzzleRows
    task: PuzzleTask | None
    fingerprint: str
    split: str
    limit: int | None
    # what each measured checkpoint solved, per puzzle (by name): the paired test of the recommendation
    solved: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclass
class RunOptions:
    """How every checkpoint of a comparison is run (and where its predictions are cached)."""

    device: torch.device
    dtype: str | None
    cache: Path
    batch_size: int
    progress: bool
    dist: DistContext

    def prediction_options(self) -> dict[str, Any]:
        """Where and how `member_predictions` runs a checkpoint (the dtype is the loader's)."""
        return dict(
            cache_dir=self.cache, device=self.device, batch_size=self.batch_size, progress=self.progress, dist=self.dist
        )


def compare_checkpoints(
    checkpoints: Sequence[str | Path] | None = None,
    *,
    run: str | Path | None = None,
    data: str | Path | None = None,
    output_dir: str | Path = "outputs/compare",
    split: str = "test",
    task: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    plots: bool = True,
    progress: bool = True,
    dist: DistContext | None = None,
) -> dict[str, Any]:
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
    report: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": str(data_home) if not checkpoints else None,
        "data": _data_record(data, measured, split, limit),
        "checkpoints": records,
        "recommendation": recommend(records, measured.solved if measured is not None else None),
        "convergence": convergence(records),
        "findings": [f"{r['name']}: {f}" for r in records for f in r["flags"]],
    }
    report["plots"] = write_plots(records, out) if plots else {"skipped": "--no-plots"}
    report["provenance"] = _provenance(evaluated, measured, opts, limit)
    _write_report(report, out)
    return report


def _checkpoint_records(
    paths: list[Path], measured: CompareData | None, opts: RunOptions
) -> tuple[list[dict[str, Any]], list[LoadedCheckpoint]]:
    """(one record per checkpoint, the checkpoints that were evaluated), in the given order; each
    checkpoint's weights are compared with those of the last readable checkpoint before it."""
    records: list[dict[str, Any]] = []
    evaluated: list[LoadedCheckpoint] = []
    prev: tuple[str, dict[str, torch.Tensor]] | None = None
    for path, name in zip(paths, member_names(paths)):
        rec, sd, loaded = _checkpoint_record(path, name, prev, measured, opts)
        records.append(rec)
        if loaded is not None:
            evaluated.append(loaded)
        if sd is not None:
            prev = (name, sd)
    return records, evaluated


def _provenance(
    evaluated: list[LoadedCheckpoint], measured: CompareData | None, opts: RunOptions, limit: int | None
) -> dict[str, Any]:
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


def _write_report(report: dict[str, Any], out: Path) -> None:
    """The JSON, the markdown report and the summary table as CSV (each written atomically)."""
    atomic_write_json(out / JSON_FILE, report)
    atomic_write_text(out / REPORT_FILE, format_report(report))
    table = comparison_frame(report)
    atomic_write(out / CSV_FILE, lambda tmp: table.to_csv(tmp, index=False))


def comparison_frame(report: dict[str, Any]) -> pd.DataFrame:
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
                # the exact accuracy's 95% interval (Wilson) as two columns: a CSV cell holds one number
                **{
                    f"exact_accuracy_ci95_{end}": (m.get("exact_accuracy_ci95") or [None, None])[i]
                    for i, end in enumerate(("lo", "hi"))
                },  # fmt: skip
                **{f"q_halt_{k}": c.get(k) for k in ("ece", "brier", "auroc")},
                "weight_norm": r.get("weight_norm"),
                "relative_change": (r.get("change_from_previous") or {}).get("relative"),
                "evaluation": r["evaluation"],
                "path": r["path"],
            }
        )
    return pd.DataFrame(rows)


def _open_compare_data(
    data: str | Path | None, first: Path, *, split: str, task: str | None, limit: int | None
) -> CompareData | None:
    if data is None:
        return None
    dataset = open_data_for_checkpoint(data, split=split, task=task, checkpoint=first)
    return CompareData(
        dataset, collect_rows(dataset, limit), resolve_task(task, dataset), dataset.fingerprint(), split, limit
    )


def _data_record(
    data: str | Path | None, measured: CompareData | None, split: str, limit: int | None
) -> dict[str, Any]:
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
    prev: tuple[str, dict[str, torch.Tensor]] | None,
    measured: CompareData | None,
    opts: RunOptions,
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None, LoadedCheckpoint | None]:
    """(record, state dict for the next comparison, the loaded checkpoint without its model)."""
    try:
        sd, _ = strip_prefix(read_state_dict(path))
    except HRMEvalError as e:  # one unreadable file in a run is a finding, not the end of the report
        return _unreadable_record(path, name, e), None, None
    nonfinite = find_nonfinite(sd)
    rec: dict[str, Any] = {
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


def _unreadable_record(path: Path, name: str, error: HRMEvalError) -> dict[str, Any]:
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


def _nonfinite_flag(nonfinite: list[tuple[str, int, int]]) -> str:
    """`NaN/Inf in 2 tensor(s): a (1 NaN, 0 Inf), b (0 NaN, 3 Inf)`: the first five tensors named."""
    named = ", ".join(f"{k} ({nan} NaN, {inf} Inf)" for k, nan, inf in nonfinite[:5])
    return f"NaN/Inf in {len(nonfinite)} tensor(s): {named}" + (" ..." if len(nonfinite) > 5 else "")


def _measure(
    path: Path,
    name: str,
    rec: dict[str, Any],
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
    measured.solved[name] = scored.exact.numpy().astype(bool)
    # compare runs every puzzle for halt_max_steps: this is the Q head at the last step
    rec["calibration"] = calibration_report(scored.q.numpy(), scored.exact.numpy())
    rec["evaluation"] = "ok"
    rec.update(info)
    # provenance needs the checkpoint's facts, not its weights: let the model go
    return dataclasses.replace(loaded, model=cast(ACTModel, None))
