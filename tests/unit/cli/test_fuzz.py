"""Fuzzing the CLI with broken and hostile inputs (issue 16).

Seeded random corruptions (truncation, byte flips, zeroed spans, appended garbage) of the bundled
checkpoint, its dataset files, a JSONL file and a raw CSV, plus hand-made hostile cases. Each case
runs the real CLI and must end in one of two ways:

- exit 2 with exactly one line on stderr, starting with `error:`, no traceback; no results file;
- exit 0 where the damage is harmless (see the comment above `checkpoint_cases`), with valid output.

For every case: bounded time, nothing written outside the output folder (the working directory is
the case folder and is compared before/after), no temporary files left behind, and no code executed
(the payload cases would create MARKER if anything ran them).

Most cases call `hrm_eval.cli.main([...])` in-process (the same code path minus interpreter start-up,
~0.1-0.5 s a case instead of ~2 s); the pickle payload and the memory-limit cases run as real
subprocesses.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_eval.cli import main
from tests.conftest import ROOT

BUNDLE = ROOT / "checkpoints" / "sudoku6-hrm"
CKPT, CONFIG = BUNDLE / "step_625", BUNDLE / "all_config.yaml"
DATA, RAW_CSV = BUNDLE / "data", BUNDLE / "raw" / "test.csv"
SEED = 16
CASE_SECONDS = 20.0  # per in-process case; the slowest healthy one takes ~1 s
MARKER = "PWNED"  # created by the payloads if anything ever executes them
NPY_FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


# ---- the inputs of one case, built in its own folder ------------------------------------------------------
def copy_checkpoint(root: Path) -> Path:
    (root / "ckpt").mkdir()
    shutil.copy(CKPT, root / "ckpt" / "step_625")
    shutil.copy(CONFIG, root / "ckpt" / "all_config.yaml")
    return root / "ckpt" / "step_625"


def copy_dataset(root: Path) -> Path:
    """The bundled test split only (the train split is 1.6 MB that no case reads)."""
    (root / "data" / "test").mkdir(parents=True)
    shutil.copy(DATA / "identifiers.json", root / "data" / "identifiers.json")
    for f in (DATA / "test").iterdir():
        shutil.copy(f, root / "data" / "test" / f.name)
    return root / "data"


def jsonl_lines(n: int = 8) -> list[str]:
    """The first `n` test puzzles of the bundled dataset as JSONL records (ignored labels -> -100)."""
    inputs = np.load(DATA / "test" / "all__inputs.npy")[:n].astype(int)
    labels = np.load(DATA / "test" / "all__labels.npy")[:n].astype(int)
    labels[labels == 0] = -100
    return [
        json.dumps({"puzzle_id": f"p{i}", "input_sequence": x.tolist(), "target_sequence": y.tolist()})
        for i, (x, y) in enumerate(zip(inputs, labels))
    ]


def csv_head(n: int = 8) -> bytes:
    """Header and first `n` rows of the bundled raw test CSV, bytes as in the file."""
    return b"".join(RAW_CSV.read_bytes().splitlines(keepends=True)[: n + 1])


def evaluate_args(root: Path, data: Path, *extra: str) -> list[str]:
    return [
        "--mode",
        "evaluate",
        "--checkpoint",
        str(root / "ckpt" / "step_625"),
        "--data",
        str(data),
        "--limit",
        "4",
        "--output",
        str(root / "out"),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def inspect_args(root: Path) -> list[str]:
    return ["--mode", "inspect", "--checkpoint", str(root / "ckpt" / "step_625")]


# ---- corruptions -----------------------------------------------------------------------------------------
def truncate(data: bytes, rng: random.Random, span: tuple[int, int], text: bool = False) -> bytes:
    return data[: rng.randrange(span[0], min(span[1], len(data)))]


# Text files get printable replacements half the time: random bytes are nearly always invalid UTF-8,
# which would stop every case at the decoder instead of reaching the JSON/CSV/row checks.
PRINTABLE = b'0123456789,-[]{}":. \n\rabcxyz_' + bytes(range(0x20, 0x7F))


def flip(data: bytes, rng: random.Random, span: tuple[int, int], text: bool = False) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(span[0], min(span[1], len(data)))
        out[i] = rng.choice(PRINTABLE) if text and rng.random() < 0.5 else out[i] ^ rng.randrange(1, 256)
    return bytes(out)


def zero_span(data: bytes, rng: random.Random, span: tuple[int, int], text: bool = False) -> bytes:
    start = rng.randrange(span[0], min(span[1], len(data)))
    length = rng.randint(1, 512)
    return data[:start] + bytes(min(length, len(data) - start)) + data[start + length :]


def append_garbage(data: bytes, rng: random.Random, span: tuple[int, int], text: bool = False) -> bytes:
    n = rng.randint(1, 1024)
    if text and rng.random() < 0.5:
        return data + bytes(rng.choice(PRINTABLE) for _ in range(n))
    return data + rng.randbytes(n)


CORRUPTIONS: dict[str, Callable[..., bytes]] = {
    "truncate": truncate,
    "flip": flip,
    "zero": zero_span,
    "append": append_garbage,
}


@dataclass
class Case:
    name: str
    build: Callable[[Path], list[str]]  # makes the inputs under the folder, returns the CLI arguments
    allowed: tuple[int, ...] = (2,)  # exit statuses that are correct for this input
    words: str | None = None  # the error line must contain these
    names: str | None = None  # ... and these: the file or flag the problem came from
    marks: list = field(default_factory=list)
    timeout: float = 60.0  # subprocess cases only


def corrupt_file(path: Path, kind: str, seed: int, span: tuple[int, int] = (0, 1 << 62), text: bool = False) -> None:
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes(), random.Random(seed), span, text))


# Which exit statuses a random corruption may end in. The public formats carry no checksums, so damage
# that leaves the file well-formed cannot be detected: a byte flip or zeroed span inside a float weight
# (or an appended tail a zip reader ignores) is a different, still valid, checkpoint; a flip inside an
# array of tokens may give other valid tokens; a JSONL/CSV cut exactly at a line end is a shorter valid
# file. Such runs must then succeed with valid output (exit 0). Everything else must be exit 2.
# Truncation of a checkpoint or an .npy file is never harmless (the zip directory / the array data sit
# at the end), nor is truncating dataset.json or identifiers.json (the closing brace/bracket goes).
def checkpoint_cases(rng: random.Random) -> list[Case]:
    size = CKPT.stat().st_size
    # Most bytes are float weights; half the cases aim at the zip headers + pickle (head) and the central
    # directory (tail) so that the structure gets hit too.
    spans = [(0, 4096), (size - 2048, size), (0, size)]
    cases = []
    for kind in CORRUPTIONS:
        for i in range(8):
            seed, span = rng.randrange(1 << 30), spans[i % 3]
            mode = "inspect" if i % 2 == 0 else "evaluate"

            def build(root: Path, kind=kind, seed=seed, span=span, mode=mode) -> list[str]:
                corrupt_file(copy_checkpoint(root), kind, seed, span)
                return inspect_args(root) if mode == "inspect" else evaluate_args(root, copy_dataset(root))

            allowed = (2,) if kind == "truncate" else (0, 2)
            cases.append(Case(f"checkpoint-{kind}-{i}-{mode}", build, allowed))
    return cases


def dataset_cases(rng: random.Random) -> list[Case]:
    cases = []
    files = [f"test/all__{f}.npy" for f in NPY_FIELDS] + ["test/dataset.json", "identifiers.json"]
    for name in files:
        for kind in CORRUPTIONS:
            repeats = 2 if name.endswith("dataset.json") else 1
            for i in range(repeats):
                seed = rng.randrange(1 << 30)
                span = (0, 128) if name.endswith(".npy") and rng.random() < 0.5 else (0, 1 << 62)  # the header

                def build(root: Path, name=name, kind=kind, seed=seed, span=span) -> list[str]:
                    copy_checkpoint(root)
                    data = copy_dataset(root)
                    corrupt_file(data / name, kind, seed, span, text=name.endswith(".json"))
                    return evaluate_args(root, data)

                allowed = (2,) if kind == "truncate" else (0, 2)
                cases.append(Case(f"dataset-{name.replace('/', '-')}-{kind}-{i}", build, allowed))
    return cases


def text_cases(rng: random.Random, what: str) -> list[Case]:
    cases = []
    for kind in CORRUPTIONS:
        for i in range(4):
            seed = rng.randrange(1 << 30)

            def build(root: Path, kind=kind, seed=seed) -> list[str]:
                copy_checkpoint(root)
                if what == "jsonl":
                    f = root / "puzzles.jsonl"
                    f.write_text("\n".join(jsonl_lines()) + "\n")
                else:
                    f = root / "test.csv"
                    f.write_bytes(csv_head())
                corrupt_file(f, kind, seed, text=True)
                return evaluate_args(root, f, *(["--task", "sudoku6"] if what == "csv" else []))

            cases.append(Case(f"{what}-{kind}-{i}", build, (0, 2)))
    return cases


# ---- hand-made hostile cases (issue 16, data / device area) ------------------------------------------------
def _edit_meta(data: Path, **changes) -> None:
    f = data / "test" / "dataset.json"
    meta = json.loads(f.read_text())
    meta.update(changes)
    f.write_text(json.dumps(meta))


def _sets_traversal(root: Path) -> list[str]:
    copy_checkpoint(root)
    data = copy_dataset(root)
    for fld in NPY_FIELDS:  # a complete decoy set outside the dataset folder: it must not be read
        shutil.copy(data / "test" / f"all__{fld}.npy", root / f"x__{fld}.npy")
    _edit_meta(data, sets=["../../x"])
    return evaluate_args(root, data)


def _sets_empty(root: Path) -> list[str]:
    copy_checkpoint(root)
    data = copy_dataset(root)
    _edit_meta(data, sets=[])
    return evaluate_args(root, data)


def _short_identifiers(root: Path) -> list[str]:
    copy_checkpoint(root)
    data = copy_dataset(root)
    f = data / "test" / "all__puzzle_identifiers.npy"
    np.save(f, np.load(f)[:-5])
    return evaluate_args(root, data)


def _empty_split(root: Path) -> list[str]:
    copy_checkpoint(root)
    data = copy_dataset(root)
    for fld in ("inputs", "labels"):
        np.save(data / "test" / f"all__{fld}.npy", np.zeros((0, 36), np.uint8))
    np.save(data / "test" / "all__puzzle_identifiers.npy", np.zeros(0, np.int32))
    for fld in ("puzzle_indices", "group_indices"):
        np.save(data / "test" / f"all__{fld}.npy", np.zeros(1, np.int32))
    return evaluate_args(root, data)


def _npy_object_payload(root: Path) -> list[str]:
    """An object array whose pickle would create MARKER: np.load(allow_pickle=False) must refuse it."""
    copy_checkpoint(root)
    data = copy_dataset(root)
    payload = np.empty(1001, dtype=object)
    payload[0] = _Payload(str(root / MARKER))
    np.save(data / "test" / "all__puzzle_indices.npy", payload, allow_pickle=True)
    return evaluate_args(root, data)


def _jsonl(text: bytes) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        (root / "p.jsonl").write_bytes(text)
        return evaluate_args(root, root / "p.jsonl")

    return build


def _csv(text: bytes) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        (root / "p.csv").write_bytes(text)
        return evaluate_args(root, root / "p.csv", "--task", "sudoku6")

    return build


def _device(name: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        return evaluate_args(root, copy_dataset(root))[:-3] + ["--device", name, "--no-progress"]

    return build


def _dataset_json_bytes(text: bytes) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        data = copy_dataset(root)
        (data / "test" / "dataset.json").write_bytes(text)
        return evaluate_args(root, data)

    return build


def _yaml_payload(root: Path) -> list[str]:
    copy_checkpoint(root)
    (root / "ckpt" / "all_config.yaml").write_text(f"arch: !!python/object/apply:os.system ['touch {root / MARKER}']\n")
    return inspect_args(root)


class _Payload:
    """Pickles to `open(path, "w")`: creates the file if anything unpickles it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _plain_pickle_payload(root: Path) -> list[str]:
    """The legacy (non-zip) torch format: a bare pickle stream with the same payload."""
    copy_checkpoint(root)
    with open(root / "ckpt" / "step_625", "wb") as f:
        pickle.dump({"weight": _Payload(str(root / MARKER))}, f)
    return inspect_args(root)


GOOD_LINE = jsonl_lines(1)[0].encode()
OOV_LINE = json.dumps({"input_sequence": [9] + [1] * 35, "target_sequence": [1] * 36}).encode()
MISSING_GPU = f"cuda:{torch.cuda.device_count() + 6}"

HOSTILE = [
    Case("sets-traversal", _sets_traversal, words="field 'sets': set name '../../x' is not a plain name"),
    Case("sets-empty", _sets_empty, words="field 'sets': no sets listed"),
    Case("puzzle-identifiers-short", _short_identifiers, words="puzzle identifiers, but puzzle_indices"),
    Case("empty-split", _empty_split, words="hold no examples"),
    Case(
        "npy-object-payload",
        _npy_object_payload,
        words="all__puzzle_indices.npy: it holds pickled Python objects, which are never loaded",
    ),
    Case("dataset-json-not-utf8", _dataset_json_bytes(b'{"sets": ["\xff"]}'), words="not UTF-8"),
    Case(
        "dataset-json-deep", _dataset_json_bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), words="nested too deeply"
    ),
    Case(
        "jsonl-not-utf8",
        _jsonl(GOOD_LINE + b"\n" + GOOD_LINE[:40] + b"\xff\xfe" + GOOD_LINE[40:] + b"\n"),
        words="p.jsonl:2: not UTF-8",
    ),
    Case("jsonl-deep", _jsonl(b"[" * 100_000 + b"]" * 100_000 + b"\n"), words="p.jsonl:1: JSON nested too deeply"),
    Case(
        "jsonl-out-of-vocabulary",
        _jsonl(GOOD_LINE + b"\n\n" + OOV_LINE + b"\n"),
        words="p.jsonl:3: input_sequence has token 9 outside the vocabulary 0..7",
    ),
    Case(
        "jsonl-huge-int",
        _jsonl(b'{"input_sequence": [1' + b"0" * 10_000 + b'], "target_sequence": [1]}\n'),
        words="p.jsonl:1: an integer with too many digits (10,001",
    ),
    Case("jsonl-empty-sequences", _jsonl(b'{"input_sequence": [], "target_sequence": []}\n'), words="empty"),
    Case("csv-header-only", _csv(b"source,question,answer,rating\r\n"), words="no puzzles"),
    Case("csv-empty", _csv(b""), words="empty file"),
    Case("csv-not-utf8", _csv(csv_head(2) + b"x,\xff\xfe,1,1\r\n"), words="not UTF-8"),
    Case("device-meta", _device("meta"), words="--device 'meta'"),
    Case("device-missing-gpu", _device(MISSING_GPU), words=f"--device '{MISSING_GPU}'"),
    Case("device-garbage", _device("gpu please"), words="--device 'gpu please'"),
    Case("device-xla", _device("xla"), words="--device 'xla'"),
    Case("yaml-payload", _yaml_payload),
    Case("checkpoint-plain-pickle-payload", _plain_pickle_payload, words="step_625"),
]
if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
    HOSTILE.append(Case("device-mps-missing", _device("mps"), words="--device 'mps'"))
if not torch.cuda.is_available():
    HOSTILE.append(Case("device-cuda-missing", _device("cuda"), words="--device 'cuda'"))


def all_cases() -> list[Case]:
    rng = random.Random(SEED)
    return checkpoint_cases(rng) + dataset_cases(rng) + text_cases(rng, "jsonl") + text_cases(rng, "csv") + HOSTILE


CASES = all_cases()


def test_enough_generated_cases():
    assert len(CASES) >= 100 and len({c.name for c in CASES}) == len(CASES)


# ---- checking one run -------------------------------------------------------------------------------------
def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime) of every file under root, except under `skip`."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if Path(d, x) != skip]
        for f in files:
            st = os.stat(Path(d, f))
            out[os.path.relpath(Path(d, f), root)] = (st.st_size, st.st_mtime_ns)
    return out


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity (which are not JSON)."""

    def refuse(token: str):
        raise ValueError(f"non-JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def check_outcome(case: Case, root: Path, argv: list[str], rc: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, err
    assert rc in case.allowed, f"exit {rc}, expected {case.allowed}: {err.strip()[-500:]}"
    assert not (root / MARKER).exists(), "a payload was executed"
    out_dir = root / "out"
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        for says in (case.words, case.names):
            assert says is None or says in lines[0], lines[0]
        assert not (out_dir / "results.json").exists(), "a failed run wrote results"
    else:
        assert "error:" not in err, err
        assert out.strip(), "a successful run printed nothing"
        if argv[1] == "evaluate":
            results = strict_json((out_dir / "results.json").read_text())
            assert 1 <= len(results["per_puzzle_metrics"]) <= 4  # --limit 4
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert not leftovers, f"temporary files left: {leftovers}"


@pytest.fixture(scope="module", autouse=True)
def repository_untouched():
    """No case writes into the repository (outputs/, the bundled checkpoint, ...)."""
    before = snapshot(ROOT / "outputs", Path("/nonexistent")) if (ROOT / "outputs").exists() else None
    bundle = snapshot(BUNDLE, Path("/nonexistent"))
    yield
    after = snapshot(ROOT / "outputs", Path("/nonexistent")) if (ROOT / "outputs").exists() else None
    assert after == before and snapshot(BUNDLE, Path("/nonexistent")) == bundle


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in CASES])
def test_bad_input_in_process(case, tmp_path, capsys, monkeypatch):
    root = tmp_path / "case"
    root.mkdir()
    argv = case.build(root)
    monkeypatch.chdir(root)  # a relative default output path would land here and be caught below
    before = snapshot(root, root / "out")
    capsys.readouterr()
    start = time.monotonic()
    try:
        rc = main(argv)
    except SystemExit as e:  # a flag's value refused by the parser: the CLI exits with this status
        rc = int(e.code or 0)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    check_outcome(case, root, argv, rc, out, err)
    assert snapshot(root, root / "out") == before, "files written outside the output folder"
    assert elapsed < CASE_SECONDS


# ---- cases whose fix belongs to other parts (loader, config, CLI, ARC scoring) ----------------------------
def _state_dict_edit(edit: Callable[[dict[str, torch.Tensor]], None], mode: str = "inspect", config: bool = True):
    def build(root: Path) -> list[str]:
        ckpt = copy_checkpoint(root)
        sd = torch.load(ckpt, map_location="cpu", weights_only=True)
        edit(sd)
        torch.save(sd, ckpt)
        if not config:
            (root / "ckpt" / "all_config.yaml").unlink()
        return inspect_args(root) if mode == "inspect" else evaluate_args(root, copy_dataset(root))

    return build


def _zero_dim_embedding(sd: dict[str, torch.Tensor]) -> None:
    key = next(k for k in sd if k.endswith("embed_tokens.embedding_weight"))
    sd[key] = torch.tensor(0.0)


def _integer_weights(sd: dict[str, torch.Tensor]) -> None:
    for k in sd:
        sd[k] = sd[k].to(torch.int32)


def _config_edit(old: str, new: str, mode: str = "evaluate") -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        f = root / "ckpt" / "all_config.yaml"
        text = f.read_text()
        assert old in text
        f.write_text(text.replace(old, new))
        return inspect_args(root) if mode == "inspect" else evaluate_args(root, copy_dataset(root))

    return build


def _arch_list(root: Path) -> list[str]:
    copy_checkpoint(root)
    (root / "ckpt" / "all_config.yaml").write_text("arch: [1, 2, 3]\n")
    return inspect_args(root)


def _output_under_a_file(root: Path) -> list[str]:
    copy_checkpoint(root)
    (root / "out").write_text("a file, not a folder\n")  # --output out/sub: its parent is a file
    argv = evaluate_args(root, copy_dataset(root))
    argv[argv.index(str(root / "out"))] = str(root / "out" / "sub")
    return argv


def _tiny_arc_dataset(root: Path) -> Path:
    """One ARC task with one 2x2 test pair, in the public dataset layout."""
    from hrm_eval.data.format import DatasetMetadata, write_identifiers, write_split
    from hrm_eval.data.tasks.arc import grid_to_sequence

    grid = np.array([[1, 2], [3, 4]])
    row = grid_to_sequence(grid + 2)[None]  # colours are tokens 2..11
    meta = DatasetMetadata(
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        vocab_size=12,
        seq_len=900,
        num_puzzle_identifiers=2,
        total_groups=1,
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
    (root / "arc").mkdir()
    write_identifiers(root / "arc", ["<blank>", "taska"])
    write_split(
        root / "arc",
        "test",
        meta,
        {
            "all": {
                "inputs": row,
                "labels": row,
                "puzzle_identifiers": np.array([1]),
                "puzzle_indices": np.array([0, 1]),
                "group_indices": np.array([0, 1]),
            }
        },
    )
    return root / "arc"


def _truncated_predictions(root: Path) -> list[str]:
    """--mode score on a predictions file cut short (torch's zip reader then says '[Errno 22]')."""
    data = _tiny_arc_dataset(root)
    preds = {
        "puzzle_identifiers": torch.ones(64, dtype=torch.int32),
        "inputs": torch.zeros(64, 900, dtype=torch.int32),
        "preds": torch.zeros(64, 900, dtype=torch.int32),
    }
    f = root / "step_1_all_preds.0"
    torch.save(preds, f)
    f.write_bytes(f.read_bytes()[:50_000])
    return [
        "--mode",
        "score",
        "--data",
        str(data),
        "--predictions",
        str(root / "step_1"),
        "--output",
        str(root / "out"),
    ]


def _xfail(reason: str) -> list:
    """Strict: the lead removes the mark once the owning branch is merged (an unexpected pass fails)."""
    return [pytest.mark.xfail(strict=True, reason=reason)]


LOADER_REASON = "loader: validate the state dict (dims, dtypes) before building the model (issue 16, helper 'loading')"
CONFIG_REASON = "loader: range-check architecture values and types in the config models (issue 16, helper 'loading')"
OTHER_AREAS = [
    Case("checkpoint-zero-dim-embedding", _state_dict_edit(_zero_dim_embedding), words="embed_tokens"),
    Case("checkpoint-integer-weights", _state_dict_edit(_integer_weights, "evaluate"), words="int"),
    Case("config-rms-norm-eps-nan", _config_edit("rms_norm_eps: 1.0e-05", "rms_norm_eps: .nan"), words="rms_norm_eps"),
    Case("config-rope-theta-negative", _config_edit("rope_theta: 10000.0", "rope_theta: -1"), words="rope_theta"),
    Case("config-arch-list", _arch_list, words="arch"),
    Case("output-under-a-file", _output_under_a_file, words="--output"),
    Case("score-truncated-predictions", _truncated_predictions, words="truncated"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in OTHER_AREAS])
def test_bad_input_other_areas(case, tmp_path, capsys, monkeypatch):
    test_bad_input_in_process(case, tmp_path, capsys, monkeypatch)


# ---- issue 27: every JSON / YAML reader against every hostile payload; special files ------------------------
# Each payload once for each reader that takes its format: the guarded reader (hrm_eval.utils.guarded) must
# refuse it in one line naming the reader's file or flag, before the parser recurses, int() converts or an
# alias expands. Before issue 27 these were RecursionError / ValueError / TypeError internal errors, or
# minutes of alias expansion.
def _nested_block_yaml(levels: int) -> str:
    return "a:\n" + "".join("  " * i + "b:\n" for i in range(1, levels)) + "  " * levels + "c: 1\n"


def _laughs_yaml() -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


JSON_PAYLOADS = {
    "deep": ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    "huge-int": ('{"a": 1' + "0" * 5_000 + "}", "too many digits"),
}
YAML_PAYLOADS = {
    "deep-flow": ("arch: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    "deep-block": (_nested_block_yaml(500), "nested too deeply"),
    "huge-int": ("arch:\n  hidden_size: 1" + "0" * 5_000 + "\n", "too many digits"),
    "billion-laughs": (_laughs_yaml(), "aliases expand"),
    "self-anchor": ("arch: &a\n  x: *a\n", "refers to itself"),
    "integer-key": ("arch:\n  1: 2\n", "is not a string"),
}


def _all_config_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        (root / "ckpt" / "all_config.yaml").write_text(text)
        return inspect_args(root)

    return build


def _config_flag_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        (root / "eval.yaml").write_text(text)
        return [*evaluate_args(root, copy_dataset(root)), "--config", str(root / "eval.yaml")]

    return build


def _model_config_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        (root / "ckpt" / "all_config.yaml").unlink()
        (root / "model.yaml").write_text(text)
        return [*inspect_args(root), "--model-config", str(root / "model.yaml")]

    return build


def _arch_flag_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        return [*inspect_args(root), "--arch", "hidden_size=" + text.removeprefix("arch:").strip()]

    return build


def _safetensors_state(root: Path) -> tuple[dict[str, torch.Tensor], Path]:
    from hrm_eval.models.checkpoint import strip_prefix

    sd = strip_prefix(torch.load(CKPT, map_location="cpu", weights_only=True))[0]
    (root / "model").mkdir()
    return {k: v.contiguous() for k, v in sd.items()}, root / "model" / "model.safetensors"


def _folder_config_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        from safetensors.torch import save_file

        sd, path = _safetensors_state(root)
        save_file(sd, str(path))
        (root / "model" / "config.json").write_text(text)
        return ["--mode", "inspect", "--checkpoint", str(root / "model")]

    return build


def _safetensors_metadata_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        from safetensors.torch import save_file

        sd, path = _safetensors_state(root)
        save_file(sd, str(path), metadata={"hrm_eval_config": text})
        return ["--mode", "inspect", "--checkpoint", str(path)]

    return build


def _puzzle_flag_reader(text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        puzzle = "[" + text + "]"  # JSON text of a list: the form --puzzle decodes
        ckpt = str(root / "ckpt" / "step_625")
        return ["--mode", "solve", "--checkpoint", ckpt, "--puzzle", puzzle, "--log-level", "ERROR"]

    return build


def _dataset_json_reader(text: str) -> Callable[[Path], list[str]]:
    return _dataset_json_bytes(text.encode())


YAML_READERS = {
    "all_config": (_all_config_reader, "all_config.yaml"),
    "config-flag": (_config_flag_reader, "eval.yaml"),
    "model-config-flag": (_model_config_reader, "model.yaml"),
    "arch-flag": (_arch_flag_reader, "hidden_size"),
}
JSON_READERS = {
    "folder-config-json": (_folder_config_reader, "config.json"),
    "safetensors-metadata": (_safetensors_metadata_reader, "hrm_eval_config"),
    "puzzle-flag": (_puzzle_flag_reader, "puzzle"),
    "dataset-json": (_dataset_json_reader, "dataset.json"),
}


def reader_cases() -> list[Case]:
    cases = []
    for readers, payloads in ((YAML_READERS, YAML_PAYLOADS), (JSON_READERS, JSON_PAYLOADS)):
        for reader, (make, names) in readers.items():
            for payload, (text, says) in payloads.items():
                if reader == "arch-flag" and payload in ("deep-block", "integer-key", "self-anchor"):
                    continue  # a one-line flag value: block YAML cannot be written there
                if reader == "arch-flag" and payload == "deep-flow":
                    text = "arch: " + "[" * 1_000 + "]" * 1_000  # within a flag value's size limit
                cases.append(Case(f"reader-{reader}-{payload}", make(text), words=says, names=names))
    return cases


def _special(kind: str) -> Callable[[Path], Path]:
    """Something that exists but is not a regular file: a FIFO, a directory, a character device."""

    def make(path: Path) -> Path:
        if kind == "FIFO":
            os.mkfifo(path)
        elif kind == "directory":
            path.mkdir()
        else:
            path.symlink_to("/dev/zero")
        return path

    return make


SPECIAL_KINDS = {"FIFO": "is a FIFO", "directory": "is a directory", "device": "is a character device"}


def _special_checkpoint(kind: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        (root / "ckpt" / "step_625").unlink()
        (root / "ckpt" / "all_config.yaml").unlink()
        (root / "model").mkdir()
        _special(kind)(root / "model" / "model.safetensors")
        return ["--mode", "inspect", "--checkpoint", str(root / "model" / "model.safetensors")]

    return build


def _special_data(kind: str, name: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        return evaluate_args(root, _special(kind)(root / name), "--task", "sudoku6")

    return build


def _special_config(kind: str, flag: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        if flag == "all_config.yaml":
            (root / "ckpt" / "all_config.yaml").unlink()
            _special(kind)(root / "ckpt" / "all_config.yaml")
            return inspect_args(root)
        if flag == "--config":
            return [*evaluate_args(root, copy_dataset(root)), flag, str(_special(kind)(root / "x.yaml"))]
        return [*inspect_args(root), flag, str(_special(kind)(root / "x.yaml"))]

    return build


def _special_stacker(kind: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        argv = _cache_dir_a_file(root)[:-4]  # an ensemble of the bundled checkpoint
        return [*argv, "--strategy", "stacking", "--stacker", str(_special(kind)(root / "stacker.json"))]

    return build


def _special_solve_data(kind: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        ckpt = str(root / "ckpt" / "step_625")
        return [
            "--mode",
            "solve",
            "--checkpoint",
            ckpt,
            "--data",
            str(_special(kind)(root / "p.csv")),
            "--log-level",
            "ERROR",
        ]

    return build


def special_file_cases() -> list[Case]:
    cases = []
    for kind, says in SPECIAL_KINDS.items():
        cases.append(Case(f"special-{kind}-stacker", _special_stacker(kind), words=says, names="--stacker"))
        cases.append(Case(f"special-{kind}-solve-data", _special_solve_data(kind), words=says))
        cases.append(Case(f"special-{kind}-checkpoint", _special_checkpoint(kind), words=says))
        cases.append(Case(f"special-{kind}-data-csv", _special_data(kind, "x.csv"), words=says))
        cases.append(Case(f"special-{kind}-data-jsonl", _special_data(kind, "x.jsonl"), words=says))
        for flag in ("--config", "--model-config", "all_config.yaml"):
            cases.append(Case(f"special-{kind}-{flag.strip('-')}", _special_config(kind, flag), words=says))
    return cases


def _cache_dir_a_file(root: Path) -> list[str]:
    copy_checkpoint(root)
    (root / "cache").write_text("a file, not a folder\n")
    argv = ["--mode", "ensemble", "--checkpoints", str(root / "ckpt" / "step_625"), "--data", str(copy_dataset(root))]
    return [*argv, "--cache-dir", str(root / "cache"), "--output", str(root / "out")]


HUGE_ID_LINE = json.dumps({**json.loads(GOOD_LINE), "puzzle_identifier": 10**20}).encode()
MESSAGES = [
    Case("cache-dir-a-file", _cache_dir_a_file, words="--cache-dir", names="is a regular file, expected a directory"),
    Case(
        "jsonl-identifier-1e20", _jsonl(HUGE_ID_LINE + b"\n"), words="puzzle_identifier 100000000000000000000 is beyond"
    ),
]
# Numbers in range for the parser but not for the model: each reader must hand them to the one
# bounded ModelConfig (halt_max_steps 1e9 was a 30-60 GiB MemoryError, H_cycles 1e6 minutes of
# silence, `H_cycles: true` a silent 1).
HUGE_VALUES = {
    "halt_max_steps": (10**9, "less than or equal to 1024"),
    "H_cycles": (10**6, "less than or equal to 64"),
    "L_cycles": (True, "a number is needed, got a boolean"),
}


def huge_value_cases() -> list[Case]:
    cases = []
    for field_name, (value, says) in HUGE_VALUES.items():
        json_arch = json.dumps({field_name: value})
        makers = {
            "all_config": _all_config_reader(_with_arch_value(field_name, value)),
            "model-config-flag": _model_config_reader(_with_arch_value(field_name, value)),
            "arch-flag": _arch_value_flag(field_name, value),
            "folder-config-json": _folder_config_reader(json.dumps({"arch": json.loads(json_arch)})),
            "safetensors-metadata": _safetensors_metadata_reader(json_arch),
        }
        for reader, make in makers.items():
            cases.append(Case(f"value-{reader}-{field_name}", make, words=says, names=field_name))
    return cases


def _with_arch_value(field_name: str, value) -> str:
    """The bundled all_config.yaml with one arch value replaced (the rest of the run as it was)."""
    import yaml

    config = yaml.safe_load(CONFIG.read_text())
    config["arch"][field_name] = value
    return yaml.safe_dump(config)


def _arch_value_flag(field_name: str, value) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        copy_checkpoint(root)
        return [*inspect_args(root), "--arch", f"{field_name}={json.dumps(value)}"]

    return build


ISSUE_27 = reader_cases() + special_file_cases() + MESSAGES + huge_value_cases()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in ISSUE_27])
def test_hostile_json_yaml_and_special_files(case, tmp_path, capsys, monkeypatch):
    """Issue 27: one line, exit 2, naming the problem (and, for the readers, the file or flag)."""
    test_bad_input_in_process(case, tmp_path, capsys, monkeypatch)
