"""Running models on puzzles: the ACT engine (continuous batching, halting policies) and the
runtime choices around it (dtype, threads)."""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

# Imported on first use: `import hrm_eval.inference.config` (the command line) stays free of torch.
_LAZY = {
    "ACTEngine": "hrm_eval.inference.engine",
    "FinishedRows": "hrm_eval.inference.engine",
    "HaltingPolicy": "hrm_eval.inference.engine",
    "PuzzleChunk": "hrm_eval.inference.engine",
    "StepRows": "hrm_eval.inference.engine",
}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
