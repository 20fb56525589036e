"""The export-related flags on the command line: wrong combinations are one line, exit 2."""

from __future__ import annotations

import pytest

from hrm_eval.cli import main
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.mark.parametrize(
    "flags, words",
    [
        (
            ["--mode", "evaluate", "--backend", "onnxruntime", "--dtype", "bfloat16"],
            "--dtype bfloat16: the onnxruntime",
        ),
        (["--mode", "evaluate", "--quantize", "int8", "--device", "cuda"], "--device cuda: the onnxruntime backend"),
        (["--mode", "evaluate", "--backend", "onnxruntime", "--compile"], "--compile is for the torch backend"),
        (["--mode", "export", "--format", "safetensors", "--quantize", "int8"], "--quantize int8 is for --format onnx"),
    ],
)
def test_wrong_combinations_are_one_line(flags, words, tmp_path, capsys):
    given = [*flags, "--checkpoint", str(BUNDLED), "--data", str(BUNDLED / "data"), "--output", str(tmp_path / "o")]
    assert main(given) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert not (tmp_path / "o" / "results.json").exists()
