"""What runs puzzles through the ACT loop, whatever computes the steps: the `ACTRunner`
protocol (ACTEngine in torch, OnnxACTRunner in onnxruntime) and the one `run_all` over it.

A runner takes chunks of puzzles and yields FinishedRows as rows halt (in the order they
halt); `run_all` is the batch call on top: every row to completion, results in input order.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Protocol

import torch

from hrm_eval.inference.engine import FinishedRows, PuzzleChunk


class ACTRunner(Protocol):
    """`run` (chunks in, FinishedRows out as rows halt), `stats` (what it computed so far, for
    the results' provenance), `slots` (puzzles in flight) and `limit` (the most ACT steps a
    row runs under its halting policy)."""

    @property
    def slots(self) -> int: ...

    @property
    def limit(self) -> int: ...

    def run(self, source: Iterable[PuzzleChunk]) -> Iterator[FinishedRows]: ...

    def stats(self) -> Dict[str, Any]: ...


def run_all(
    runner: ACTRunner, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: Optional[torch.Tensor] = None
) -> FinishedRows:
    """Every row of `inputs` [n, L] through `runner` to completion, in chunks of its slot count;
    results in input order."""
    if len(inputs) == 0:
        raise ValueError("run_all needs at least one puzzle")
    return in_input_order(list(runner.run(slot_chunks(runner.slots, inputs, puzzle_identifiers, labels))))


def slot_chunks(
    slots: int, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: Optional[torch.Tensor]
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


def in_input_order(parts: List[FinishedRows]) -> FinishedRows:
    """Groups of finished rows (in halting order) as one FinishedRows sorted by row index."""
    order = torch.cat([p.index for p in parts]).argsort()
    columns: Dict[str, Optional[torch.Tensor]] = {}
    for name in FinishedRows.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        columns[name] = torch.cat(values)[order] if values[0] is not None else None
    return FinishedRows(**columns)  # type: ignore[arg-type]
