"""Adaptive Computation Time around one reasoning step (shared by HRM and TRM).

The carry holds each row's states, step count, halted flag and the puzzle it is working on.
A row that halted is replaced by the next batch's row and restarts from the initial states.
In evaluation every row runs exactly `halt_max_steps` steps, as in the public code; in
training rows may halt early on the Q head's decision, with random exploration, and a
bootstrapped target for Q(continue) comes from one more (no-grad) step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hrm_eval.models.base import InnerCarry, RecursiveReasoningModel

Batch = dict[str, torch.Tensor]  # inputs [B, L], labels [B, L], puzzle_identifiers [B]


@dataclass
class ACTCarry:
    inner: InnerCarry
    steps: torch.Tensor  # [B] int32
    halted: torch.Tensor  # [B] bool
    current_data: Batch


class ACTModel(nn.Module):
    def __init__(self, inner: RecursiveReasoningModel):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    @classmethod
    def from_pretrained(cls, name_or_path: Any, **options: Any) -> ACTModel:
        """The model of a checkpoint, model folder or `hf://OWNER/REPO[@REVISION][/PATH]`, loaded
        and checked as `load_checkpoint` does (`options`: its keywords, e.g. device, dtype). The
        writing side sits above the models: `hrm_eval.export.save_model(model, folder)` and
        `push_model(model, "OWNER/REPO")`."""
        # why: loading builds ACTModels: a top-level import would be a circle
        from hrm_eval.models.checkpoint import load_checkpoint

        return load_checkpoint(name_or_path, **options).model

    def load_from_checkpoint(self, checkpoint: Any) -> ACTModel:
        """The inner model's `load_from_checkpoint` (a checkpoint holds the inner model's weights)."""
        self.inner.load_from_checkpoint(checkpoint)
        return self

    def initial_carry(self, batch: Batch) -> ACTCarry:
        B, device = batch["inputs"].shape[0], batch["inputs"].device
        return ACTCarry(
            inner=self.inner.empty_carry(B, device),
            steps=torch.zeros(B, dtype=torch.int32, device=device),
            halted=torch.ones(B, dtype=torch.bool, device=device),  # everyone takes a new puzzle first
            current_data={k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def forward(self, carry: ACTCarry, batch: Batch) -> tuple[ACTCarry, dict[str, torch.Tensor]]:
        inner_carry = self.inner.reset_carry(carry.halted, carry.inner)
        steps = torch.where(carry.halted, 0, carry.steps)
        data = {
            k: torch.where(carry.halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v)
            for k, v in carry.current_data.items()
        }

        inner_carry, logits, q_halt, q_continue = self.inner(inner_carry, data["inputs"], data["puzzle_identifiers"])
        outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}

        with torch.no_grad():
            steps = steps + 1
            is_last_step = steps >= self.config.halt_max_steps
            halted = is_last_step
            if self.training and self.config.halt_max_steps > 1:
                halted = halted | self.wants_to_halt(q_halt, q_continue)
                # Exploration: some rows must run at least a random number of steps in [2, max].
                explore = torch.rand_like(q_halt) < self.config.halt_exploration_prob
                min_steps = explore * torch.randint_like(steps, low=2, high=self.config.halt_max_steps + 1)
                halted = halted & (steps >= min_steps)
                if self.uses_continue_target:
                    # Bootstrapped target for Q(continue): the value of the best action one step on.
                    _, _, next_q_halt, next_q_continue = self.inner(
                        inner_carry, data["inputs"], data["puzzle_identifiers"]
                    )
                    outputs["target_q_continue"] = torch.sigmoid(
                        torch.where(is_last_step, next_q_halt, torch.maximum(next_q_halt, next_q_continue))
                    )
        return ACTCarry(inner_carry, steps, halted, data), outputs

    @property
    def uses_continue_target(self) -> bool:
        return not (self.config.family == "trm" and self.config.no_ACT_continue)

    def wants_to_halt(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        """The model's own halting decision (TRM with no_ACT_continue: Q(halt) > 0)."""
        if self.uses_continue_target:
            return q_halt > q_continue
        return q_halt > 0
