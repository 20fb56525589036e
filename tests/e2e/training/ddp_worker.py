"""Launched by `torchrun --nproc_per_node 2` from test_trainer.py: train the config in ARGV[1]
into ARGV[2], then write `<out>/rank<r>.pt` with this rank's final weights and the input rows of
every batch it trained on (recorded by wrapping the trainer's batch iterator). With ARGV[3]: the
same run again into that folder, interrupted half way and resumed (in the same processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from hrm_eval.config import load_config
from hrm_eval.training import trainer
from hrm_eval.training.config import TrainConfig


def main(config_path: str, out: str, resumed: str | None = None) -> None:
    torch.set_num_threads(1)
    seen = []
    real_batches = trainer.train_batches

    def recording_batches(*args, **kwargs):
        for batch in real_batches(*args, **kwargs):
            seen.append(batch["inputs"].clone())
            yield batch

    trainer.train_batches = recording_batches
    config = load_config(config_path, TrainConfig)
    summary = trainer.train(config, output=out, progress=False)
    trainer.train_batches = real_batches
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
    if resumed:
        assert config.max_steps is not None
        trainer.train(config.model_copy(update={"max_steps": config.max_steps // 2}), output=resumed, progress=False)
        trainer.train(config, output=resumed, resume=True, progress=False)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
