"""One checkpoint's evaluation: the ACT evaluation loop (`evaluator`, its `accumulator`, the
shard codec `payload`), the row-scoring policy and metric sums (`scoring`, `metrics`),
provenance (`provenance`), `simple_evaluate`, ARC scoring and reports. Several checkpoints
are `hrm_eval.members` (their shared predictions), `hrm_eval.ensemble` and `hrm_eval.compare`."""

from hrm_eval.evaluation.evaluator import Evaluator
from hrm_eval.evaluation.result import EvaluationResult
from hrm_eval.evaluation.run import open_dataset, simple_evaluate

__all__ = ["EvaluationResult", "Evaluator", "open_dataset", "simple_evaluate"]
