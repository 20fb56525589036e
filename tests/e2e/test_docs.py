"""Documented examples run as written, so that a changed default breaks a test, not a user.

Every Python block of the documents (README, QUICKSTART, DEPLOYMENT_SUMMARY, the model cards)
runs exactly as written, in a working folder holding a copy of the clone's checkpoints/ and
configs/, with the facts the prose states about it checked against what it computes. The
QUICKSTART's default evaluate command runs as written plus `--limit` (the full run takes about
a minute on 2 cores), with the facts its prose states. Every documented `deploy.py` command a
clone can run is run in tests/e2e/test_documented_commands_run.py; every one is read by its
mode's parser in tests/unit/test_documented_commands.py.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, copy_of_clone, fenced_blocks
from tests.unit.test_documented_commands import DOCUMENTS

PYTHON_BLOCKS = [
    pytest.param(block, id=f"{name}:{number}")
    for name in DOCUMENTS
    for number, block in enumerate(fenced_blocks((ROOT / name).read_text(), "python"), 1)
]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return copy_of_clone(tmp_path_factory.mktemp("clone"))


def test_the_documents_hold_python_blocks():
    assert len(PYTHON_BLOCKS) >= 4  # README: the API, the notebook example, solve, Gymnasium


@pytest.mark.parametrize("block", PYTHON_BLOCKS)
def test_documented_python_block_runs_as_written(block, clone, monkeypatch, capsys):
    monkeypatch.chdir(clone)
    namespace: dict = {}
    exec(compile(block, "documented block", "exec"), namespace)
    printed = capsys.readouterr().out
    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    if "simple_evaluate(" in block:
        # README, Evaluate: "on the first model's own test set the hard one solves 1.000 against 0.991"
        stated = re.search(r"the hard one solves \d\.\d+ against (\d\.\d+)", readme).group(1)  # type: ignore[union-attr]
        assert f"{float(printed.split()[-1]):.3f}" == stated, printed
    if "HRMModel(HRMConfig.from_yaml_config(config))" in block:
        # the notebook example: the checkpoint must be the model the config names
        results = namespace["results"]
        assert len(results.to_pandas()) == 100  # limit=100, one row per puzzle
        assert "exact_accuracy" in results.summary().index
    if "Solver(" in block:
        assert namespace["s"].verified and all(x.verified for x in namespace["solutions"])
        assert len(namespace["solutions"]) == len(namespace["more"])
    if "gymnasium.make(" in block:
        assert not namespace["terminated"] and namespace["info"]["action_mask"].sum() > 0


def test_quickstart_default_evaluate_command(tmp_path, monkeypatch, capsys):
    """QUICKSTART section 3: `python deploy.py --mode evaluate` evaluates the newest step of
    checkpoints/sudoku6-hard-hrm on its data and writes results.json to the folder it names."""
    from hrm_eval.cli import main

    text = (ROOT / "QUICKSTART.md").read_text()
    section = text.split("## 3. Evaluate the bundled model", 1)[1]
    command = fenced_blocks(section, "bash")[0].strip()
    assert command == "python deploy.py --mode evaluate"
    prose = re.sub(r"\s+", " ", section.split("```", 3)[2])  # the paragraph after the command
    step = re.search(r"its newest `step_<N>`, `(step_\d+)`", prose).group(1)  # type: ignore[union-attr]
    folder = re.search(r"a new folder `(outputs/evaluate/[\w-]+-)<time>/`", prose).group(1)  # type: ignore[union-attr]

    monkeypatch.chdir(tmp_path)  # the default output folder is relative to where it runs
    assert main([*command.split()[2:], "--limit", "8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"checkpoint\s+\S*checkpoints/sudoku6-hard-hrm/{step} ", out), out
    assert re.search(r"dataset\s+\S*checkpoints/sudoku6-hard-hrm/data \[test\]", out), out
    written = re.search(r"^results: (\S+)$", out, flags=re.M).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(rf"{folder}\d{{8}}-\d{{6}}/results\.json", written), written
    assert (tmp_path / written).is_file()
