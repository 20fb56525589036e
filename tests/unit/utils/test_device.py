"""`--device`: auto picks a device; an explicit one must be usable here, else one line naming it."""

from __future__ import annotations

import pytest
import torch

from hrm_eval.cli import main
from hrm_eval.utils import HRMEvalError
from hrm_eval.utils.device import available_devices, resolve_device
from tests.conftest import ROOT

CKPT = ROOT / "checkpoints" / "sudoku6-hrm" / "step_625"
DATA = ROOT / "checkpoints" / "sudoku6-hrm" / "data"
MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def test_auto_and_cpu_resolve():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device(None).type == resolve_device("auto").type  # type: ignore[arg-type]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("cpu:0") == torch.device("cpu:0")
    assert available_devices()[:2] == ["auto", "cpu"]


def _unusable():
    missing_gpu = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    cases = ["meta", "xla", "garbage", "cpu:3", "cuda:x", missing_gpu]
    if not torch.cuda.is_available():
        cases.append("cuda")
    if not MPS:
        cases.append("mps")
    return cases


@pytest.mark.parametrize("name", _unusable())
def test_unusable_device_is_one_line_naming_value_and_choices(name):
    with pytest.raises(HRMEvalError) as e:
        resolve_device(name)
    msg = str(e.value)
    assert msg.startswith(f"--device {name!r}: ") and f"(available: {', '.join(available_devices())})" in msg
    assert "\n" not in msg


def test_cli_device_meta_exits_2_with_one_line(tmp_path, capsys):
    rc = main(
        [
            "--mode",
            "evaluate",
            "--checkpoint",
            str(CKPT),
            "--data",
            str(DATA),
            "--limit",
            "4",
            "--output",
            str(tmp_path / "out"),
            "--device",
            "meta",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --device 'meta': ")
    assert not (tmp_path / "out").exists()
