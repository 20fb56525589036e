"""Every `deploy.py` command line in the documents (README, QUICKSTART, DEPLOYMENT_SUMMARY, the
model cards), as written, is read by the mode's real parser: a renamed flag or a choice that is
no longer offered breaks this test, not the reader who copies the command. (Those a clone can
run are also run, in order: tests/e2e/test_documented_commands_run.py.)"""

from __future__ import annotations

import shlex

import pytest

from hrm_eval.cli import MODES
from hrm_eval.cli.base import mode_parser
from tests.conftest import ROOT, fenced_blocks

DOCUMENTS = [
    "README.md",
    "QUICKSTART.md",
    "DEPLOYMENT_SUMMARY.md",
    *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("checkpoints/*/README.md")),
]
SHELL_ENDS = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&"}


def documented_commands(name: str) -> list[tuple[int, list[str]]]:
    """(line, the words after deploy.py) of every `deploy.py` command in the bash blocks of a
    document, its continuation lines joined, cut at the first shell operator."""
    text = (ROOT / name).read_text()
    found, at = [], 0
    for body in fenced_blocks(text, "bash"):  # the documents' shell blocks are all ```bash
        at = text.index(body, at)
        first_line = text.count("\n", 0, at) + 1
        logical: list[tuple[int, str]] = []  # (line in the document, command with its continuations)
        for offset, raw in enumerate(body.splitlines()):
            if logical and logical[-1][1].endswith("\\"):
                logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + raw.strip())
            else:
                logical.append((first_line + offset, raw))
        for line_number, line in logical:
            line = line.split(" #")[0].strip()
            if "deploy.py" not in line or line.startswith("#"):
                continue
            words = shlex.split(line)
            rest = words[[i for i, w in enumerate(words) if w.endswith("deploy.py")][0] + 1 :]
            cut = next((i for i, w in enumerate(rest) if w in SHELL_ENDS), len(rest))
            found.append((line_number, rest[:cut]))
    return found


# `deploy.py --help` and `--mode X --help` are the parsers' own output, not a command to keep working
CASES = [
    (name, line, words)
    for name in DOCUMENTS
    for line, words in documented_commands(name)
    if "--mode" in words[:-1] and not {"--help", "-h"} & set(words)
]


def test_the_documents_hold_commands_of_every_common_mode():
    modes = {words[words.index("--mode") + 1] for _, _, words in CASES if "--mode" in words}
    assert {"evaluate", "ensemble", "compare", "solve", "serve", "export", "train"} <= modes, modes


@pytest.mark.parametrize("name, line, words", CASES, ids=[f"{n}:{line}" for n, line, _ in CASES])
def test_a_documented_command_parses_as_written(name, line, words, capsys):
    mode = words[words.index("--mode") + 1]
    assert mode in MODES, f"{name}:{line}: no mode {mode!r}"
    rest = words[: words.index("--mode")] + words[words.index("--mode") + 2 :]
    try:
        mode_parser(MODES[mode]).parse_args(rest)
    except SystemExit:
        pytest.fail(f"{name}:{line}: {' '.join(words)}\n{capsys.readouterr().err.strip()}")


def test_ci_runs_the_install_and_test_commands_the_documents_give():
    """README and QUICKSTART: "Install" and "Test" give the commands; .ci/run must be the same
    commands (it adds only --quiet), so a reader's setup is the one CI checks."""
    ci = [line.replace(" --quiet", "") for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for name in ("README.md", "QUICKSTART.md"):
        blocks = fenced_blocks((ROOT / name).read_text(), "bash")
        install = next(b.strip() for b in blocks if b.startswith("python -m pip install torch"))
        for command in install.split(" && "):
            assert command in ci, f"{name}: {command!r} is not what .ci/run runs"
        test = next(b for b in blocks if b.startswith("python -m pytest")).splitlines()[0].split(" #")[0].strip()
        assert test in ci, f"{name}: {test!r} is not what .ci/run runs"
