"""--resume after a real kill: an evaluation killed (SIGKILL) part way, resumed, ends identical to an
uninterrupted run, with no puzzle evaluated twice; rows it cannot trust are evaluated again; a
resume with other settings is one line naming the field. The kill is a real process; each resume
runs main() in this process (what it reads is on disk)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hrm_eval.evaluation.resume import RESUME_DIR, RowLog, read_log
from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.resources import find
from tests.conftest import ROOT, run_main

CHECKPOINT, DATA = "checkpoints/sudoku6-hrm", "checkpoints/sudoku6-hrm/data"
TOTAL, BATCH = 128, 8
TIMING = ("time_per_puzzle", "wall_time_seconds", "puzzles_per_second")
ARGS = ["--mode", "evaluate", "--checkpoint", CHECKPOINT, "--data", DATA, "--device", "cpu", "--dtype", "float32"]
ARGS += ["--threads", "1", "--no-progress", "--limit", str(TOTAL), "--batch-size", str(BATCH)]


def complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, int]:
    """An evaluation SIGKILLed once at least 3 batches of records were streamed: (its output
    directory, the records it had written)."""
    out = tmp_path_factory.mktemp("killed") / "out"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy.py"), *ARGS, "--output", str(out)],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    partial = out / "per_puzzle.jsonl.partial"
    deadline = time.monotonic() + 300
    while complete_lines(partial) < 3 * BATCH and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    recorded = complete_lines(partial)
    assert 3 * BATCH <= recorded < TOTAL and not (out / "results.json").exists()
    return out, recorded


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    simple_evaluate(
        str(find(CHECKPOINT)),
        str(find(DATA)),
        output_dir=out,
        device="cpu",
        dtype="float32",
        threads=1,
        progress=False,
        limit=TOTAL,
        batch_size=BATCH,
    )
    return out


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results_evaluating_each_puzzle_once(killed, uninterrupted, tmp_path, capsys):
    source, recorded = killed
    out = tmp_path / "out"
    shutil.copytree(source, out)
    proc = run_main(capsys, *ARGS, "--output", str(out), "--resume", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((out / "results.json").read_text())
    reference = json.loads((uninterrupted / "results.json").read_text())
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMING}  # noqa: E731
    assert drop(resumed["aggregate_metrics"]) == drop(reference["aggregate_metrics"])
    assert resumed["q_value_analysis"] == reference["q_value_analysis"]
    assert resumed["per_puzzle_metrics"] == reference["per_puzzle_metrics"]
    assert (out / "per_puzzle.jsonl").read_bytes() == (uninterrupted / "per_puzzle.jsonl").read_bytes()
    # No puzzle twice: everything recorded before the kill was skipped, only the rest evaluated,
    # and the engine's own count of ACT steps (4 per puzzle, fixed halting) agrees.
    evaluation = resumed["provenance"]["evaluation"]
    skipped, evaluated = evaluation["resumed"]["skipped"], evaluation["resumed"]["evaluated"]
    assert skipped >= recorded and skipped + evaluated == TOTAL and evaluated > 0
    assert evaluation["engine"]["act_steps_computed"] == 4 * evaluated
    assert f"--resume: {skipped} puzzles already done" in proc.stderr
    assert not (out / RESUME_DIR).exists() and not (out / "per_puzzle.jsonl.partial").exists()


def _forge(out: Path, edit, *, key_known: bool) -> int:
    """Rewrite the killed run's logged rows with `edit(row) -> row or None`; with `key_known` the
    frames get valid digests (someone who read the manifest), else not (a plain edit)."""
    (path,) = (out / RESUME_DIR).glob("rows.*.log")
    key = path.name.split(".")[2].encode()
    rows = list(read_log(path, key))
    forged = [r for r in (edit(dict(r)) for r in rows) if r is not None]
    path.unlink()
    log = RowLog(path, key if key_known else b"another key")
    log.append(forged)
    log.close()
    return len(rows)


def _all_solved(row):
    row["scores"] = {k: torch.ones_like(v) for k, v in row["scores"].items()}
    row["valid"] = torch.ones_like(row["valid"])
    return row


def _far_positions(row):
    row["position"] += 10**6  # provenance that adds up to more puzzles than the dataset has
    return _all_solved(row)


def _other_inputs(row):
    row["inputs"] = torch.roll(row["inputs"], 1)
    return _all_solved(row)


def _missing_column(row):
    del row["scores"]
    return row


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, key_known, says",
    [
        (_all_solved, False, "does not match its checksum (edited or damaged)"),
        (_far_positions, True, "is outside the 128 puzzles evaluated"),
        (_other_inputs, True, "holds other inputs than the dataset's"),
        (_missing_column, True, "a row without the field scores"),
    ],
    ids=["edited", "positions-outside", "other-inputs", "missing-column"],
)
def test_resume_checks_the_logged_rows_and_reevaluates_what_it_cannot_trust(
    killed, uninterrupted, tmp_path, capsys, edit, key_known, says
):
    """Issue 27: rows rewritten as solved gave exact accuracy 1.0 (uninterrupted: 0.984), exit 0;
    a missing column was an internal error; far positions gave provenance over the dataset's size.
    Now such rows are evaluated again: the numbers are the uninterrupted run's."""
    source, _ = killed
    out = tmp_path / "out"
    shutil.copytree(source, out)
    _forge(out, edit, key_known=key_known)
    proc = run_main(capsys, *ARGS, "--output", str(out), "--resume", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert says in proc.stderr and "Traceback" not in proc.stderr
    resumed = json.loads((out / "results.json").read_text())
    reference = json.loads((uninterrupted / "results.json").read_text())
    assert resumed["per_puzzle_metrics"] == reference["per_puzzle_metrics"]
    assert resumed["aggregate_metrics"]["exact_accuracy"] == reference["aggregate_metrics"]["exact_accuracy"]
    assert "resumed" not in resumed["provenance"]["evaluation"]  # nothing was taken from the log
    assert resumed["provenance"]["evaluation"]["engine"]["act_steps_computed"] == 4 * TOTAL


@pytest.mark.slow
def test_resume_strict_stops_at_a_row_it_cannot_trust(killed, tmp_path, capsys):
    source, _ = killed
    out = tmp_path / "out"
    shutil.copytree(source, out)
    _forge(out, _far_positions, key_known=True)
    proc = run_main(capsys, *ARGS, "--output", str(out), "--resume", "strict", "--log-level", "ERROR", cwd=ROOT)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: --resume strict: ") and "is outside the 128 puzzles evaluated" in proc.stderr
    assert not (out / "results.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, field, saved, now",
    [
        (["--batch-size", "16"], "batch_size", "8", "16"),
        (["--halting", "adaptive"], "halting", '{"max_steps": 4, "mode": "fixed"}', '{"max_steps": 4, "min_steps": 1'),
    ],
)
def test_resume_with_other_settings_names_the_field(killed, tmp_path, capsys, flag, field, saved, now):
    source, _ = killed
    out = tmp_path / "out"
    shutil.copytree(source, out)
    before = sorted(p.name for p in (out / RESUME_DIR).iterdir())
    args = list(ARGS)
    i = args.index(flag[0]) if flag[0] in args else None
    if i is not None:
        del args[i : i + 2]
    proc = run_main(capsys, *args, *flag, "--output", str(out), "--resume", cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"error: --resume: {out / RESUME_DIR / 'manifest.json'} was written with {field} {saved}"
    )
    assert f"this run has {now}" in lines[-1]
    assert sorted(p.name for p in (out / RESUME_DIR).iterdir()) == before  # nothing lost
