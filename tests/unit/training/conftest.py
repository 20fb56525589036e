"""Shared pieces of the training tests: one tiny generated Sudoku-4 dataset, tiny model configs,
and a helper that runs a model through its ACT steps."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hrm_eval.data.build import build_dataset
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.generate import generate_csvs
from hrm_eval.models import HRM_ARCH_NAME, TRM_ARCH_NAME
from hrm_eval.models.checkpoint.format import SAVE_PREFIX
from hrm_eval.training.config import TrainConfig

# 1 + 1 layers, hidden 32, 2 heads: a few milliseconds per step on one CPU thread.
HRM_ARCH: dict[str, Any] = dict(
    name=HRM_ARCH_NAME,
    H_cycles=2,
    L_cycles=1,
    H_layers=1,
    L_layers=1,
    hidden_size=32,
    num_heads=2,
    expansion=4,
    halt_max_steps=2,
    puzzle_emb_ndim=32,
    pos_encodings="rope",
    forward_dtype="float32",
    loss={"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
)
TRM_ARCH: dict[str, Any] = dict(
    name=TRM_ARCH_NAME,
    H_cycles=2,
    L_cycles=1,
    H_layers=0,
    L_layers=1,
    hidden_size=32,
    num_heads=2,
    expansion=4,
    halt_max_steps=2,
    puzzle_emb_ndim=32,
    puzzle_emb_len=2,
    mlp_t=False,
    pos_encodings="rope",
    forward_dtype="float32",
)


@pytest.fixture(scope="session")
def sudoku4_data(tmp_path_factory) -> Path:
    """256 train / 32 test generated 4x4 Sudokus in the public dataset layout (built once)."""
    root = tmp_path_factory.mktemp("sudoku4")
    generate_csvs("sudoku4", root / "raw", num_train=256, num_test=32, seed=0)
    build_dataset("sudoku4", root / "raw", root / "data")
    return root / "data"


def train_fields(data: Path, arch: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The fields of a training YAML: 16 puzzles a batch, 16 steps an epoch on `sudoku4_data`."""
    fields = dict(
        arch=dict(arch),
        data_path=str(data),
        global_batch_size=16,
        epochs=3,
        lr=3e-3,
        lr_warmup_steps=2,
        lr_min_ratio=0.1,
        weight_decay=0.1,
        puzzle_emb_lr=1e-2,
        puzzle_emb_weight_decay=0.1,
        seed=0,
        device="cpu",
        log_every=1,
        eval_limit=32,
    )
    fields.update(overrides)
    return fields


def train_config(data: Path, arch: dict[str, Any], **overrides: Any) -> TrainConfig:
    return TrainConfig(**train_fields(data, arch, **overrides))


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    return path


def dataset_json(data: Path, split: str = "train") -> dict[str, Any]:
    return json.loads((data / split / "dataset.json").read_text())


def eval_batch(data: Path, n: int = 8) -> dict[str, torch.Tensor]:
    batch = next(iter(PuzzleDataset(data, split="test").iter_batches(n)))
    return batch.as_model_batch("cpu")


@torch.no_grad()
def act_outputs(model, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Outputs of every ACT step in evaluation mode (every row runs halt_max_steps steps)."""
    model.eval()
    carry = model.initial_carry(batch)
    steps = []
    for _ in range(model.config.halt_max_steps):
        carry, out = model(carry, batch)
        steps.append({k: v.clone() for k, v in out.items()})
    return steps


def read_saved(path: Path) -> dict[str, torch.Tensor]:
    """A step_<N> file with the public prefix removed (asserting every key carries it)."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw and all(k.startswith(SAVE_PREFIX) for k in raw), list(raw)[:3]
    return {k[len(SAVE_PREFIX) :]: v for k, v in raw.items()}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
