"""Running models on puzzles: the ACT engine (continuous batching, halting policies) and the
runtime choices around it (dtype, threads)."""

from hrm_eval.inference.engine import ACTEngine, FinishedRows, HaltingPolicy, PuzzleChunk, StepRows

__all__ = ["ACTEngine", "FinishedRows", "HaltingPolicy", "PuzzleChunk", "StepRows"]
