"""Experiment tracking with Weights & Biases (the optional extra: pip install 'hrm-eval[wandb]').

    tracker = start_run("hrm-eval", name="evaluate-step_3750", config=cfg, job_type="evaluate")
    tracker.log_results(results, output_dir=out)      # metrics, per-puzzle table, *.png plots
    tracker.finish()

Runs are offline unless the user chose otherwise: WANDB_MODE=offline is used when WANDB_MODE
is not set, so nothing leaves the machine without a decision (`wandb sync DIR` uploads later).
The run directory is WANDB_DIR when set, else the directory given (evaluate: its --output).
The trainer logs its loss and evaluation curves through the same helper.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger(__name__)
DEFAULT_PROJECT = "hrm-eval"
TABLE_ROWS_CAP = 100_000  # W&B tables grow slow beyond this; the full records stay in per_puzzle.jsonl
# Result parts that are not metrics: provenance is the run's config, the rest are tables.
NOT_METRICS = ("schema_version", "provenance", "per_puzzle", "per_puzzle_metrics", "checkpoints", "halting_sweep")


def wandb_module(required: bool = True) -> Any:
    """The wandb module; HRMEvalError when missing and `required` (a user's --wandb), else None."""
    try:
        import wandb
    except ImportError:
        if required:
            raise HRMEvalError("--wandb: wandb is not installed (pip install 'hrm-eval[wandb]')") from None
        return None
    return wandb


class Tracker:
    """One W&B run."""

    def __init__(self, run: Any, wandb: Any):
        self.run = run
        self._wandb = wandb

    @property
    def directory(self) -> Path:
        """The run's folder (wandb/offline-run-... or wandb/run-...)."""
        return Path(self.run.dir).parent

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.run.log(dict(metrics), step=step)

    def log_results(self, results: Mapping[str, Any], output_dir: str | Path | None = None) -> None:
        """A results dict (evaluate, ensemble, compare): its numbers as metrics (history and
        summary), its per-puzzle records (or checkpoint rows) as a table, the PNGs under
        `output_dir` as images."""
        metrics = flatten_metrics(results)
        self.run.log(metrics)
        self.run.summary.update(metrics)
        for key, rows in tables(results, output_dir).items():
            if rows:
                self.run.log({key: self.table(rows)})
        images = (
            {f"plots/{p.stem}": self._wandb.Image(str(p)) for p in sorted(Path(output_dir).rglob("*.png"))}
            if output_dir is not None
            else {}
        )
        if images:
            self.run.log(images)

    def table(self, rows: list[Mapping[str, Any]]) -> Any:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        data = [[_cell(r.get(c)) for c in columns] for r in rows[:TABLE_ROWS_CAP]]
        return self._wandb.Table(columns=columns, data=data)

    def finish(self) -> Path:
        directory = self.directory
        self.run.finish()
        log.info(
            "wandb: run %s in %s%s",
            self.run.id,
            directory,
            " (offline: upload with `wandb sync` on that folder)" if _mode() == "offline" else "",
            extra={"event": "wandb", "wandb_dir": str(directory)},
        )
        return directory


def start_run(
    project: str | None = None,
    *,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    job_type: str | None = None,
    directory: str | Path | None = None,
    required: bool = True,
) -> Tracker | None:
    """A new W&B run, offline unless WANDB_MODE says otherwise. Without wandb installed: an
    error when `required`, else a warning and None (the caller logs nothing)."""
    wandb = wandb_module(required)
    if wandb is None:
        log.warning("wandb is not installed (pip install 'hrm-eval[wandb]'); not logging to W&B")
        return None
    where = os.environ.get("WANDB_DIR") or (str(directory) if directory is not None else None)
    if where is not None:
        Path(where).mkdir(parents=True, exist_ok=True)
    try:
        run = wandb.init(
            project=project or DEFAULT_PROJECT,
            name=name,
            config=dict(config or {}),
            job_type=job_type,
            dir=where,
            mode=_mode(),
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
    except Exception as e:  # noqa: BLE001 - wandb raises its own error types (auth, network, settings)
        raise HRMEvalError(f"--wandb: could not start a W&B run: {str(e).splitlines()[0] if str(e) else e}") from e
    return Tracker(run, wandb)


def _mode() -> str:
    return os.environ.get("WANDB_MODE") or "offline"


def flatten_metrics(results: Mapping[str, Any], prefix: str = "", depth: int = 3) -> dict[str, float]:
    """The numbers of a results dict as `a/b/c` keys (lists and NOT_METRICS parts left out)."""
    out: dict[str, float] = {}
    for key, value in results.items():
        if not prefix and key in NOT_METRICS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            out[name] = value
        elif isinstance(value, Mapping) and depth > 1:
            out.update(flatten_metrics(value, f"{name}/", depth - 1))
    return out


def tables(results: Mapping[str, Any], output_dir: str | Path | None) -> dict[str, list[Mapping[str, Any]]]:
    """The tables of a results dict: per-puzzle records (from per_puzzle.jsonl when it was
    written, which holds them all) and a comparison's checkpoint rows."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    records_file = results.get("per_puzzle_metrics_file")
    if output_dir is not None and isinstance(records_file, str) and (Path(output_dir) / records_file).is_file():
        found["per_puzzle"] = list(_read_lines(Path(output_dir) / records_file))
    elif isinstance(results.get("per_puzzle_metrics") or results.get("per_puzzle"), list):
        found["per_puzzle"] = results.get("per_puzzle_metrics") or results["per_puzzle"]
    if isinstance(results.get("checkpoints"), list):
        found["checkpoints"] = [_flat_row(r) for r in results["checkpoints"] if isinstance(r, Mapping)]
    return found


def _read_lines(path: Path) -> Iterable[Mapping[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= TABLE_ROWS_CAP:
                return
            if line.strip():
                yield guarded.parse_json(line, f"{path}:{i + 1}")


def _flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if not isinstance(v, Mapping)}
    for k, v in row.items():
        if isinstance(v, Mapping):
            out.update({f"{k}/{kk}": vv for kk, vv in v.items() if not isinstance(vv, (Mapping, list))})
    return out


def _cell(value: Any) -> Any:
    """A table cell: numbers and text as they are, anything else as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)
