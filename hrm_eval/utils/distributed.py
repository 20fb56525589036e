"""The process group torchrun asks for, set up in one place for every mode run under torchrun
(evaluate, ensemble and compare through `hrm_eval.evaluation.distributed`; train).

    torchrun env (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ...)
      -> our own TCPStore client on MASTER_ADDR:MASTER_PORT (as the env:// rendezvous makes it)
      -> torch.distributed's default process group, on that store, with a timeout

Every collective and store wait has a timeout: HRM_EVAL_DIST_TIMEOUT seconds (default 1800), so
no rank waits forever. A mistake in the environment (no MASTER_ADDR / MASTER_PORT, a timeout
that is not a positive number) is one line (HRMEvalError), not a traceback.

A rank that fails ends with the one line "rank R of K: reason" (`run_as_rank`) and leaves it on
the store: evaluation's ranks, which wait on the store, stop at once, and a rank whose collective
broke on the failure stops without a line of its own. The test hook FAIL_RANK_ENV makes one rank
fail (README: torchrun), for evaluation and training alike.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from hrm_eval.utils.errors import HRMEvalError

TIMEOUT_ENV = "HRM_EVAL_DIST_TIMEOUT"  # seconds for every collective and store wait
DEFAULT_TIMEOUT_S = 1800.0
# Test hook (documented in the README): "R" makes rank R fail with an error after its first
# piece of work (finished puzzles, a training step), "R:kill" makes it SIGKILL itself there (a
# rank that dies without a word).
FAIL_RANK_ENV = "HRM_EVAL_TEST_FAIL_RANK"
FAILED_KEY = "failed"  # the store key a failing rank writes its one line to
T = TypeVar("T")


class PeerFailed(SystemExit):
    """Another rank failed and said why; this one stops with status 1 and no message of its own."""

    def __init__(self) -> None:
        super().__init__(1)


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


def tell_failure(store: Any, rank: int, world_size: int, reason: str) -> None:
    """Tell the other ranks why this one fails (best effort: the store may be gone already)."""
    with contextlib.suppress(Exception):  # failing to tell is not a second failure
        store.set(FAILED_KEY, f"rank {rank} of {world_size}: {reason}")


def peer_failure(store: Any) -> str | None:
    """What another rank told of its failure ('rank R of K: reason'), or None."""
    if store.check([FAILED_KEY]):
        return store.get(FAILED_KEY).decode()
    return None


def run_as_rank(rank: int, world_size: int, work: Callable[[], T], store: Any = None) -> T:
    """Run this rank's part; a failure becomes the one line 'rank R of K: reason', told to the
    other ranks through `store` when there is one. A rank whose work broke because a peer failed
    first (a collective cut off) stops quietly (PeerFailed): the peer's line says why. In one
    process, the work as it is."""
    if world_size == 1:
        return work()
    try:
        return work()
    except Exception as e:  # noqa: BLE001 - out of memory, a bug: still one line naming the rank
        if store is not None:
            with contextlib.suppress(Exception):  # the store may be gone with the failed peer
                if peer_failure(store) is not None:
                    raise PeerFailed() from e
        reason = str(e) if isinstance(e, HRMEvalError) else f"{type(e).__name__}: {e}".splitlines()[0]
        if store is not None:
            tell_failure(store, rank, world_size, reason)
        raise HRMEvalError(f"rank {rank} of {world_size}: {reason}") from e


def injected_failure(rank: int, distributed: bool) -> Callable[[], None] | None:
    """The test hook (FAIL_RANK_ENV) when it names this rank of a distributed run: called after
    the rank's first piece of work, it raises (a failure with a reason) or, with ":kill",
    SIGKILLs the process (a rank that dies without a word)."""
    text = os.environ.get(FAIL_RANK_ENV)
    if not text or not distributed:
        return None
    rank_text, _, how = text.partition(":")
    if not rank_text.isdigit() or int(rank_text) != rank:
        return None

    def fail() -> None:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise HRMEvalError(f"injected failure ({FAIL_RANK_ENV}={text}, a test hook)")

    return fail
