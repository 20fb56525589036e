"""Evaluation across processes: `torchrun --nproc-per-node K deploy.py --mode evaluate ...`.

    torchrun env (RANK, WORLD_SIZE, MASTER_ADDR, ...) -> one process group (gloo on CPU, NCCL on CUDA)
    every rank: its shard (dataset batches b with b % K == rank) through its own ACT engine
    rank 0:     its own rows + everyone's rows (gathered at the end) -> one accumulator, in
                dataset order -> results.json, per_puzzle.jsonl, step_<N>_all_preds.<rank>

Sharding is by whole dataset batches, so with fixed halting every puzzle runs in the very
batch it runs in a single-process evaluation, and every number is bit for bit the same.

Ranks finish at different times (adaptive halting, uneven shards). A blocking collective
would time out on a slow rank, so the ranks wait for each other on the rendezvous store
(polled, with the global progress count) and only then gather, with every rank present.
A rank that fails writes "rank R of K: reason" to the store and ends with that one line; the
others see it and stop (status 1, no further message); a rank that dies without a word
(killed, out of memory) is reported by torchrun, which stops the others. Every collective has
a timeout (HRM_EVAL_DIST_TIMEOUT seconds, default 1800), so no rank waits forever.

The process group and the store are set up by `hrm_eval.utils.distributed` (the same for
training): the store is our own TCPStore client on torchrun's MASTER_ADDR:MASTER_PORT (as env://
makes it), so the progress counter and the failure note are plain public store calls.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from hrm_eval.utils.distributed import (
    DEFAULT_TIMEOUT_S,
    PeerFailed,
    init_process_group,
    injected_failure,
    launched_by_torchrun,
    peer_failure,
    run_as_rank,
)

log = logging.getLogger("hrm_eval")
POLL_S = 0.2


@dataclass
class DistContext:
    """Where this process stands: rank, world size and the backend ("none" in one process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"
    store: Any | None = None  # torch.distributed.Store, our keys only
    group: Any | None = None  # a gloo group for gathering Python objects (CPU), None in one process
    timeout_s: float = DEFAULT_TIMEOUT_S
    local_counts: dict[str, int] = field(default_factory=dict)  # the store's counters in one process
    phases: int = 0  # store key spaces handed out so far (every rank asks in the same order)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, batch: int) -> bool:
        """Dataset batch `batch` (0-based, in evaluation order) is this rank's."""
        return batch % self.world_size == self.rank

    def describe(self) -> dict:
        return {
            "world_size": self.world_size,
            "dist_backend": self.backend,
        }  # "backend" is --backend (torch | onnxruntime)

    def phase(self, name: str) -> str:
        """A fresh key space on the store for one collective piece of work (one member's
        predictions, say): its progress count and finish line are not shared with the next
        one. Every rank runs the same pieces in the same order, so the names agree."""
        self.phases += 1
        return f"{name}/{self.phases}"

    # ---- progress and failures on the store ---------------------------------------------------
    def add_done(self, n: int, key: str = "done") -> int:
        """Add n finished puzzles to the global count `key`; returns the count (this rank's alone in one process)."""
        if self.store is None:
            self.local_counts[key] = self.local_counts.get(key, 0) + n
            return self.local_counts[key]
        return int(self.store.add(key, n))

    def check_peers(self) -> None:
        """Stop (PeerFailed) when another rank has reported a failure."""
        told = peer_failure(self.store) if self.store is not None else None
        if told is not None:
            log.debug("stopping: %s", told)
            raise PeerFailed()

    def wait_all(self, on_progress: Callable[[int], None] | None = None, phase: str = "") -> None:
        """Wait until every rank has finished its shard (polling: no collective runs meanwhile,
        so a slow rank is not a timeout); rank 0 shows the global count while it waits.
        `phase` (from `phase()`) names the piece of work when there are several."""
        if not self.distributed:
            return
        finished, done = (f"{phase}/finished", f"{phase}/done") if phase else ("finished", "done")
        self.store.add(finished, 1)  # type: ignore[union-attr]
        while int(self.store.add(finished, 0)) < self.world_size:  # type: ignore[union-attr]
            self.check_peers()
            if on_progress is not None:
                on_progress(self.add_done(0, done))
            time.sleep(POLL_S)
        self.check_peers()
        if on_progress is not None:
            on_progress(self.add_done(0, done))  # the last ranks' puzzles

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` on rank 0 (None elsewhere); call after `wait_all`."""
        if not self.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.group)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (rank 0 decides, e.g. whether its cache holds a result:
        the ranks may not share a disk)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.group)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes its own GPU: cuda -> cuda:LOCAL_RANK (an explicit index stays)."""
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def init_from_env(device: torch.device) -> DistContext:
    """The process group torchrun asked for (one-process context when not under torchrun):
    NCCL when this rank runs on CUDA, else gloo; results are gathered over a gloo group."""
    if not launched_by_torchrun():
        return DistContext()
    backend = "nccl" if device.type == "cuda" else "gloo"
    pg = init_process_group(backend, device_id=device if backend == "nccl" else None)
    timeout = timedelta(seconds=pg.timeout_s)
    group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    ctx = DistContext(
        rank=pg.rank,
        world_size=pg.world_size,
        local_rank=pg.local_rank,
        backend=backend,
        store=pg.store,
        group=group,
        timeout_s=pg.timeout_s,
    )
    if not ctx.is_main:  # one voice: rank 0 logs and shows progress
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    return ctx


def failure_hook(ctx: DistContext) -> Callable[[], None] | None:
    """The test hook (hrm_eval.utils.distributed.FAIL_RANK_ENV) for this rank, called after its
    first finished puzzles; None unless the hook names this rank of a distributed run."""
    return injected_failure(ctx.rank, ctx.distributed)


def run_rank(ctx: DistContext, work: Callable[[], Any]) -> Any:
    """Run this rank's part; a failure becomes the one line 'rank R of K: reason', also told to
    the other ranks so they stop at once."""
    return run_as_rank(ctx.rank, ctx.world_size, work, ctx.store)
