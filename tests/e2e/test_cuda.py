"""On a CUDA device: the public outputs reproduced there, `--dtype auto`'s choice, and a real
out-of-memory error survived. CI has no GPU, so these skip there; they are run on a GPU
machine (see the README's "Speed" section for when they last ran and what they gave)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hrm_eval.evaluation.run import simple_evaluate
from hrm_eval.inference.engine import ACTEngine
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.resources import find
from tests.conftest import expected_outputs, fixture_batch
from tests.unit.models.test_parity import FP32, dataset_meta

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)")

BUNDLED = "checkpoints/sudoku6-hrm"
CUDA_REL_TOL = 1e-4  # of the logit scale (see the first test)


@pytest.mark.parametrize("name", sorted(FP32))
def test_fp32_fixtures_match_the_public_outputs_on_cuda(name):
    """Every ACT step on the GPU against the public outputs. cuBLAS and attention kernels in
    float32 (TF32 off, torch's default for matmul) sum in other orders than the CPU, and pick
    kernels per run: two runs on an H100 gave a worst step of 1.15e-5 and 3.85e-5 of the logit
    scale (CPU: under 1e-5). 1e-4 of scale is float32 rounding through ~16 layer passes; a real
    error (a wrong mask, rotation or carry) moves logits by more than 1e-2 of scale. The
    answers (argmax) and halting must be exactly the public ones."""
    exp = expected_outputs(FP32[name])
    probe = load_checkpoint(FP32[name], require_seq_len=False)
    meta = dataset_meta(exp, probe.config.vocab_size, probe.config.num_puzzle_identifiers)
    model = load_checkpoint(FP32[name], dataset=meta, device="cuda").model
    batch = {k: v.cuda() for k, v in fixture_batch(exp).items()}
    carry = model.initial_carry(batch)
    with torch.inference_mode():
        for t in range(exp["logits"].shape[0]):
            carry, out = model(carry, batch)
            logits = out["logits"].float().cpu().numpy()
            scale = np.abs(exp["logits"][t]).max()
            worst = np.abs(logits - exp["logits"][t]).max() / scale
            assert worst <= CUDA_REL_TOL, f"step {t}: max |diff| {worst:.2e} of scale"
            np.testing.assert_array_equal(logits.argmax(-1), exp["logits"][t].argmax(-1))
            np.testing.assert_array_equal(carry.halted.cpu().numpy(), exp["halted"][t])


def test_auto_dtype_on_cuda_is_bf16_and_keeps_the_answers(tmp_path):
    """`--dtype auto` on a GPU with bf16 picks it, says so, and on the bundled model solves the
    same share of puzzles as float32 on the CPU (within 0.5 point: bf16 rounds the logits)."""
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    data = find(BUNDLED) / "data"
    gpu = simple_evaluate(
        str(find(BUNDLED)), str(data), output_dir=tmp_path / "gpu", device="cuda", dtype="auto", progress=False
    )
    cpu = simple_evaluate(
        str(find(BUNDLED)), str(data), output_dir=tmp_path / "cpu", device="cpu", dtype="float32", progress=False
    )
    assert gpu["provenance"]["evaluation"]["dtype"] == "bfloat16"
    a, b = gpu["aggregate_metrics"]["exact_accuracy"], cpu["aggregate_metrics"]["exact_accuracy"]
    assert abs(a - b) <= 0.005, (a, b)


def test_a_real_cuda_out_of_memory_halves_the_slots_and_loses_nothing(caplog):
    """The process may use 1 GiB of the GPU; 65,536 slots of the bundled model need ~3.6 GB for
    their state alone. The engine halves until it fits, says so, and every puzzle comes out with
    the answer and step count it gets in a run that never ran out of memory."""
    data = find(BUNDLED) / "data"
    from hrm_eval.data.dataset import PuzzleDataset

    ds = PuzzleDataset(data, split="test")
    pb = next(ds.iter_batches(len(ds)))
    model = load_checkpoint(find(BUNDLED), dataset=ds.metadata, device="cuda", dtype="float32").model
    reference = ACTEngine(model, slots=64).run_all(pb.inputs, pb.puzzle_identifiers)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (1 << 30) / total))
    try:
        with caplog.at_level(logging.WARNING, logger="hrm_eval"):
            engine = ACTEngine(model, slots=1 << 16)
            res = engine.run_all(pb.inputs, pb.puzzle_identifiers)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert engine.slots < 1 << 16
    assert "out of memory with 65536 slots" in caplog.text
    assert torch.equal(res.preds.cpu(), reference.preds.cpu())
    assert torch.equal(res.steps.cpu(), reference.steps.cpu())
