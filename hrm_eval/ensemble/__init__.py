"""Ensembles of checkpoints and test-time augmentation.

    from hrm_eval.ensemble import evaluate_ensemble, EnsembleSettings
    results = evaluate_ensemble(["run/step_2500", "run/step_5000"], "data/sudoku", strategy="vote")
    results = evaluate_ensemble(settings=EnsembleSettings(run="run", strategy="stacking"))

Checkpoint comparison (not an ensemble) is `hrm_eval.compare.compare_checkpoints`.
"""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

# Imported on first use: `import hrm_eval.ensemble.config` (the command line) stays free of torch.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hrm_eval.ensemble.context": ["EnsembleContext"],
        "hrm_eval.ensemble.settings": ["EnsembleSettings"],
        "hrm_eval.ensemble.run": ["evaluate_ensemble"],
        "hrm_eval.ensemble.report": ["format_ensemble"],
        "hrm_eval.ensemble.strategies": ["STRATEGIES"],
    },
)
