"""Checkpoint restore through `hrm_eval.models.checkpoint.load_checkpoint`: key prefixes, configs inferred from
the tensors, refused pickle payloads, corrupt files, NaN/Inf, run directories, contradictions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.models.checkpoint import count_state_values, load_checkpoint
from hrm_eval.models.checkpoint import read as loading
from hrm_eval.models.checkpoint.format import SAVE_PREFIX as PREFIX  # what the fixtures carry
from hrm_eval.models.config import HRMConfig
from hrm_eval.utils import HRMEvalError
from tests.conftest import (
    HRM_FIXTURES,
    MAZE_BUILT,
    PARITY_REL_TOL,
    SUDOKU_BUILT,
    TRM_FIXTURES,
    expected_outputs,
    fixture_batch,
)

ALL = {**HRM_FIXTURES, **TRM_FIXTURES}
# Same tolerances as tests/models/test_parity.py (fp32 rounding noise in the fixtures).
REL_TOL = PARITY_REL_TOL  # tests/conftest.py says why
BUFFERS = ("H_init", "L_init", "puzzle_emb.weights")  # never nn.Parameters (spec: buffers)


def step_file(folder: Path) -> Path:
    (f,) = [p for p in folder.iterdir() if p.name.startswith("step_")]
    return f


def raw_state(folder: Path) -> dict:
    return torch.load(step_file(folder), map_location="cpu", weights_only=True)


def arch_block(folder: Path) -> dict:
    return yaml.safe_load((folder / "all_config.yaml").read_text())["arch"]


def save_checkpoint(dst: Path, obj, *, config_from: Path | None = None, name: str = "step_1000") -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    torch.save(obj, dst / name)
    if config_from is not None:
        shutil.copy(config_from / "all_config.yaml", dst / "all_config.yaml")
    return dst / name


def act_outputs(loaded, exp: dict) -> list:
    """(logits, q_halt, q_continue) after every ACT step on the fixture's batch."""
    batch = fixture_batch(exp)
    model = loaded.model
    carry = model.initial_carry(batch)
    outs = []
    with torch.inference_mode():
        for _ in range(loaded.config.halt_max_steps):
            carry, out = model(carry, batch)
            outs.append({k: out[k].float().clone() for k in ("logits", "q_halt_logits", "q_continue_logits")})
    return outs


def seq_len_of(exp: dict) -> dict:
    return {"seq_len": int(exp["inputs"].shape[1])}


def assert_same_outputs(a: list, b: list) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        for k in x:
            assert torch.equal(x[k], y[k]), f"step {t} {k}"


# ---- key prefixes ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rope_f32", "attn_f32"])
@pytest.mark.parametrize("prefix", ["model.inner.", ""])
def test_any_key_prefix_loads_to_identical_outputs(tmp_path, name, prefix):
    folder = ALL[name]
    exp = expected_outputs(folder)
    original = load_checkpoint(folder, overrides=seq_len_of(exp))
    assert original.key_prefix == PREFIX
    sd = {k.removeprefix(PREFIX): v for k, v in raw_state(folder).items()}
    sd = {prefix + k: v for k, v in sd.items()}
    path = save_checkpoint(tmp_path / "run", sd, config_from=folder)
    loaded = load_checkpoint(path, overrides=seq_len_of(exp))
    assert loaded.key_prefix == prefix
    assert loaded.config == original.config
    assert_same_outputs(act_outputs(loaded, exp), act_outputs(original, exp))


# ---- no all_config.yaml: facts from the tensors ----------------------------------------------------
# Fields the tensors cannot tell, with the values the fixture's all_config.yaml states.
UNINFERABLE = ("num_heads", "H_cycles", "L_cycles", "halt_max_steps")


@pytest.mark.parametrize("name", sorted(ALL))
def test_without_all_config_tensor_facts_are_inferred(tmp_path, name):
    folder = ALL[name]
    exp, arch, sd = expected_outputs(folder), arch_block(folder), raw_state(folder)
    shutil.copy(step_file(folder), tmp_path / step_file(folder).name)
    loaded = load_checkpoint(tmp_path, require_seq_len=False)
    c, src = loaded.config, loaded.sources

    family = "trm" if "trm" in arch["name"] else "hrm"
    want = {
        "hidden_size": arch["hidden_size"],
        "H_layers": arch["H_layers"],
        "L_layers": arch["L_layers"],
        "vocab_size": exp["logits"].shape[-1],
        "num_puzzle_identifiers": sd[PREFIX + "puzzle_emb.weights"].shape[0],
        "puzzle_emb_ndim": arch["puzzle_emb_ndim"],
        "expansion": arch["expansion"],
        "forward_dtype": arch["forward_dtype"],
    }
    if family == "trm":
        want["mlp_t"] = arch["mlp_t"]
    for field, value in want.items():
        assert getattr(c, field) == value, field
        assert src[field] == "checkpoint tensors", field
    assert c.family == family and src["name"] == "checkpoint tensors"

    assumed = set(loaded.assumed)
    assert set(UNINFERABLE) <= assumed
    assert not assumed & set(want)
    assert all(src[k].startswith("assumed") for k in assumed)


@pytest.mark.parametrize("name", sorted(REL_TOL))  # fp32 (bf16 only differs in dtype, which is inferred above)
def test_without_all_config_overrides_reproduce_the_fixture(tmp_path, name):
    folder = ALL[name]
    exp, arch = expected_outputs(folder), arch_block(folder)
    shutil.copy(step_file(folder), tmp_path / step_file(folder).name)
    overrides = {k: arch[k] for k in UNINFERABLE} | seq_len_of(exp)
    if name == "mlpt_f32":
        overrides["pos_encodings"] = "none"
    loaded = load_checkpoint(tmp_path, overrides=overrides)
    assert all(loaded.sources[k] == "command line" for k in UNINFERABLE)
    reference = load_checkpoint(folder, overrides=seq_len_of(exp))  # with its all_config.yaml
    assert loaded.config.model_dump() == reference.config.model_dump()

    outs = act_outputs(loaded, exp)
    assert_same_outputs(outs, act_outputs(reference, exp))
    assert len(outs) == exp["logits"].shape[0]
    for t, out in enumerate(outs):  # the public numbers themselves
        scale = np.abs(exp["logits"][t]).max()
        assert np.abs(out["logits"].numpy() - exp["logits"][t]).max() <= REL_TOL[name] * scale, f"step {t}"
        np.testing.assert_allclose(out["q_halt_logits"].numpy(), exp["q_halt_logits"][t], atol=1e-5)


def test_wrong_assumption_does_change_outputs(tmp_path):
    """The override test above can fail: the public default (8 heads) gives other numbers."""
    folder = HRM_FIXTURES["rope_f32"]
    exp = expected_outputs(folder)
    shutil.copy(step_file(folder), tmp_path / "step_1000")
    loaded = load_checkpoint(tmp_path, overrides={"H_cycles": 2, "L_cycles": 2, "halt_max_steps": 4} | seq_len_of(exp))
    assert loaded.config.num_heads == 8 and "num_heads" in loaded.assumed
    last = act_outputs(loaded, exp)[-1]["logits"].numpy()
    assert np.abs(last - exp["logits"][-1]).max() > 1e-3


# ---- pickle payloads ---------------------------------------------------------------------------------
class _OpenPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_OpenPayload, _SystemPayload])
def test_pickle_payload_is_refused_and_never_run(tmp_path, payload):
    folder = HRM_FIXTURES["rope_f32"]
    marker = tmp_path / "pwned"
    sd = raw_state(folder)
    sd["extra"] = payload(marker)
    path = save_checkpoint(tmp_path / "run", sd, config_from=folder)
    assert not marker.exists()
    with pytest.raises(HRMEvalError, match="arbitrary") as e:
        load_checkpoint(path, require_seq_len=False)
    msg = str(e.value)
    assert "\n" not in msg and "\x1b" not in msg and str(path) in msg
    assert not marker.exists()


# ---- corrupt files ----------------------------------------------------------------------------------
def _truncated(dst: Path) -> Path:
    data = step_file(HRM_FIXTURES["rope_f32"]).read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _random_bytes(dst: Path) -> Path:
    dst.write_bytes(np.random.default_rng(0).bytes(4096))
    return dst


def _empty_dict(dst: Path) -> Path:
    torch.save({}, dst)
    return dst


def _non_tensors(dst: Path) -> Path:
    torch.save({"L_level.layers.0.mlp.down_proj.weight": [1.0, 2.0], "H_init": 3}, dst)
    return dst


@pytest.mark.parametrize("make", [_truncated, _random_bytes, _empty_dict, _non_tensors])
def test_corrupt_file_is_a_one_line_error(tmp_path, make):
    path = make(tmp_path / "step_5")
    with pytest.raises(HRMEvalError) as e:
        load_checkpoint(path, require_seq_len=False)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "arbitrary" not in msg  # corrupt is not malicious


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_never_escape_as_another_exception(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "checkpoint"
    path.write_bytes(rng.bytes(int(rng.integers(1, 5000))))
    with pytest.raises(HRMEvalError):
        load_checkpoint(path, require_seq_len=False)


# ---- NaN / Inf ---------------------------------------------------------------------------------------
def test_nonfinite_tensor_is_refused_by_name_unless_allowed(tmp_path):
    folder = HRM_FIXTURES["rope_f32"]
    sd = raw_state(folder)
    w = sd[PREFIX + "L_level.layers.1.mlp.down_proj.weight"]
    w[0, 0] = float("nan")
    w[1, :2] = float("inf")
    path = save_checkpoint(tmp_path / "run", sd, config_from=folder)
    with pytest.raises(HRMEvalError, match=r"L_level\.layers\.1\.mlp\.down_proj\.weight has 1 NaN and 2 Inf"):
        load_checkpoint(path, dataset=PuzzleDataset(SUDOKU_BUILT).metadata)
    loaded = load_checkpoint(path, allow_nonfinite=True, require_seq_len=False)
    assert loaded.nonfinite == [("L_level.layers.1.mlp.down_proj.weight", 1, 2)]
    assert load_checkpoint(folder, require_seq_len=False).nonfinite == []


# ---- counting -----------------------------------------------------------------------------------------
def test_count_state_values_matches_the_spec():
    config = HRMConfig(
        seq_len=900,
        vocab_size=12,
        num_puzzle_identifiers=95_996,
        H_cycles=2,
        L_cycles=2,
        H_layers=2,
        L_layers=2,
        hidden_size=256,
        num_heads=8,
        expansion=4,
        pos_encodings="rope",
        puzzle_emb_ndim=256,
        halt_max_steps=16,
    )
    state, trainable = count_state_values(config)
    assert state == 27_990_018
    assert trainable == state - 95_996 * 256 - 2 * 256  # puzzle embedding, H_init, L_init are buffers


@pytest.mark.parametrize("name", sorted(ALL))
def test_counts_of_the_fixtures_come_from_their_tensors(name):
    sd = {k.removeprefix(PREFIX): v for k, v in raw_state(ALL[name]).items()}
    values = sum(v.numel() for v in sd.values())
    trainable = values - sum(sd[k].numel() for k in BUFFERS)
    loaded = load_checkpoint(ALL[name], require_seq_len=False)
    assert loaded.num_state_values == values
    assert loaded.num_trainable_parameters == trainable
    assert count_state_values(loaded.config) == (values, trainable)  # rope/none: no table depends on seq_len


# ---- which file ----------------------------------------------------------------------------------------
def test_run_directory_resolves_to_the_numerically_newest_step(tmp_path):
    folder = HRM_FIXTURES["rope_f32"]
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(folder / "all_config.yaml", run)
    shutil.copy(step_file(folder), run / "step_1000")
    (run / "step_900").write_bytes(b"not a checkpoint")  # would fail if chosen (string order picks it)
    (run / "step_1000_all_preds.0").write_bytes(b"not a step either")
    loaded = load_checkpoint(run, require_seq_len=False)
    assert loaded.path == run / "step_1000" and loaded.step == 1000


def test_published_checkpoint_file_name(tmp_path):
    folder = HRM_FIXTURES["rope_f32"]
    exp = expected_outputs(folder)
    run = tmp_path / "published"
    run.mkdir()
    shutil.copy(folder / "all_config.yaml", run)
    shutil.copy(step_file(folder), run / "checkpoint")
    for target in (run, run / "checkpoint"):
        loaded = load_checkpoint(target, overrides=seq_len_of(exp))
        assert loaded.path == run / "checkpoint" and loaded.step is None
    reference = load_checkpoint(folder, overrides=seq_len_of(exp))
    assert_same_outputs(act_outputs(loaded, exp)[-1:], act_outputs(reference, exp)[-1:])


def test_empty_directory_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "all_config.yaml").write_text("arch: {}\n")
    with pytest.raises(HRMEvalError, match="no step_<N> or checkpoint file"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(HRMEvalError, match="not found"):
        load_checkpoint(tmp_path / "missing")


# ---- contradictions ------------------------------------------------------------------------------------------
def test_all_config_contradicting_the_tensors_names_field_and_values(tmp_path):
    folder = HRM_FIXTURES["rope_f32"]
    cfg = yaml.safe_load((folder / "all_config.yaml").read_text())
    cfg["arch"]["hidden_size"] = 128
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(step_file(folder), run)
    (run / "all_config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(HRMEvalError) as e:
        load_checkpoint(run, require_seq_len=False)
    msg = str(e.value)
    assert "hidden_size" in msg and "128" in msg and "64" in msg and "all_config.yaml" in msg


def test_dataset_of_another_task_names_vocab_size():
    maze = PuzzleDataset(MAZE_BUILT)
    with pytest.raises(HRMEvalError) as e:
        load_checkpoint(HRM_FIXTURES["rope_f32"], dataset=maze.metadata)
    msg = str(e.value)
    assert "vocab_size" in msg and "11" in msg and "6" in msg and "\n" not in msg


def test_dataset_with_other_identifier_count_names_puzzle_emb(tmp_path):
    data = tmp_path / "sudoku"
    shutil.copytree(SUDOKU_BUILT, data)
    meta = data / "test" / "dataset.json"
    meta.write_text(meta.read_text().replace('"num_puzzle_identifiers": 1', '"num_puzzle_identifiers": 3'))
    (data / "identifiers.json").write_text('["<blank>", "a", "b"]')
    dataset = PuzzleDataset(data)
    assert dataset.metadata.num_puzzle_identifiers == 3
    with pytest.raises(HRMEvalError) as e:
        load_checkpoint(HRM_FIXTURES["rope_f32"], dataset=dataset.metadata)
    msg = str(e.value)
    assert "puzzle_emb" in msg and "num_puzzle_identifiers" in msg
    assert "has 1 rows" in msg and "is 3" in msg


def test_model_config_fills_what_all_config_yaml_leaves_out_and_loses_to_what_it_states():
    folder = HRM_FIXTURES["rope_f32"]
    loaded = load_checkpoint(
        folder, require_seq_len=False, model_config={"rms_norm_eps": 1e-6, "num_heads": 8, "rope_theta": 500.0}
    )
    assert loaded.config.rms_norm_eps == 1e-6 and loaded.sources["rms_norm_eps"] == "model config"
    assert loaded.config.rope_theta == 500.0
    # all_config.yaml states num_heads 4: it wins over the model config
    assert loaded.config.num_heads == 4 and loaded.sources["num_heads"] == "all_config.yaml"


def test_nonfinite_values_are_counted_across_check_chunks(monkeypatch):
    monkeypatch.setattr(loading, "NONFINITE_CHUNK", 4)  # 10 values: chunks of 4, 4 and 2
    v = torch.zeros(2, 5)
    v.view(-1)[[3, 4, 9]] = float("nan")  # in the first, second and last chunk
    v.view(-1)[5] = float("-inf")
    clean = torch.ones(7)
    assert loading.find_nonfinite({"a": clean, "b": v, "ids": torch.arange(3)}) == [("b", 3, 1)]
