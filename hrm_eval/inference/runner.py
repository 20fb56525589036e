"""What runs puzzles through the ACT loop, whatever computes the steps: the rows going in
(`PuzzleChunk`) and coming out (`FinishedRows`, with why each stopped), the `ACTRunner` protocol
(ACTEngine in torch, OnnxACTRunner in onnxruntime) and the one `run_all` over it.

A runner takes chunks of puzzles and yields FinishedRows as rows halt (in the order they
halt); `run_all` is the batch call on top: every row to completion, results in input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from hrm_eval.inference.halting import (
    STOP_REASONS,
    STOPPED_AT_LIMIT,
    STOPPED_BY_Q,
    STOPPED_VERIFIED,
    StopReason,
)


@dataclass
class PuzzleChunk:
    """Puzzles handed to the engine; `index` is the caller's id for each row."""

    index: torch.Tensor  # [n] int64
    inputs: torch.Tensor  # [n, L] int
    puzzle_identifiers: torch.Tensor  # [n] int
    labels: torch.Tensor | None = None  # [n, L] int, -100 where not scored; enables exact_by_step
    # [n] int: the most ACT steps each row may run (test-time scaling gives an attempt its share
    # of a budget); None: the halting policy's limit. Only an engine with a verifier runs a row
    # past the policy's limit.
    step_limit: torch.Tensor | None = None
    # [n] int64: a seed per row for Gaussian noise (std `ACTEngine.init_noise`) added to its
    # initial carry; -1 (or None) for the plain initial state
    noise_seed: torch.Tensor | None = None


@dataclass
class FinishedRows:
    """Puzzles that halted on the same engine step (CPU tensors, rows in slot order)."""

    index: torch.Tensor  # [n] int64, the caller's ids
    logits: torch.Tensor  # [n, L, V] forward dtype, at the step the row halted
    q_halt_logits: torch.Tensor  # [n] fp32
    q_continue_logits: torch.Tensor  # [n] fp32
    steps: torch.Tensor  # [n] int32 ACT steps actually run
    q_halt_by_step: torch.Tensor  # [n, T] fp32, NaN after the row halted
    q_continue_by_step: torch.Tensor  # [n, T]
    exact_by_step: torch.Tensor | None = None  # [n, T] bool, answer exactly right after step t (needs labels)
    preds_by_step: torch.Tensor | None = None  # [n, T, L] answer after each step (trace_preds)
    verified: torch.Tensor | None = None  # [n] bool, the verifier's verdict on the final answer (engines with one)
    # [n] int8, why each row stopped: an index into hrm_eval.inference.halting.STOP_REASONS
    # (q_halt, step_limit, verified), recorded where the decision is made (`stop_reasons`)
    stop_reason: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.index.numel())

    def reason(self, k: int) -> StopReason:
        """Why row k stopped (the runners always record it)."""
        assert self.stop_reason is not None, "FinishedRows made without stop reasons"
        return STOP_REASONS[int(self.stop_reason[k])]

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(-1)


def stop_reasons(
    steps: torch.Tensor, limits: torch.Tensor | int, policy_limit: int, verified: torch.Tensor | None = None
) -> torch.Tensor:
    """[n] int8 (FinishedRows.stop_reason) for rows that stop after `steps` [n]: verified where the
    verifier accepted the answer (it stops only then, or at its limit), else step_limit where a
    row reached its own limit or the policy's, else q_halt (the policy stopped it earlier)."""
    reason = torch.full(steps.shape, STOPPED_BY_Q, dtype=torch.int8, device=steps.device)
    reason[(steps >= limits) | (steps >= policy_limit)] = STOPPED_AT_LIMIT
    if verified is not None:
        reason[verified.to(torch.bool)] = STOPPED_VERIFIED
    return reason


class ACTRunner(Protocol):
    """`run` (chunks in, FinishedRows out as rows halt), `stats` (what it computed so far, for
    the results' provenance), `slots` (puzzles in flight) and `limit` (the most ACT steps a
    row runs under its halting policy)."""

    @property
    def slots(self) -> int: ...

    @property
    def limit(self) -> int: ...

    def run(self, source: Iterable[PuzzleChunk]) -> Iterator[FinishedRows]: ...

    def stats(self) -> dict[str, Any]: ...


def run_all(
    runner: ACTRunner, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: torch.Tensor | None = None
) -> FinishedRows:
    """Every row of `inputs` [n, L] through `runner` to completion, in chunks of its slot count;
    results in input order."""
    if len(inputs) == 0:
        raise ValueError("run_all needs at least one puzzle")
    return in_input_order(list(runner.run(slot_chunks(runner.slots, inputs, puzzle_identifiers, labels))))


def slot_chunks(
    slots: int, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: torch.Tensor | None
) -> Iterator[PuzzleChunk]:
    """The rows as chunks of at most `slots` puzzles, each row's index its position in `inputs`."""
    for start in range(0, len(inputs), slots):
        rows = slice(start, start + slots)
        yield PuzzleChunk(
            torch.arange(start, min(len(inputs), start + slots)),
            inputs[rows],
            puzzle_identifiers[rows],
            labels[rows] if labels is not None else None,
        )


def in_input_order(parts: list[FinishedRows]) -> FinishedRows:
    """Groups of finished rows (in halting order) as one FinishedRows sorted by row index."""
    order = torch.cat([p.index for p in parts]).argsort()
    columns: dict[str, torch.Tensor | None] = {}
    for name in FinishedRows.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        columns[name] = torch.cat(values)[order] if values[0] is not None else None
    return FinishedRows(**columns)  # type: ignore[arg-type]
