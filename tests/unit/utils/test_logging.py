"""Structured logging: console lines for people, JSON lines in --log-file, one level for both,
and no print() in the package outside the CLI's summaries."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.logging import PACKAGE_LOGGER, ProgressLog, setup_logging
from tests.conftest import ROOT, run_main


@pytest.fixture
def package_logger():
    """setup_logging changes the package logger: put it back for the tests that follow."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield logger
    for h in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(h)
        h.close()
    logger.setLevel(level)
    logger.propagate = propagate


def test_a_library_that_configures_the_root_logger_does_not_double_the_lines(package_logger, capsys):
    """Issue 27: the ONNX paths printed every line twice (onnxruntime's quantizer calls basicConfig)."""
    root = logging.getLogger()
    before = list(root.handlers)
    setup_logging("INFO")
    logging.basicConfig(level=logging.INFO)  # what the library does, after our set-up
    try:
        package_logger.info("once")
    finally:
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
    assert capsys.readouterr().err.splitlines() == ["INFO once"]


def read_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines_hold_message_context_and_extra_fields(package_logger, tmp_path, capsys):
    log_file = tmp_path / "logs" / "run.jsonl"  # its folder is made
    setup_logging("INFO", log_file, mode="evaluate")
    log = logging.getLogger("hrm_eval.some.module")
    log.info("checkpoint %s", "a/step_1", extra={"checkpoint_sha256": "ab" * 32, "step": np.int64(7), "p": Path("x")})
    log.debug("not at INFO")
    lines = read_lines(log_file)
    assert len(lines) == 1
    line = lines[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "hrm_eval.some.module", "checkpoint a/step_1")
    assert (line["mode"], line["checkpoint_sha256"], line["step"], line["p"]) == ("evaluate", "ab" * 32, 7, "x")
    # the console shows the same record as a plain line
    assert capsys.readouterr().err == "INFO checkpoint a/step_1\n"


def test_one_level_applies_to_console_and_file(package_logger, tmp_path, capsys):
    log_file = tmp_path / "run.jsonl"
    setup_logging("WARNING", log_file)
    log = logging.getLogger(PACKAGE_LOGGER)
    log.info("quiet")
    log.warning("loud %d", 1)
    assert [r["message"] for r in read_lines(log_file)] == ["loud 1"]
    assert capsys.readouterr().err == "WARNING loud 1\n"
    # a second set-up replaces the first (no doubled lines) and appends to the file
    setup_logging("DEBUG", log_file)
    log.debug("detail")
    assert [r["message"] for r in read_lines(log_file)] == ["loud 1", "detail"]
    assert capsys.readouterr().err == "DEBUG detail\n"


def test_file_only_records_and_progress_counts(package_logger, tmp_path, capsys):
    log_file = tmp_path / "run.jsonl"
    setup_logging("INFO", log_file)
    progress = ProgressLog(logging.getLogger(PACKAGE_LOGGER), 10, every_s=3600, console=False)
    for _ in range(5):
        progress.update(2, exact=0.5)
    # throttled: only the last count (10 of 10) is logged within the hour, and only to the file
    (line,) = read_lines(log_file)
    assert (line["event"], line["puzzles_done"], line["puzzles_total"], line["exact"]) == ("progress", 10, 10, 0.5)
    assert "console" not in line
    assert capsys.readouterr().err == ""


def test_bad_log_file_is_one_line_error(package_logger, tmp_path):
    with pytest.raises(HRMEvalError, match=r"^--log-file .* is a directory, expected a regular file$"):
        setup_logging("INFO", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(HRMEvalError, match=r"^--log-file .*file/run.jsonl: cannot open"):
        setup_logging("INFO", tmp_path / "file" / "run.jsonl")


def test_log_file_from_a_config_file_keeps_the_settings_and_the_error(tmp_path, capsys):
    """`log_file` is a config field like every flag: set in --config, the mode logs there, the
    one-line error included."""
    config = tmp_path / "eval.yaml"
    log_file = tmp_path / "eval.jsonl"
    config.write_text(
        yaml.safe_dump(
            {"checkpoint": "checkpoints/sudoku6-hrm", "data_path": "no/such/data", "log_file": str(log_file)}
        )
    )
    proc = run_main(capsys, "--mode", "evaluate", "--config", str(config), "--limit", "3", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: data not found: no/such/data", proc.stderr
    start, error = read_lines(log_file)
    assert (start["event"], start["mode"], start["config"]["limit"]) == ("start", "evaluate", 3)
    assert start["config"]["log_file"] == str(log_file) and start["config_file"] == str(config)
    assert (error["event"], error["level"], error["message"]) == ("error", "ERROR", proc.stderr.strip())


# Where print() belongs: the CLI modules print their final summaries (and main its one error line).
PRINT_ALLOWED = {"hrm_eval/cli/__init__.py", "hrm_eval/cli/data.py", "hrm_eval/cli/evaluate.py"} | {
    "hrm_eval/cli/ensemble.py",
    "hrm_eval/cli/compare.py",
    "hrm_eval/cli/inspect.py",
    "hrm_eval/cli/score.py",
    "hrm_eval/cli/train.py",
    "hrm_eval/cli/solve.py",
    "hrm_eval/cli/export.py",
    "hrm_eval/cli/play.py",
    # serve: the startup line with the URL (users and benchmarks read it) and the open-host warning
    "hrm_eval/serve/server.py",
}


def test_no_print_outside_the_cli_summaries():
    offenders = []
    for path in sorted((ROOT / "hrm_eval").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(?<![\w.])print\(", line) and rel not in PRINT_ALLOWED:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "use logging, not print():\n" + "\n".join(offenders)
    # and the allow-list names files that exist and still print (no stale entries)
    for rel in PRINT_ALLOWED:
        assert re.search(r"(?<![\w.])print\(", (ROOT / rel).read_text()), rel
