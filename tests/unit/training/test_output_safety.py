"""Where training writes: outputs/train/<run_name> by default, never over another run's steps
unless --resume or --overwrite, never into the bundled model; the common settings as flags."""

from __future__ import annotations

import pytest
import torch
import yaml

from hrm_eval.cli import main
from hrm_eval.resources import bundled_runs
from tests.conftest import ROOT, one_line
from tests.unit.training.conftest import HRM_ARCH, read_saved, train_fields, write_yaml


def train_cli(*args: str) -> int:
    try:
        return main(["--mode", "train", "--no-progress", *args])
    except SystemExit as e:  # the mode's parser refused the command line (one line, status 2)
        return e.code


@pytest.fixture
def cfg(sudoku4_data, tmp_path):
    fields = train_fields(sudoku4_data, HRM_ARCH, run_name="tiny-run", max_steps=2)
    fields.pop("checkpoint_path", None)
    return write_yaml(tmp_path / "train.yaml", fields)


def test_default_output_is_outputs_train_run_name(cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train_cli("--config", str(cfg)) == 0
    run = tmp_path / "outputs" / "train" / "tiny-run"
    assert sorted(p.name for p in run.glob("step_*")) == ["step_2", "step_2.optim"]
    assert yaml.safe_load((run / "all_config.yaml").read_text())["checkpoint_path"] == "outputs/train/tiny-run"
    assert not (run / ".hrm-eval.lock").exists()


def test_the_bundled_training_config_no_longer_names_the_bundled_run():
    data = yaml.safe_load((ROOT / "configs" / "train_sudoku6.yaml").read_text())
    assert "checkpoint" not in str(data.get("checkpoint_path"))


def test_folder_with_another_runs_steps_is_refused(cfg, tmp_path, capsys):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "step_500").write_bytes(b"an earlier run's checkpoint")
    rc = train_cli("--config", str(cfg), "--output", str(out))
    one_line(rc, capsys.readouterr().err, str(out), "step_500", "--resume", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["step_500"]  # nothing written, nothing removed


def test_overwrite_removes_the_old_steps_first(cfg, tmp_path):
    out = tmp_path / "earlier"
    out.mkdir()
    for name in ("step_1", "step_500", "step_500.optim"):  # step_500 would look newer than the new run
        (out / name).write_bytes(b"old")
    assert train_cli("--config", str(cfg), "--output", str(out), "--overwrite") == 0
    assert sorted(p.name for p in out.glob("step_*")) == ["step_2", "step_2.optim"]
    assert read_saved(out / "step_2")  # the new run's, in the public layout


def test_resume_and_overwrite_together_is_refused(cfg, tmp_path, capsys):
    rc = train_cli("--config", str(cfg), "--output", str(tmp_path / "o"), "--resume", "--overwrite")
    one_line(rc, capsys.readouterr().err, "--resume", "--overwrite")
    one_line(train_cli("--output", str(tmp_path / "o")), capsys.readouterr().err, "required", "--config")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("run", bundled_runs(), ids=lambda p: p.name)
def test_a_bundled_run_is_never_a_training_output(cfg, capsys, run):
    before = sorted(p.name for p in run.iterdir())
    for extra in ([], ["--overwrite"]):
        rc = train_cli("--config", str(cfg), "--output", str(run), *extra)
        one_line(rc, capsys.readouterr().err, str(run))
    assert sorted(p.name for p in run.iterdir()) == before


def test_common_settings_on_the_command_line(sudoku4_data, tmp_path):
    """--data, --max-steps and --set (dotted) override the file; what ran is in all_config.yaml."""
    fields = train_fields(tmp_path / "not-here", HRM_ARCH, max_steps=50)
    cfg = write_yaml(tmp_path / "train.yaml", fields)
    out = tmp_path / "run"
    rc = train_cli(
        "--config",
        str(cfg),
        "--output",
        str(out),
        "--data",
        str(sudoku4_data),
        "--max-steps",
        "1",
        "--set",
        "arch.hidden_size=64",
        "--set",
        "lr=0.002",
        "--set",
        "arch.loss.loss_type=softmax_cross_entropy",
    )
    assert rc == 0
    written = yaml.safe_load((out / "all_config.yaml").read_text())
    assert written["data_path"] == str(sudoku4_data) and written["max_steps"] == 1 and written["lr"] == 0.002
    assert written["arch"]["hidden_size"] == 64 and written["arch"]["loss"]["loss_type"] == "softmax_cross_entropy"
    assert sorted(p.name for p in out.glob("step_*")) == ["step_1", "step_1.optim"]
    assert read_saved(out / "step_1")["lm_head.weight"].shape[1] == 64


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--max-steps", "0"], ("--max-steps", "0")),
        (["--set", "lr"], ("--set", "KEY=VALUE")),
        (["--set", "lr.x=1"], ("--set", "lr.x", "lr")),
        (["--set", "arch.hidden_sise=64"], ("hidden_sise",)),
    ],
)
def test_bad_command_line_settings_are_one_line_errors(cfg, tmp_path, capsys, args, needles):
    rc = train_cli("--config", str(cfg), "--output", str(tmp_path / "o"), *args)
    one_line(rc, capsys.readouterr().err, *needles)
    assert not (tmp_path / "o").exists()


def test_loss_type_override_changes_training(sudoku4_data, tmp_path):
    """--set reaches the model: two loss types give different weights after one step."""
    runs = {}
    for loss in ("stablemax_cross_entropy", "softmax_cross_entropy"):
        cfg = write_yaml(tmp_path / f"{loss}.yaml", train_fields(sudoku4_data, HRM_ARCH, max_steps=1))
        assert (
            train_cli("--config", str(cfg), "--output", str(tmp_path / loss), "--set", f"arch.loss.loss_type={loss}")
            == 0
        )
        runs[loss] = read_saved(tmp_path / loss / "step_1")
    assert not torch.equal(
        runs["stablemax_cross_entropy"]["lm_head.weight"], runs["softmax_cross_entropy"]["lm_head.weight"]
    )
