"""Fuzzing the CLI (issue 16) where only a real process tells: hostile inputs under a memory limit
(an allocation the limit would stop is a crash, not the one-line error required), and the peak
memory of inspect on hostile checkpoints bounded by the file and the model. The cases, their
outcomes and the in-process fuzzing: tests/unit/cli/test_fuzz.py."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.unit.cli.test_fuzz import (  # noqa: F401 - repository_untouched: an autouse fixture
    MARKER,
    Case,
    _Payload,
    check_outcome,
    copy_checkpoint,
    copy_dataset,
    evaluate_args,
    inspect_args,
    repository_untouched,
    snapshot,
)

# ---- real subprocesses: code execution and memory --------------------------------------------------------
# RLIMIT_DATA bounds heap and private anonymous mappings (what a huge tensor or array would take) but not the
# shared libraries, whose address space differs a lot between CPU and CUDA builds of torch.
MEMORY_LIMIT = 2 << 30  # a healthy inspect/evaluate of the bundled model needs a few hundred MB


def run_limited(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), *argv, "--log-level", "ERROR"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env=env,
    )


def _checkpoint_pickle_payload(root: Path) -> list[str]:
    """A step file (torch zip) whose pickle would create MARKER when loaded without weights_only."""
    copy_checkpoint(root)
    torch.save({"weight": _Payload(str(root / MARKER))}, root / "ckpt" / "step_625")
    return inspect_args(root)


def _npy_header_terabytes(root: Path) -> list[str]:
    """An index array whose header declares 2^40 entries: reading must not try to allocate 4 TB."""
    copy_checkpoint(root)
    data = copy_dataset(root)
    f = data / "test" / "all__puzzle_indices.npy"
    raw = f.read_bytes()
    f.write_bytes(raw.replace(b"'shape': (1001,), ", b"'shape': (1099511627776,), "))
    assert f.read_bytes() != raw
    return evaluate_args(root, data)


def _stray_layer_key(root: Path) -> list[str]:
    """One extra key naming layer 200000: the layer count must not be taken from it (memory grew ~45 MB/s)."""
    ckpt = copy_checkpoint(root)
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)
    key = next(k for k in sd if k.endswith("L_level.layers.0.self_attn.o_proj.weight"))
    sd[key.replace("layers.0.", "layers.200000.")] = sd[key].clone()
    torch.save(sd, ckpt)
    (root / "ckpt" / "all_config.yaml").unlink()
    return inspect_args(root)


def _huge_hidden_size(root: Path) -> list[str]:
    """all_config.yaml declaring hidden_size 2^20: nothing of that size may be allocated."""
    copy_checkpoint(root)
    f = root / "ckpt" / "all_config.yaml"
    f.write_text(f.read_text().replace("hidden_size: 128", "hidden_size: 1048576"))
    return inspect_args(root)


# No healthy control run is needed: the npy and hidden_size cases get past checkpoint loading under the limit.
SUBPROCESS_CASES = [
    Case("checkpoint-pickle-payload", _checkpoint_pickle_payload, words="step_625"),
    Case("npy-header-terabytes", _npy_header_terabytes, words="all__puzzle_indices.npy"),
    Case("config-hidden-size-huge", _huge_hidden_size, words="hidden_size"),
    Case("checkpoint-stray-layer-key", _stray_layer_key, words="highest index 200000", timeout=30.0),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in SUBPROCESS_CASES])
def test_bad_input_subprocess(case, tmp_path):
    root = tmp_path / "case"
    root.mkdir()
    argv = case.build(root)
    before = snapshot(root, root / "out")
    start = time.monotonic()
    proc = run_limited(argv, cwd=root, timeout=case.timeout)  # TimeoutExpired fails the case
    check_outcome(case, root, argv, proc.returncode, proc.stdout, proc.stderr)
    assert snapshot(root, root / "out") == before
    assert time.monotonic() - start < case.timeout


# ---- peak memory of inspect: the bound of issue 16 ("Done when"), measured -------------------------------
def peak_rss_bytes(argv: list[str], cwd: Path) -> tuple[int, int, str]:
    """(exit status, peak resident memory, stderr) of `deploy.py ARGV` in a child under MEMORY_LIMIT.
    The peak is the child's own ru_maxrss (os.wait4), not this process's."""
    err = cwd / "stderr.txt"
    with open(err, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy.py"), *argv, "--log-level", "ERROR"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=f,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT)),
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return proc.returncode, usage.ru_maxrss * 1024, err.read_text()  # ru_maxrss: KiB on Linux


def _with_state_dict_change(change: Callable[[dict[str, torch.Tensor], str], None], config: bool):
    def build(root: Path) -> list[str]:
        ckpt = copy_checkpoint(root)
        sd = torch.load(ckpt, map_location="cpu", weights_only=True)
        o_proj = next(k for k in sd if k.endswith("L_level.layers.0.self_attn.o_proj.weight"))
        change(sd, o_proj)
        torch.save(sd, ckpt)
        if not config:  # the layer count then comes from the key names
            (root / "ckpt" / "all_config.yaml").unlink()
        return inspect_args(root)

    return build


def _stray_layer(sd: dict[str, torch.Tensor], o_proj: str) -> None:
    sd[o_proj.replace("layers.0.", "layers.200000.")] = sd[o_proj].clone()


def _huge_embedding(sd: dict[str, torch.Tensor], o_proj: str) -> None:
    key = next(k for k in sd if k.endswith("embed_tokens.embedding_weight"))
    sd[key] = torch.zeros(1).expand(2**31, sd[key].shape[1])  # 2^31 rows (1 TiB) declared by 4 bytes


def _huge_square(sd: dict[str, torch.Tensor], o_proj: str) -> None:
    sd[o_proj] = torch.zeros(1).expand(2**20, 2**20)  # 4 TiB declared by 4 bytes


MEMORY_CASES = {
    "stray-layer-key": (_with_state_dict_change(_stray_layer, config=False), "highest index 200000"),
    "2^31-row-embedding": (_with_state_dict_change(_huge_embedding, config=False), "(2147483648, 128)"),
    "2^20-square": (_with_state_dict_change(_huge_square, config=True), "(1048576, 1048576)"),
}


@pytest.fixture(scope="module")
def healthy_inspect_peak(tmp_path_factory) -> int:
    """Peak memory of inspecting the bundled checkpoint itself: the program, its 4 MB file and
    the model built from it (the model's own size)."""
    root = tmp_path_factory.mktemp("healthy")
    copy_checkpoint(root)
    rc, peak, err = peak_rss_bytes(inspect_args(root), cwd=root)
    assert rc == 0, err
    return peak


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MEMORY_CASES))
def test_inspect_peak_memory_is_bounded_by_twice_the_file_plus_the_model(name, tmp_path, healthy_inspect_peak):
    """Issue 16: peak memory of `--mode inspect` on a hostile file below 2x its size plus the
    model's size (over the program's own footprint). Measured against a healthy inspect, whose
    peak already holds the program, one file and the model: a hostile file may add at most twice
    its size to that. Before the fix these cases grew by ~45 MB/s or asked for 1-4 TiB."""
    build, says = MEMORY_CASES[name]
    argv = build(tmp_path)
    size = (tmp_path / "ckpt" / "step_625").stat().st_size
    assert size < 5 << 20  # the hostile files are about as small as the real one
    rc, peak, err = peak_rss_bytes(argv, cwd=tmp_path)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err[-2000:]
    assert peak < healthy_inspect_peak + 2 * size, (peak >> 20, healthy_inspect_peak >> 20, size >> 20)
