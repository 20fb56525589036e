"""Per-machine runtime choices: which dtype runs natively here, how many threads to use.

Machines differ (a CPU with AMX runs bf16 about 2x faster than fp32, one with only AVX2
emulates bf16 several times slower), so these are decided by looking at the machine the
program runs on, never fixed in documentation, and every choice is recorded with its reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hrm_eval.utils import limits
from hrm_eval.utils.errors import HRMEvalError

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str
    reason: str
    changed: bool  # differs from the checkpoint's own forward_dtype: numbers differ by rounding


def cpu_bf16_native() -> dict[str, bool]:
    """Which bf16 instructions this CPU has (AMX tiles, AVX-512 BF16), as torch sees them."""

    def probe(name: str) -> bool:
        fn = getattr(torch.cpu, name, None)
        try:
            return bool(fn()) if fn is not None else False
        except RuntimeError:
            return False

    return {"amx": probe("_is_amx_tile_supported"), "avx512_bf16": probe("_is_avx512_bf16_supported")}


def _cuda_bf16(device: torch.device) -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def choose_dtype(
    requested: str | None,
    checkpoint_dtype: str,
    device: torch.device,
    *,
    cpu_features: Callable[[], dict[str, bool]] | None = None,
    cuda_bf16: Callable[[torch.device], bool] | None = None,
) -> DtypeChoice:
    """`requested` None keeps the checkpoint's dtype; "auto" takes bf16 where the device runs it
    natively (CUDA with bf16; a CPU with AMX or AVX-512 BF16), otherwise the checkpoint's dtype.
    The capability probes can be injected (tests exercise both branches on any machine)."""
    if requested is None or requested == checkpoint_dtype:
        return DtypeChoice(checkpoint_dtype, "the checkpoint's forward_dtype", False)
    if requested != "auto":
        if requested not in DTYPES:
            raise ValueError(f"dtype must be auto or one of {', '.join(DTYPES)}, got {requested!r}")
        return DtypeChoice(requested, "requested", requested != checkpoint_dtype)
    if device.type == "cuda":
        native = (cuda_bf16 or _cuda_bf16)(device)
        where = f"{device} supports bf16" if native else f"{device} has no native bf16"
    elif device.type == "cpu":
        feats = (cpu_features or cpu_bf16_native)()
        have = [name for name, ok in feats.items() if ok]
        native = bool(have)
        where = (
            f"this CPU has {' and '.join(have)}"
            if native
            else "this CPU has neither AMX nor AVX-512 BF16 (bf16 is emulated)"
        )
    else:
        native, where = False, f"no bf16 capability check for {device.type}"
    if native:
        return DtypeChoice("bfloat16", f"auto: {where}", checkpoint_dtype != "bfloat16")
    return DtypeChoice(checkpoint_dtype, f"auto: {where}; kept the checkpoint's dtype", False)


def physical_cores() -> int:
    """Cores this process may run on (affinity), counting each once."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def choose_threads(requested: int | None, device: torch.device) -> int:
    """Intra-op threads for the CPU. Default: one per core this process may use, as torch does,
    unless OMP_NUM_THREADS says otherwise; `requested` wins. The model is small, so on a
    machine shared with other work fewer threads are often faster: `benchmarks/act_throughput.py`
    measures it on your machine."""
    if requested is not None:
        if not 1 <= requested <= limits.MAX_THREADS:  # 100,000 made libgomp abort the process
            raise HRMEvalError(f"--threads must be between 1 and {limits.MAX_THREADS}, got {requested}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit():
        if len(env) > 6 or int(env) > limits.MAX_THREADS:  # --threads' bound: libgomp aborts far above it
            raise HRMEvalError(f"OMP_NUM_THREADS={env[:20]}: at most {limits.MAX_THREADS} threads")
        if int(env) > 0:
            return int(env)
    return physical_cores() if device.type == "cpu" else torch.get_num_threads()


def apply_threads(n: int) -> None:
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def machine_memory(device: torch.device) -> int:
    """Bytes this process could ever have on `device`: the GPU's memory, or the RAM (capped by a
    cgroup limit where one is set, as in a container or a batch job)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return int(total)


def check_memory(need: int, device: torch.device, what: str) -> None:
    """One line, before anything is allocated, when `need` bytes cannot fit on `device`."""
    have = machine_memory(device)
    if need > have:
        raise HRMEvalError(
            f"{what} would need about {need / 2**30:,.1f} GiB on {device.type}, more than the "
            f"{have / 2**30:,.1f} GiB this machine has; lower --batch-size or --limit"
        )
