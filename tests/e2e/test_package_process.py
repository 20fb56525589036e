"""The package from a fresh Python process: importing hrm_eval and every mode's config imports no
torch, and `python -m hrm_eval` runs the command line."""

from __future__ import annotations

import subprocess
import sys

import hrm_eval
from tests.conftest import ROOT


def test_import_hrm_eval_does_not_import_torch():
    code = "import sys, hrm_eval; print(hrm_eval.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == [hrm_eval.__version__, "False"]


def test_the_command_line_and_every_mode_config_import_without_torch():
    """The CLI validates a mode's config before it imports torch; the features' package faces are lazy."""
    configs = ["evaluation", "ensemble", "export", "inference", "data", "serve", "training"]
    modules = ", ".join(["hrm_eval.cli", *(f"hrm_eval.{c}.config" for c in configs)])
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_python_dash_m_hrm_eval_runs_the_command_line(tmp_path):
    """`python -m hrm_eval --mode ...`, the usual entry of an installed package, is the CLI."""
    out = tmp_path / "out"
    args = ["--mode", "evaluate", "--limit", "2", "--output", str(out), "--no-progress"]
    p = subprocess.run([sys.executable, "-m", "hrm_eval", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (out / "results.json").is_file()
