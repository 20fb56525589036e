"""`python deploy.py ...` as real subprocesses: evaluate, inspect, one-line errors, config precedence,
outputs checked and locked before any work, unique default output folders, per-mode --help.

Every command is started once, by the module fixture `runs`, a few at a time (each process
spends most of its time importing torch); the tests then check one result each."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hrm_eval.evaluation.config import EvalConfig
from hrm_eval.evaluation.run import evaluate_config
from hrm_eval.models.checkpoint.format import SAVE_PREFIX as PREFIX
from hrm_eval.utils.paths import LOCK_NAME
from tests.conftest import (
    HRM_FIXTURES,
    MAZE_BUILT,
    PARITY_REL_TOL,
    ROOT,
    SUDOKU_BUILT,
    TRM_FIXTURES,
    expected_outputs,
    run_cli,
)

ALL = {**HRM_FIXTURES, **TRM_FIXTURES}
CKPT = HRM_FIXTURES["rope_f32"]
BUFFERS = ("H_init", "L_init", "puzzle_emb.weights")
EVAL = ("--mode", "evaluate", "--device", "cpu", "--no-progress")
STALE = '{"stale": true}\n'


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _step_file(folder: Path) -> Path:
    (f,) = [p for p in folder.iterdir() if p.name.startswith("step_")]
    return f


def _raw_state(folder: Path) -> dict:
    return torch.load(_step_file(folder), map_location="cpu", weights_only=True)


def _prepare(tmp: Path) -> dict:
    """Input files for the commands; returns the command lines by scenario name."""
    out = lambda name: str(tmp / "out" / name)  # noqa: E731
    cmds = {
        "evaluate": [
            *EVAL,
            "--checkpoint",
            str(CKPT),
            "--data",
            str(SUDOKU_BUILT),
            "--output",
            out("evaluate"),
            "--limit",
            "10",
        ],
        "maze_debug": [
            *EVAL,
            "--checkpoint",
            str(CKPT),
            "--data",
            str(MAZE_BUILT),
            "--output",
            out("maze_debug"),
            "--debug",
        ],
        "missing_checkpoint": [
            *EVAL,
            "--checkpoint",
            str(tmp / "no_such_run"),
            "--data",
            str(SUDOKU_BUILT),
            "--output",
            out("missing_checkpoint"),
        ],
        "missing_data": [
            *EVAL,
            "--checkpoint",
            str(CKPT),
            "--data",
            str(tmp / "no_such_data"),
            "--output",
            out("missing_data"),
        ],
        "unknown_mode": ["--mode", "frobnicate", "--checkpoint", str(CKPT)],
        "batch_size_0": [
            *EVAL,
            "--checkpoint",
            str(CKPT),
            "--data",
            str(SUDOKU_BUILT),
            "--output",
            out("batch_size_0"),
            "--batch-size",
            "0",
        ],
        "arch_without_equals": [
            *EVAL,
            "--checkpoint",
            str(CKPT),
            "--data",
            str(SUDOKU_BUILT),
            "--output",
            out("arch_without_equals"),
            "--arch",
            "num_heads",
        ],
    }

    # A dataset of another task; an earlier result in the output folder must survive the failing run.
    (tmp / "out" / "maze").mkdir(parents=True)
    (tmp / "out" / "maze" / "results.json").write_text(STALE)
    cmds["maze"] = [*EVAL, "--checkpoint", str(CKPT), "--data", str(MAZE_BUILT), "--output", out("maze")]

    # A checkpoint whose pickle would open (create) a marker file.
    evil = tmp / "evil"
    evil.mkdir()
    sd = _raw_state(CKPT)
    sd["payload"] = _Payload(tmp / "marker")
    torch.save(sd, evil / "step_1000")
    shutil.copy(CKPT / "all_config.yaml", evil)
    cmds["pickle"] = [*EVAL, "--checkpoint", str(evil), "--data", str(SUDOKU_BUILT), "--output", out("pickle")]

    for name, folder in ALL.items():
        cmds[f"inspect_{name}"] = ["--mode", "inspect", "--checkpoint", str(folder)]

    # NaN and Inf in one tensor: inspect reports them.
    nan = tmp / "nan"
    nan.mkdir()
    sd = _raw_state(CKPT)
    sd[PREFIX + "lm_head.weight"][0, :3] = float("nan")
    sd[PREFIX + "lm_head.weight"][1, 0] = float("-inf")
    torch.save(sd, nan / "step_1000")
    shutil.copy(CKPT / "all_config.yaml", nan)
    cmds["inspect_nan"] = ["--mode", "inspect", "--checkpoint", str(nan)]

    # No all_config.yaml beside the checkpoint: --model-config states what the tensors cannot.
    # The fixture's batch as JSONL; an eval config file (batch_size 5, limit 3) whose limit the
    # command line's --limit 4 overrides.
    bare = tmp / "bare"
    bare.mkdir()
    shutil.copy(_step_file(CKPT), bare)
    arch = yaml.safe_load((CKPT / "all_config.yaml").read_text())["arch"]
    (tmp / "model.yaml").write_text(
        yaml.safe_dump(
            {
                "arch": {
                    k: arch[k] for k in ("name", "num_heads", "H_cycles", "L_cycles", "halt_max_steps", "pos_encodings")
                }
            }
        )
    )
    exp = expected_outputs(CKPT)
    with open(tmp / "batch.jsonl", "w") as f:
        for i, (x, y, pid) in enumerate(zip(exp["inputs"], exp["labels"], exp["puzzle_identifiers"])):
            f.write(
                json.dumps(
                    {
                        "puzzle_id": f"b{i}",
                        "input_sequence": x.tolist(),
                        "target_sequence": y.tolist(),
                        "puzzle_identifier": int(pid),
                    }
                )
                + "\n"
            )
    cfg = tmp / "eval.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "checkpoint": str(bare),
                "data_path": str(tmp / "batch.jsonl"),
                "device": "cpu",
                "output_dir": out("config"),
                "batch_size": 5,
                "limit": 3,
                "progress": False,
                "save_predictions": True,
            }
        )
    )
    cmds["config"] = [
        "--mode",
        "evaluate",
        "--config",
        str(cfg),
        "--limit",
        "4",
        "--model-config",
        str(tmp / "model.yaml"),
    ]
    _prepare_outputs(tmp, cmds)
    return cmds


def _prepare_outputs(tmp: Path, cmds: dict) -> None:
    """Outputs that cannot be written, a locked one, a replaced one, and runs without --output."""
    ok = [*EVAL, "--checkpoint", str(CKPT), "--data", str(SUDOKU_BUILT), "--limit", "3"]
    (tmp / "a_file").write_text("not a folder\n")
    cmds["output_is_file"] = [*ok, "--output", str(tmp / "a_file")]
    cmds["output_under_file"] = [*ok, "--output", str(tmp / "a_file" / "sub")]
    (tmp / "read_only").mkdir()
    os.chmod(tmp / "read_only", 0o555)
    cmds["output_read_only"] = [*ok, "--output", str(tmp / "read_only" / "out")]
    # where nobody, root included, can make a folder (permission bits say nothing for root)
    cmds["output_unwritable_for_root"] = [*ok, "--output", "/proc/hrm-eval-test/out"]
    cmds["locked"] = [*ok, "--output", str(tmp / "locked")]
    cmds["after_killed_holder"] = [*ok, "--output", str(tmp / "killed")]
    (tmp / "replaced").mkdir()
    (tmp / "replaced" / "results.json").write_text(STALE)
    cmds["replaced"] = [*ok, "--output", str(tmp / "replaced")]
    # The bundled defaults (configs/eval_config.yaml), run twice from an empty working directory.
    (tmp / "cwd").mkdir()
    cmds["default_1"] = [*EVAL, "--limit", "3"]
    cmds["default_2"] = [*EVAL, "--limit", "3"]
    cmds["help_evaluate"] = ["--mode", "evaluate", "--help"]
    cmds["help"] = ["--help"]
    cmds["weights_not_numbers"] = ["--mode", "ensemble", "--checkpoints", str(CKPT), str(CKPT), "--weights", "1", "x"]
    cmds["score_without_predictions"] = ["--mode", "score", "--data", str(SUDOKU_BUILT), "--output", str(tmp / "s")]
    cmds["flag_of_another_mode"] = [*ok, "--strategy", "vote"]
    cmds["run_config_as_eval_config"] = ["--mode", "evaluate", "--config", str(CKPT / "all_config.yaml")]
    cmds["bad_yaml"] = ["--mode", "evaluate", "--config", str(_write(tmp / "bad.yaml", "device: cpu\nlimit: [3\n"))]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _hold_lock(folder: Path) -> int:
    """Take the output lock the way a running evaluation holds it (flock on the lock file)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _killed_holder(folder: Path) -> None:
    """A process that took the lock and was killed (SIGKILL: no clean-up ran); its lock file stays."""
    folder.mkdir(parents=True, exist_ok=True)
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder / LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_NAME).exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cmds = _prepare(tmp)
    cwd = {name: tmp / "cwd" for name in ("default_1", "default_2")}
    _killed_holder(tmp / "killed")
    lock = _hold_lock(tmp / "locked")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OMP_NUM_THREADS", "1")  # tiny models; threads only contend on a small CI box
            with ThreadPoolExecutor(max_workers=3) as pool:
                longest_first = sorted(cmds, key=lambda n: n not in ("config", "evaluate"))
                futures = {
                    name: pool.submit(run_cli, *cmds[name], cwd=cwd.get(name, ROOT), timeout=300)
                    for name in longest_first
                }
                done = {name: f.result() for name, f in futures.items()}
    finally:
        os.close(lock)
    return tmp, done


def assert_one_line_error(proc, *words, rc=2):
    assert proc.returncode == rc, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ---- evaluate ------------------------------------------------------------------------------------
def test_evaluate_prints_summary_and_writes_results(runs):
    tmp, done = runs
    proc = done["evaluate"]
    assert proc.returncode == 0, proc.stderr
    assert "Evaluation summary" in proc.stdout
    rows = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.startswith(("puzzles", "steps")))
    assert rows["puzzles"].strip() == "10" and rows["steps"].strip() == "4.00"
    assert "exact_accuracy (solve rate)" in proc.stdout and "device / dtype" in proc.stdout
    results = json.loads((tmp / "out" / "evaluate" / "results.json").read_text())
    assert results["aggregate_metrics"]["total_puzzles"] == 10 and len(results["per_puzzle_metrics"]) == 10
    assert results["provenance"]["evaluation"]["device"] == "cpu"
    assert f"{results['aggregate_metrics']['accuracy']:.4f}" in proc.stdout
    assert str(tmp / "out" / "evaluate" / "results.json") in proc.stdout


def test_dataset_of_another_task_is_one_line_and_writes_nothing(runs):
    tmp, done = runs
    line = assert_one_line_error(done["maze"], "vocab_size", "11", "6")
    assert "mismatch" in line
    # The earlier results.json is untouched and nothing else (no temp file) was written.
    assert (tmp / "out" / "maze" / "results.json").read_text() == STALE
    assert sorted(p.name for p in (tmp / "out" / "maze").iterdir()) == ["results.json"]


def test_debug_shows_the_traceback(runs):
    proc = runs[1]["maze_debug"]
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "HRMEvalError" in proc.stderr and "vocab_size" in proc.stderr


@pytest.mark.parametrize(
    "name,words",
    [
        ("missing_checkpoint", ("checkpoint not found", "no_such_run")),
        ("missing_data", ("not found", "no_such_data")),
        ("unknown_mode", ("--mode", "frobnicate")),
        ("batch_size_0", ("--batch-size", "0")),
        ("arch_without_equals", ("--arch", "KEY=VALUE", "num_heads")),
    ],
)
def test_user_mistakes_are_one_line_errors(runs, name, words):
    tmp, done = runs
    assert_one_line_error(done[name], *words)
    assert not (tmp / "out" / name / "results.json").exists()


def test_pickle_payload_is_refused_through_the_cli(runs):
    tmp, done = runs
    assert_one_line_error(done["pickle"], "arbitrary", str(tmp / "evil" / "step_1000"))
    assert not (tmp / "marker").exists()
    assert not (tmp / "out" / "pickle" / "results.json").exists()


def test_eval_config_file_and_command_line_precedence(runs):
    tmp, done = runs
    proc = done["config"]
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp / "out" / "config" / "results.json").read_text())
    assert results["aggregate_metrics"]["total_puzzles"] == 4  # --limit 4 beats the file's 3
    assert [r["puzzle_id"] for r in results["per_puzzle_metrics"]] == ["b0", "b1", "b2", "b3"]
    assert results["provenance"]["evaluation"]["batch_size"] == 5  # from the file
    assert results["provenance"]["evaluation"]["limit"] == 4


def test_model_config_yaml_reproduces_the_fixture(runs):
    tmp, done = runs
    assert done["config"].returncode == 0, done["config"].stderr
    results = json.loads((tmp / "out" / "config" / "results.json").read_text())
    sources = results["provenance"]["checkpoint"]["config_sources"]
    for k in ("num_heads", "H_cycles", "L_cycles", "halt_max_steps"):
        assert sources[k] == "model config", k
    assert sources["hidden_size"] == "checkpoint tensors"
    exp = expected_outputs(CKPT)
    preds = torch.load(tmp / "out" / "config" / "step_1000_all_preds.0", weights_only=True)
    assert tuple(preds["logits"].shape) == (4, 81, 11)
    scale = np.abs(exp["logits"][-1]).max()
    assert np.abs(preds["logits"].float().numpy() - exp["logits"][-1][:4]).max() <= PARITY_REL_TOL["rope_f32"] * scale
    np.testing.assert_allclose(preds["q_halt_logits"].numpy(), exp["q_halt_logits"][-1][:4], atol=1e-5)
    assert results["aggregate_metrics"]["steps"] == exp["steps"][-1][:4].mean()


# ---- inspect -------------------------------------------------------------------------------------
def _row(stdout: str, key: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(key + "  "):
            return line[len(key) :].strip()
    raise AssertionError(f"no row {key!r} in:\n{stdout}")


@pytest.mark.parametrize("name", sorted(ALL))
def test_inspect_reports_each_fixture(runs, name):
    proc = runs[1][f"inspect_{name}"]
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    folder = ALL[name]
    arch = yaml.safe_load((folder / "all_config.yaml").read_text())["arch"]
    sd = {k.removeprefix(PREFIX): v for k, v in _raw_state(folder).items()}

    values = sum(v.numel() for v in sd.values())
    trainable = values - sum(sd[k].numel() for k in BUFFERS)
    assert _row(out, "trainable parameters") == f"{trainable:,}"
    assert _row(out, "values in state dict").startswith(f"{values:,} ")
    dtypes = {}
    for v in sd.values():
        dtypes[str(v.dtype).removeprefix("torch.")] = dtypes.get(str(v.dtype).removeprefix("torch."), 0) + 1
    assert _row(out, "tensor dtypes") == ", ".join(f"{k}: {n}" for k, n in sorted(dtypes.items()))
    assert _row(out, "NaN/Inf") == "none"

    if "trm" in arch["name"]:
        variant = f"TRM / trm {'mlp_t' if arch['mlp_t'] else 'attention'} ({arch['pos_encodings']})"
    else:
        variant = f"HRM / hrm_act_v1 ({arch['pos_encodings']})"
    assert _row(out, "family / variant") == variant
    assert _row(out, "step") == _step_file(folder).name.removeprefix("step_")
    assert _row(out, "hidden_size") == f"{arch['hidden_size']}    [checkpoint tensors]"
    assert _row(out, "num_heads") == f"{arch['num_heads']}    [all_config.yaml]"
    assert _row(out, "forward_dtype") == f"{arch['forward_dtype']}    [checkpoint tensors]"
    assert "rope_theta" in _row(out, "assumed") and "num_heads" not in _row(out, "assumed")
    if arch["pos_encodings"] == "rope":  # rope stores no table: the dataset would give seq_len
        assert _row(out, "seq_len").startswith("?    [unknown")
    else:
        assert _row(out, "seq_len") == f"{expected_outputs(folder)['inputs'].shape[1]}    [checkpoint tensors]"


def test_inspect_reports_nonfinite_values(runs):
    proc = runs[1]["inspect_nan"]
    assert proc.returncode == 0, proc.stderr
    assert _row(proc.stdout, "NaN/Inf") == "lm_head.weight: 3 NaN, 1 Inf"


# ---- outputs: checked before work, locked, unique by default -------------------------------------
def _no_evaluation_ran(proc) -> None:
    assert "puzzles" not in proc.stderr + proc.stdout  # the INFO line an evaluation logs first


@pytest.mark.parametrize(
    "name,words",
    [
        ("output_is_file", ("--output", "a_file", "existing file")),
        ("output_under_file", ("--output", "a_file", "is a file")),
    ],
)
def test_unwritable_output_is_refused_before_the_evaluation(runs, name, words):
    tmp, done = runs
    assert_one_line_error(done[name], *words)
    _no_evaluation_ran(done[name])
    assert (tmp / "a_file").read_text() == "not a folder\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused_before_the_evaluation(runs):
    tmp, done = runs
    assert_one_line_error(done["output_read_only"], "--output", "read_only", "not writable")
    _no_evaluation_ran(done["output_read_only"])


def test_output_nobody_can_create_is_refused_before_the_evaluation(runs):
    """Runs as root too (CI does): the lock's mkdir and open are the real test, not os.access."""
    tmp, done = runs
    assert_one_line_error(done["output_unwritable_for_root"], "--output", "/proc/hrm-eval-test", "cannot write there")
    _no_evaluation_ran(done["output_unwritable_for_root"])


def test_second_run_into_a_locked_output_is_one_line_error(runs):
    tmp, done = runs
    assert_one_line_error(done["locked"], "--output", "locked", "another run")
    _no_evaluation_ran(done["locked"])
    assert not (tmp / "locked" / "results.json").exists()


def test_lock_of_a_killed_run_does_not_block_the_next(runs):
    tmp, done = runs
    proc = done["after_killed_holder"]
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp / "killed" / "results.json").read_text())["aggregate_metrics"]["total_puzzles"] == 3
    assert not (tmp / "killed" / LOCK_NAME).exists()  # released and removed at the end of the run


def test_replacing_results_in_an_explicit_output_is_said(runs):
    tmp, done = runs
    proc = done["replaced"]
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("results: ")]
    assert str(tmp / "replaced" / "results.json") in line and "replaced the earlier results" in line
    assert json.loads((tmp / "replaced" / "results.json").read_text())["aggregate_metrics"]["total_puzzles"] == 3
    fresh = done["evaluate"].stdout
    assert "replaced" not in fresh


def test_default_output_folders_are_unique_per_run_and_use_the_bundled_model(runs):
    tmp, done = runs
    folders = []
    for name in ("default_1", "default_2"):
        proc = done[name]
        assert proc.returncode == 0, proc.stderr
        (line,) = [x for x in proc.stdout.splitlines() if x.startswith("results: ")]
        folders.append((tmp / "cwd" / line.split()[1]).parent)
    assert folders[0] != folders[1]
    for folder in folders:
        assert folder.parent == tmp / "cwd" / "outputs" / "evaluate"
        assert folder.name.startswith("sudoku6-hard-hrm-data-")
        results = json.loads((folder / "results.json").read_text())
        assert results["aggregate_metrics"]["total_puzzles"] == 3
        assert results["provenance"]["checkpoint"]["step"] == 11250  # the default bundled run's newest step
        # One batch-size default: the CLI's (from the config model) is the Python API's.
        assert results["provenance"]["evaluation"]["batch_size"] == EvalConfig.model_fields["batch_size"].default
        # simple_evaluate's settings (keywords or config=) are EvalConfig's
        api_default = evaluate_config("c", "d", None, {}).batch_size
        assert api_default == 256 == results["provenance"]["evaluation"]["batch_size"]


# ---- one parser per mode -------------------------------------------------------------------------
def test_mode_help_shows_that_modes_flags_only(runs):
    proc = runs[1]["help_evaluate"]
    assert proc.returncode == 0, proc.stderr
    for flag in ("--checkpoint", "--data", "--batch-size", "--save-predictions", "--arch", "--config"):
        assert flag in proc.stdout, flag
    for flag in ("--strategy", "--weights", "--num-train", "--predictions", "--episodes", "--checkpoints"):
        assert flag not in proc.stdout, flag
    assert "(default: 256)" in proc.stdout


def test_plain_help_lists_the_modes(runs):
    proc = runs[1]["help"]
    assert proc.returncode == 0, proc.stderr
    for mode in ("evaluate", "inspect", "score", "build-data", "generate", "train", "ensemble", "compare", "test"):
        assert f"\n  {mode} " in proc.stdout, mode
    assert "--batch-size" not in proc.stdout


@pytest.mark.parametrize(
    "name,words",
    [
        ("weights_not_numbers", ("--weights", "'x'", "not a number")),
        ("score_without_predictions", ("--predictions", "required")),
        ("flag_of_another_mode", ("unrecognized", "--strategy")),
        ("bad_yaml", ("bad.yaml:3", "not valid YAML")),
        ("run_config_as_eval_config", ("all_config.yaml", "training/run config", "--model-config")),
    ],
)
def test_per_mode_parsers_and_configs_give_one_line_errors(runs, name, words):
    assert_one_line_error(runs[1][name], *words)


def test_every_flag_of_a_mode_is_a_field_of_its_config_model():
    """A flag whose name matches no field would be dropped silently: each flag lands in the model."""
    from hrm_eval.cli import MODES
    from hrm_eval.cli.base import NOT_SETTINGS, mode_parser

    checked = 0
    for mode in MODES.values():
        if mode.schema is None:
            continue
        for action in mode_parser(mode)._actions:
            if action.option_strings and action.dest not in ("help", "log_level", *NOT_SETTINGS):
                assert action.dest in mode.schema.model_fields, (mode.name, action.option_strings)
                checked += 1
    assert checked > 40


def test_evaluate_with_adaptive_halting_from_the_command_line(tmp_path):
    res = run_cli(
        "--mode",
        "evaluate",
        "--halting",
        "adaptive",
        "--limit",
        "24",
        "--output",
        str(tmp_path / "a"),
        "--no-progress",
        "--threads",
        "1",
    )
    assert res.returncode == 0, res.stderr
    assert "halting" in res.stdout and "adaptive" in res.stdout
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["provenance"]["evaluation"]["halting"]["mode"] == "adaptive"
    assert results["provenance"]["evaluation"]["threads"] == 1
    assert 1 <= results["aggregate_metrics"]["steps"] < 4
    assert len((tmp_path / "a" / "per_puzzle.jsonl").read_text().splitlines()) == 24


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--halt-threshold", "1.5"), "--halt-threshold"),
        (("--halting", "sometimes"), "--halting"),
        (("--halting", "sweep"), "--sweep"),  # an analysis switch, not a mode
        (("--sweep", "--halting", "adaptive"), "--sweep"),
        (("--min-steps", "0"), "--min-steps"),
        (("--dtype", "float8"), "--dtype"),
    ],
)
def test_bad_halting_flags_are_one_line_errors(flags, message, tmp_path):
    res = run_cli("--mode", "evaluate", *flags, "--output", str(tmp_path / "x"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr
    assert not (tmp_path / "x" / "results.json").exists()
