"""Model folders: safetensors round trip (bit-identical outputs), config.json, hostile files."""

from __future__ import annotations

import json
import struct

import pytest
import torch
import yaml
from safetensors.torch import save_file

from hrm_eval.cli import main
from hrm_eval.export import save_model, write_model_folder
from hrm_eval.models.checkpoint import load_checkpoint, read_state_dict, run_data_path, strip_prefix
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import sha256_file
from tests.conftest import HRM_FIXTURES, ROOT, TRM_FIXTURES, expected_outputs, fixture_batch

FIXTURES = {**HRM_FIXTURES, **TRM_FIXTURES}
BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"


def _outputs(loaded, batch):
    """Every ACT step's outputs (evaluation mode: all rows run halt_max_steps)."""
    model, out = loaded.model, []
    carry = model.initial_carry(batch)
    with torch.inference_mode():
        for _ in range(loaded.config.halt_max_steps):
            carry, step = model(carry, batch)
            out.append(step)
    return out


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_round_trip_is_bit_identical(name, tmp_path):
    exp = expected_outputs(FIXTURES[name])
    seq_len = {"seq_len": exp["inputs"].shape[1]}
    source = load_checkpoint(FIXTURES[name], overrides=seq_len)
    weights = write_model_folder(source, tmp_path / "folder")
    batch = fixture_batch(exp)
    want = _outputs(source, batch)
    # the folder, and the bare file with its config.json gone (the architecture is in its header)
    from_folder = load_checkpoint(tmp_path / "folder", overrides=seq_len)
    (tmp_path / "folder" / "config.json").rename(tmp_path / "config.json")
    from_file = load_checkpoint(weights, overrides=seq_len)
    for loaded, where in ((from_folder, "config.json"), (from_file, "safetensors metadata")):
        assert loaded.config == source.config
        assert loaded.sources["H_cycles"] == where
        for t, (a, b) in enumerate(zip(want, _outputs(loaded, batch))):
            for key in ("logits", "q_halt_logits", "q_continue_logits"):
                assert torch.equal(a[key], b[key]), f"{name} step {t} {key} ({where})"


def test_the_same_checkpoint_exports_to_the_same_bytes(tmp_path):
    """Exported again, and saved from memory, a checkpoint gives byte-identical weights (so
    config.json's sha256 names the weights, not the export). safetensors itself writes its
    metadata map in an order that changes from call to call: measured 2 orders in 16 calls."""
    source = load_checkpoint(BUNDLED / "step_3750")
    exported = {sha256_file(write_model_folder(source, tmp_path / f"export{i}")) for i in range(6)}
    assert len(exported) == 1
    saved = {sha256_file(save_model(source.model, tmp_path / f"saved{i}") / "model.safetensors") for i in range(6)}
    assert len(saved) == 1
    configs = {json.loads((tmp_path / f"export{i}" / "config.json").read_text())["weights"]["sha256"] for i in range(6)}
    assert configs == exported


def test_folder_holds_public_keys_and_config(tmp_path):
    source = load_checkpoint(HRM_FIXTURES["rope_bf16"], overrides={"seq_len": 81})
    write_model_folder(source, tmp_path, task={"name": "sudoku", "vocab_size": 11, "seq_len": 81})
    raw, prefix = strip_prefix(read_state_dict(source.path))
    assert prefix == "_orig_mod.model.inner."
    stored = read_state_dict(tmp_path / "model.safetensors")
    assert set(stored) == set(raw)  # public names, no prefix
    assert all(stored[k].dtype == raw[k].dtype and torch.equal(stored[k], raw[k]) for k in raw)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["family"] == "hrm" and config["variant"] == source.config.variant
    assert config["training_step"] == 2000
    assert config["source"]["sha256"] == sha256_file(source.path)
    assert config["weights"]["sha256"] == sha256_file(tmp_path / "model.safetensors")
    assert config["arch"]["seq_len"] == 81 and config["task"]["name"] == "sudoku"
    assert "training step 2000" in (tmp_path / "README.md").read_text()
    assert load_checkpoint(tmp_path).step == 2000
    # the run's dataset, as its all_config.yaml names it: the folder evaluated without --data uses it
    assert (
        config["data_path"] == yaml.safe_load((HRM_FIXTURES["rope_bf16"] / "all_config.yaml").read_text())["data_path"]
    )
    assert run_data_path(tmp_path) == (config["data_path"], str(tmp_path / "config.json"))


# ---- hostile and broken files -----------------------------------------------------------------
def _header_file(path, header: dict, data: bytes = b"\0" * 16, declared=None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if declared is None else declared) + text + data)
    return path


def _hostile_cases(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"embed_tokens.embedding_weight": torch.ones(4, 4)}, str(good))
    blob = good.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(blob[: len(blob) - 20])
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file at all")
    save_file(
        {"embed_tokens.embedding_weight": torch.ones(4, 4, dtype=torch.int64)}, str(tmp_path / "ints.safetensors")
    )
    save_file({"something.else": torch.ones(2)}, str(tmp_path / "unrelated.safetensors"))
    tensor = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    return {
        "truncated": "truncated",
        "garbage": "cannot read",
        "ints": "must be floating point",
        "unrelated": "not an HRM/TRM checkpoint",
        "huge_header": (_header_file(tmp_path / "huge_header.safetensors", {"x": tensor}, declared=2**60), "cannot"),
        "offsets_past_end": (
            _header_file(tmp_path / "offsets_past_end.safetensors", {"x": {**tensor, "data_offsets": [0, 1 << 40]}}),
            "cannot read",
        ),
        "shape_lies": (
            _header_file(tmp_path / "shape_lies.safetensors", {"x": {**tensor, "shape": [1 << 30, 1 << 30]}}),
            "cannot read",
        ),
        "not_json": (_header_file(tmp_path / "not_json.safetensors", {}, declared=None), "cannot read"),
    }


def test_hostile_safetensors_files_get_one_line(tmp_path):
    cases = _hostile_cases(tmp_path)
    (tmp_path / "not_json.safetensors").write_bytes(struct.pack("<Q", 8) + b"{{{{{{{{" + b"\0" * 8)
    for name, expected in cases.items():
        path, words = expected if isinstance(expected, tuple) else (tmp_path / f"{name}.safetensors", expected)
        with pytest.raises(HRMEvalError, match=words) as err:
            load_checkpoint(path, require_seq_len=False)
        assert "\n" not in str(err.value), name
        assert name == "unrelated" or str(path) in str(err.value), name  # the file-level errors name the file


def test_cli_truncated_safetensors_exits_2(tmp_path, capsys):
    cases = _hostile_cases(tmp_path)
    assert "truncated" in cases
    assert main(["--mode", "inspect", "--checkpoint", str(tmp_path / "truncated.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot read") and "truncated.safetensors" in err[0]
