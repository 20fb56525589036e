"""Optimisers and the learning-rate schedule of the public training script.

Weights: `torch.optim.AdamW` (the public script uses a compiled Adam-atan2 extension, its most
reported install failure). Puzzle embeddings: sign-SGD with decoupled weight decay applied
only to the rows a batch used, across all ranks — no library provides it.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from hrm_eval.models.layers import SparsePuzzleEmbedding


def cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up to base_lr, then half a cosine down to base_lr * min_ratio."""
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))))


class SparseSignSGD:
    """`weights[ids] <- weights[ids] * (1 - lr * wd) - lr * sign(sum of grads for ids)`."""

    def __init__(self, embedding: SparsePuzzleEmbedding, weight_decay: float, world_size: int = 1):
        self.embedding = embedding
        self.weight_decay = weight_decay
        self.world_size = world_size
        self.lr = 0.0

    @torch.no_grad()
    def step(self) -> None:
        emb = self.embedding
        if emb.local_weights is None or emb.local_weights.grad is None:
            return
        grads, ids = emb.local_weights.grad, emb.local_ids  # [b, D], [b]
        assert ids is not None  # the forward that made the gradient recorded its rows
        if self.world_size > 1:  # every rank applies the same update to its copy of the table
            all_grads = [torch.empty_like(grads) for _ in range(self.world_size)]
            all_ids = [torch.empty_like(ids) for _ in range(self.world_size)]
            dist.all_gather(all_grads, grads.contiguous())
            dist.all_gather(all_ids, ids.contiguous())
            grads, ids = torch.cat(all_grads), torch.cat(all_ids)
        unique_ids, inverse = ids.long().unique(return_inverse=True)
        summed = torch.zeros(len(unique_ids), grads.shape[-1], dtype=grads.dtype, device=grads.device)
        summed.index_add_(0, inverse, grads)
        rows = emb.weights[unique_ids]
        rows.mul_(1.0 - self.lr * self.weight_decay).add_(torch.sign(summed), alpha=-self.lr)
        emb.weights[unique_ids] = rows

    def zero_grad(self) -> None:
        self.embedding.local_weights = None
        self.embedding.local_ids = None


class EMA:
    """TRM's `ema: true`: an exponential moving average of the trainable parameters, kept by
    `torch.optim.swa_utils.AveragedModel` (a copy of the model, buffers included; the buffers
    are not averaged: the puzzle embedding has its own optimiser).

    The average starts at the initial weights, as TRM's EMAHelper does: AveragedModel's first
    update copies instead of averaging, so it is made here, at construction.
    """

    def __init__(self, model: torch.nn.Module, rate: float):
        self.rate = rate
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(rate))
        self.averaged.update_parameters(model)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.averaged.update_parameters(model)  # shadow <- shadow + (1 - rate) (param - shadow)

    @property
    def shadow(self) -> dict[str, torch.Tensor]:
        """The averaged trainable parameters by name (live tensors: clone to keep a copy)."""
        return {n: p.detach() for n, p in self.averaged.module.named_parameters() if p.requires_grad}

    @shadow.setter
    def shadow(self, values: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.averaged.module.named_parameters():
                if n in values:
                    p.copy_(values[n])

    def state_dict_with(self, model: torch.nn.Module, prefix: str = "") -> dict:
        """The model's state dict with averaged parameters (buffers as they are now)."""
        sd = model.state_dict()
        for n, v in self.shadow.items():
            if n.startswith(prefix):
                sd[n[len(prefix) :]] = v.clone()
        return sd


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def maybe_sparse_optimizer(model: torch.nn.Module, weight_decay: float, world_size: int) -> SparseSignSGD | None:
    emb = getattr(model, "puzzle_emb", None)
    return SparseSignSGD(emb, weight_decay, world_size) if isinstance(emb, SparsePuzzleEmbedding) else None
