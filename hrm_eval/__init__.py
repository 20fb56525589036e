"""hrm_eval: evaluate, compare, ensemble and deploy HRM / TRM checkpoints on any machine.

    from hrm_eval import simple_evaluate, load_checkpoint, evaluate_ensemble, open_dataset
    from hrm_eval import solve, Solver          # one puzzle in its natural form -> the answer
    from hrm_eval import ModelConfig, ACTModel, HRMReasoning, TRMReasoning, build_model

In a notebook (README: Notebooks; examples/quickstart.ipynb):

    config = load_config("configs/eval_config.yaml")
    model = HRMModel(HRMConfig.from_yaml_config(config))
    model.load_from_checkpoint(load_checkpoint("checkpoints/sudoku6-hard-hrm"))  # the model the config names
    results = Evaluator(model, "cpu", config).evaluate(open_dataset("checkpoints/sudoku6-hard-hrm/data"))
    results.summary(), results.to_pandas()

`HRMConfig` / `HRMModel` are the design's names (the example above) for `ModelConfig` and the
inner model `HRMReasoning` (see `hrm_eval.models`).
"""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

__version__ = "0.1.0"

# Imported on first use, so that `import hrm_eval` and `hrm-eval --help` do not pay for torch.
_entry_points, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hrm_eval.evaluation.run": ["simple_evaluate", "results_frames"],
        "hrm_eval.data.open": ["open_dataset"],
        "hrm_eval.inference.checkpoint": ["load_checkpoint"],
        "hrm_eval.models.checkpoint": ["LoadedCheckpoint"],
        "hrm_eval.ensemble.run": ["evaluate_ensemble"],
        "hrm_eval.inference.solve": ["solve", "Solver", "Solution"],
        "hrm_eval.evaluation.evaluator": ["Evaluator"],
        "hrm_eval.utils.errors": ["HRMEvalError"],
        "hrm_eval.config": ["load_config"],
        # models
        "hrm_eval.models.config": ["ModelConfig", "HRMConfig"],
        "hrm_eval.models.act": ["ACTModel"],
        "hrm_eval.models.hrm": ["HRMReasoning", "HRMModel"],
        "hrm_eval.models.trm": ["TRMReasoning"],
        "hrm_eval.models": ["build_model"],
    },
)
__all__ = [*_entry_points, "__version__"]
