"""Running models on puzzles: the ACT engine (continuous batching, halting policies) and the
runtime choices around it (dtype, threads)."""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

# Imported on first use: `import hrm_eval.inference.config` (the command line) stays free of torch.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hrm_eval.inference.engine": ["ACTEngine", "HaltingPolicy", "StepRows"],
        "hrm_eval.inference.runner": ["FinishedRows", "PuzzleChunk"],
    },
)
