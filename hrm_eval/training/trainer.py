"""Training `hrm_act_v1` / TRM the way the public script does, on CPU, CUDA or MPS.

    config -> train/test datasets -> model + AdamW + sparse sign-SGD
           -> loop: one ACT step per batch (the carry keeps unfinished puzzles), loss
              lm + 0.5 (q_halt + q_continue), warm-up + cosine LR
           -> step_<N>.optim (resume state: optimiser, data position, RNG states, ACT carry),
              then step_<N> (public layout; written last, so it marks a complete step) + all_config.yaml

Distributed: launched by `torchrun`, each of W ranks takes a 1/W slice of every global batch
(gloo on CPU, NCCL on GPU); DistributedDataParallel averages the gradients, and each rank's
loss is divided by its local batch, so the update is the public script's (sum over ranks of
loss / global batch).

Output: `checkpoint_path` (default outputs/train/<run_name>), locked for the run. A directory
that already holds step_<N> files is refused unless --resume (continue it) or --overwrite
(delete its steps first, so no later step of the old run survives beside the new ones).
What a killed run left behind is cleaned on start (training/checkpoint.py), and `--resume`
continues from the newest complete step exactly where the uninterrupted run would have been.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.format import IGNORE_LABEL_ID
from hrm_eval.evaluation.evaluator import Evaluator
from hrm_eval.evaluation.scoring import valid_rows
from hrm_eval.models import ACTModel, build_model
from hrm_eval.models.act import ACTCarry
from hrm_eval.models.checkpoint.format import ALL_CONFIG_FILE, list_steps
from hrm_eval.models.losses import act_training_loss
from hrm_eval.resources import bundled_runs
from hrm_eval.training.checkpoint import (
    RESUME_FORMAT,
    clean_run_dir,
    gather_rank_states,
    newest_complete_step,
    rank_state,
    remove_steps,
    restore_rank_state,
    save_step,
)
from hrm_eval.training.config import TrainConfig
from hrm_eval.training.optim import EMA, SparseSignSGD, cosine_lr, maybe_sparse_optimizer, world
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.distributed import init_process_group, injected_failure, run_as_rank
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_text
from hrm_eval.utils.paths import OutputLock
from hrm_eval.utils.tracking import Tracker, start_run

log = logging.getLogger("hrm_eval")
__all__ = ["TrainSummary", "check_output", "output_dir", "train", "train_batches"]


@dataclass
class TrainSummary:
    checkpoint_dir: Path
    steps: int
    final_checkpoint: Path | None
    last_metrics: dict[str, float]
    seconds: float
    model: ACTModel | None = None  # the trained (raw, not averaged) model, as in memory at the end


def train_batches(
    dataset: PuzzleDataset, global_batch_size: int, rank: int, world_size: int, rng: np.random.Generator
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch: groups in random order, one random puzzle per group, all its examples; full
    global batches only; this rank's contiguous slice of each."""
    a = dataset.sets[dataset.metadata.sets[0]]
    if len(dataset.metadata.sets) > 1:
        raise HRMEvalError("training reads one set per split; this dataset has several")
    gi, pi = np.asarray(a["group_indices"]), np.asarray(a["puzzle_indices"])
    order = rng.permutation(len(gi) - 1)
    puzzles = gi[order] + (rng.random(len(order)) * (gi[order + 1] - gi[order])).astype(np.int64)
    examples = np.concatenate([np.arange(pi[p], pi[p + 1]) for p in puzzles]) if len(puzzles) else np.array([], int)
    example_puzzle = np.repeat(np.arange(len(pi) - 1), np.diff(pi))
    local = global_batch_size // world_size
    ignore = dataset.metadata.ignore_label_id
    for start in range(0, len(examples) - global_batch_size + 1, global_batch_size):
        idx = np.sort(examples[start + rank * local : start + (rank + 1) * local])  # sorted: memory-map friendly
        labels = torch.from_numpy(np.asarray(a["labels"][idx], dtype=np.int32))
        if ignore is not None:
            labels[labels == ignore] = IGNORE_LABEL_ID
        ids = np.asarray(a["puzzle_identifiers"][example_puzzle[idx]], dtype=np.int32)
        yield {
            "inputs": torch.from_numpy(np.asarray(a["inputs"][idx], dtype=np.int32)),
            "labels": labels,
            "puzzle_identifiers": torch.from_numpy(ids),
        }


def output_dir(config: TrainConfig, output: str | Path | None = None) -> Path:
    """Where the run writes: `output`, else checkpoint_path, else outputs/train/<run_name>."""
    return Path(output or config.checkpoint_path or Path("outputs") / "train" / config.run_name)


def check_output(out_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix this run's steps with another run's: one line, before anything is written."""

    if resume and overwrite:
        raise HRMEvalError("--resume and --overwrite contradict each other: choose one")
    if out_dir.exists() and any(out_dir.resolve() == run.resolve() for run in bundled_runs()):
        raise HRMEvalError(f"--output {out_dir} is the bundled model shipped with hrm-eval: train into another folder")
    steps = list_steps(out_dir) if out_dir.is_dir() else []
    if steps and not (resume or overwrite):
        names = ", ".join(p.name for p in steps[-3:])
        raise HRMEvalError(
            f"--output {out_dir} already holds checkpoints of another run ({names}): --resume continues "
            "that run, --overwrite deletes its steps first, or choose another --output"
        )


def train(
    config: TrainConfig,
    *,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainSummary:
    store = _init_distributed()
    rank, world_size = world()
    # under torchrun a failure is one line naming its rank; torchrun then stops the others
    work = functools.partial(_train_rank, config, output, rank, world_size, resume, overwrite, progress)
    return run_as_rank(rank, world_size, work, store)


def _train_rank(
    config: TrainConfig,
    output: str | Path | None,
    rank: int,
    world_size: int,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> TrainSummary:
    if config.global_batch_size % world_size:
        raise HRMEvalError(f"global_batch_size {config.global_batch_size} is not divisible by {world_size} ranks")
    out_dir = output_dir(config, output)
    check_output(out_dir, resume=resume, overwrite=overwrite)
    # Rank 0 alone writes the run directory, so it alone holds the lock (for the whole run).
    with OutputLock(out_dir) if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            clean_run_dir(out_dir)  # under the lock: no other writer's temp file can be taken for stale
            if overwrite:
                remove_steps(out_dir)
        if world_size > 1:
            dist.barrier()  # the other ranks read the directory (--resume) only once it is clean
        return _train(config, out_dir, rank, world_size, resume, progress)


@dataclass
class _Run:
    """What one training loop works on."""

    config: TrainConfig
    model: ACTModel
    ddp: torch.nn.Module  # the model, wrapped in DistributedDataParallel when W > 1
    adam: torch.optim.Optimizer
    sparse: SparseSignSGD | None
    ema: EMA | None
    loss_type: str
    local_batch: int
    total_steps: int
    device: torch.device
    rank: int
    world_size: int


@dataclass
class _Position:
    """Where training stands: optimiser steps done, the epoch, batches of that epoch already
    trained on, and the rows still working on their puzzle (they cross batch boundaries)."""

    step: int = 0
    epoch: int = 0
    epoch_batch: int = 0
    carry: ACTCarry | None = None


def _train(
    config: TrainConfig, out_dir: Path, rank: int, world_size: int, resume: bool, progress: bool
) -> TrainSummary:
    device = _rank_device(config.device, rank, world_size)
    train_set = PuzzleDataset(config.data_path, split="train")
    test_set = PuzzleDataset(config.data_path, split="test") if (Path(config.data_path) / "test").is_dir() else None
    meta = train_set.metadata
    model_cfg = config.model_config_for(meta.seq_len, meta.vocab_size, meta.num_puzzle_identifiers)
    examples_per_epoch = meta.total_groups * meta.mean_puzzle_examples
    run = _build(config, model_cfg, device, rank, world_size, examples_per_epoch)
    at = _Position(*_resume(out_dir, run)) if resume else _Position()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out_dir / ALL_CONFIG_FILE, yaml.safe_dump(config.all_config(model_cfg, str(out_dir)), sort_keys=True)
        )
    wandb_run = _maybe_wandb(config, model_cfg) if rank == 0 else None
    eval_every = None
    if config.eval_interval:
        eval_every = max(1, int(config.eval_interval * examples_per_epoch / config.global_batch_size))

    start = time.perf_counter()
    last = _train_steps(
        run, train_set, test_set, at, out_dir, eval_every=eval_every, wandb_run=wandb_run, progress=progress
    )
    final_path = _save(run, out_dir, at.step, at.epoch, at.epoch_batch, at.carry)
    last.update(_evaluate_and_log(run, test_set, wandb_run, at.step))
    if wandb_run is not None:
        wandb_run.finish()
    if world_size > 1:
        dist.barrier()
    return TrainSummary(out_dir, at.step, final_path, last, time.perf_counter() - start, run.model)


def _train_steps(
    run: _Run,
    train_set: PuzzleDataset,
    test_set: PuzzleDataset | None,
    at: _Position,
    out_dir: Path,
    *,
    eval_every: int | None,
    wandb_run,
    progress: bool,
) -> dict[str, float]:
    """Train from `at` (moved along) to the last step, evaluating (and checkpointing, when asked)
    every `eval_every` steps; returns the train metrics last logged."""
    config = run.config
    stop_at = min(run.total_steps, config.max_steps or run.total_steps)
    bar = tqdm(
        total=stop_at,
        initial=at.step,
        unit="step",
        desc="train",
        disable=not progress or run.rank != 0,
        dynamic_ncols=True,
    )
    first_step, start = at.step, time.perf_counter()
    fail = injected_failure(run.rank, run.world_size > 1)  # the test hook: after this rank's first step
    last: dict[str, float] = {}
    window = _HaltedWindow()
    run.model.train()
    while at.step < stop_at:
        rng = np.random.default_rng([config.seed, at.epoch])  # same on every rank: they share the batch order
        batches = train_batches(train_set, config.global_batch_size, run.rank, run.world_size, rng)
        for batch in itertools.islice(batches, at.epoch_batch, None):  # a resumed run skips what it already saw
            at.carry, loss, parts, lr = _step(run, at.carry, {k: v.to(run.device) for k, v in batch.items()}, at.step)
            at.step += 1
            at.epoch_batch += 1
            window.add(parts, at.carry.halted)
            if fail is not None:
                fail()

            if at.step % config.log_every == 0 or at.step == stop_at:
                last = _train_metrics(parts, at.carry.halted, loss, lr) | window.take()
                seconds_per_step = (time.perf_counter() - start) / max(1, at.step - first_step)
                quiet_rank0 = not progress and run.rank == 0
                _report(
                    last, at.step, stop_at, bar, wandb_run, quiet_rank0=quiet_rank0, seconds_per_step=seconds_per_step
                )
            bar.update(1)
            evaluated = bool(eval_every and at.step % eval_every == 0 and at.step != stop_at)
            if evaluated:
                _evaluate_and_log(run, test_set, wandb_run, at.step)
            every = config.checkpoint_every
            due = (evaluated and config.checkpoint_every_eval) or bool(every and at.step % every == 0)
            if due and at.step != stop_at:  # the last step is saved by the caller
                _save(run, out_dir, at.step, at.epoch, at.epoch_batch, at.carry)
            if at.step >= stop_at:
                break
        else:
            if at.epoch_batch == 0:  # not one full global batch in an epoch: the loop would never end
                raise HRMEvalError(
                    f"global_batch_size {config.global_batch_size} is larger than one epoch of the "
                    f"train split ({train_set.num_examples} examples in {config.data_path}): "
                    "lower global_batch_size"
                )
            at.epoch, at.epoch_batch = at.epoch + 1, 0
    bar.close()
    return last


def _report(
    last: dict[str, float], step: int, stop_at: int, bar, wandb_run, *, quiet_rank0: bool, seconds_per_step: float
) -> None:
    bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['accuracy']:.3f}", exact=f"{last['exact_accuracy']:.3f}")
    if quiet_rank0:  # no progress bar: the same numbers as log lines
        log.info(
            "step %d/%d loss %.4f accuracy %.4f exact %.4f of %d halted lr %.2e (%.2f s/step)",
            step,
            stop_at,
            last["loss"],
            last["accuracy"],
            last["exact_accuracy"],
            last["halted"],
            last["lr"],
            seconds_per_step,
        )
    if wandb_run is not None:
        wandb_run.log({f"train/{k}": v for k, v in last.items()}, step=step)


def _evaluate_and_log(run: _Run, test_set: PuzzleDataset | None, wandb_run, step: int) -> dict[str, float]:
    metrics = _evaluate(run, test_set) or {}
    if metrics and wandb_run is not None:
        wandb_run.log({f"eval/{k}": v for k, v in metrics.items()}, step=step)
    return metrics


def _save(run: _Run, out_dir: Path, step: int, epoch: int, epoch_batch: int, carry: ACTCarry | None) -> Path | None:
    """Called by every rank (each contributes its RNG states and carry); rank 0 writes."""
    ranks = gather_rank_states(rank_state(carry, run.device), run.rank, run.world_size)
    if run.rank != 0:
        return None
    state = _optim_state(step, epoch, epoch_batch, run.adam, run.ema, run.model)
    state.update(format=RESUME_FORMAT, world_size=run.world_size, ranks=ranks)
    model = run.model.inner
    sd = run.ema.state_dict_with(model, prefix="inner.") if run.ema is not None else model.state_dict()
    return save_step(out_dir, step, sd, state)


def _build(
    config: TrainConfig, model_cfg, device: torch.device, rank: int, world_size: int, examples_per_epoch: float
) -> _Run:
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = build_model(model_cfg).to(device)
    torch.manual_seed(config.seed + rank)  # then each rank its own ACT exploration draws, as in the public script
    ddp: torch.nn.Module = model
    if world_size > 1:
        # broadcast_buffers off: the only changing buffer (the puzzle-embedding table) gets the
        # same sparse update on every rank already; sending it each step would be wasted traffic.
        ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    params = [p for p in model.parameters() if p.requires_grad]
    adam = torch.optim.AdamW(params, lr=0.0, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)
    sparse = maybe_sparse_optimizer(model.inner, config.puzzle_emb_weight_decay, world_size)
    ema = EMA(model, config.ema_rate) if config.ema else None
    total_steps = max(1, int(config.epochs * examples_per_epoch / config.global_batch_size))
    local_batch = config.global_batch_size // world_size
    return _Run(
        config, model, ddp, adam, sparse, ema, model_cfg.loss_type, local_batch, total_steps, device, rank, world_size
    )


def _step(run: _Run, carry, batch: dict[str, torch.Tensor], step: int):
    """One ACT step on one batch and one optimiser step; returns (carry, loss, loss parts, lr)."""
    config = run.config
    if carry is None:
        carry = run.model.initial_carry(batch)
    carry, outputs = run.ddp(carry, batch)
    loss, parts = act_training_loss(outputs, carry.current_data["labels"], run.loss_type)
    # DDP averages gradients over ranks: loss / local batch, averaged, is the public script's
    # sum over ranks of loss / global batch.
    (loss / run.local_batch).backward()
    # The public script numbers steps from 1 when it computes the LR (it increments first).
    lr = cosine_lr(step + 1, config.lr, config.lr_warmup_steps, run.total_steps, config.lr_min_ratio)
    for group in run.adam.param_groups:
        group["lr"] = lr
    run.adam.step()
    run.adam.zero_grad(set_to_none=True)
    if run.sparse is not None:
        run.sparse.lr = cosine_lr(
            step + 1, config.puzzle_emb_lr, config.lr_warmup_steps, run.total_steps, config.lr_min_ratio
        )
        run.sparse.step()
        run.sparse.zero_grad()
    if run.ema is not None:
        run.ema.update(run.model)
    return carry, loss, parts, lr


# ---- pieces -----------------------------------------------------------------------------------
class _HaltedWindow:
    """Accuracy and exact accuracy over the puzzles that halted since the last log line.

    A train step scores only the rows that halted in it; with halt_max_steps 16 and rows that
    start together, most steps halt none, so one step's accuracy read 0.000 for thousands of
    steps of a run that was learning. Sums stay on the device until `take` (no sync per step)."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # [3]: halted rows, token accuracy, exact

    def add(self, parts: dict, halted: torch.Tensor) -> None:
        rows = parts["rows"]
        valid = valid_rows(rows, halted).float()
        step = torch.stack([valid.sum(), (rows["token_accuracy"] * valid).sum(), (rows["exact"].float() * valid).sum()])
        self.sums = step.detach() if self.sums is None else self.sums + step.detach()

    def take(self) -> dict[str, float]:
        n, accuracy, exact = (0.0, 0.0, 0.0) if self.sums is None else self.sums.tolist()
        self.sums = None
        return {"accuracy": accuracy / max(n, 1.0), "exact_accuracy": exact / max(n, 1.0), "halted": int(n)}


def _train_metrics(parts: dict, halted: torch.Tensor, loss: torch.Tensor, lr: float) -> dict[str, float]:
    """The logged step's loss per row and learning rate (accuracies: _HaltedWindow)."""
    return {
        "loss": float(loss.detach()) / len(halted),
        "lm_loss": float(parts["lm_loss"]) / len(halted),
        "lr": lr,
    }


def _evaluate(run: _Run, test_set: PuzzleDataset | None) -> dict[str, float] | None:
    if test_set is None or run.rank != 0:
        return None
    # Evaluation must not move training's random stream (building the EMA copy draws from it):
    # a run then trains the same with or without evaluations, and resumes exactly.
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        return _evaluate_unseeded(run.model, test_set, run.config, run.device, run.ema)


def _evaluate_unseeded(
    model: ACTModel, test_set: PuzzleDataset, config: TrainConfig, device: torch.device, ema: EMA | None
) -> dict[str, float]:
    eval_model = model
    if ema is not None:  # evaluate what gets saved
        eval_model = build_model(model.config).to(device)
        eval_model.load_state_dict(ema.state_dict_with(model))
    result = Evaluator(eval_model, device=device, batch_size=config.global_batch_size, progress=False).evaluate(
        test_set, limit=config.eval_limit
    )
    model.train()
    m = result.aggregate_metrics
    log.info(
        "eval: exact_accuracy %.4f accuracy %.4f on %d puzzles", m["exact_accuracy"], m["accuracy"], m["total_puzzles"]
    )
    return {"exact_accuracy": m["exact_accuracy"], "eval_accuracy": m["accuracy"]}


def _optim_state(
    step: int, epoch: int, epoch_batch: int, adam: torch.optim.Optimizer, ema: EMA | None, model: ACTModel
) -> dict:
    state = {"step": step, "epoch": epoch, "epoch_batch": epoch_batch, "adamw": adam.state_dict()}
    if ema is not None:  # the model file holds the average; keep the raw weights to go on training
        state["ema"] = ema.shadow
        state["raw_model"] = {k: v.detach().cpu() for k, v in model.inner.state_dict().items()}
    return state


def _resume(out_dir: Path, run: _Run) -> tuple[int, int, int, ACTCarry | None]:
    """Weights, optimiser, EMA, data position, RNG states and ACT carry of the newest complete step."""
    saved = newest_complete_step(out_dir)
    state, sd, model, ema = saved.resume_state, saved.model_state, run.model, run.ema
    if ema is not None and "ema" in state:
        ema.shadow = {k: v.to(run.device) for k, v in state["ema"].items()}
        sd = state["raw_model"]
    try:
        model.inner.load_state_dict(sd)
    except RuntimeError as e:  # the config changed since the run was saved
        first = str(e).strip().splitlines()[0]
        raise HRMEvalError(f"--resume: {saved.path} does not fit the model of this config ({first})") from None
    if ema is not None and "ema" not in state:  # EMA switched on for a run trained without it: average from here
        ema.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    run.adam.load_state_dict(state["adamw"])
    carry = _restore_rank(state, saved.path, run)
    log.info("resumed from %s (step %d)", saved.path, state["step"])
    return int(state["step"]), int(state["epoch"]), int(state.get("epoch_batch", 0)), carry


def _restore_rank(state: dict, path: Path, run: _Run) -> ACTCarry | None:
    """This rank's RNG states and carry; without them (an older file, another rank count) the
    run goes on from the weights, fresh carry, but not bit-identical to an uninterrupted run."""
    ranks = state.get("ranks")
    if ranks is None:
        log.warning(
            "--resume: %s has no RNG states or ACT carry (saved by an older hrm-eval): not an exact resume", path
        )
        return None
    if len(ranks) != run.world_size:
        log.warning(
            "--resume: %s was saved by %d ranks, this run has %d: RNG states and ACT carry start afresh",
            path,
            len(ranks),
            run.world_size,
        )
        return None
    carry = restore_rank_state(ranks[run.rank], run.device)
    if carry is not None and carry.halted.shape[0] != run.local_batch:
        log.warning("--resume: global_batch_size changed since %s: the ACT carry starts afresh", path)
        return None
    return carry


def _init_distributed() -> Any:
    """Under torchrun, the process group (hrm_eval.utils.distributed: the timeout of
    HRM_EVAL_DIST_TIMEOUT, one line for a broken environment); returns its store for the ranks'
    failure notes, or None (one process, or a group set up before)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        group = init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        return group.store
    return None


def _rank_device(name: str, rank: int, world_size: int) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and world_size > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device


def _maybe_wandb(config: TrainConfig, model_cfg) -> Tracker | None:
    """The run's W&B tracker (hrm_eval.utils.tracking: offline unless WANDB_MODE says otherwise)
    when the config asks for one; without wandb installed, a warning and no tracking."""
    if not config.wandb:
        return None
    return start_run(
        config.project_name,
        name=config.run_name,
        config=config.all_config(model_cfg, config.checkpoint_path or ""),
        job_type="train",
        required=False,
    )
