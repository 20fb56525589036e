"""Issue 27: an evaluation stopped by SIGTERM releases its --output lock, and the same command run
again says that an interrupted run is there instead of silently starting from zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from hrm_eval.evaluation.resume import MANIFEST, RESUME_DIR
from hrm_eval.utils.paths import LOCK_NAME
from tests.conftest import ROOT

RUN = ROOT / "checkpoints" / "sudoku6-hrm"


def test_sigterm_releases_the_lock_and_the_rerun_names_the_interrupted_run(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, str(ROOT / "deploy.py"), "--mode", "evaluate", "--checkpoint", str(RUN / "step_625")]
    argv += ["--data", str(RUN / "data"), "--output", str(out), "--batch-size", "8", "--no-progress"]
    argv += ["--dtype", "float32", "--log-level", "ERROR"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    logs = []
    while not any(p.stat().st_size for p in logs) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # until the first finished puzzles are on disk
        logs = list((out / RESUME_DIR).glob("rows.*.log")) if (out / RESUME_DIR).is_dir() else []
    assert proc.poll() is None, proc.communicate()
    assert (out / LOCK_NAME).exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and err.strip() == "terminated (SIGTERM)", err
    assert not (out / LOCK_NAME).exists()  # before: left behind, although the README says none is
    assert (out / RESUME_DIR / MANIFEST).exists() and not (out / "results.json").exists()

    again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip() == (
        f"error: --output {out}: an interrupted run is here ({RESUME_DIR}/): add --resume to continue it, "
        "or --overwrite to start again"
    )
    both = subprocess.run([*argv, "--resume", "--overwrite"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
