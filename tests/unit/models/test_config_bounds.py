"""Bounds on every number a file or a flag can set (issue 27, class 1): refused in one line that
names the field and the bound, before anything is allocated or run."""

from __future__ import annotations

import time

import pytest
import torch
from pydantic import ValidationError

from hrm_eval.cli import main
from hrm_eval.models import ModelConfig
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.utils import limits
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.validation import validation_error_line
from tests.conftest import ROOT
from tests.unit.models.test_loading import raw_state
from tests.unit.models.test_loading_hostile import FIXTURE, with_all_config

BASE = dict(seq_len=36, vocab_size=8, H_cycles=2, L_cycles=2, H_layers=1, L_layers=1, hidden_size=128)
BASE |= dict(num_heads=8, expansion=4, halt_max_steps=16)
BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("halt_max_steps", 10**9, f"less than or equal to {limits.MAX_HALT_STEPS}"),  # was a 30-60 GiB MemoryError
        ("H_cycles", 10**6, f"less than or equal to {limits.MAX_CYCLES}"),  # was minutes without output
        ("L_cycles", 65, "less than or equal to 64"),
        ("L_layers", 10**5, f"less than or equal to {limits.MAX_LAYERS}"),
        ("hidden_size", 2**20, f"less than or equal to {limits.MAX_HIDDEN_SIZE}"),
        ("seq_len", 2**31, f"less than or equal to {limits.MAX_SEQ_LEN}"),
        ("expansion", 1e6, "less than or equal to 64"),
        ("H_cycles", True, "a number is needed, got a boolean"),  # was silently 1
        ("expansion", True, "a number is needed, got a boolean"),
        ("H_cycles", 2.5, "fractional part"),
        ("rms_norm_eps", float("nan"), "finite number"),
        ("num_heads", 128, "head dimension 1; rope needs an even head dimension of at least 2"),  # was deep in RoPE
        ("num_heads", 64, None),
    ],
)
def test_architecture_values_are_bounded(field, value, says):
    if says is None:  # head dimension 2: the smallest RoPE can rotate, accepted
        assert ModelConfig(**(BASE | {field: value})).head_dim == 2
        return
    with pytest.raises(ValidationError) as e:
        ModelConfig(**(BASE | {field: value}))
    line = validation_error_line(e.value)
    assert says in line and "\n" not in line
    assert line.startswith(field) or "num_heads" in line


def test_integral_floats_still_read_as_counts():
    assert ModelConfig(**(BASE | {"H_cycles": 2.0})).H_cycles == 2


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("halt_max_steps", 10**9, "halt_max_steps = 1000000000 (from all_config.yaml)"),
        ("H_cycles", True, "H_cycles = True (from all_config.yaml): a number is needed"),
        ("num_heads", 64, "head dimension 1"),  # the fixture's hidden size is 64
    ],
)
def test_a_checkpoints_config_is_bounded_before_the_model_is_built(tmp_path, field, value, says):
    path = with_all_config(tmp_path / "run", raw_state(FIXTURE), **{field: value})
    start = time.monotonic()
    with pytest.raises(HRMEvalError) as e:
        load_checkpoint(path, require_seq_len=False)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert time.monotonic() - start < 10


def run(argv, capsys) -> str:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


EVALUATE = ["--mode", "evaluate", "--checkpoint", str(BUNDLED), "--data", str(BUNDLED / "data"), "--no-progress"]


@pytest.mark.parametrize(
    "flag, value, bound",
    [
        ("--max-steps", 10**9, limits.MAX_STEPS),
        ("--threads", 100_000, limits.MAX_THREADS),  # onnxruntime: libgomp aborted the process
        ("--batch-size", 10**9, limits.MAX_BATCH_SIZE),
        ("--limit", 10**12, limits.MAX_LIMIT),
        ("--min-steps", 10**6, limits.MAX_STEPS),
    ],
)
def test_run_time_counts_are_bounded_before_work(flag, value, bound, capsys, tmp_path):
    err = run([*EVALUATE, "--output", str(tmp_path / "out"), flag, str(value)], capsys)
    assert err == f"error: {flag} {value}: Input should be less than or equal to {bound}"
    assert not (tmp_path / "out").exists()


def test_tta_is_bounded(capsys, tmp_path):
    argv = ["--mode", "ensemble", "--checkpoints", str(BUNDLED), "--data", str(BUNDLED / "data")]
    err = run([*argv, "--tta", str(10**9), "--output", str(tmp_path / "out")], capsys)
    assert err == f"error: --tta 1000000000: Input should be less than or equal to {limits.MAX_VIEWS}"


@pytest.mark.parametrize(
    "arch, says",
    [
        ("num_head=8", "error: --arch 'num_head': no such field; did you mean num_heads?"),  # was ignored, exit 0
        ("H_cyles=3", "error: --arch 'H_cyles': no such field; did you mean H_cycles?"),
    ],
)
def test_unknown_arch_names_are_refused_with_the_nearest_name(arch, says, capsys):
    assert run(["--mode", "inspect", "--checkpoint", str(BUNDLED), "--arch", arch], capsys) == says


def test_unknown_config_key_is_reported_before_the_missing_one(tmp_path, capsys):
    """A typo'd `checkpiont:` was reported as a missing --checkpoint."""
    config = tmp_path / "eval.yaml"
    config.write_text(f"checkpiont: {BUNDLED}\ndata_path: {BUNDLED / 'data'}\n")
    err = run(["--mode", "evaluate", "--config", str(config)], capsys)
    assert err == f"error: {config}: unknown setting 'checkpiont': no such field; did you mean checkpoint?"


def test_memory_is_estimated_from_the_config_and_refused_before_allocating():
    from hrm_eval.inference.runtime import check_memory, machine_memory

    config = ModelConfig(**(BASE | {"num_puzzle_identifiers": 1}))
    small = config.run_bytes(256, 1000)
    assert small < 256 << 20  # the bundled model's size, 256 in flight: ~80 MB beyond its weights
    # every term grows with what it counts: rows in flight, puzzles, steps
    assert config.run_bytes(512, 1000) > small and config.run_bytes(256, 2000) > small
    assert config.model_copy(update={"halt_max_steps": 1024}).run_bytes(256, 1000) > small
    cpu = torch.device("cpu")
    check_memory(small, cpu, "evaluating 1000 puzzles")  # fits
    huge = config.run_bytes(limits.MAX_BATCH_SIZE, limits.MAX_LIMIT)
    assert huge > machine_memory(cpu)
    with pytest.raises(
        HRMEvalError, match=r"^evaluating 2147483648 puzzles would need about [\d,.]+ GiB on cpu, more "
    ):
        check_memory(huge, cpu, "evaluating 2147483648 puzzles")
