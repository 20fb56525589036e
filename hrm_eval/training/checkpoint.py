"""Crash-safe run directories: a training step is either complete or absent.

    step_<N>.optim   resume state: step and data position, AdamW (and EMA) state, and for every
                     rank its RNG states and ACT carry. Written FIRST (temp file + rename).
    step_<N>         the model in the public layout. Written LAST (temp file + rename), so its
                     presence means the step is complete, and `--checkpoint RUN` (the newest
                     step_<N>) never sees half a step.

A kill at any moment leaves at worst a temp file (`.step_<N>.XXXXXXXX.tmp`) or a step_<N>.optim
without its step_<N>; both are removed when the next run starts in the directory. `--resume`
takes the newest step whose two files load and agree, skipping (with a warning) any that do not.

Exact resume: the trainer keeps an ACT carry across batches (rows still thinking keep their
puzzle and states; halted rows take new puzzles) and draws random numbers for halting
exploration, so the carry and the RNG states are part of the run's state just as the weights are.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hrm_eval.models.act import ACTCarry
from hrm_eval.models.base import InnerCarry
from hrm_eval.models.checkpoint.format import (
    OPTIM_RE,
    OPTIM_SUFFIX,
    SAVE_PREFIX,
    list_steps,
    step_name,
    step_number,
    strip_prefix,
)
from hrm_eval.models.checkpoint.read import read_state_dict
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_torch_save, leftover_temp_files

log = logging.getLogger("hrm_eval")
RESUME_FORMAT = 2  # 1 (unnumbered): step, data position, optimiser; 2: + per-rank RNG states and ACT carry


def optim_path(step_path: Path) -> Path:
    return step_path.with_name(step_path.name + OPTIM_SUFFIX)


def save_step(directory: Path, step: int, model_state: dict[str, torch.Tensor], resume_state: dict) -> Path:
    """Resume state first, the public step_<N> last: a step_<N> on disk always has its .optim."""
    step_path = directory / step_name(step)
    atomic_torch_save(optim_path(step_path), resume_state)
    return atomic_torch_save(step_path, {SAVE_PREFIX + k: v.detach().cpu() for k, v in model_state.items()})


# ---- the directory ----------------------------------------------------------------------------
def clean_run_dir(out_dir: Path) -> None:
    """What a killed run leaves behind (call with the directory's lock held): temp files of
    interrupted writes, and step_<N>.optim files whose step_<N> was never written."""
    for tmp in leftover_temp_files(out_dir):
        tmp.unlink()
        log.warning("removed %s: the temp file of an interrupted write (a killed run)", tmp)
    for optim in _optim_files(out_dir):
        if not optim.with_name(optim.name[: -len(OPTIM_SUFFIX)]).exists():
            optim.unlink()
            log.warning("removed %s: resume state of a step whose model file was never written", optim)


def remove_steps(out_dir: Path) -> None:
    """--overwrite: every step of the old run (and its resume state) goes before the new run
    writes, so no later step of the old run can be taken for the new run's newest."""
    for path in [*list_steps(out_dir), *_optim_files(out_dir)]:
        path.unlink(missing_ok=True)
    log.info("--overwrite: removed the earlier step_<N> files in %s", out_dir)


def _optim_files(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.iterdir() if p.is_file() and OPTIM_RE.match(p.name)) if out_dir.is_dir() else []


@dataclass
class SavedStep:
    path: Path  # step_<N>
    model_state: dict[str, torch.Tensor]  # without the public prefix
    resume_state: dict[str, Any]


def newest_complete_step(out_dir: Path) -> SavedStep:
    """The newest step whose model file and resume state both load and agree; each newer one
    is named in a warning (and skipped)."""
    steps = list_steps(out_dir) if out_dir.is_dir() else []
    if not steps:
        raise HRMEvalError(f"--resume: no step_<N> checkpoint in {out_dir}")
    for path in reversed(steps):
        problem, saved = _read_step(path)
        if saved is not None:
            return saved
        log.warning("--resume: skipping %s: %s", path, problem)
    names = ", ".join(p.name for p in reversed(steps[-3:])) + (", ..." if len(steps) > 3 else "")
    raise HRMEvalError(
        f"--resume: no complete step in {out_dir} (skipped {names}: a step needs its model file and a readable "
        f"{OPTIM_SUFFIX} file of the same step; the warnings say why each failed)"
    )


def _read_step(path: Path) -> tuple[str, SavedStep | None]:
    optim = optim_path(path)
    if not optim.is_file():
        return f"{optim.name} is missing (the save was interrupted, or the file was removed)", None
    try:
        # On the CPU: RNG states must be CPU tensors; the optimiser moves its state to the parameters.
        state = torch.load(optim, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        return f"{optim.name} cannot be read ({type(e).__name__}: truncated or corrupt?)", None
    if not isinstance(state, dict) or state.get("step") != step_number(path.name):
        return f"{optim.name} is not the resume state of {path.name}", None
    try:
        model_state, _ = strip_prefix(read_state_dict(path))
    except HRMEvalError as e:
        return str(e), None
    return "", SavedStep(path, model_state, state)


# ---- per-rank state: RNGs and the ACT carry ------------------------------------------------------
def rank_state(carry: ACTCarry | None, device: torch.device) -> dict[str, Any]:
    """This rank's random-number generators and ACT carry, on the CPU (loadable with weights_only)."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _numpy_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        rng["mps"] = torch.mps.get_rng_state()
    return {"rng": rng, "carry": None if carry is None else _carry_to_cpu(carry)}


def restore_rank_state(state: dict[str, Any], device: torch.device) -> ACTCarry | None:
    """Set this rank's RNGs as they were at the save; returns the carry, on `device`."""
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate(_as_tuple(rng["python"]))
    np.random.set_state(_numpy_from(rng["numpy"]))
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    elif device.type == "mps" and "mps" in rng:
        torch.mps.set_rng_state(rng["mps"])
    carry = state["carry"]
    if carry is None:
        return None
    return ACTCarry(
        inner=InnerCarry(carry["z_H"].to(device), carry["z_L"].to(device)),
        steps=carry["steps"].to(device),
        halted=carry["halted"].to(device),
        current_data={k: v.to(device) for k, v in carry["current_data"].items()},
    )


def gather_rank_states(own: dict[str, Any], rank: int, world_size: int) -> list[dict[str, Any]] | None:
    """Every rank's state, in rank order, on rank 0 (None elsewhere). A collective: all ranks call it."""
    if world_size == 1:
        return [own]
    gathered: list[Any] | None = [None] * world_size if rank == 0 else None
    dist.gather_object(own, gathered, dst=0)
    return gathered


def _carry_to_cpu(carry: ACTCarry) -> dict[str, Any]:
    return {
        "z_H": carry.inner.z_H.detach().cpu(),  # [B, S, h]
        "z_L": carry.inner.z_L.detach().cpu(),  # [B, S, h]
        "steps": carry.steps.cpu(),  # [B]
        "halted": carry.halted.cpu(),  # [B]
        "current_data": {k: v.cpu() for k, v in carry.current_data.items()},
    }


def _numpy_state() -> dict[str, Any]:
    s = np.random.get_state(legacy=False)
    assert isinstance(s, dict)  # legacy=False: the dict form
    # The key array as a tensor: torch's weights_only loader refuses numpy arrays.
    return {**s, "state": {"key": torch.from_numpy(s["state"]["key"].astype(np.int64)), "pos": s["state"]["pos"]}}


def _numpy_from(s: dict[str, Any]) -> dict[str, Any]:
    return {**s, "state": {"key": s["state"]["key"].numpy().astype(np.uint32), "pos": s["state"]["pos"]}}


def _as_tuple(x: Any) -> Any:
    """random.getstate() is nested tuples; keep them tuples whatever the round trip made of them."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
