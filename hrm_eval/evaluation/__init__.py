"""One checkpoint's evaluation: the ACT evaluation loop (`evaluator`, its `accumulator`, the
shard codec `payload`), the row-scoring policy and metric sums (`scoring`, `metrics`),
provenance (`provenance`), `simple_evaluate`, ARC scoring and reports. Several checkpoints
are `hrm_eval.members` (their shared predictions), `hrm_eval.ensemble` and `hrm_eval.compare`."""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

# Imported on first use: `import hrm_eval.evaluation.config` (the command line) stays free of torch.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hrm_eval.evaluation.evaluator": ["Evaluator"],
        "hrm_eval.evaluation.result": ["EvaluationResult"],
        "hrm_eval.evaluation.run": ["simple_evaluate"],
    },
)
