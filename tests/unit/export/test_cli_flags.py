"""The export-related flags on the command line: wrong combinations are one line, exit 2."""

from __future__ import annotations

import pytest

from hrm_eval.cli import main
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


@pytest.mark.parametrize(
    "flags, words",
    [
        (
            ["--mode", "evaluate", "--backend", "onnxruntime", "--dtype", "bfloat16"],
            "--dtype bfloat16: the onnxruntime",
        ),
        (["--mode", "evaluate", "--quantize", "int8", "--device", "cuda"], "--device cuda: the onnxruntime backend"),
        (["--mode", "evaluate", "--backend", "onnxruntime", "--compile"], "--compile is for the torch backend"),
        (["--mode", "export", "--format", "safetensors", "--quantize", "int8"], "--quantize int8 is for --format onnx"),
    ],
)
def test_wrong_combinations_are_one_line(flags, words, tmp_path, capsys):
    given = [*flags, "--checkpoint", str(BUNDLED), "--data", str(BUNDLED / "data"), "--output", str(tmp_path / "o")]
    assert main(given) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert not (tmp_path / "o" / "results.json").exists()


def _export(out, capsys, *extra) -> tuple:
    rc = main(["--mode", "export", "--checkpoint", str(BUNDLED), "--output", str(out), "--log-level", "ERROR", *extra])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("theirs", ["README.md", "config.json"])
def test_export_never_replaces_files_it_did_not_write(theirs, tmp_path, capsys):
    """Issue 27: export into a folder holding the user's own README.md / config.json replaced them
    silently (exit 0)."""
    out = tmp_path / "folder"
    out.mkdir()
    (out / theirs).write_text("the user's own file\n")
    for extra in ([], ["--overwrite"]):
        rc, err = _export(out, capsys, *extra)
        assert rc == 2 and err == (
            f"error: --output {out} holds {theirs}, which hrm-eval did not write (no hrm-eval config.json there); "
            "export into a new or empty folder"
        )
    assert (out / theirs).read_text() == "the user's own file\n" and sorted(p.name for p in out.iterdir()) == [theirs]


def test_an_earlier_export_is_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "folder"
    assert _export(out, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rc, err = _export(out, capsys)
    assert rc == 2 and err == (
        f"error: --output {out} holds an earlier export (model.safetensors, config.json, README.md); "
        "add --overwrite to replace it"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _export(out, capsys, "--overwrite")[0] == 0
