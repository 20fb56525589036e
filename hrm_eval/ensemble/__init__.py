"""Ensembles of checkpoints and test-time augmentation.

    from hrm_eval.ensemble import evaluate_ensemble, EnsembleSettings
    results = evaluate_ensemble(["run/step_2500", "run/step_5000"], "data/sudoku", strategy="vote")
    results = evaluate_ensemble(settings=EnsembleSettings(run="run", strategy="stacking"))

Checkpoint comparison (not an ensemble) is `hrm_eval.compare.compare_checkpoints`.
"""

from hrm_eval.ensemble.context import EnsembleContext
from hrm_eval.ensemble.report import format_ensemble
from hrm_eval.ensemble.run import evaluate_ensemble
from hrm_eval.ensemble.settings import EnsembleSettings
from hrm_eval.ensemble.strategies import STRATEGIES

__all__ = ["EnsembleContext", "EnsembleSettings", "evaluate_ensemble", "format_ensemble", "STRATEGIES"]
