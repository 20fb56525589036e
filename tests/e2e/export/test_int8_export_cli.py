"""`--mode export --format onnx --quantize int8` as a real command line on the bundled model:
the int8 graph is written beside the fp32 one with its measured cost, and `--mode inspect`
reads it back."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


def test_export_writes_int8_with_its_measured_cost(tmp_path):
    data = BUNDLED / "data"
    out = tmp_path / "onnx"
    common = ["--mode", "export", "--checkpoint", str(BUNDLED), "--format", "onnx", "--quantize", "int8"]
    common += ["--output", str(out), "--data", str(data), "--limit", "64", "--batch-size", "64", "--threads", "1"]
    done = run_cli(*common)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["puzzles"] == 64 and config["quantization"]["acceptable"]
    assert set(config["weights"]) == {"float32", "int8"}
    assert (out / "model.int8.onnx").stat().st_size < 0.5 * (out / "model.onnx").stat().st_size
    inspected = run_cli("--mode", "inspect", "--checkpoint", str(out / "model.int8.onnx"))
    assert inspected.returncode == 0, inspected.stderr[-2000:]
    assert "int8 weights" in inspected.stdout
