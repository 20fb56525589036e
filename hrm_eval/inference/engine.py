"""The ACT inference engine: continuous batching over ACT steps.

The public evaluators start a batch, run every row for `halt_max_steps` steps and only then
take the next batch. Here the batch is a fixed number of *slots*. Every engine step advances
each active slot by one ACT step; a slot whose puzzle halted hands its result out and takes
the next puzzle from the queue at once. With fixed halting every puzzle still runs exactly
`halt_max_steps` steps (the public numbers); with adaptive halting easy puzzles leave early
and their slots go to new puzzles, which is where the speed comes from.

    puzzles (chunks) -> queue -> slots [N] -> one ACT step on the active slots
                                   ^                |
                                   +-- refill <-- halted rows -> FinishedRows (out)

A live source (a server's request queue) may yield `None` for "nothing right now": the engine
then goes on with the puzzles it has (or asks again when it has none) instead of stopping; it
stops when the source ends. `on_step` sees every ACT step's answers as they are computed (for
streaming); neither changes what a plain dataset run does.

Work the public loop repeats and this one does not: the input (and puzzle) embedding is
computed once per puzzle, not once per step; weights are cast to the forward dtype once;
free slots (the tail of a dataset, or rows that halted) are not computed at all.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hrm_eval.inference.halting import (
    ADAPTIVE,
    FIXED,
    HALTING_MODES,
    THRESHOLD,
    HaltingMode,
)
from hrm_eval.inference.runner import FinishedRows, PuzzleChunk, run_all, stop_reasons
from hrm_eval.models.act import ACTModel
from hrm_eval.models.base import InnerCarry
from hrm_eval.models.layers import CastedEmbedding, CastedLinear

log = logging.getLogger("hrm_eval")

# (inputs [n, L], answers [n, L], q_halt logits [n]) -> [n] bool: whether each answer is accepted
Verifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# The model keeps its compiled step (one per model, shared by every engine on it, freed with it):
# compiling takes tens of seconds on a CPU, and evaluation, serving and the benchmark build
# several engines over one model.
COMPILED_STEP_ATTR = "compiled_step"


@dataclass(frozen=True)
class HaltingPolicy:
    """When a puzzle stops thinking: one of the modes of `hrm_eval.inference.halting`.

    fixed:     exactly `max_steps` steps (default halt_max_steps), as the public evaluation.
    adaptive:  the model's own rule (HRM: q_halt > q_continue; TRM with no_ACT_continue:
               q_halt > 0), as in training, without exploration.
    threshold: sigmoid(q_halt) >= `threshold`.
    Adaptive and threshold never stop before `min_steps` and always stop at `max_steps`.
    """

    mode: HaltingMode = FIXED
    threshold: float = 0.5
    min_steps: int = 1
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in HALTING_MODES:
            raise ValueError(f"halting must be one of {', '.join(HALTING_MODES)}, got {self.mode!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"halt threshold must be in (0, 1), got {self.threshold}")
        if self.min_steps < 1 or (self.max_steps is not None and self.max_steps < self.min_steps):
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps} and {self.max_steps}")

    def step_limit(self, halt_max_steps: int) -> int:
        return self.max_steps if self.max_steps is not None else halt_max_steps

    def halts(
        self, model: ACTModel, steps: torch.Tensor, q_halt: torch.Tensor, q_continue: torch.Tensor, limit: int
    ) -> torch.Tensor:
        """[n] bool: which of these rows stop after the step they just ran (steps counts it)."""
        at_limit = steps >= limit
        if self.mode == FIXED:
            return at_limit
        if self.mode == ADAPTIVE:
            wants = model.wants_to_halt(q_halt, q_continue)
        else:
            wants = torch.sigmoid(q_halt) >= self.threshold
        return at_limit | (wants & (steps >= self.min_steps))

    def describe(self, halt_max_steps: int) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "max_steps": self.step_limit(halt_max_steps)}
        if self.mode != FIXED:
            out["min_steps"] = self.min_steps
        if self.mode == THRESHOLD:
            out["threshold"] = self.threshold
        return out


def cast_weights_once(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the casted layers' weights in the forward dtype: their per-call `.to(dtype)` then
    does nothing. Bit-identical to casting at every call (the same rounding, done once).
    Only the casted layers: rotary tables and norms keep computing in fp32 as they do."""
    if dtype == torch.float32:
        return model
    for module in model.modules():
        if isinstance(module, (CastedLinear, CastedEmbedding)):
            module.to(dtype)
    return model


@dataclass
class StepRows:
    """The rows that ran one engine step, as computed (CPU tensors): what `on_step` receives."""

    index: torch.Tensor  # [n] int64, the caller's ids
    steps: torch.Tensor  # [n] int32, ACT steps run so far (this one included)
    preds: torch.Tensor  # [n, L] the answer after this step
    q_halt_logits: torch.Tensor  # [n] fp32
    q_continue_logits: torch.Tensor  # [n] fp32


@dataclass
class _Slots:
    """The engine's per-slot state on the device."""

    carry: InnerCarry  # z_H, z_L [N, S, h]
    x: torch.Tensor  # [N, S, h] input embeddings of the slot's puzzle
    index: torch.Tensor  # [N] int64
    inputs: torch.Tensor  # [N, L]
    identifiers: torch.Tensor  # [N]
    labels: torch.Tensor | None  # [N, L]
    steps: torch.Tensor  # [N] int32
    active: torch.Tensor  # [N] bool
    q_halt: torch.Tensor  # [N, T] fp32
    q_continue: torch.Tensor  # [N, T] fp32
    exact: torch.Tensor | None  # [N, T] bool
    preds: torch.Tensor | None  # [N, T, L]
    limit: torch.Tensor  # [N] int32, the most steps the slot's row may run
    past_policy: torch.Tensor  # [N] bool, the policy wanted to stop this row (it goes on until verified)
    noise_seed: torch.Tensor  # [N] int64, -1: no noise (kept so an out-of-memory restart starts the same)


class _Queue:
    """Rows waiting for a slot, pulled from the source lazily (memory stays flat). A live source
    yields None when it has nothing right now: `take` returns what it has, the source stays open."""

    def __init__(self, source: Iterable[PuzzleChunk | None]):
        self._source = iter(source)
        self._chunks: deque[PuzzleChunk] = deque()
        self.exhausted = False

    def push_front(self, chunk: PuzzleChunk) -> None:
        self._chunks.appendleft(chunk)

    def take(self, n: int) -> PuzzleChunk | None:
        parts: list[PuzzleChunk] = []
        while n > 0:
            if not self._chunks:
                nxt = next(self._source, _END)
                if nxt is _END:
                    self.exhausted = True
                    break
                if nxt is None:  # a live source with nothing queued: go on with what is in flight
                    break
                if len(nxt.index):
                    self._chunks.append(nxt)
                continue
            head = self._chunks.popleft()
            k = min(n, len(head.index))
            parts.append(_slice(head, slice(0, k)))
            if k < len(head.index):
                self._chunks.appendleft(_slice(head, slice(k, None)))
            n -= k
        return _concat(parts) if parts else None


_END: Any = object()  # the source ended (a live source's None only means "nothing right now")


def _slice(c: PuzzleChunk, s: slice) -> PuzzleChunk:
    def part(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[s]

    return PuzzleChunk(
        c.index[s], c.inputs[s], c.puzzle_identifiers[s], part(c.labels), part(c.step_limit), part(c.noise_seed)
    )


def _concat(parts: list[PuzzleChunk]) -> PuzzleChunk:
    if len(parts) == 1:
        return parts[0]

    def cat(name: str, fill: int) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts]
        if all(v is None for v in values):
            return None
        if name == "labels":  # rows without labels cannot be mixed with rows that have them
            return torch.cat(values)
        return torch.cat([v if v is not None else torch.full((len(p.index),), fill) for v, p in zip(values, parts)])

    return PuzzleChunk(
        torch.cat([p.index for p in parts]),
        torch.cat([p.inputs for p in parts]),
        torch.cat([p.puzzle_identifiers for p in parts]),
        cat("labels", 0),
        cat("step_limit", _NO_LIMIT),
        cat("noise_seed", -1),
    )


_NO_LIMIT = -1  # a row of a chunk without step limits: the policy's limit


class ACTEngine:
    """Runs puzzles through an ACT model with continuous batching.

        engine = ACTEngine(model, slots=64, halting=HaltingPolicy("adaptive"))
        for finished in engine.run(chunks):   # FinishedRows, in the order puzzles halt
            ...

    `slots` is the batch: how many puzzles are in flight at once. The source may be live (see
    the module docstring); `on_step(StepRows)` is called after every engine step. `cast_weights` stores the
    weights in the forward dtype once (bit-identical outputs; the model is changed in place). On a CUDA out-of-memory
    error the engine halves it, says so once, puts the puzzles in flight back in the queue
    (they restart from step 0, so their results do not change) and goes on.

    Test-time scaling (`hrm_eval.inference.scaling`) adds three things, all off by default:
    `verifier(inputs [n, L], preds [n, L], q_halt [n]) -> [n] bool` (the task's rule check): a row the policy
    would stop goes on thinking, its carry intact, until its answer passes the check or it
    reaches its own step limit (`PuzzleChunk.step_limit`, at most `max_row_steps`);
    `init_noise`: the std of Gaussian noise added to the initial carry of rows that carry a
    `noise_seed`.
    """

    def __init__(
        self,
        model: ACTModel,
        *,
        slots: int = 64,
        device: torch.device | str | None = None,
        halting: HaltingPolicy | None = None,
        trace_preds: bool = False,
        cast_weights: bool = False,
        on_step: Callable[[StepRows], None] | None = None,
        verifier: Verifier | None = None,
        max_row_steps: int | None = None,
        init_noise: float = 0.0,
    ):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if init_noise < 0:
            raise ValueError(f"init_noise must be >= 0, got {init_noise}")
        self.model = model.eval()
        self.inner = model.inner
        self.config = model.config
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        if cast_weights:  # only for a model the caller owns: a model in training must keep fp32 weights
            cast_weights_once(self.model, self.config.torch_dtype)
        self.slots = slots
        self.halting = halting or HaltingPolicy()
        self.limit = self.halting.step_limit(self.config.halt_max_steps)
        # the length of the per-step traces: the most steps any row may run
        self.trace_steps = max(self.limit, max_row_steps or 0)
        self.trace_preds = trace_preds
        self.on_step = on_step
        self.verifier = verifier
        self.init_noise = init_noise
        self.oom_recovery = self.device.type == "cuda"  # CPU out-of-memory is the OS's business
        self._step_fn: Callable[[InnerCarry, torch.Tensor], Any] = self._step
        self.steps_run = 0  # engine steps (one ACT step of the active slots each)
        self.rows_computed = 0  # sum over engine steps of active slots: the work done
        self.slots_offered = 0  # sum over engine steps of slots: the capacity used

    # ---- compile (optional) -------------------------------------------------------------------
    def compile(self) -> bool:
        """torch.compile the model's ACT step (once per model: later engines reuse it); False,
        with a warning, where no compiler works here. Compiling happens lazily at the first step
        and again for each new batch shape class (dynamic shapes keep that to a few)."""
        step = getattr(self.inner, COMPILED_STEP_ATTR, None)
        if step is None:
            try:
                step = torch.compile(self.inner.step, dynamic=True)
            except Exception as e:  # noqa: BLE001 - any backend failure means: run uncompiled
                log.warning("torch.compile unavailable (%s); running uncompiled", e)
                return False
            object.__setattr__(self.inner, COMPILED_STEP_ATTR, step)  # a plain attribute, not a submodule
        compiled = step  # bound for the closure (mypy: not Optional)
        self._step_fn = lambda carry, x: compiled(carry, x, self.inner.cos_sin())
        return True

    # ---- the loop -------------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, source: Iterable[PuzzleChunk | None]) -> Iterator[FinishedRows]:
        queue = _Queue(source)
        state: _Slots | None = None
        while True:
            if state is None:
                first = queue.take(self.slots)
                if first is None:
                    if queue.exhausted:
                        return
                    continue  # a live source, idle: it waits (bounded) before saying "nothing"
                try:  # the slot state itself may not fit: fewer slots, same puzzles
                    state = self._allocate(first)
                    self._admit(state, first, torch.arange(len(first.index), device=self.device))
                except torch.OutOfMemoryError:
                    if not self.oom_recovery or self.slots == 1:
                        raise
                    state = None
                    queue.push_front(first)
                    self._halve_slots()
                    continue
            self._refill(state, queue)
            active = state.active.nonzero().flatten()
            if active.numel() == 0:
                if queue.exhausted:
                    return
                continue
            try:
                finished = self._advance(state, active)
            except torch.OutOfMemoryError:
                if not self.oom_recovery or self.slots == 1:
                    raise
                state = self._shrink(state, queue)
                continue
            if finished is not None:
                yield finished

    def run_all(
        self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, labels: torch.Tensor | None = None
    ) -> FinishedRows:
        """Every row of `inputs` [n, L] to completion; results in input order."""

        return run_all(self, inputs, puzzle_identifiers, labels)

    def _allocate(self, first: PuzzleChunk) -> _Slots:
        N, T, L = self.slots, self.trace_steps, first.inputs.shape[1]
        dev, dtype = self.device, self.config.torch_dtype
        shape = (N, self.config.full_seq_len, self.config.hidden_size)
        has_labels = first.labels is not None
        return _Slots(
            carry=InnerCarry(torch.zeros(shape, dtype=dtype, device=dev), torch.zeros(shape, dtype=dtype, device=dev)),
            x=torch.zeros(shape, dtype=dtype, device=dev),
            index=torch.full((N,), -1, dtype=torch.int64, device=dev),
            inputs=torch.zeros((N, L), dtype=first.inputs.dtype, device=dev),
            identifiers=torch.zeros(N, dtype=first.puzzle_identifiers.dtype, device=dev),
            labels=torch.zeros((N, L), dtype=first.labels.dtype, device=dev) if has_labels else None,  # type: ignore[union-attr]
            steps=torch.zeros(N, dtype=torch.int32, device=dev),
            active=torch.zeros(N, dtype=torch.bool, device=dev),
            q_halt=torch.full((N, T), float("nan"), device=dev),
            q_continue=torch.full((N, T), float("nan"), device=dev),
            exact=torch.zeros((N, T), dtype=torch.bool, device=dev) if has_labels else None,
            preds=torch.zeros((N, T, L), dtype=torch.int32, device=dev) if self.trace_preds else None,
            limit=torch.full((N,), self.limit, dtype=torch.int32, device=dev),
            past_policy=torch.zeros(N, dtype=torch.bool, device=dev),
            noise_seed=torch.full((N,), -1, dtype=torch.int64, device=dev),
        )

    def _refill(self, state: _Slots, queue: _Queue) -> None:
        free = (~state.active).nonzero().flatten()
        if free.numel() == 0 or queue.exhausted:
            return
        chunk = queue.take(int(free.numel()))
        if chunk is not None:
            self._admit(state, chunk, free[: len(chunk.index)])

    def _admit(self, state: _Slots, chunk: PuzzleChunk, slots: torch.Tensor) -> None:
        """Put new puzzles into `slots`: fresh H_init / L_init states, embeddings computed once."""
        dev = self.device
        inputs = chunk.inputs.to(dev)
        ids = chunk.puzzle_identifiers.to(dev)
        state.carry.z_H[slots] = self.inner.H_init
        state.carry.z_L[slots] = self.inner.L_init
        if chunk.noise_seed is not None and self.init_noise > 0:
            self._perturb(state, chunk.noise_seed, slots)
        state.x[slots] = self.inner.input_embeddings(inputs, ids)
        state.index[slots] = chunk.index.to(dev, torch.int64)
        state.inputs[slots] = inputs.to(state.inputs.dtype)
        state.identifiers[slots] = ids.to(state.identifiers.dtype)
        if state.labels is not None and chunk.labels is not None:
            state.labels[slots] = chunk.labels.to(dev, state.labels.dtype)
        state.steps[slots] = 0
        state.active[slots] = True
        state.limit[slots] = self._row_limits(chunk).to(dev)
        state.past_policy[slots] = False
        seeds = chunk.noise_seed if chunk.noise_seed is not None else torch.full((len(chunk.index),), -1)
        state.noise_seed[slots] = seeds.to(dev, torch.int64)
        state.q_halt[slots] = float("nan")
        state.q_continue[slots] = float("nan")
        if state.exact is not None:
            state.exact[slots] = False

    def _row_limits(self, chunk: PuzzleChunk) -> torch.Tensor:
        """[n] int32: each row's step limit (the policy's where the chunk gives none)."""
        if chunk.step_limit is None:
            return torch.full((len(chunk.index),), self.limit, dtype=torch.int32)
        limits = torch.where(chunk.step_limit < 0, self.limit, chunk.step_limit).to(torch.int32)
        if bool((limits < 1).any()) or bool((limits > self.trace_steps).any()):
            raise ValueError(f"a row's step limit must be in 1..{self.trace_steps} (max_row_steps)")
        return limits

    def _perturb(self, state: _Slots, seeds: torch.Tensor, slots: torch.Tensor) -> None:
        """Gaussian noise (std init_noise) on the initial z_H / z_L of the rows with a seed >= 0,
        drawn on the CPU from the row's own generator: the same seed gives the same start on any
        device and in any batch."""
        shape = state.carry.z_H.shape[1:]  # [S, h]
        for seed, slot in zip(seeds.tolist(), slots.tolist()):
            if seed < 0:
                continue
            g = torch.Generator().manual_seed(int(seed))
            for z in (state.carry.z_H, state.carry.z_L):
                noise = torch.randn(shape, generator=g) * self.init_noise
                z[slot] = z[slot] + noise.to(z.device, z.dtype)

    def _step(self, carry: InnerCarry, x: torch.Tensor):
        return self.inner.step(carry, x, self.inner.cos_sin())

    def _advance(self, state: _Slots, active: torch.Tensor) -> FinishedRows | None:
        """One ACT step for the active slots; returns the rows that halted on it."""
        everyone = active.numel() == self.slots
        n = int(active.numel())
        if everyone:  # the common case: no gather / scatter
            carry, x = state.carry, state.x
        else:
            rows = self._bucket(state, active)
            carry = InnerCarry(state.carry.z_H[rows], state.carry.z_L[rows])
            x = state.x[rows]
        carry, logits, q_halt, q_continue = self._step_fn(carry, x)
        if everyone:
            state.carry = carry
        else:  # the active rows come first; bucket padding rows are dropped
            carry, logits, q_halt, q_continue = (
                InnerCarry(carry.z_H[:n], carry.z_L[:n]),
                logits[:n],
                q_halt[:n],
                q_continue[:n],
            )
            state.carry.z_H[active] = carry.z_H
            state.carry.z_L[active] = carry.z_L
        self.steps_run += 1
        self.rows_computed += n
        self.slots_offered += self.slots

        steps = state.steps[active] + 1
        state.steps[active] = steps
        col = (steps - 1).long()
        state.q_halt[active, col] = q_halt
        state.q_continue[active, col] = q_continue
        preds = logits.argmax(-1)  # [n, L]
        if state.exact is not None and state.labels is not None:
            labels = state.labels[active]
            state.exact[active, col] = ((preds == labels) | (labels == -100)).all(-1)
        if state.preds is not None:
            state.preds[active, col] = preds.to(torch.int32)
        if self.on_step is not None:
            self.on_step(StepRows(state.index[active].cpu(), steps.cpu(), preds.cpu(), q_halt.cpu(), q_continue.cpu()))

        halt, verified = self._halts(state, active, steps, preds, q_halt, q_continue)
        if not bool(halt.any()):
            return None
        rows = active[halt]
        state.active[rows] = False
        steps_done = steps[halt].cpu()
        verdicts = verified[halt].cpu() if verified is not None else None
        return FinishedRows(
            index=state.index[rows].cpu(),
            logits=logits[halt].cpu(),
            q_halt_logits=q_halt[halt].cpu(),
            q_continue_logits=q_continue[halt].cpu(),
            steps=steps_done,
            q_halt_by_step=state.q_halt[rows].cpu(),
            q_continue_by_step=state.q_continue[rows].cpu(),
            exact_by_step=state.exact[rows].cpu() if state.exact is not None else None,
            preds_by_step=state.preds[rows].cpu() if state.preds is not None else None,
            verified=verdicts,
            # on the CPU copies: a few [k] compares, no extra kernels on the device
            stop_reason=stop_reasons(steps_done, state.limit[rows].cpu(), self.limit, verdicts),
        )

    def _halts(
        self,
        state: _Slots,
        active: torch.Tensor,
        steps: torch.Tensor,
        preds: torch.Tensor,
        q_halt: torch.Tensor,
        q_continue: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """([n] bool rows that stop after this step, [n] bool verdicts or None when no row is checked).
        A row that is not checked stops on the policy's decision or at its own limit. A checked
        row that the policy would stop (now or at an earlier step) stops once its answer passes
        the check; it too stops at its own limit."""
        policy = self.halting.halts(self.model, steps, q_halt, q_continue, self.limit)
        at_limit = steps >= state.limit[active]
        checked = self._checked_rows(state, active)
        if checked is None:
            return policy | at_limit, None
        mask = checked if isinstance(checked, torch.Tensor) else None  # None: every row is checked
        ready = policy | state.past_policy[active]
        if mask is not None:
            ready &= mask
        state.past_policy[active] = ready
        verified = torch.zeros_like(ready)
        want = ready | at_limit
        check = (want if mask is None else mask & want).nonzero().flatten()
        if check.numel():
            verified[check] = self._check(state, active[check], preds[check], q_halt[check]).to(verified.device)
        halts = (ready & verified) | at_limit
        return (halts if mask is None else torch.where(mask, halts, policy | at_limit)), verified

    def _checked_rows(self, state: _Slots, active: torch.Tensor) -> torch.Tensor | bool | None:
        """The active rows that stop only on a passing check: an [n] bool mask, True (every row:
        a verifier checks them all) or None (no row)."""
        return None if self.verifier is None else True

    def _check(self, state: _Slots, rows: torch.Tensor, preds: torch.Tensor, q_halt: torch.Tensor) -> torch.Tensor:
        """[c] bool verdicts on the answers `preds` [c, L] of the slots `rows` [c]."""
        assert self.verifier is not None  # _checked_rows checks no row without one
        return self.verifier(state.inputs[rows], preds, q_halt)

    def _bucket(self, state: _Slots, active: torch.Tensor) -> torch.Tensor:
        """The slots to compute when only some are active: on CUDA the active ones padded with
        idle ones up to a power of two. A new batch shape can cost the GPU libraries a new
        kernel plan, and the draining tail of a run would otherwise bring a new shape at almost
        every step (on an H100, bf16 adaptive runs were slower than the public loop before); the padding
        rows' results are dropped. On the CPU, where compute is the cost, exactly the active slots."""
        n = int(active.numel())
        if self.device.type != "cuda":
            return active
        bucket = min(self.slots, 1 << (n - 1).bit_length())
        if bucket == n:
            return active
        idle = (~state.active).nonzero().flatten()[: bucket - n]
        return torch.cat([active, idle])

    def _shrink(self, state: _Slots, queue: _Queue) -> _Slots | None:
        """After an out-of-memory error: half the slots; puzzles in flight go back to the queue."""
        in_flight = state.active.nonzero().flatten()
        if in_flight.numel():
            queue.push_front(
                PuzzleChunk(
                    index=state.index[in_flight].cpu(),
                    inputs=state.inputs[in_flight].cpu(),
                    puzzle_identifiers=state.identifiers[in_flight].cpu(),
                    labels=state.labels[in_flight].cpu() if state.labels is not None else None,
                    step_limit=state.limit[in_flight].cpu(),
                    noise_seed=state.noise_seed[in_flight].cpu(),
                )
            )
        del state
        self._halve_slots()
        return None

    def _halve_slots(self) -> None:
        old = self.slots
        self.slots = max(1, self.slots // 2)
        log.warning("out of memory with %d slots: continuing with %d (puzzles in flight restart)", old, self.slots)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def stats(self) -> dict[str, Any]:
        """What the engine did so far: ACT steps computed and how full the slots were."""
        return {
            "engine_steps": self.steps_run,
            "act_steps_computed": self.rows_computed,
            "slots": self.slots,
            "slot_occupancy": self.rows_computed / self.slots_offered if self.slots_offered else 0.0,
        }
