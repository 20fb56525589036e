"""ONNX: one ACT step exported from the HRM and TRM fixtures, run in onnxruntime, matches
PyTorch fp32 (and the public outputs) at every ACT step; the runner's fixed and adaptive
halting agree with the engine's; inspect reads the file; broken files get one line.

Each export takes tens of seconds (torch.export + translation), so each model is exported once
per module and every test reuses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_eval.cli import main
from hrm_eval.export.onnx import export_onnx, onnx_config, read_onnx
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy
from hrm_eval.inference.onnx_runner import OnnxACTRunner, make_session
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import HRM_FIXTURES, TRM_FIXTURES, expected_outputs, fixture_batch

pytestmark = pytest.mark.slow
MODELS = {"hrm_rope_f32": HRM_FIXTURES["rope_f32"], "trm_attn_f32": TRM_FIXTURES["attn_f32"]}
TOL = 1e-4  # max |difference|, relative to the largest |value| of the reference (and at least 1e-4 absolute)


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    folder = MODELS[request.param]
    exp = expected_outputs(folder)
    loaded = load_checkpoint(folder, overrides={"seq_len": exp["inputs"].shape[1]}, dtype="float32")
    path = export_onnx(loaded, tmp_path_factory.mktemp(request.param) / "model.onnx")
    return request.param, loaded, exp, path


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return float(np.abs(got - want).max()) <= TOL * max(1.0, float(np.abs(want).max()))


def test_every_act_step_matches_pytorch_and_the_public_outputs(exported):
    name, loaded, exp, path = exported
    session = make_session(path, threads=1)
    batch = fixture_batch(exp)
    model = loaded.model
    carry = model.initial_carry(batch)
    B = len(exp["inputs"])
    z_H = np.zeros((B, loaded.config.full_seq_len, loaded.config.hidden_size), np.float32)
    z_L = np.zeros_like(z_H)
    for t in range(loaded.config.halt_max_steps):
        with torch.inference_mode():
            carry, ref = model(carry, batch)
        feed = {"z_H": z_H, "z_L": z_L, "inputs": exp["inputs"].astype(np.int64)}
        feed |= {"puzzle_identifiers": exp["puzzle_identifiers"].astype(np.int64), "reset": np.full(B, t == 0)}
        z_H, z_L, logits, q_halt, q_continue = session.run(None, feed)
        got = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}
        for key, value in got.items():
            assert _close(value, ref[key].numpy()), f"{name} step {t} {key} vs PyTorch"
            assert _close(value, exp[key][t]), f"{name} step {t} {key} vs the public outputs"
        assert _close(z_H, carry.inner.z_H.numpy()) and _close(z_L, carry.inner.z_L.numpy()), f"carry step {t}"


@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_runner_halts_like_the_engine(exported, mode):
    name, loaded, exp, path = exported
    batch = fixture_batch(exp)
    policy = HaltingPolicy(mode)  # type: ignore[arg-type]
    want = ACTEngine(loaded.model, slots=3, halting=policy).run_all(
        batch["inputs"], batch["puzzle_identifiers"], batch["labels"]
    )
    runner = OnnxACTRunner(make_session(path, threads=1), loaded.config, slots=3, halting=policy)
    got = runner.run_all(batch["inputs"], batch["puzzle_identifiers"], batch["labels"])
    assert torch.equal(got.steps, want.steps), name
    assert _close(got.logits.numpy(), want.logits.numpy())
    assert torch.equal(got.exact_by_step, want.exact_by_step)
    if mode == "fixed":
        assert (got.steps == loaded.config.halt_max_steps).all()
        assert runner.stats()["act_steps_computed"] == len(exp["inputs"]) * loaded.config.halt_max_steps


def test_file_describes_itself_and_inspect_reads_it(exported, capsys):
    name, loaded, _, path = exported
    proto = read_onnx(path)
    config, metadata = onnx_config(path, proto)
    assert config == loaded.config and metadata["source_sha256"] == loaded.sha256
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch"  # the dynamic batch axis
    state = loaded.model.inner.state_dict()
    names = {i.name for i in proto.graph.initializer if i.name in state}
    assert "embed_tokens.embedding_weight" in names and "q_head.weight" in names  # public key names
    assert main(["--mode", "inspect", "--checkpoint", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "ONNX ACT step" in shown and config.variant in shown and "z_H [batch," in shown


def test_broken_onnx_files_get_one_line(exported, tmp_path, capsys):
    _, _, _, path = exported
    blob = path.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(blob[: len(blob) // 3])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 64)
    for bad in (truncated, garbage):
        with pytest.raises(HRMEvalError, match="cannot read ONNX model") as err:
            read_onnx(bad)
        assert "\n" not in str(err.value)
        with pytest.raises(HRMEvalError, match="onnxruntime cannot load"):
            make_session(bad)
    assert main(["--mode", "inspect", "--checkpoint", str(truncated)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot read ONNX model") and "truncated.onnx" in err[0]
    with pytest.raises(HRMEvalError, match="ONNX graph"):  # evaluate's loader points at the right way
        load_checkpoint(path)


def _edited(path, tmp_path, edit) -> str:
    """A copy of the exported file with `edit(proto)` applied (saved without the checker)."""
    import onnx

    proto = read_onnx(path)
    edit(proto)
    out = tmp_path / "edited.onnx"
    onnx.save_model(proto, str(out))
    return str(out)


def test_inspect_warns_when_the_metadata_disagrees_with_the_graph(exported, tmp_path, capsys):
    """Issue 27: metadata saying hidden 4096 for a graph of hidden 64/128 was printed as fact."""
    import json

    _, loaded, _, path = exported

    def bigger(proto) -> None:
        prop = next(p for p in proto.metadata_props if p.key == "hrm_eval_config")
        prop.value = json.dumps(json.loads(prop.value) | {"hidden_size": 4096, "num_heads": 8})

    assert main(["--mode", "inspect", "--checkpoint", _edited(path, tmp_path, bigger)]) == 0
    out, err = capsys.readouterr()
    said = f"the metadata says hidden_size 4096 but the graph's z_H has {loaded.config.hidden_size} on axis 2"
    assert any(line.split()[0] == "WARNING" and line.endswith(said) for line in out.splitlines()), out
    assert said in err  # the log's warning as well


def test_an_initializer_whose_dims_disagree_with_its_data_is_one_line(exported, tmp_path, capsys):
    _, _, _, path = exported

    def wrong_dims(proto) -> None:
        init = next(i for i in proto.graph.initializer if i.name == "q_head.weight")
        init.dims[0] += 5

    assert main(["--mode", "inspect", "--checkpoint", _edited(path, tmp_path, wrong_dims)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "q_head.weight" in err and "internal error" not in err, err
