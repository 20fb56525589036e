"""The ACT evaluation loop, metric sums, `simple_evaluate`, ARC scoring and reports."""

from hrm_eval.evaluation.evaluator import EvaluationResult, Evaluator
from hrm_eval.evaluation.run import open_dataset, simple_evaluate

__all__ = ["EvaluationResult", "Evaluator", "open_dataset", "simple_evaluate"]
