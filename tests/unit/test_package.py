"""The package's top level: the main entry points importable from `hrm_eval`, lazily."""

from __future__ import annotations

import hrm_eval
from tests.conftest import ROOT

ENTRY_POINTS = {
    "simple_evaluate": "hrm_eval.evaluation.run",
    "open_dataset": "hrm_eval.data.open",
    "load_checkpoint": "hrm_eval.inference.checkpoint",
    "LoadedCheckpoint": "hrm_eval.models.checkpoint",
    "evaluate_ensemble": "hrm_eval.ensemble.run",
    "load_config": "hrm_eval.config",
    "ModelConfig": "hrm_eval.models.config",
    "ACTModel": "hrm_eval.models.act",
    "HRMReasoning": "hrm_eval.models.hrm",
    "TRMReasoning": "hrm_eval.models.trm",
    "build_model": "hrm_eval.models",
}


def test_entry_points_are_the_objects_of_their_home_modules():
    import importlib

    for name, module in ENTRY_POINTS.items():
        assert getattr(hrm_eval, name) is getattr(importlib.import_module(module), name), name
        assert name in hrm_eval.__all__ and name in dir(hrm_eval)


def test_earlier_names_are_the_same_classes():
    from hrm_eval.models import HRMModel

    assert hrm_eval.HRMConfig is hrm_eval.ModelConfig
    assert HRMModel is hrm_eval.HRMReasoning


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hrm_eval.nope  # noqa: B018


def test_the_model_code_opens_no_dataset_and_reads_no_mode_settings():
    """models/ are pure modules (README: Layout): no import of the evaluation, of the modes'
    config bases, or of the data code, but for the dataset format's IGNORE_LABEL_ID (the one
    definition of the label the losses skip; a constant, read by no function)."""
    import ast

    allowed = {("hrm_eval.data.format", "IGNORE_LABEL_ID")}
    found = []
    for path in sorted((ROOT / "hrm_eval" / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [(path.name, node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(path.name, a.name, "") for a in node.names]
    banned = ("hrm_eval.data", "hrm_eval.evaluation", "hrm_eval.utils.config")
    wrong = [f for f in found if f[1].startswith(banned) and f[1:] not in allowed]
    assert wrong == []
