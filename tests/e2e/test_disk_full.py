"""A full disk while writing results (issue 27): one line naming the file and what was kept, exit 2,
earlier results byte-identical, no temporary files left. The disk is a real tmpfs of a few hundred
KB (CI runs as root, as here); where mounting is not permitted the tests are skipped."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from hrm_eval.cli import main
from tests.conftest import ROOT

RUN = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.fixture
def disk(tmp_path):
    """A tmpfs of 512 KB at tmp_path/disk."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield where
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], check=True)  # never leave a mount behind
        pytest.fail("the disk was still in use after the run: a file was left open")


def fill(disk: Path) -> None:
    """Take every free byte of the disk."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv, capsys) -> str:
    rc = main([*argv, "--log-level", "ERROR"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (rc, err)
    return err


EVALUATE = ["--mode", "evaluate", "--checkpoint", str(RUN / "step_625"), "--data", str(RUN / "data")]
EVALUATE += ["--limit", "16", "--no-progress", "--dtype", "float32"]


@pytest.mark.parametrize("extra", [[], ["--save-predictions"]], ids=["evaluate", "save-predictions"])
def test_full_disk_during_evaluate_keeps_the_earlier_results(disk, capsys, extra):
    out = disk / "out"
    assert main([*EVALUATE, "--output", str(out), "--log-level", "ERROR"]) == 0  # the earlier results
    earlier = files(out)
    fill(disk)
    err = run([*EVALUATE, "--output", str(out), *extra], capsys)
    assert err.startswith("error: no space left on device while writing "), err
    assert files(out) == earlier  # byte-identical, nothing half-written beside them


def test_full_disk_during_export_leaves_no_partial_files(disk, capsys):
    out = disk / "model"  # the bundled model's weights (4 MB) do not fit in 512 KB
    err = run(["--mode", "export", "--checkpoint", str(RUN), "--output", str(out)], capsys)
    assert err == f"error: no space left on device while writing {out / 'model.safetensors'}; no partial file was left"
    assert files(disk) == {}


def test_full_disk_for_a_training_checkpoint(disk, capsys):
    out = disk / "run"
    argv = ["--mode", "train", "--config", str(ROOT / "configs" / "train_sudoku6.yaml"), "--output", str(out)]
    err = run([*argv, "--max-steps", "1", "--no-progress", "--data", str(RUN / "data")], capsys)
    assert err.startswith("error: no space left on device while writing "), err
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name or os.path.islink(p)]
