"""HRM (`hrm_act_v1`): two recurrent levels. The low level L updates L_cycles times per high
level update; only the last L and the last H update carry gradient (the 1-step gradient
approximation that keeps memory constant in the number of cycles)."""

from __future__ import annotations

import torch

from hrm_eval.models.base import RecursiveReasoningModel
from hrm_eval.models.config import ModelConfig
from hrm_eval.models.layers import CosSin, ReasoningBlock, ReasoningModule


class HRMReasoning(RecursiveReasoningModel):
    """The inner HRM (one ACT step). The public code calls the ACT-wrapped model
    HierarchicalReasoningModel_ACTV1: that is `ACTModel(HRMReasoning(config))`."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c = config

        def stack(n: int) -> ReasoningModule:
            return ReasoningModule(
                [ReasoningBlock(c.hidden_size, c.num_heads, c.expansion, c.rms_norm_eps) for _ in range(n)]
            )

        self.H_level = stack(c.H_layers)
        self.L_level = stack(c.L_layers)

    def recurse(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cos_sin: CosSin | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        H_cycles, L_cycles = self.config.H_cycles, self.config.L_cycles
        # For 2x2 this is L L H L | L H: everything but the final L and H update without grad.
        with torch.no_grad():
            for h_step in range(H_cycles):
                for l_step in range(L_cycles):
                    if not (h_step == H_cycles - 1 and l_step == L_cycles - 1):
                        z_L = self.L_level(z_L, z_H + x, cos_sin)
                if h_step != H_cycles - 1:
                    z_H = self.H_level(z_H, z_L, cos_sin)
        z_L = self.L_level(z_L, z_H + x, cos_sin)
        z_H = self.H_level(z_H, z_L, cos_sin)
        return z_H, z_L


HRMModel = HRMReasoning  # the design's name for the inner model (the README's notebook example uses it)
