"""Shared pieces of the ensemble tests: the public fixture checkpoint and perturbed copies of it
(distinct members that share one layout), tiny random checkpoints of other layouts, and the
one allowed stand-in model: a model that answers every puzzle with its label."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml

from hrm_eval.members.predictions import CACHE_ENV, Member
from hrm_eval.models import HRM_ARCH_NAME, ACTModel, HRMConfig, HRMModel, build_model
from hrm_eval.models.checkpoint.format import SAVE_PREFIX
from tests.conftest import HRM_FIXTURES, SUDOKU_BUILT

FIXTURE_DIR = HRM_FIXTURES["rope_f32"]
FIXTURE_CKPT = FIXTURE_DIR / "step_1000"
LIMIT = 16  # puzzles per end-to-end run: each fixture member takes well under a second on them


def perturbed_copy(src: Path, dst: Path, scale: float, seed: int, keep: tuple = ()) -> Path:
    """`src` with Gaussian noise (relative `scale`) added to every tensor except those whose
    name contains one of `keep`; all_config.yaml copied beside it."""
    sd = torch.load(src, map_location="cpu", weights_only=True)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sd.items():
        if any(s in k for s in keep) or not v.is_floating_point():
            out[k] = v.clone()
        else:
            out[k] = v + scale * v.std() * torch.randn(v.shape, generator=g, dtype=v.dtype)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, dst)
    if (src.parent / "all_config.yaml").is_file() and not (dst.parent / "all_config.yaml").exists():
        shutil.copy(src.parent / "all_config.yaml", dst.parent / "all_config.yaml")
    return dst


@pytest.fixture(autouse=True)
def _own_prediction_cache(tmp_path, monkeypatch):
    """Each test gets its own default prediction cache (also inherited by CLI subprocesses),
    so a cache hit is always one the test itself caused, never ~/.cache of an earlier run."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "prediction-cache"))


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory) -> Path:
    """A 'run' of three related checkpoints: the fixture (step_1000) and two noisy successors."""
    run = tmp_path_factory.mktemp("run")
    shutil.copy(FIXTURE_CKPT, run / "step_1000")
    shutil.copy(FIXTURE_DIR / "all_config.yaml", run / "all_config.yaml")
    perturbed_copy(FIXTURE_CKPT, run / "step_2000", 0.3, seed=1)
    perturbed_copy(FIXTURE_CKPT, run / "step_3000", 0.3, seed=2)
    return run


@pytest.fixture(scope="session")
def broken_run(tmp_path_factory):
    """step_1000: the fixture; step_2000: every module moved except L_level.layers.1;
    step_3000: step_2000 moved, with a NaN injected into lm_head; step_4000: moved again."""
    run = tmp_path_factory.mktemp("broken_run")
    shutil.copy(FIXTURE_CKPT, run / "step_1000")
    shutil.copy(FIXTURE_DIR / "all_config.yaml", run / "all_config.yaml")
    perturbed_copy(FIXTURE_CKPT, run / "step_2000", 0.05, seed=1, keep=("L_level.layers.1.",))
    perturbed_copy(run / "step_2000", run / "step_3000", 0.05, seed=2)
    sd = torch.load(run / "step_3000", weights_only=True)
    key = next(k for k in sd if k.endswith("lm_head.weight"))
    sd[key][3, 5] = float("nan")
    torch.save(sd, run / "step_3000")
    perturbed_copy(run / "step_2000", run / "step_4000", 0.05, seed=3)
    return run


def tiny_arch(**overrides: Any) -> dict[str, Any]:
    arch = dict(
        name=HRM_ARCH_NAME,
        H_cycles=1,
        L_cycles=1,
        H_layers=1,
        L_layers=1,
        hidden_size=16,
        num_heads=2,
        expansion=2,
        halt_max_steps=1,
        puzzle_emb_ndim=0,
        pos_encodings="rope",
        forward_dtype="float32",
    )
    arch.update(overrides)
    return arch


def tiny_checkpoint(
    folder: Path, *, vocab_size: int, seq_len: int, num_puzzle_identifiers: int = 1, seed: int = 0, **arch: Any
) -> Path:
    """A randomly initialised checkpoint in the public layout (step_1 + all_config.yaml)."""
    torch.manual_seed(seed)
    fields = tiny_arch(**arch)
    config = HRMConfig(**fields, seq_len=seq_len, vocab_size=vocab_size, num_puzzle_identifiers=num_puzzle_identifiers)
    model = build_model(config)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({SAVE_PREFIX + k: v for k, v in model.inner.state_dict().items()}, folder / "step_1")
    (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": config.to_arch_block()}))
    return folder / "step_1"


class LabelEcho(HRMModel):
    """Answers every puzzle it was shown with that puzzle's label (one-hot logits), sure of
    itself (q_halt +5). It looks the label up from the input tokens when the engine embeds a
    puzzle, so a view's puzzle gets the view's label; the ACT engine around it is the real one."""

    def __init__(self, config, known):
        super().__init__(config)
        self.known = {tuple(i.tolist()): lab for inputs, labels in known for i, lab in zip(inputs, labels)}

    def input_embeddings(self, inputs, puzzle_identifiers):
        labels = torch.stack([self.known[tuple(r.tolist())] for r in inputs]).long().clamp_min(0)  # [B, L]
        B, L = labels.shape
        x = torch.zeros(B, self.config.full_seq_len, self.config.hidden_size, dtype=self.config.torch_dtype)
        x[:, self.puzzle_prefix_len :, : self.config.vocab_size] = F.one_hot(labels, self.config.vocab_size).to(x.dtype)
        return x

    def step(self, carry, x, cos_sin):
        logits = 10.0 * x[:, self.puzzle_prefix_len :, : self.config.vocab_size]
        B = x.shape[0]
        return carry, logits, torch.full((B,), 5.0), torch.zeros(B)


def label_echo(vocab_size: int, seq_len: int, known) -> ACTModel:
    """`known`: (inputs [n, L], labels [n, L]) pairs, e.g. one per test-time view."""
    config = HRMConfig(**tiny_arch(), seq_len=seq_len, vocab_size=vocab_size)
    return ACTModel(LabelEcho(config, known)).eval()


def stand_in_member(model: ACTModel, name: str = "echo") -> Member:
    """A Member around a model that has no checkpoint file (only `.config` is used)."""
    return Member(name, SimpleNamespace(config=model.config, path=Path(name), sha256="0" * 64, step=None))


__all__ = [
    "FIXTURE_CKPT",
    "FIXTURE_DIR",
    "LIMIT",
    "SUDOKU_BUILT",
    "label_echo",
    "perturbed_copy",
    "stand_in_member",
    "tiny_checkpoint",
]
