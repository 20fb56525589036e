"""Every documented `deploy.py` command that a clone can run is run, as a user following the
document would: a real `python deploy.py` process per command, in the document's order (a
later command finds what an earlier one wrote: exports, generated puzzles, a training run),
from a working folder holding a copy of the clone's checkpoints/ and configs/ (so nothing a
command writes lands in the checkout). Each must exit 0 with no error line.

Cut to seconds the way a user makes a trial run, and only that: `--limit 16` where the mode
takes a limit and the command sets none; `--episodes 8` for play; `--max-steps` for train (2
more steps per train command, so a `--resume` continues); `--num-train 200 --num-test 50` for
generate. Not run, each for its reason (`not_run`): the placeholders the reader fills in
(PLACEHOLDERS: any other input path that does not exist fails the test),
`hf://` and `--push-to-hub` (the network), `serve` (a server that runs until stopped: the
README's serve command and every request of its Serve section run in
tests/e2e/serve/test_documented_requests.py). torchrun lines run as one process here; torchrun itself
has its own e2e tests (tests/e2e/evaluation). Every command, run or not, is also read by its
mode's parser in tests/unit/test_documented_commands.py.
"""

from __future__ import annotations

import time

import pytest

from hrm_eval.cli import MODES
from tests.conftest import copy_of_clone, run_cli
from tests.unit.test_documented_commands import CASES, DOCUMENTS

pytestmark = pytest.mark.slow
LIMIT = "16"
INPUT_FLAGS = {"--checkpoint", "--checkpoints", "--data", "--run-dir", "--run", "--source", "--config"}
# The documents' stand-ins for the reader's own files: a command naming one is not run.
PLACEHOLDERS = {
    "checkpoints/MyProject/my-run",
    "checkpoints/MyProject/my-run/step_7566",
    "data/sudoku-extreme-1k-aug-1000",
    "puzzles.csv",
    "my_puzzles.csv",
    "...",
    "A",
    "B",
    "C",
    "DATA",
}


def not_run(words: list[str]) -> str | None:
    """Why this command is not run here, or None."""
    mode = words[words.index("--mode") + 1]
    if mode == "serve":
        return "a server that runs until stopped"
    if any(w.startswith("hf://") for w in words) or "--push-to-hub" in words:
        return "needs the network"
    given = [w for i, w in enumerate(words) if i and words[i - 1] in INPUT_FLAGS or w in PLACEHOLDERS]
    placeholders = PLACEHOLDERS.intersection(given)
    return f"placeholder {sorted(placeholders)[0]}" if placeholders else None


def trial_run(words: list[str], train_runs: int) -> list[str]:
    """The command as written plus the trial-run cut of its mode (argparse: the last flag wins)."""
    mode = words[words.index("--mode") + 1]
    extra: list[str] = []
    schema = MODES[mode].schema
    if schema is not None and "limit" in schema.model_fields:
        extra += ["--limit", LIMIT]
    if mode == "play":
        extra += ["--episodes", "8"]
    if mode == "train":
        extra += ["--max-steps", str(2 * train_runs), "--no-progress"]
    if mode == "generate":
        extra += ["--num-train", "200", "--num-test", "50"]
    if mode in ("evaluate", "ensemble", "compare") and "--no-progress" not in words:
        extra += ["--no-progress"]
    return [*words, *extra]


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if any(c[0] == d for c in CASES)])
def test_documented_commands_run_in_order(document, tmp_path):
    folder = copy_of_clone(tmp_path / "clone")
    # member predictions cached here, not in the user's ~/.cache (nor answered from an earlier run)
    env = {"HRM_EVAL_CACHE_DIR": str(tmp_path / "cache")}
    ran, skipped, train_runs = [], [], 0
    for name, line, words in CASES:
        if name != document:
            continue
        why = not_run(words)
        if why is not None:
            skipped.append(f"{line}: {why}")
            continue
        train_runs += words[words.index("--mode") + 1] == "train"
        argv = trial_run(words, train_runs)
        started = time.monotonic()
        proc = run_cli(*argv, cwd=folder, env=env)
        said = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{document}:{line} deploy.py {' '.join(argv)}\n{said[-3000:]}"
        assert "error:" not in said.lower(), f"{document}:{line}\n{said[-3000:]}"
        ran.append(f"{line} ({time.monotonic() - started:.0f} s)")
    print(f"{document}: ran lines {ran}; not run: {skipped}")
    assert ran, f"{document}: no command could run ({skipped})"
