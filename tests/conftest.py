"""Shared paths and helpers for every tier. Fixtures are read through the package's public functions.

Tiers are folders, each test marked by its folder (pytest_collection_modifyitems below):
tests/unit (in this process: the fast loop, `python -m pytest -q tests/unit -n 2 --dist
loadfile`), tests/e2e (real processes: subprocesses, torchrun, servers, the browser, installs,
the documents' commands) and tests/acceptance (the bundled models' quality and model-card
numbers). `python -m pytest -q -n 2 --dist loadfile` runs them all, as CI does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Under pytest-xdist (`-n 2`) each worker takes one core: the tests' tiny models gain nothing from
# more threads, and OpenMP / BLAS pools of 2 threads in each of 2 workers contend for 2 cores
# (one run of the unit tier without this took 163 s, against 80-103 s with it; README "Test"
# quotes benchmarks/test_workers.py). Set before torch, numpy and onnxruntime start their pools.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
TIERS = ("unit", "e2e", "acceptance")
FIXTURES = ROOT / "tests" / "fixtures"
HRM_FIXTURES = {
    "rope_f32": FIXTURES / "official_hrm" / "rope_f32",
    "rope_bf16": FIXTURES / "official_hrm" / "rope_bf16",
}
TRM_FIXTURES = {"attn_f32": FIXTURES / "official_trm" / "attn_f32", "mlpt_f32": FIXTURES / "official_trm" / "mlpt_f32"}
# Max |logit difference| from the fp32 fixtures, relative to the step's logit scale. The fixtures
# carry fp32 rounding noise of their own: our model run in float64 lands 1.3e-5 (rope, last step)
# from them. fp32 kernels differ by CPU kind: measured 2.3e-6 (attn), 1.7e-5 (rope), 2.1e-5
# (mlp_t) on an AVX-512 BF16 EPYC, where 1e-5 for rope failed. 3e-5 holds every kind with margin
# and is still ~3 orders below what a wrong layer, norm or RoPE table moves (>1e-2).
PARITY_REL_TOL = {"rope_f32": 3e-5, "attn_f32": 3e-5, "mlpt_f32": 3e-5}
SUDOKU_BUILT = FIXTURES / "official_data" / "sudoku_built"
MAZE_BUILT = FIXTURES / "official_data" / "maze_built"
CLASSIC_9X9 = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"  # issue 28's


def home_with_9x9(root: Path) -> Path:
    """A data home (HRM_EVAL_HOME) as it will be once the 9x9 model is dropped in: the bundled
    configs and 6x6 default, and `checkpoints/sudoku9-hrm` laid out like a bundled run (a step
    file, all_config.yaml, data/), here the public-format 9x9 fixture (real, though untrained)."""
    import shutil

    (root / "checkpoints").mkdir(parents=True)
    (root / "configs").symlink_to(ROOT / "configs")
    (root / "checkpoints" / "sudoku6-hard-hrm").symlink_to(ROOT / "checkpoints" / "sudoku6-hard-hrm")
    run = root / "checkpoints" / "sudoku9-hrm"
    run.mkdir()
    for name in ("step_1000", "all_config.yaml"):
        shutil.copy(HRM_FIXTURES["rope_f32"] / name, run / name)
    shutil.copytree(SUDOKU_BUILT, run / "data")
    return root


def expected_outputs(folder: Path) -> dict:
    with np.load(folder / "expected_outputs.npz") as z:
        return {k: z[k] for k in z.files}


def fixture_batch(expected: dict) -> dict:
    return {k: torch.from_numpy(expected[k]) for k in ("inputs", "labels", "puzzle_identifiers")}


def one_line(rc: int, err: str, *needles: str) -> str:
    """The user-mistake contract: exit 2 and one `error:` line on stderr, no traceback, naming
    each of `needles`. Returns the line."""
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def fenced_blocks(text: str, language: str) -> list[str]:
    """The bodies of the ```language blocks of a markdown text, in order (the documentation tests)."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python deploy.py ARGS` as a real subprocess (`env`: variables added to this one's)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def copy_of_clone(folder: Path) -> Path:
    """`folder` made to look like a clone's root for documented relative paths: a copy of the
    checkpoints/ and configs/ the project ships, so that nothing a command writes lands in them."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("checkpoints", "configs"):
        shutil.copytree(ROOT / part, folder / part)
    return folder


def run_main(capsys, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`deploy.py ARGS` as `main([...])` in this process, read back as run_cli's result would be
    (exit status, stdout, stderr): for the tests of what the command does with its arguments,
    where a real process would only add the second of importing torch. The real process path is
    tested once per mode in tests/e2e."""
    from hrm_eval.cli import main

    capsys.readouterr()
    here = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse's own exits (--help)
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        os.chdir(here)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["deploy.py", *args], rc, out, err)


def run_torchrun(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 deploy.py ARGS`: 2 real CPU processes (gloo) on
    this machine; --standalone picks a free port. One thread each: 2 cores."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HRM_EVAL_DIST_TIMEOUT": "120", **(env or {})}
    for _attempt in range(2):  # the free port torchrun picked may be taken before it binds: one retry
        proc = subprocess.run(
            [*cmd, str(ROOT / "deploy.py"), *args],
            cwd=ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode == 0 or "address already in use" not in (proc.stdout + proc.stderr).lower():
            break
    return proc


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # tiny models: threads only add contention on a 2-core CI box
    yield


def pytest_collection_modifyitems(config, items):
    """Each test gets its tier's marker from its folder: `-m unit`, `-m "not acceptance"`."""
    for item in items:
        try:
            tier = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
