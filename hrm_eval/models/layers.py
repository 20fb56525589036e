"""The layer library shared by the HRM and TRM families.

Every module keeps the public parameter names (`qkv_proj`, `gate_up_proj`, `embedding_weight`,
...) so that public checkpoints load without renaming. Weights are stored in fp32 and cast to
the activation dtype at use ("casted" layers), which is how the public code trains in bf16.
Attention goes through `F.scaled_dot_product_attention`, so the same code runs on CPU, CUDA
and MPS without FlashAttention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CosSin = tuple[torch.Tensor, torch.Tensor]


def trunc_normal_init_(tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Truncated normal whose *actual* standard deviation is `std` (the public init; torch's
    own `trunc_normal_` leaves the std shrunk by the truncation)."""
    if tensor.is_meta:
        # Shapes only (the loader checks a checkpoint on the meta device): nothing to fill, and on
        # meta `erfinv_` runs torch's Python reference, whose first call imports torch._dynamo (~2 s).
        return tensor
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        sqrt2 = math.sqrt(2.0)
        a, b = math.erf(lower / sqrt2), math.erf(upper / sqrt2)
        z = (b - a) / 2
        c = (2 * math.pi) ** -0.5
        pdf_lower, pdf_upper = c * math.exp(-0.5 * lower**2), c * math.exp(-0.5 * upper**2)
        var_ratio = 1 - (upper * pdf_upper - lower * pdf_lower) / z - ((pdf_upper - pdf_lower) / z) ** 2
        comp_std = std / math.sqrt(var_ratio)
        tensor.uniform_(a, b).erfinv_().mul_(sqrt2 * comp_std).clip_(lower * comp_std, upper * comp_std)
    return tensor


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMS norm without a weight, computed in fp32 and cast back."""
    dtype = x.dtype
    x = x.float()
    return (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)).to(dtype)


def mlp_width(dim: int, expansion: float) -> int:
    """SwiGLU inner width: round(expansion * dim * 2/3), rounded up to a multiple of 256."""
    width = round(expansion * dim * 2 / 3)
    return -(width // -256) * 256


class CastedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_init_(torch.empty(out_features, in_features), std=in_features**-0.5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    def __init__(self, num_embeddings: int, dim: int, init_std: float, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_init_(torch.empty(num_embeddings, dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.cast_to))


class SparsePuzzleEmbedding(nn.Module):
    """One learned vector per puzzle identifier, kept as a *buffer* (`weights`).

    The public code trains it with its own sparse sign-SGD instead of autograd on the full
    table (95k x 512 for Sudoku-Extreme would be huge in Adam state). In training mode the
    looked-up rows become a leaf tensor `local_weights` that receives gradients; the trainer's
    sparse optimizer applies them to `weights[local_ids]`."""

    weights: torch.Tensor  # [num_embeddings, dim] buffer

    def __init__(self, num_embeddings: int, dim: int, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", torch.zeros(num_embeddings, dim))
        self.local_weights: torch.Tensor | None = None
        self.local_ids: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weights[ids]
        if self.training and torch.is_grad_enabled():
            rows = rows.detach().requires_grad_(True)
            self.local_weights, self.local_ids = rows, ids
        return rows.to(self.cast_to)


class RotaryEmbedding(nn.Module):
    """Non-interleaved RoPE tables for positions 0..S-1 (not saved in checkpoints)."""

    cos: torch.Tensor  # [S, head_dim]
    sin: torch.Tensor  # [S, head_dim]

    def __init__(self, head_dim: int, max_positions: int, base: float):
        super().__init__()
        self.head_dim, self.max_positions, self.base = head_dim, max_positions, base
        # On the meta device (the loader's shape check, and the model it then fills with the file's
        # tensors) shapes only: computing the tables there would run torch's Python references,
        # whose first call imports torch._dynamo (~2 s of every command's start). The loader calls
        # compute_tables() once the model holds its weights.
        self.register_buffer("cos", torch.empty(max_positions, head_dim), persistent=False)
        self.register_buffer("sin", torch.empty(max_positions, head_dim), persistent=False)
        if not self.cos.is_meta:
            self.compute_tables()

    def compute_tables(self) -> None:
        """cos / sin of position x frequency, in fp32, where the tables are (on the CPU when they
        are meta placeholders: the model is moved to its device after)."""
        device = torch.device("cpu") if self.cos.is_meta else self.cos.device
        d = self.head_dim
        inv_freq = 1.0 / (self.base ** (torch.arange(0, d, 2, dtype=torch.float32, device=device) / d))
        freqs = torch.outer(torch.arange(self.max_positions, dtype=torch.float32, device=device), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)  # [S, head_dim]
        self.cos, self.sin = angles.cos(), angles.sin()

    def forward(self) -> CosSin:
        return self.cos, self.sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos_sin: CosSin) -> torch.Tensor:
    """x: [B, S, heads, head_dim]; rotation computed in fp32, cast back."""
    cos, sin = (t.unsqueeze(-2) for t in cos_sin)  # [S, 1, head_dim]
    xf = x.float()
    return (xf * cos + _rotate_half(xf) * sin).to(x.dtype)


class Attention(nn.Module):
    """Bidirectional multi-head attention; qkv rows are Q, K, V, head-major inside each."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = CastedLinear(hidden_size, 3 * hidden_size, bias=False)
        self.o_proj = CastedLinear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        B, S, h = x.shape
        qkv = self.qkv_proj(x).view(B, S, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)  # each [B, S, heads, head_dim]
        if cos_sin is not None:
            q, k = apply_rotary(q, cos_sin), apply_rotary(k, cos_sin)
        # [B, heads, S, hd]
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(B, S, h))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, expansion: float):
        super().__init__()
        width = mlp_width(dim, expansion)
        self.gate_up_proj = CastedLinear(dim, 2 * width, bias=False)
        self.down_proj = CastedLinear(width, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class ReasoningBlock(nn.Module):
    """Post-norm transformer block. With `mlp_t` (TRM) the attention is replaced by a SwiGLU
    that mixes along the sequence axis (the norm then runs over the sequence axis too)."""

    def __init__(
        self, hidden_size: int, num_heads: int, expansion: float, eps: float, mlp_t_seq_len: int | None = None
    ):
        super().__init__()
        self.eps = eps
        if mlp_t_seq_len is None:
            self.self_attn = Attention(hidden_size, num_heads)
        else:
            self.mlp_t = SwiGLU(mlp_t_seq_len, expansion)
        self.mlp = SwiGLU(hidden_size, expansion)

    def forward(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        if hasattr(self, "mlp_t"):
            xt = x.transpose(1, 2)  # [B, h, S]
            x = rms_norm(xt + self.mlp_t(xt), self.eps).transpose(1, 2)
        else:
            x = rms_norm(x + self.self_attn(x, cos_sin), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    """A stack of blocks that first adds its input injection: f(z, injection)."""

    def __init__(self, layers: list[ReasoningBlock]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, z: torch.Tensor, injection: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        z = z + injection
        for layer in self.layers:
            z = layer(z, cos_sin)
        return z
