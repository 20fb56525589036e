"""Ensembles of checkpoints, test-time augmentation and checkpoint comparison.

    from hrm_eval.ensemble import evaluate_ensemble, compare_checkpoints
    results = evaluate_ensemble(["run/step_2500", "run/step_5000"], "data/sudoku", strategy="vote")
"""

from hrm_eval.ensemble.compare import compare_checkpoints
from hrm_eval.ensemble.run import evaluate_ensemble, format_ensemble
from hrm_eval.ensemble.strategies import STRATEGIES

__all__ = ["compare_checkpoints", "evaluate_ensemble", "format_ensemble", "STRATEGIES"]
