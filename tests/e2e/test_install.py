"""`pip install .` (not editable) into a fresh virtual environment, from a copy of the repository:
`--mode evaluate` still runs with its defaults, the bundled model and configs coming from
<prefix>/share/hrm-eval (pyproject's data-files), not from the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "outputs",
    "tests",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "raw",
)


@pytest.mark.slow
def test_non_editable_install_evaluates_with_its_defaults(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This interpreter's packages (torch, pip, setuptools) without reinstalling them: a venv made
    # from a venv's python sees the *base* site-packages only, so name ours in a .pth file. A
    # plain path (its own .pth files are not run) cannot activate an editable hrm_eval there.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "parent_env.pth").write_text(str(Path(torch.__file__).parents[1]) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HRM_EVAL_HOME")}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(src)  # nothing may come from the copy it was installed from

    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import hrm_eval, hrm_eval.resources as r; "
            "print(hrm_eval.__file__); print(r.data_home()); print(r.bundled_run())",
        ],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    package, home, run = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(home) == venv / "share" / "hrm-eval"
    assert sorted(p.name for p in Path(run).glob("step_*")) == [
        "step_10000",
        "step_11250",
        "step_2500",
        "step_3750",
        "step_5000",
        "step_7500",
    ]

    proc = subprocess.run(
        [str(venv / "bin" / "hrm-eval"), "--mode", "evaluate", "--limit", "8", "--device", "cpu", "--no-progress"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("results: ")]
    results = json.loads((work / line.split()[1]).read_text())
    assert results["aggregate_metrics"]["total_puzzles"] == 8
    assert results["provenance"]["checkpoint"]["step"] == 11250  # the default model's newest step
    assert Path(results["provenance"]["checkpoint"]["path"]).is_relative_to(venv / "share" / "hrm-eval")
