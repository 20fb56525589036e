"""Choosing the device: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

from hrm_eval.utils.errors import HRMEvalError


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HRMEvalError("--device cuda asked for, but this PyTorch build sees no CUDA GPU (try --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise HRMEvalError("--device mps asked for, but MPS is not available on this machine (try --device auto or cpu)")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise HRMEvalError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from e
