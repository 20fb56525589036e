"""The ACT loop in onnxruntime, over one exported ACT step (hrm_eval.export.onnx).

    chunk of puzzles [n] -> step 1 (reset: carry := H_init / L_init) -> step 2 -> ... -> step T
                                   |                                     |
                                   +-- rows the HaltingPolicy stops -----+--> FinishedRows (out)

It is an ACTRunner (hrm_eval.inference.runner: `run`, `stats`, `slots`, `limit`), as the
ACTEngine is, and yields the same FinishedRows, so the evaluator scores either the same way;
`run_all` is the shared one. When to stop is decided by the engine's HaltingPolicy (fixed,
adaptive, threshold), not restated here; why a row stopped is recorded by the runners' shared
`stop_reasons` (hrm_eval.inference.runner). Rows
that halt leave the batch at once (later steps compute only the rows still running); unlike
the engine, freed slots are not refilled, which keeps the loop simple: one chunk of `slots`
puzzles at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_eval.inference.engine import HaltingPolicy
from hrm_eval.inference.runner import FinishedRows, PuzzleChunk, run_all, stop_reasons
from hrm_eval.models import ModelConfig, build_model
from hrm_eval.utils.errors import HRMEvalError


def make_session(model: str | Path | bytes, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for an .onnx file (or its bytes); a bad file is one line."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise HRMEvalError("--backend onnxruntime needs onnxruntime: pip install 'hrm-eval[onnx]'") from e
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise here
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    what = model if isinstance(model, (str, Path)) else "the exported graph"
    try:
        return ort.InferenceSession(
            model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HRMEvalError(f"onnxruntime cannot load {what}: {msg}") from e


class OnnxACTRunner:
    """Runs puzzles through an ONNX ACT step:

    runner = OnnxACTRunner(make_session("model.onnx"), config, halting=HaltingPolicy("adaptive"))
    for finished in runner.run(chunks):   # FinishedRows, as ACTEngine.run yields them
        ...
    """

    def __init__(
        self,
        session: Any,
        config: ModelConfig,
        *,
        slots: int = 64,
        halting: HaltingPolicy | None = None,
        trace_preds: bool = False,
    ):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.session = session
        self.config = config
        self.slots = slots
        self.halting = halting or HaltingPolicy()
        self.limit = self.halting.step_limit(config.halt_max_steps)
        self.trace_preds = trace_preds
        with torch.device("meta"):  # the model's halting rule reads only its config: no weights needed
            self.rule = build_model(config)
        self.steps_run = 0
        self.rows_computed = 0
        self.slots_offered = 0

    def run(self, source: Iterable[PuzzleChunk]) -> Iterator[FinishedRows]:
        for chunk in source:
            for s in range(0, len(chunk.index), self.slots):
                part = slice(s, s + self.slots)
                labels = None if chunk.labels is None else chunk.labels[part]
                yield from self._run_batch(
                    PuzzleChunk(chunk.index[part], chunk.inputs[part], chunk.puzzle_identifiers[part], labels)
                )

    def run_all(
        self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: torch.Tensor | None = None
    ) -> FinishedRows:
        """Every row of `inputs` [n, L] to completion; results in input order."""
        return run_all(self, inputs, puzzle_identifiers, labels)

    def _run_batch(self, chunk: PuzzleChunk) -> Iterator[FinishedRows]:
        n, T, c = len(chunk.index), self.limit, self.config
        inputs = chunk.inputs.numpy().astype(np.int64)  # [n, L]
        ids = chunk.puzzle_identifiers.numpy().astype(np.int64)  # [n]
        z_H = np.zeros((n, c.full_seq_len, c.hidden_size), np.float32)  # replaced by H_init on step 1 (reset)
        z_L = np.zeros_like(z_H)
        rows = np.arange(n)  # the chunk's rows still running
        q_halt = torch.full((n, T), float("nan"))
        q_continue = torch.full((n, T), float("nan"))
        exact = torch.zeros((n, T), dtype=torch.bool) if chunk.labels is not None else None
        preds_by_step = torch.zeros((n, T, inputs.shape[1]), dtype=torch.int32) if self.trace_preds else None
        for t in range(1, T + 1):
            feed = {"z_H": z_H, "z_L": z_L, "inputs": inputs[rows], "puzzle_identifiers": ids[rows]}
            z_H, z_L, logits, qh, qc = self.session.run(None, {**feed, "reset": np.full(len(rows), t == 1)})
            self._count(len(rows))
            qh_t, qc_t, logits_t = torch.from_numpy(qh), torch.from_numpy(qc), torch.from_numpy(logits)
            q_halt[rows, t - 1], q_continue[rows, t - 1] = qh_t, qc_t
            preds = logits_t.argmax(-1)  # [r, L]
            if exact is not None and chunk.labels is not None:
                labels = chunk.labels[rows]
                exact[rows, t - 1] = ((preds == labels) | (labels == -100)).all(-1)
            if preds_by_step is not None:
                preds_by_step[rows, t - 1] = preds.to(torch.int32)
            steps = torch.full((len(rows),), t, dtype=torch.int32)
            halt = self.halting.halts(self.rule, steps, qh_t, qc_t, T)  # [r] bool
            if bool(halt.any()):
                done = rows[halt.numpy()]
                yield FinishedRows(
                    index=chunk.index[done],
                    logits=logits_t[halt],
                    q_halt_logits=qh_t[halt],
                    q_continue_logits=qc_t[halt],
                    steps=steps[halt],
                    q_halt_by_step=q_halt[done],
                    q_continue_by_step=q_continue[done],
                    exact_by_step=exact[done] if exact is not None else None,
                    preds_by_step=preds_by_step[done] if preds_by_step is not None else None,
                    stop_reason=stop_reasons(steps[halt], T, T),
                )
                keep = ~halt.numpy()
                rows, z_H, z_L = rows[keep], z_H[keep], z_L[keep]
            if len(rows) == 0:
                return

    def _count(self, active: int) -> None:
        self.steps_run += 1
        self.rows_computed += active
        self.slots_offered += self.slots

    def stats(self) -> dict[str, Any]:
        """What the runner did so far, in the engine's terms."""
        return {
            "backend": "onnxruntime",
            "engine_steps": self.steps_run,
            "act_steps_computed": self.rows_computed,
            "slots": self.slots,
            "slot_occupancy": self.rows_computed / self.slots_offered if self.slots_offered else 0.0,
        }
