"""TRM (Tiny Recursive Model): one small stack `L_level` does both updates. z_H is the answer
state (y), z_L the latent (z). A round is L_cycles latent updates z <- f(z, y + x) and one
answer update y <- f(y, z); H_cycles - 1 rounds run without gradient, the last with it.
With `mlp_t` the blocks mix positions with an MLP over the sequence axis instead of attention."""

from __future__ import annotations

import torch

from hrm_eval.models.base import RecursiveReasoningModel
from hrm_eval.models.config import ModelConfig
from hrm_eval.models.layers import CosSin, ReasoningBlock, ReasoningModule


class TRMReasoning(RecursiveReasoningModel):
    """The inner TRM (one ACT step); `ACTModel(TRMReasoning(config))` is the public
    TinyRecursiveReasoningModel_ACTV1."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c = config
        mlp_t_seq_len = c.full_seq_len if c.mlp_t else None
        self.L_level = ReasoningModule(
            [
                ReasoningBlock(c.hidden_size, c.num_heads, c.expansion, c.rms_norm_eps, mlp_t_seq_len=mlp_t_seq_len)
                for _ in range(c.L_layers)
            ]
        )

    def _round(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cos_sin: CosSin | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.config.L_cycles):
            z_L = self.L_level(z_L, z_H + x, cos_sin)
        z_H = self.L_level(z_H, z_L, cos_sin)
        return z_H, z_L

    def recurse(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cos_sin: CosSin | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                z_H, z_L = self._round(z_H, z_L, x, cos_sin)
        return self._round(z_H, z_L, x, cos_sin)
