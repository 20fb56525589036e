"""What one evaluation returns (`EvaluationResult`) and its tables: the per-puzzle records and
the headline numbers as DataFrames (pandas imported only when a table is asked for)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hrm_eval.evaluation.all_preds import PredictionSpool

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class EvaluationResult:
    aggregate_metrics: dict[str, Any]
    per_set_metrics: dict[str, dict[str, float]]
    q_value_analysis: dict[str, Any]
    per_puzzle_metrics: list[dict[str, Any]] | None  # None when over the cap (see records_file)
    halting: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    records_file: str | None = None
    predictions: dict[str, torch.Tensor] | None = None  # public all_preds layout (with logits), in memory
    # save_predictions with a predictions_dir: the same rows spooled to disk (`.write` makes the files)
    prediction_spool: PredictionSpool | None = None
    answers: dict[str, torch.Tensor] | None = None  # compact: inputs, puzzle_identifiers, preds, q_halt_logits
    step_arrays: dict[str, np.ndarray] | None = None  # q_halt / q_continue / exact [N, T] (halting sweep)
    by_difficulty: dict[str, Any] | None = None  # exact accuracy and steps per difficulty (Sudoku: blanks)
    row_batches: np.ndarray | None = None  # [N] dataset batch of each row (evaluate_shard: which rank's it is)
    rows_run: dict[str, int] = field(default_factory=dict)  # evaluate_shard: puzzles evaluated / skipped (resumed)
    test_time_scaling: dict[str, Any] | None = None  # scaling's accuracy and cost, frontier (scaling on)

    def to_pandas(self) -> pd.DataFrame:
        """One row per puzzle (the per-puzzle records, in dataset order), read back from
        per_puzzle.jsonl when they were too many to keep in memory."""
        return records_frame(self.per_puzzle_metrics if self.per_puzzle_metrics is not None else self.records_file)

    def summary(self) -> pd.DataFrame:
        """The aggregate metrics and the Q head's calibration at the halting step, one row each
        (index `metric`, column `value`)."""
        return summary_frame(self.aggregate_metrics, self.q_value_analysis)


# Integer columns that are null where they do not apply (unsolved puzzles): nullable Int64,
# not floats, so a step stays 3 and not 3.0.
NULLABLE_INT_COLUMNS = ("first_correct_step",)


def records_frame(records: list[dict[str, Any]] | str | Path | None) -> pd.DataFrame:
    """Per-puzzle records (a list, or a per_puzzle.jsonl path) as a DataFrame, one row per puzzle."""
    import pandas as pd

    if records is None:
        return pd.DataFrame()
    if isinstance(records, (str, Path)):
        frame = pd.read_json(records, lines=True, dtype=False)
    else:
        frame = pd.DataFrame.from_records(records)
    for column in NULLABLE_INT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def summary_frame(aggregate: dict[str, Any], q_value_analysis: dict[str, Any]) -> pd.DataFrame:
    """A results dict's headline numbers as a DataFrame (also `results.summary()`)."""
    import pandas as pd

    values: dict[str, Any] = {k: v for k, v in aggregate.items() if isinstance(v, (int, float)) or v is None}
    at_halt = q_value_analysis.get("calibration", {}).get("at_halt", {})
    for key in ("ece", "brier", "auroc"):
        if key in at_halt:
            values[f"q_halt_{key}"] = at_halt[key]
    return pd.DataFrame({"value": pd.Series(values, dtype=object)}).rename_axis("metric")
