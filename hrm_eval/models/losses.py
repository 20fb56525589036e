"""Loss functions and the per-row quantities the public `ACTLossHead` reports.

`row_metrics` is the single definition of every metric: evaluation sums its rows over
the valid ones (halted, at least one scored label), training uses the same rows for its loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hrm_eval.data.format import IGNORE_LABEL_ID  # one definition: the loader writes it, the losses skip it


def _stablemax_s(x: torch.Tensor, epsilon: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = _stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss [B, L] in float64; zero at ignored positions."""
    logp = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != IGNORE_LABEL_ID
    picked = torch.gather(logp, -1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss [B, L] in float32; zero at ignored positions."""
    return F.cross_entropy(
        logits.to(torch.float32).flatten(0, -2), labels.long().flatten(), ignore_index=IGNORE_LABEL_ID, reduction="none"
    ).view(labels.shape)


LOSS_FUNCTIONS = {"stablemax_cross_entropy": stablemax_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy}


def row_metrics(
    logits: torch.Tensor, labels: torch.Tensor, q_halt_logits: torch.Tensor, loss_type: str
) -> dict[str, torch.Tensor]:
    """Per-row values [B] of the public loss head (before summing over rows)."""
    mask = labels != IGNORE_LABEL_ID
    n = mask.sum(-1)  # scored labels per row
    correct = mask & (logits.argmax(-1) == labels)
    seq_correct = correct.sum(-1) == n
    divisor = n.clamp_min(1)
    return {
        "num_labels": n,
        "token_accuracy": correct.sum(-1).to(torch.float32) / divisor,
        "exact": seq_correct,
        "q_halt_correct": (q_halt_logits >= 0) == seq_correct,
        "lm_loss": LOSS_FUNCTIONS[loss_type](logits, labels).sum(-1) / divisor,
        "q_halt_loss": F.binary_cross_entropy_with_logits(
            q_halt_logits, seq_correct.to(q_halt_logits.dtype), reduction="none"
        ),
    }


def act_training_loss(
    outputs: dict[str, torch.Tensor], labels: torch.Tensor, loss_type: str
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Summed training loss lm + 0.5 (q_halt + q_continue), as in the public loss head."""
    rows = row_metrics(outputs["logits"], labels, outputs["q_halt_logits"], loss_type)
    lm_loss, q_halt_loss = rows["lm_loss"].sum(), rows["q_halt_loss"].sum()
    q_continue_loss = torch.zeros((), device=labels.device)
    if "target_q_continue" in outputs:
        q_continue_loss = F.binary_cross_entropy_with_logits(
            outputs["q_continue_logits"], outputs["target_q_continue"], reduction="sum"
        )
    total = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
    return total, {
        "rows": rows,
        "lm_loss": lm_loss.detach(),
        "q_halt_loss": q_halt_loss.detach(),
        "q_continue_loss": q_continue_loss.detach(),
    }
