"""Training end to end on a tiny generated Sudoku-4 set: the loss falls, the public-layout
checkpoint reloads to the very model that was trained, `--resume` continues the run (weights,
AdamW state, LR schedule and data order), two gloo ranks stay in sync, TRM's EMA is what gets
saved, and bad configs end in one `error:` line."""

from __future__ import annotations

import copy
import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hrm_eval.config import load_config
from hrm_eval.models import build_model
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.training.config import TrainConfig
from hrm_eval.training.optim import cosine_lr
from hrm_eval.training.trainer import train
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import run_main
from tests.unit.training.conftest import (
    HRM_ARCH,
    TRM_ARCH,
    act_outputs,
    dataset_json,
    eval_batch,
    read_saved,
    train_config,
    train_fields,
    write_yaml,
)

STEP_LOG = re.compile(r"step (\d+)/(\d+) loss ([0-9.]+) .* lr ([0-9.e+-]+)")


def logged_steps(text: str) -> dict[int, tuple[float, float]]:
    """step -> (loss, lr) from the trainer's `step N/M loss ... lr ...` log lines."""
    return {int(m.group(1)): (float(m.group(3)), float(m.group(4))) for m in STEP_LOG.finditer(text)}


def assert_same_outputs(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for step, (x, y) in enumerate(zip(a, b)):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), f"ACT step {step + 1}: {k} differs"


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---- 1. train, save, reload ---------------------------------------------------------------
def test_hrm_loss_falls_and_checkpoint_reloads_to_the_trained_model(sudoku4_data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hrm_eval")
    # 3 epochs x 16 batches = 48 steps; evaluation (and a checkpoint) after every epoch.
    config = train_config(sudoku4_data, HRM_ARCH, lr_warmup_steps=4, eval_interval=1)
    out = tmp_path / "run"
    summary = train(config, output=out, progress=False)

    assert summary.steps == 48 and summary.final_checkpoint == out / "step_48"
    assert sorted(p.name for p in out.glob("step_*")) == sorted(
        f"step_{n}{ext}" for n in (16, 32, 48) for ext in ("", ".optim")
    )
    assert torch.load(out / "step_16.optim", map_location="cpu", weights_only=True)["step"] == 16
    assert 0 <= summary.last_metrics["exact_accuracy"] <= 1 and summary.last_metrics["eval_accuracy"] > 0.3
    log = logged_steps(caplog.text)
    assert sorted(log) == list(range(1, 49))
    first, last = np.mean([log[s][0] for s in range(1, 6)]), np.mean([log[s][0] for s in range(44, 49)])
    assert last < 0.75 * first, (first, last)
    # LR: warm-up counted from step 1 (the public script increments before computing it), and the
    # last step of the schedule lands exactly on lr * lr_min_ratio.
    assert log[1][1] == pytest.approx(3e-3 / 4, rel=1e-2)
    assert summary.last_metrics["lr"] == pytest.approx(3e-3 * 0.1)
    for s in (1, 10, 30, 48):
        assert log[s][1] == pytest.approx(cosine_lr(s, 3e-3, 4, 48, 0.1), rel=1e-2)

    # The file: public prefix, every tensor of the in-memory model, equal to it.
    saved = read_saved(out / "step_48")
    memory = summary.model.inner.state_dict()
    assert saved.keys() == memory.keys()
    for k in memory:
        assert torch.equal(saved[k], memory[k]), k
    # The sparse puzzle embedding (zero at init, a buffer) was trained by sign-SGD.
    assert saved["puzzle_emb.weights"].shape == (1, 32)
    assert bool((saved["puzzle_emb.weights"] != 0).all())

    # all_config.yaml: public top-level fields and an arch block that load_checkpoint reads.
    all_config = yaml.safe_load((out / "all_config.yaml").read_text())
    for key in (
        "data_path",
        "global_batch_size",
        "epochs",
        "lr",
        "lr_min_ratio",
        "lr_warmup_steps",
        "weight_decay",
        "beta1",
        "beta2",
        "puzzle_emb_lr",
        "puzzle_emb_weight_decay",
        "project_name",
        "run_name",
        "checkpoint_path",
        "seed",
        "checkpoint_every_eval",
        "eval_save_outputs",
    ):
        assert key in all_config, key
    assert all_config["checkpoint_path"] == str(out)
    arch = all_config["arch"]
    assert arch["name"] == HRM_ARCH["name"] and arch["loss"]["loss_type"] == "stablemax_cross_entropy"
    assert (arch["num_heads"], arch["H_cycles"], arch["L_cycles"], arch["halt_max_steps"]) == (2, 2, 1, 2)

    loaded = load_checkpoint(out / "step_48", dataset=dataset_json(sudoku4_data))
    assert loaded.key_prefix == "_orig_mod.model.inner." and loaded.step == 48
    assert loaded.assumed == [], loaded.sources
    for field in ("num_heads", "H_cycles", "L_cycles", "halt_max_steps", "rope_theta", "pos_encodings"):
        assert loaded.sources[field] == "all_config.yaml", (field, loaded.sources[field])
    exclude = {"batch_size"}
    assert loaded.config.model_dump(exclude=exclude) == summary.model.config.model_dump(exclude=exclude)

    batch = eval_batch(sudoku4_data)
    assert_same_outputs(act_outputs(loaded.model, batch), act_outputs(summary.model, batch))
    # ... and the trained model is not its random initialisation.
    torch.manual_seed(config.seed)
    untrained = build_model(summary.model.config)
    assert not torch.equal(act_outputs(untrained, batch)[-1]["logits"], act_outputs(loaded.model, batch)[-1]["logits"])


def test_global_batch_larger_than_the_train_split_is_an_error_not_a_hang(sudoku4_data, tmp_path):
    with pytest.raises(HRMEvalError, match="global_batch_size 512 is larger than one epoch"):
        train(train_config(sudoku4_data, HRM_ARCH, global_batch_size=512), output=tmp_path / "run", progress=False)


def test_checkpoint_with_an_expansion_sharing_its_mlp_width_reloads(sudoku4_data, tmp_path):
    """Hidden 32: expansions 2 and 4 both give an MLP width of 256; all_config.yaml's 2 must be taken."""
    summary = train(
        train_config(sudoku4_data, dict(HRM_ARCH, expansion=2), max_steps=1), output=tmp_path / "run", progress=False
    )
    loaded = load_checkpoint(tmp_path / "run", dataset=dataset_json(sudoku4_data))
    assert loaded.config.expansion == 2
    batch = eval_batch(sudoku4_data)
    assert_same_outputs(act_outputs(loaded.model, batch), act_outputs(summary.model, batch))


# ---- 2. --resume through the command line's main() --------------------------------------------
@pytest.mark.slow
def test_resume_continues_weights_optimiser_schedule_and_data(sudoku4_data, tmp_path, monkeypatch, capsys):
    # halt_max_steps 1: every row halts each step, so no ACT carry crosses the interruption and a
    # resumed run must equal an uninterrupted one bit for bit.
    arch = dict(HRM_ARCH, halt_max_steps=1)
    out = tmp_path / "run"
    cfg6 = write_yaml(tmp_path / "six.yaml", train_fields(sudoku4_data, arch, max_steps=6))
    cfg12 = write_yaml(tmp_path / "twelve.yaml", train_fields(sudoku4_data, arch, max_steps=12))

    # The first leg through train() (what the command line calls), the resume through the CLI's main().
    first = train(load_config(cfg6, TrainConfig), output=out, progress=False)
    assert first.steps == 6 and first.final_checkpoint == out / "step_6"
    state6 = torch.load(out / "step_6.optim", map_location="cpu", weights_only=True)
    assert (state6["step"], state6["epoch"], state6["epoch_batch"]) == (6, 0, 6)
    assert {int(s["step"]) for s in state6["adamw"]["state"].values()} == {6}

    second = run_main(
        capsys, "--mode", "train", "--config", str(cfg12), "--output", str(out), "--no-progress", "--resume"
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "trained 12 steps" in second.stdout
    assert re.search(r"resumed from \S*step_6 \(step 6\)", second.stderr), second.stderr[-2000:]
    steps = logged_steps(second.stderr)
    assert sorted(steps) == list(range(7, 13))  # continues at 7: nothing retrained
    assert steps[7][1] == pytest.approx(cosine_lr(7, 3e-3, 2, 48, 0.1), rel=1e-2)  # schedule of the whole run
    assert sorted(p.name for p in out.glob("step_*")) == ["step_12", "step_12.optim", "step_6", "step_6.optim"]
    state12 = torch.load(out / "step_12.optim", map_location="cpu", weights_only=True)
    assert (state12["step"], state12["epoch_batch"]) == (12, 12)
    # AdamW's per-parameter step counters went on from 6 (a fresh optimiser would say 6 here).
    assert {int(s["step"]) for s in state12["adamw"]["state"].values()} == {12}

    # Same weights as 12 uninterrupted steps: the weights, Adam moments, LR and the data order
    # (the resumed epoch skips the 6 batches already trained on) were all restored.
    straight = train(train_config(sudoku4_data, arch, max_steps=12), output=tmp_path / "straight", progress=False)
    resumed = read_saved(out / "step_12")
    for k, v in straight.model.inner.state_dict().items():
        assert torch.equal(resumed[k], v), k
    assert not torch.equal(
        resumed["L_level.layers.0.mlp.down_proj.weight"],
        read_saved(out / "step_6")["L_level.layers.0.mlp.down_proj.weight"],
    )

    # Without its resume state the newest step is not complete: --resume names it in a warning and
    # goes on from the previous complete step (the command line's entry point, in this process),
    # ending on the very same step_12.
    from hrm_eval.cli import main

    (out / "step_12.optim").unlink()
    capsys.readouterr()
    rc = main(["--mode", "train", "--config", str(cfg12), "--output", str(out), "--no-progress", "--resume"])
    err = capsys.readouterr().err  # the CLI's own handler prints the warning (no propagation meanwhile)
    assert rc == 0, err
    assert f"skipping {out / 'step_12'}: step_12.optim is missing" in err
    again = read_saved(out / "step_12")
    for k, v in resumed.items():
        assert torch.equal(again[k], v), k
    assert (out / "step_12.optim").is_file()


# ---- 4. TRM with EMA ------------------------------------------------------------------------
@pytest.mark.parametrize("mlp_t", [False, True], ids=["attention", "mlp_t"])
def test_trm_ema_saves_the_average_and_reloads(sudoku4_data, tmp_path, mlp_t):
    arch = dict(TRM_ARCH, mlp_t=mlp_t)
    summary = train(
        train_config(sudoku4_data, arch, max_steps=6, ema=True, ema_rate=0.9), output=tmp_path / "run", progress=False
    )
    saved = read_saved(tmp_path / "run" / "step_6")
    state = torch.load(tmp_path / "run" / "step_6.optim", map_location="cpu", weights_only=True)
    shadow = {k.removeprefix("inner."): v for k, v in state["ema"].items()}
    raw = state["raw_model"]
    params = {n for n, _ in summary.model.inner.named_parameters()}
    assert set(shadow) == params and raw.keys() == saved.keys()
    assert any(".mlp_t." in k for k in saved) == mlp_t
    for k in saved:
        if k in params:  # the file holds the average, the .optim file the raw weights to train on
            assert torch.equal(saved[k], shadow[k]), k
            assert not torch.equal(saved[k], raw[k]), k
        else:  # buffers (puzzle embedding, H_init, L_init) are not averaged
            assert torch.equal(saved[k], raw[k]), k
    for k, v in summary.model.inner.state_dict().items():
        assert torch.equal(raw[k], v), k

    loaded = load_checkpoint(tmp_path / "run", dataset=dataset_json(sudoku4_data))
    assert loaded.step == 6 and loaded.config.family == "trm" and loaded.config.mlp_t == mlp_t
    assert loaded.config.puzzle_emb_len == 2 and loaded.assumed == []
    averaged = copy.deepcopy(summary.model)
    with torch.no_grad():
        for n, p in averaged.inner.named_parameters():
            p.copy_(shadow[n])
    batch = eval_batch(sudoku4_data)
    assert_same_outputs(act_outputs(loaded.model, batch), act_outputs(averaged, batch))
    raw_logits = act_outputs(summary.model, batch)[-1]["logits"]
    assert not torch.equal(act_outputs(loaded.model, batch)[-1]["logits"], raw_logits)


def test_trm_ema_after_one_step_is_the_rate_weighted_mix_of_init_and_trained(sudoku4_data, tmp_path):
    config = train_config(sudoku4_data, TRM_ARCH, max_steps=1, ema=True, ema_rate=0.75)
    summary = train(config, output=tmp_path / "run", progress=False)
    saved = read_saved(tmp_path / "run" / "step_1")
    torch.manual_seed(config.seed)  # the trainer's initial weights
    init = build_model(summary.model.config).inner.state_dict()
    trained = summary.model.inner.state_dict()
    for n, _ in summary.model.inner.named_parameters():
        expected = 0.75 * init[n] + 0.25 * trained[n]
        torch.testing.assert_close(saved[n], expected, rtol=1e-5, atol=1e-6, msg=n)
        assert not torch.equal(init[n], trained[n]) or n.startswith("q_head"), n


def test_trm_ema_resume_matches_uninterrupted(sudoku4_data, tmp_path):
    """Resuming an EMA run goes on from the raw weights and the saved average, not from the average."""
    arch = dict(TRM_ARCH, halt_max_steps=1)
    fields = dict(ema=True, ema_rate=0.8)
    train(train_config(sudoku4_data, arch, max_steps=3, **fields), output=tmp_path / "a", progress=False)
    resumed = train(
        train_config(sudoku4_data, arch, max_steps=7, **fields), output=tmp_path / "a", resume=True, progress=False
    )
    straight = train(train_config(sudoku4_data, arch, max_steps=7, **fields), output=tmp_path / "b", progress=False)
    assert resumed.steps == straight.steps == 7
    a, b = read_saved(tmp_path / "a" / "step_7"), read_saved(tmp_path / "b" / "step_7")
    for k in b:
        assert torch.equal(a[k], b[k]), k
    for k, v in straight.model.inner.state_dict().items():
        assert torch.equal(resumed.model.inner.state_dict()[k], v), k


# ---- 6. bad training configs ------------------------------------------------------------------
BAD_CONFIGS = {
    "unknown field": (dict(learning_rate=1e-3), ("unknown setting 'learning_rate': no such field",)),
    "invalid arch": (dict(arch=dict(HRM_ARCH, hidden_size=30, num_heads=4)), ("arch", "not divisible by num_heads")),
    "misspelt arch field": (dict(arch=dict(HRM_ARCH, puzle_emb_ndim=8)), ("unknown arch field", "puzle_emb_ndim")),
    "arch missing a field": (dict(arch={k: v for k, v in HRM_ARCH.items() if k != "hidden_size"}), ("hidden_size",)),
    "missing data_path": (dict(data_path=None), ("data_path", "Field required")),
    "data_path not a dataset": (dict(data_path="{tmp}/nowhere"), ("nowhere",)),
    "global batch too large": (dict(global_batch_size=4096), ("global_batch_size 4096",)),
}


def bad_config(data: Path, tmp_path: Path, case: str) -> tuple[Path, tuple[str, ...]]:
    overrides, needles = BAD_CONFIGS[case]
    fields = train_fields(data, HRM_ARCH)
    for k, v in overrides.items():
        if v is None:
            fields.pop(k)
        else:
            fields[k] = v.format(tmp=tmp_path) if isinstance(v, str) else v
    return write_yaml(tmp_path / "bad.yaml", fields), needles


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_training_config_is_one_line_error(sudoku4_data, tmp_path, capsys, case):
    """Through the command line's own entry point, in this process (one subprocess below)."""
    from hrm_eval.cli import main

    cfg, needles = bad_config(sudoku4_data, tmp_path, case)
    rc = main(["--mode", "train", "--config", str(cfg), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    one_line_error(subprocess.CompletedProcess([], rc, "", err), *needles)
    assert not list(tmp_path.glob("out/step_*"))


# ---- the logged train accuracy --------------------------------------------------------------
TRAIN_LOG = re.compile(r"step (\d+)/\d+ loss [0-9.]+ accuracy ([0-9.]+) exact ([0-9.]+) of (\d+) halted")


def test_logged_accuracy_is_over_the_puzzles_halted_since_the_last_line(sudoku4_data, tmp_path, caplog):
    """A step scores only the rows that halted in it (most steps halt none when rows start
    together), so the log line reports the halted rows of its whole window: with log_every 4 the
    halted count is the sum of the four per-step counts and the accuracies their weighted means."""
    caplog.set_level(logging.INFO, logger="hrm_eval")
    arch = dict(HRM_ARCH, halt_max_steps=4)
    lines = {}
    for every in (1, 4):
        caplog.clear()
        train(
            train_config(sudoku4_data, arch, max_steps=8, log_every=every), output=tmp_path / str(every), progress=False
        )
        lines[every] = {int(m[1]): (float(m[2]), float(m[3]), int(m[4])) for m in TRAIN_LOG.finditer(caplog.text)}
    per_step, window = lines[1], lines[4]
    assert sorted(per_step) == list(range(1, 9)) and sorted(window) == [4, 8]
    for end in (4, 8):
        steps = [per_step[s] for s in range(end - 3, end + 1)]
        halted = sum(n for _, _, n in steps)
        # The same training run (logging draws no random numbers): counts add up exactly; the
        # accuracies are printed to 4 decimals, so the weighted means agree to within 1e-4.
        assert window[end][2] == halted
        assert halted >= 16  # 16 puzzles a batch, each halting within its 4 steps
        for i in (0, 1):
            assert window[end][i] == pytest.approx(sum(v[i] * v[2] for v in steps) / halted, abs=1e-4)
