"""Hostile checkpoints refused within a memory limit: `deploy.py --mode inspect` as a real
process with its address space capped (RLIMIT_AS), so that no input makes the loader allocate
much more than its own file size. The in-process refusals: tests/unit/models/test_loading_hostile.py."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import HRM_FIXTURES, ROOT
from tests.unit.models.test_loading import PREFIX, raw_state, save_checkpoint, step_file
from tests.unit.models.test_loading_hostile import _stray_layer, with_all_config

FIXTURE = HRM_FIXTURES["rope_f32"]  # HRM, rope, 2+2 layers of hidden 64, 1 MB file
O_PROJ = PREFIX + "L_level.layers.{}.self_attn.o_proj.weight"


# ---- memory: decided before allocation ----------------------------------------------------------
def _inspect_under_memory_limit(checkpoint: Path, limit_bytes: int) -> subprocess.CompletedProcess:
    """`deploy.py --mode inspect` with its address space capped (RLIMIT_AS)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
    }
    cmd = [sys.executable, str(ROOT / "deploy.py"), "--mode", "inspect", "--checkpoint", str(checkpoint)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=cap, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def memory_limit() -> int:
    """What the fixture's own inspect needs plus 256 MiB. The address space of torch itself
    varies by build, so the limit is found by trying (1 GiB is enough on x86-64 Linux); the
    hostile files are under 2 MB and declare from 0.5 to 4096 GiB."""
    for limit in (1 << 30, 2 << 30, 4 << 30, 8 << 30):
        if _inspect_under_memory_limit(step_file(FIXTURE), limit).returncode == 0:
            return limit + (256 << 20)
    pytest.skip("inspect does not run under an 8 GiB address-space limit here")


def _huge_declared_embedding(dst: Path) -> Path:
    sd = raw_state(FIXTURE)  # 2^31 rows of hidden 64 (512 GiB) declared by a 4-byte tensor
    sd[PREFIX + "embed_tokens.embedding_weight"] = torch.zeros(1).expand(2**31, 64)
    return save_checkpoint(dst, sd)


def _huge_declared_square(dst: Path) -> Path:
    sd = raw_state(FIXTURE)  # (2^20, 2^20) floats: 4 TiB
    sd[O_PROJ.format(0)] = torch.zeros(1).expand(2**20, 2**20)
    return save_checkpoint(dst, sd, config_from=FIXTURE)


def _huge_seq_len_in_all_config(dst: Path) -> Path:
    # The realistic route: a stated seq_len that rope position tables (not stored) would follow.
    return with_all_config(dst, raw_state(FIXTURE), seq_len=2**31)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, says",
    [
        (_stray_layer, "L_level layer indices must run from 0 without gaps"),
        (_huge_declared_embedding, "embed_tokens.embedding_weight declares shape (2147483648, 64)"),
        (_huge_declared_square, "o_proj.weight declares shape (1048576, 1048576)"),
        (
            _huge_seq_len_in_all_config,
            "seq_len = 2147483648 (from all_config.yaml): Input should be less than or equal to 1048576",
        ),
    ],
    ids=["stray-layer-key", "2^31-row-embedding", "2^20-square", "all_config-seq_len"],
)
def test_hostile_checkpoint_is_refused_within_a_memory_limit(tmp_path, memory_limit, make, says):
    path = make(tmp_path / "run")
    assert path.stat().st_size < 2 * step_file(FIXTURE).stat().st_size
    r = _inspect_under_memory_limit(path, memory_limit)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr[-2000:]
