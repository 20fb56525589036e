"""Issue 27: without --data a checkpoint is evaluated on its own run's dataset (its all_config.yaml
data_path, or what a model folder records), found as the bundled models' paths are; when that
cannot be found it is one line naming what was looked for, never another model's data."""

from __future__ import annotations

import shutil
from pathlib import Path

from hrm_eval.cli import main
from tests.conftest import ROOT

RUN = ROOT / "checkpoints" / "sudoku6-hrm"


def copy_run(dst: Path, data_path: str | None) -> Path:
    dst.mkdir()
    shutil.copy(RUN / "step_625", dst / "step_625")
    text = (RUN / "all_config.yaml").read_text()
    assert "data_path: checkpoints/sudoku6-hrm/data" in text
    if data_path is None:
        text = text.replace("data_path: checkpoints/sudoku6-hrm/data\n", "")
    else:
        text = text.replace("data_path: checkpoints/sudoku6-hrm/data", f"data_path: {data_path}")
    (dst / "all_config.yaml").write_text(text)
    return dst / "step_625"


def evaluate(ckpt: Path, out: Path, capsys, *extra: str):
    argv = ["--mode", "evaluate", "--checkpoint", str(ckpt), "--output", str(out), "--limit", "20"]
    rc = main([*argv, "--no-progress", "--log-level", "ERROR", "--dtype", "float32", *extra])
    return rc, *capsys.readouterr()


def test_a_checkpoint_without_data_is_evaluated_on_its_own_runs_dataset(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative data_path is found in the data home, as the bundled ones are
    rc, out, err = evaluate(copy_run(tmp_path / "run", "checkpoints/sudoku6-hrm/data"), tmp_path / "out", capsys)
    assert rc == 0, err
    assert f"data: {RUN / 'data'} (from the checkpoint's run)" in out
    assert "sudoku6-hard-hrm" not in out  # the default config's dataset (the other model's) is not used


def test_its_runs_dataset_missing_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = copy_run(tmp_path / "run", "data/elsewhere")
    rc, out, err = evaluate(ckpt, tmp_path / "out", capsys)
    assert rc == 2 and err.strip() == (
        f"error: --checkpoint {ckpt}: its run's dataset data/elsewhere (data_path in "
        f"{tmp_path / 'run' / 'all_config.yaml'}) was not found (looked from the working directory, then the "
        "data home); give --data"
    )
    rc, out, err = evaluate(copy_run(tmp_path / "bare", None), tmp_path / "out", capsys)
    assert rc == 2 and "records no data_path; give --data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_data_given_or_configured_wins(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = copy_run(tmp_path / "run", "data/elsewhere")  # not used: --data is given
    rc, out, err = evaluate(ckpt, tmp_path / "out", capsys, "--data", str(RUN / "data"))
    assert rc == 0 and f"data: {RUN / 'data'} (from --data)" in out, err
