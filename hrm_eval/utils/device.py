"""Choosing the device: CUDA, then Apple MPS, then CPU.

An explicit `--device` must name a device this machine can run the model on: `cpu`, `cuda`,
`cuda:N` with N below the GPU count, or `mps`. Anything else (`meta`, `xla`, a GPU that is not
there, a typo) is a one-line user error listing what is available, never a failure deep inside
the evaluation."""

from __future__ import annotations

import re

import torch

from hrm_eval.utils.errors import HRMEvalError

_FORM = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The `--device` values that work on this machine, `auto` first."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        names += ["cuda"] + [f"cuda:{i}" for i in range(count)]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    given = name
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = available_devices()
    form = _FORM.fullmatch(name)
    if form is not None and form.group(2) == "0" and form.group(1) in available:
        return torch.device(name)  # cpu:0, mps:0, cuda:0
    if form is None or name not in available:
        kind = form.group(1) if form else ""
        no_cuda = "no CUDA GPU with that index" if torch.cuda.is_available() else "this PyTorch build sees no CUDA GPU"
        why = {"cuda": no_cuda, "mps": "Apple MPS is not available here"}.get(
            kind, "not a device the model can run on here"
        )
        raise HRMEvalError(f"--device {given!r}: {why} (available: {', '.join(available)})")
    return torch.device(name)
