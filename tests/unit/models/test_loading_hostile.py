"""The loader against hostile and broken checkpoints (issue 16 item 1, issue 9): every case is
one `HRMEvalError` line (the CLI's exit 2), decided before the model is built, so that no input
makes the loader allocate much more than its own file size (that bound, under a real memory
limit: tests/e2e/models/test_loading_memory.py)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hrm_eval.models import ModelConfig
from hrm_eval.models.checkpoint import list_steps, load_checkpoint
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import HRM_FIXTURES
from tests.unit.models.test_loading import PREFIX, arch_block, raw_state, save_checkpoint, step_file

FIXTURE = HRM_FIXTURES["rope_f32"]  # HRM, rope, 2+2 layers of hidden 64, 1 MB file
O_PROJ = PREFIX + "L_level.layers.{}.self_attn.o_proj.weight"


def with_all_config(dst: Path, sd: dict, **arch_changes) -> Path:
    """`sd` saved as dst/step_1000 beside the fixture's all_config.yaml with `arch_changes` applied."""
    path = save_checkpoint(dst, sd, config_from=FIXTURE)
    cfg = yaml.safe_load((dst / "all_config.yaml").read_text())
    cfg["arch"].update(arch_changes)
    (dst / "all_config.yaml").write_text(yaml.safe_dump(cfg))
    return path


def one_line_error(path: Path, match: str, **kwargs) -> str:
    with pytest.raises(HRMEvalError, match=match) as e:
        load_checkpoint(path, require_seq_len=False, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


def _stray_layer(dst: Path) -> Path:
    sd = raw_state(FIXTURE)
    sd[O_PROJ.format(200_000)] = sd[O_PROJ.format(0)].clone()  # one 16 KB tensor
    return save_checkpoint(dst, sd)  # no all_config.yaml: the layer count comes from the keys


def test_stray_layer_key_names_the_gap(tmp_path):
    msg = one_line_error(_stray_layer(tmp_path / "run"), "without gaps")
    assert "L_level.layers.2 missing" in msg and "200000" in msg


def test_layer_gap_with_all_config_is_the_same_error(tmp_path):
    sd = raw_state(FIXTURE)
    sd[PREFIX + "H_level.layers.5.mlp.down_proj.weight"] = sd[PREFIX + "H_level.layers.0.mlp.down_proj.weight"]
    path = save_checkpoint(tmp_path / "run", sd, config_from=FIXTURE)
    one_line_error(path, r"H_level layer indices.*layers\.2 missing")


def test_sparse_tensor_declaring_a_huge_shape_is_refused(tmp_path):
    sd = raw_state(FIXTURE)  # no stored values at all, 2^31 declared rows (512 GiB dense)
    sd[PREFIX + "embed_tokens.embedding_weight"] = torch.sparse_coo_tensor(
        torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0), (2**31, 64), check_invariants=True
    )
    one_line_error(save_checkpoint(tmp_path / "run", sd), "embed_tokens.embedding_weight is sparse_coo; .* dense")


def test_tensors_sharing_one_storage_beyond_the_file_size_are_refused(tmp_path):
    sd = raw_state(FIXTURE)
    big = torch.zeros(2**20)  # 4 MiB stored once, declared by 12 entries: 48 MiB from a 5 MiB file
    sd.update({PREFIX + f"extra.{i}": big for i in range(12)})
    one_line_error(save_checkpoint(tmp_path / "run", sd), "tensors declare .* bytes but the file holds")


# ---- silent wrong numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize("yaml_beside", [True, False], ids=["with-all_config", "without"])
def test_integer_weights_are_refused_in_one_line(tmp_path, yaml_beside):
    """Integer tensors used to load with their all_config.yaml and score exactly 0.0."""
    sd = {k: (v * 100).to(torch.int64) for k, v in raw_state(FIXTURE).items()}
    path = save_checkpoint(tmp_path / "run", sd, config_from=FIXTURE if yaml_beside else None)
    msg = one_line_error(path, "must be floating point")
    assert "int64" in msg and "forward_dtype" not in msg


@pytest.mark.parametrize(
    "dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.complex64, torch.bool, torch.uint8], ids=str
)
@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_unsupported_dtypes_are_refused_by_name(tmp_path, dtype, fmt):
    """Issue 27: float8 passed the floating-point check and crashed the NaN scan (internal error)."""
    sd = {k: v.to(dtype) for k, v in raw_state(FIXTURE).items()}
    if fmt == "torch":
        path = save_checkpoint(tmp_path / "run", sd, config_from=FIXTURE)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    msg = one_line_error(path, "is not supported; model weights must be floating point")
    assert f"has dtype {str(dtype).removeprefix('torch.')}," in msg


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("rms_norm_eps", float("nan"), "finite"),
        ("rms_norm_eps", 0.0, "greater than 0"),
        ("rope_theta", -1, "greater than 0"),
        ("rope_theta", float("inf"), "finite"),
        ("halt_exploration_prob", 1.5, "less than or equal to 1"),
        ("num_heads", 0, "greater than or equal to 1"),
        ("H_cycles", -2, "greater than or equal to 1"),
    ],
)
def test_out_of_range_config_value_names_field_and_value(tmp_path, field, value, says):
    path = with_all_config(tmp_path / "run", raw_state(FIXTURE), **{field: value})
    msg = one_line_error(path, f"{field} = ")
    assert says in msg and repr(value) in msg and "all_config.yaml" in msg


def test_config_ranges_hold_for_direct_construction():
    fields = dict(
        seq_len=81,
        vocab_size=11,
        H_cycles=2,
        L_cycles=2,
        H_layers=1,
        L_layers=1,
        hidden_size=64,
        num_heads=4,
        expansion=4,
        halt_max_steps=4,
    )
    assert ModelConfig(**fields).rms_norm_eps == 1e-5
    for bad in ({"rms_norm_eps": math.nan}, {"expansion": 0}, {"seq_len": 0}, {"puzzle_emb_ndim": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ModelConfig(**{**fields, **bad})


def test_assumed_architecture_values_are_a_loud_warning(tmp_path, caplog):
    path = save_checkpoint(tmp_path / "run", raw_state(FIXTURE))  # no all_config.yaml
    with caplog.at_level(logging.WARNING, logger="hrm_eval"):
        loaded = load_checkpoint(path, require_seq_len=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "--mode inspect" in warnings[0]
    for k in ("H_cycles", "L_cycles", "num_heads", "halt_max_steps"):
        assert k in loaded.assumed and k in warnings[0]


def test_a_public_all_config_yaml_is_no_warning(caplog):
    """The public scripts never write rms_norm_eps / rope_theta: assumed (and listed), but not alarming."""
    with caplog.at_level(logging.WARNING, logger="hrm_eval"):
        loaded = load_checkpoint(FIXTURE, require_seq_len=False)
    assert loaded.assumed == ["rms_norm_eps", "rope_theta"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---- messages ---------------------------------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_pickle_refusal_says_refused_and_never_suggests_the_unsafe_loader(tmp_path):
    sd = raw_state(FIXTURE)
    sd["extra"] = _Payload()
    msg = one_line_error(save_checkpoint(tmp_path / "run", sd), "refused: the file contains pickled code")
    assert "system" in msg and "hrm-eval never runs code from a checkpoint" in msg
    assert "weights_only" not in msg and "trust" not in msg


def test_zero_dim_embedding_is_one_line(tmp_path):
    sd = raw_state(FIXTURE)
    sd[PREFIX + "embed_tokens.embedding_weight"] = torch.tensor(1.0)
    path = save_checkpoint(tmp_path / "run", sd)
    one_line_error(path, r"embed_tokens\.embedding_weight: expected a 2-d tensor.*\(\)")


@pytest.mark.parametrize("arch", [[1, 2], "hrm", 3], ids=["list", "str", "int"])
def test_arch_block_that_is_not_a_mapping_is_one_line(tmp_path, arch):
    path = save_checkpoint(tmp_path / "run", raw_state(FIXTURE), config_from=FIXTURE)
    cfg = yaml.safe_load((tmp_path / "run" / "all_config.yaml").read_text())
    (tmp_path / "run" / "all_config.yaml").write_text(yaml.safe_dump({**cfg, "arch": arch}))
    one_line_error(path, f"'arch' must be a mapping.*{type(arch).__name__}")


def test_the_fixture_still_loads_after_all_checks():
    loaded = load_checkpoint(FIXTURE, require_seq_len=False)
    stated = {k: v for k, v in arch_block(FIXTURE).items() if k != "loss"}
    assert {k: getattr(loaded.config, k) for k in stated} == stated


# ---- listing steps ----------------------------------------------------------------------------------
def test_list_steps_orders_numerically_and_skips_other_files(tmp_path):
    for name in ("step_9", "step_10", "step_2", "step_10.optim", "step_x", "all_config.yaml"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "step_5").mkdir()  # a directory is not a checkpoint
    assert [p.name for p in list_steps(tmp_path)] == ["step_2", "step_9", "step_10"]
    assert list_steps(tmp_path / "step_5") == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("expansion", "four"),
        ("hidden_size", 10**400),
        ("H_cycles", [2]),
        ("puzzle_emb_ndim", "64"),
        ("pos_encodings", {"rope": 1}),
        ("name", None),
        ("forward_dtype", "int8"),
    ],
)
def test_any_stated_value_is_a_result_or_one_line(tmp_path, field, value):
    """Odd YAML values reach the contradiction checks before validation: none may crash them."""
    path = with_all_config(tmp_path / "run", raw_state(FIXTURE), **{field: value})
    try:
        loaded = load_checkpoint(path, require_seq_len=False)
    except HRMEvalError as e:
        assert "\n" not in str(e) and field in str(e)
    else:  # accepted only where the value means what the fixture has
        assert value is None or str(getattr(loaded.config, field)) == str(value)


@pytest.mark.parametrize("seed", range(12))
def test_corrupted_fixture_loads_or_is_one_line_never_advising_weights_only(tmp_path, seed):
    """Random truncations and byte flips of a real checkpoint (pickle, zip directory, data)."""
    data = bytearray(step_file(FIXTURE).read_bytes())
    rng = np.random.default_rng(seed)
    if seed % 3 == 0:
        data = data[: int(rng.integers(1, len(data)))]
    else:
        for pos in rng.integers(0, len(data), size=1 + seed % 5):
            data[pos] ^= int(rng.integers(1, 256))
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "step_1"
    path.write_bytes(bytes(data))
    try:
        load_checkpoint(path, require_seq_len=False, allow_nonfinite=True)
    except HRMEvalError as e:
        msg = str(e)
        assert "\n" not in msg and "weights_only" not in msg
