"""--dtype auto and threads: decided per machine, both branches exercised with injected probes."""

from __future__ import annotations

import pytest
import torch

from hrm_eval.inference.runtime import choose_dtype, choose_threads
from hrm_eval.utils.errors import HRMEvalError

CPU = torch.device("cpu")


def test_auto_takes_bf16_on_a_cpu_with_amx_and_says_so():
    c = choose_dtype("auto", "float32", CPU, cpu_features=lambda: {"amx": True, "avx512_bf16": False})
    assert (c.dtype, c.changed) == ("bfloat16", True)
    assert "amx" in c.reason


def test_auto_keeps_the_checkpoint_dtype_where_bf16_is_emulated():
    c = choose_dtype("auto", "float32", CPU, cpu_features=lambda: {"amx": False, "avx512_bf16": False})
    assert (c.dtype, c.changed) == ("float32", False)
    assert "emulated" in c.reason
    # a bf16 checkpoint stays bf16 (auto never changes results silently toward another dtype)
    assert choose_dtype("auto", "bfloat16", CPU, cpu_features=lambda: {"amx": False}).dtype == "bfloat16"


def test_auto_on_cuda_follows_the_device_capability():
    cuda = torch.device("cuda")
    assert choose_dtype("auto", "float32", cuda, cuda_bf16=lambda d: True).dtype == "bfloat16"
    assert choose_dtype("auto", "float32", cuda, cuda_bf16=lambda d: False).dtype == "float32"


def test_explicit_and_default_dtypes():
    assert choose_dtype(None, "bfloat16", CPU).dtype == "bfloat16"
    assert choose_dtype("float32", "bfloat16", CPU).changed
    with pytest.raises(ValueError, match="dtype must be"):
        choose_dtype("float8", "float32", CPU)


def test_threads(monkeypatch):
    assert choose_threads(3, CPU) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads(None, CPU) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert choose_threads(None, CPU) >= 1
    with pytest.raises(HRMEvalError, match="between 1 and 1024, got 0"):
        choose_threads(0, CPU)
    with pytest.raises(HRMEvalError, match="between 1 and 1024, got 100000"):  # libgomp aborted on it
        choose_threads(100_000, CPU)
    monkeypatch.setenv("OMP_NUM_THREADS", "100000")
    with pytest.raises(HRMEvalError, match="OMP_NUM_THREADS=100000: at most 1024 threads"):
        choose_threads(None, CPU)
