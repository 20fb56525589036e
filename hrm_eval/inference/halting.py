"""The halting modes: when a puzzle stops thinking. The one vocabulary of them (names, type,
one line each) that the engine's `HaltingPolicy`, the configs and flags of evaluate / solve /
serve, the evaluator and the reports use; and why a finished row stopped (`STOP_REASONS`).

No torch here: the command line reads it before any model is loaded.

What each rule *would* give, computed from one fixed run (the halting sweep, `--sweep`), is an
analysis, not a mode: `hrm_eval.evaluation.halting_analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

HaltingMode = Literal["fixed", "adaptive", "threshold"]
FIXED: HaltingMode = "fixed"
ADAPTIVE: HaltingMode = "adaptive"
THRESHOLD: HaltingMode = "threshold"
HALTING_MODES: tuple[HaltingMode, ...] = (FIXED, ADAPTIVE, THRESHOLD)

# The server halts by step count or by the model's own rule (it has no threshold setting).
ServedHaltingMode = Literal["fixed", "adaptive"]
SERVED_HALTING_MODES: tuple[ServedHaltingMode, ...] = ("fixed", "adaptive")

MODE_DESCRIPTIONS: dict[str, str] = {
    FIXED: "every puzzle runs max_steps (default halt_max_steps), the public numbers",
    ADAPTIVE: "the model's own Q rule (HRM: q_halt > q_continue; TRM: q_halt > 0)",
    THRESHOLD: "stop when sigmoid(q_halt) >= the halt threshold",
}

SWEEP = "sweep"  # the analysis switch (--sweep), not a mode
SWEEP_DESCRIPTION = "one fixed run, then exact accuracy against mean steps for every rule (halting_sweep)"
SWEEP_NOT_A_MODE = (
    "'sweep' is not a halting mode: give --sweep (in a config: sweep: true), a fixed run plus the sweep table"
)


def modes_help(modes: Sequence[str] = HALTING_MODES) -> str:
    """`fixed: ...; adaptive: ...`: the flag help of a --halting that offers `modes`."""
    return "; ".join(f"{m}: {MODE_DESCRIPTIONS[m]}" for m in modes)


# Why a finished row stopped (FinishedRows.stop_reason holds the index into STOP_REASONS):
#   q_halt:     the halting policy stopped it before its step limit (adaptive / threshold)
#   step_limit: it reached its step limit (always, with fixed halting)
#   verified:   with a verifier (test-time scaling), its answer passed the check
StopReason = Literal["q_halt", "step_limit", "verified"]
STOP_REASONS: tuple[StopReason, ...] = ("q_halt", "step_limit", "verified")
STOPPED_BY_Q, STOPPED_AT_LIMIT, STOPPED_VERIFIED = range(3)
