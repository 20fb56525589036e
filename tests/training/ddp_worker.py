"""Launched by `torchrun --nproc_per_node 2` from test_trainer.py: train the config in ARGV[1]
into ARGV[2], then write `<out>/rank<r>.pt` with this rank's final weights and the input rows of
every batch it trained on (recorded by wrapping the trainer's batch iterator)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from hrm_eval.training import trainer
from hrm_eval.training.config import TrainConfig
from hrm_eval.utils.config import load_config


def main(config_path: str, out: str) -> None:
    torch.set_num_threads(1)
    seen = []
    real_batches = trainer.train_batches

    def recording_batches(*args, **kwargs):
        for batch in real_batches(*args, **kwargs):
            seen.append(batch["inputs"].clone())
            yield batch

    trainer.train_batches = recording_batches
    summary = trainer.train(load_config(config_path, TrainConfig), output=out, progress=False)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.save(
        {
            "rank": rank,
            "world_size": world_size,
            "steps": summary.steps,
            "inputs": seen,
            "state": {k: v.detach().cpu() for k, v in summary.model.inner.state_dict().items()},
        },
        Path(out) / f"rank{rank}.pt",
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
