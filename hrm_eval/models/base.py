"""What HRM and TRM share around their recursion: the input embedding (tokens, puzzle
prefix, positions), the initial states, and the two heads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hrm_eval.models.config import ModelConfig
from hrm_eval.models.layers import (
    CastedEmbedding,
    CastedLinear,
    CosSin,
    RotaryEmbedding,
    SparsePuzzleEmbedding,
    trunc_normal_init_,
)
from hrm_eval.utils.errors import HRMEvalError


@dataclass
class InnerCarry:
    z_H: torch.Tensor  # [B, S, h] high level / answer state
    z_L: torch.Tensor  # [B, S, h] low level / latent state


class RecursiveReasoningModel(nn.Module):
    """Base of one ACT step: subclasses build their levels and implement `recurse`."""

    H_init: torch.Tensor  # [h] buffer: initial z_H
    L_init: torch.Tensor  # [h] buffer: initial z_L

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        h, dtype = config.hidden_size, config.torch_dtype
        self.puzzle_prefix_len = config.puzzle_prefix_len
        self.embed_scale = math.sqrt(h)
        embed_init_std = 1.0 / self.embed_scale

        self.embed_tokens = CastedEmbedding(config.vocab_size, h, init_std=embed_init_std, cast_to=dtype)
        self.lm_head = CastedLinear(h, config.vocab_size, bias=False)
        self.q_head = CastedLinear(h, 2, bias=True)
        assert self.q_head.bias is not None  # bias=True: for mypy
        with torch.no_grad():  # start by (almost) never halting: Q(halt) = Q(continue) = sigmoid(-5)
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5)
        if config.puzzle_emb_ndim > 0:
            self.puzzle_emb = SparsePuzzleEmbedding(
                config.num_puzzle_identifiers, config.puzzle_emb_ndim, cast_to=dtype
            )
        if config.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(config.head_dim, config.full_seq_len, config.rope_theta)
        elif config.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(config.full_seq_len, h, init_std=embed_init_std, cast_to=dtype)

        self.register_buffer("H_init", trunc_normal_init_(torch.empty(h, dtype=dtype), std=1))
        self.register_buffer("L_init", trunc_normal_init_(torch.empty(h, dtype=dtype), std=1))

    def load_from_checkpoint(self, checkpoint: Any) -> RecursiveReasoningModel:
        """Copy a checkpoint's weights into this model and return it. `checkpoint`: what
        `load_checkpoint(path)` returns, or a path (loaded for this model's sequence length).
        Its architecture must be this model's config, field by field: a difference (other
        sizes, cycle counts, dtype) is an HRMEvalError naming the field, since weights of a
        model with other cycle counts would load and silently compute something else."""
        # why: loading builds these models: a top-level import would be a circle
        from hrm_eval.models.checkpoint import LoadedCheckpoint, load_checkpoint

        if not isinstance(checkpoint, LoadedCheckpoint):
            checkpoint = load_checkpoint(checkpoint, overrides={"seq_len": self.config.seq_len})
        mine, theirs = self.config.model_dump(), checkpoint.config.model_dump()
        for key in mine:
            if key != "batch_size" and mine[key] != theirs[key]:
                raise HRMEvalError(
                    f"load_from_checkpoint: {key} is {mine[key]!r} in this model but {theirs[key]!r} in "
                    f"{checkpoint.path}; build the model from that checkpoint's config"
                )
        self.load_state_dict(checkpoint.model.inner.state_dict(), strict=True)
        return self

    # ---- pieces ---------------------------------------------------------------------------
    def cos_sin(self) -> CosSin | None:
        return self.rotary_emb() if hasattr(self, "rotary_emb") else None

    def input_embeddings(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(inputs.to(torch.int32))  # [B, L, h]
        if self.puzzle_prefix_len > 0:
            B, h = x.shape[0], self.config.hidden_size
            prefix = self.puzzle_emb(puzzle_identifiers)  # [B, puzzle_emb_ndim]
            prefix = nn.functional.pad(prefix, (0, self.puzzle_prefix_len * h - prefix.shape[-1]))
            x = torch.cat((prefix.view(B, self.puzzle_prefix_len, h), x), dim=-2)  # [B, S, h]
        if hasattr(self, "embed_pos"):
            x = 0.707106781 * (x + self.embed_pos.embedding_weight.to(x.dtype))  # keep the variance
        return self.embed_scale * x

    def empty_carry(self, batch_size: int, device: torch.device) -> InnerCarry:
        shape = (batch_size, self.config.full_seq_len, self.config.hidden_size)
        dtype = self.config.torch_dtype
        return InnerCarry(
            torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)
        )

    def reset_carry(self, reset: torch.Tensor, carry: InnerCarry) -> InnerCarry:
        """Rows where `reset` [B] is true start again from H_init / L_init."""
        r = reset.view(-1, 1, 1)
        return InnerCarry(torch.where(r, self.H_init, carry.z_H), torch.where(r, self.L_init, carry.z_L))

    # ---- one ACT step -----------------------------------------------------------------------
    def recurse(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cos_sin: CosSin | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(
        self, carry: InnerCarry, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor
    ) -> tuple[InnerCarry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (new carry, logits [B, L, V] in forward dtype, q_halt [B], q_continue [B] fp32)."""
        x = self.input_embeddings(inputs, puzzle_identifiers)
        return self.step(carry, x, self.cos_sin())

    def step(
        self, carry: InnerCarry, x: torch.Tensor, cos_sin: CosSin | None
    ) -> tuple[InnerCarry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One ACT step from precomputed input embeddings x [B, S, h]: inference computes x once
        per puzzle instead of once per step (the embedding does not change between steps)."""
        z_H, z_L = self.recurse(carry.z_H, carry.z_L, x, cos_sin)
        logits = self.lm_head(z_H)[:, self.puzzle_prefix_len :]
        q = self.q_head(z_H[:, 0]).to(torch.float32)  # [B, 2]
        return InnerCarry(z_H.detach(), z_L.detach()), logits, q[..., 0], q[..., 1]
