"""The process group torchrun asks for, set up in one place for every mode run under torchrun
(evaluate, ensemble and compare through `hrm_eval.evaluation.distributed`; train).

    torchrun env (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ...)
      -> our own TCPStore client on MASTER_ADDR:MASTER_PORT (as the env:// rendezvous makes it)
      -> torch.distributed's default process group, on that store, with a timeout

Every collective and store wait has a timeout: HRM_EVAL_DIST_TIMEOUT seconds (default 1800), so
no rank waits forever. A mistake in the environment (no MASTER_ADDR / MASTER_PORT, a timeout
that is not a positive number) is one line (HRMEvalError), not a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from hrm_eval.utils.errors import HRMEvalError

TIMEOUT_ENV = "HRM_EVAL_DIST_TIMEOUT"  # seconds for every collective and store wait
DEFAULT_TIMEOUT_S = 1800.0


@dataclass
class ProcessGroup:
    """What `init_process_group` set up: this rank's place, and the store for our own keys."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    store: Any  # torch.distributed.Store: a key space of its own beside the process group's
    timeout_s: float


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_seconds() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise HRMEvalError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return value


def init_process_group(backend: str, *, device_id: torch.device | None = None) -> ProcessGroup:
    """torch.distributed's default process group (`backend`: gloo or nccl) for the rank torchrun's
    environment names, with the timeout of `timeout_seconds`; `device_id` binds an NCCL group to
    this rank's GPU at once."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    timeout = timeout_seconds()
    store = _store(rank, world, timeout)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a fresh key space for each torchrun restart
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(f"pg/{restart}", store),
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout),
        device_id=device_id,
    )
    return ProcessGroup(
        rank=rank,
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=backend,
        store=dist.PrefixStore(f"hrm_eval/{restart}", store),
        timeout_s=timeout,
    )


def _store(rank: int, world: int, timeout: float) -> Any:
    """A TCPStore client on torchrun's store (or rank 0 hosts it), as the env:// rendezvous makes it."""
    try:
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    except (KeyError, ValueError):
        given = "WORLD_SIZE > 1" if world > 1 else "RANK and WORLD_SIZE are set"
        raise HRMEvalError(f"{given} but MASTER_ADDR / MASTER_PORT are not set: launch with torchrun") from None
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    return dist.TCPStore(
        host,
        port,
        world,
        is_master=rank == 0 and not agent,
        timeout=timedelta(seconds=timeout),
        multi_tenant=True,
    )
