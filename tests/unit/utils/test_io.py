"""Results files are strict JSON: a NaN metric is written as null and flagged, never as a bare
`NaN` token that `json.loads(..., parse_constant=...)`, jq or a browser would reject."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hrm_eval.utils.io import atomic_write_json


def _strict_load(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_nan_metric_writes_parseable_strict_json(tmp_path):
    results = {
        "metrics": {
            "exact_accuracy": float("nan"),
            "q_halt_loss": np.float32("inf"),
            "steps": 16,
            "accuracy": np.float64(0.5),
        },
        "per_set": [{"lm_loss": -math.inf}, {"lm_loss": 1.25}],
        "counts": np.array([1, 2]),
        "ok": np.bool_(True),
    }
    path = atomic_write_json(tmp_path / "results.json", results)
    data = _strict_load(path)
    assert data["metrics"] == {"exact_accuracy": None, "q_halt_loss": None, "steps": 16, "accuracy": 0.5}
    assert data["per_set"] == [{"lm_loss": None}, {"lm_loss": 1.25}]
    assert data["counts"] == [1, 2] and data["ok"] is True
    assert data["nonfinite_fields"] == ["metrics.exact_accuracy", "metrics.q_halt_loss", "per_set[0].lm_loss"]
    assert math.isnan(results["metrics"]["exact_accuracy"])  # the caller's data is left as it was


def test_finite_results_have_no_flag_and_round_trip(tmp_path):
    results = {"metrics": {"exact_accuracy": 0.25, "count": 4}, "name": "x", "nested": [[1.5, None, False]]}
    assert _strict_load(atomic_write_json(tmp_path / "r.json", results)) == results


def test_nan_array_element_is_null_too(tmp_path):
    data = _strict_load(atomic_write_json(tmp_path / "r.json", {"logits": np.array([0.5, np.nan])}))
    assert data == {"logits": [0.5, None], "nonfinite_fields": ["logits[1]"]}


def test_unserialisable_value_is_still_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        atomic_write_json(tmp_path / "r.json", {"x": object()})
    assert not list(tmp_path.iterdir())  # nothing half-written
