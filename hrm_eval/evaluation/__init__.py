"""The ACT evaluation loop, the row-scoring policy and metric sums (`scoring`, `metrics`),
provenance (`provenance`), `simple_evaluate`, member predictions and their shared cache
(`predictions`), checkpoint comparison (`compare`), ARC scoring and reports."""

from hrm_eval.evaluation.evaluator import Evaluator
from hrm_eval.evaluation.result import EvaluationResult
from hrm_eval.evaluation.run import open_dataset, simple_evaluate

__all__ = ["EvaluationResult", "Evaluator", "open_dataset", "simple_evaluate"]
