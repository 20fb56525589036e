"""Documented examples run as written, so that a changed default breaks a test, not a user.

Covered: the README's notebook example (its Python block, exactly as written) and the
QUICKSTART's default evaluate command (as written plus `--limit`: the full run takes about a
minute on 2 cores) with the facts its prose states about that run. Not covered here: the
install and test commands, the QUICKSTART commands on placeholder paths (my_puzzles.csv,
checkpoints/MyProject/...), and the other documents' blocks: every documented `deploy.py`
command is at least read by its mode's parser (tests/unit/test_documented_commands.py).
"""

from __future__ import annotations

import re

from tests.conftest import ROOT, fenced_blocks

NOTEBOOK_EXAMPLE_START = "from hrm_eval import Evaluator, HRMConfig, HRMModel"


def test_readme_notebook_example_runs_as_written(monkeypatch):
    """The block that builds HRMModel(HRMConfig.from_yaml_config(config)) from the eval config
    and loads a checkpoint into it: the checkpoint must be the model the config names."""
    blocks = [
        b for b in fenced_blocks((ROOT / "README.md").read_text(), "python") if b.startswith(NOTEBOOK_EXAMPLE_START)
    ]
    assert len(blocks) == 1
    monkeypatch.chdir(ROOT)  # the README's paths are relative to a clone
    namespace: dict = {}
    exec(compile(blocks[0], "README.md (notebook example)", "exec"), namespace)
    results = namespace["results"]
    assert len(results.to_pandas()) == 100  # limit=100, one row per puzzle
    assert "exact_accuracy" in results.summary().index


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
