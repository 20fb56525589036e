"""Log targets of a real `deploy.py` process (issue 27): a --log-file that cannot be written is one
warning, a FIFO is refused before it could block (the subprocess's timeout catches a hang)."""

from __future__ import annotations

from tests.conftest import ROOT


# ---- log targets (issue 27) -----------------------------------------------------------------------------
def _inspect_with_log_file(target):
    import subprocess
    import sys

    argv = [sys.executable, str(ROOT / "deploy.py"), "--mode", "inspect", "--checkpoint", "checkpoints/sudoku6-hrm"]
    return subprocess.run([*argv, "--log-file", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_log_file_that_cannot_be_written_is_one_warning_not_tracebacks():
    """--log-file /dev/full (every write fails, ENOSPC) printed five logging tracebacks."""
    proc = _inspect_with_log_file("/dev/full")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "warning: --log-file /dev/full: cannot write (No space left on device); not logging there any more"
    ]
    assert "family / variant" in proc.stdout  # the run itself went on


def test_a_fifo_as_log_file_is_refused_before_it_could_block(tmp_path):
    """Opening a FIFO for writing waits for a reader: the run blocked forever before any output."""
    import os

    os.mkfifo(tmp_path / "log")
    proc = _inspect_with_log_file(tmp_path / "log")  # the timeout fails the test if it blocks
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"error: --log-file {tmp_path / 'log'} is a FIFO (named pipe), expected a regular file"
    )
