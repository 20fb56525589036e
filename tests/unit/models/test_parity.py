"""The public HRM / TRM implementation's outputs, reproduced at every ACT step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.format import DatasetMetadata
from hrm_eval.evaluation.evaluator import Evaluator
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import HRM_FIXTURES, PARITY_REL_TOL, TRM_FIXTURES, expected_outputs, fixture_batch

FP32 = {**{k: v for k, v in HRM_FIXTURES.items() if k.endswith("f32")}, **TRM_FIXTURES}
REL_TOL = PARITY_REL_TOL  # tests/conftest.py says why


def dataset_meta(exp: dict, vocab: int, num_ids: int) -> DatasetMetadata:
    return DatasetMetadata(
        pad_id=0,
        ignore_label_id=None,
        blank_identifier_id=0,
        vocab_size=vocab,
        seq_len=exp["inputs"].shape[1],
        num_puzzle_identifiers=num_ids,
        total_groups=len(exp["inputs"]),
        mean_puzzle_examples=1.0,
        sets=["all"],
    )


def _run_steps(folder):
    exp = expected_outputs(folder)
    probe = load_checkpoint(folder, require_seq_len=False)
    meta = dataset_meta(exp, probe.config.vocab_size, probe.config.num_puzzle_identifiers)
    loaded = load_checkpoint(folder, dataset=meta)
    model = loaded.model
    batch = fixture_batch(exp)
    carry = model.initial_carry(batch)
    steps = []
    with torch.inference_mode():
        for _ in range(loaded.config.halt_max_steps):
            carry, out = model(carry, batch)
            steps.append((carry, {k: v.float().numpy() for k, v in out.items()}))
    return exp, loaded, meta, steps


@pytest.mark.parametrize("name", sorted(FP32))
def test_fp32_every_act_step_matches_public(name):
    exp, loaded, _, steps = _run_steps(FP32[name])
    assert len(steps) == exp["logits"].shape[0]
    for t, (carry, out) in enumerate(steps):
        scale = np.abs(exp["logits"][t]).max()
        assert np.abs(out["logits"] - exp["logits"][t]).max() <= REL_TOL[name] * scale, f"step {t}"
        np.testing.assert_allclose(out["q_halt_logits"], exp["q_halt_logits"][t], atol=1e-5)
        np.testing.assert_allclose(out["q_continue_logits"], exp["q_continue_logits"][t], atol=1e-5)
        np.testing.assert_array_equal(carry.steps.numpy(), exp["steps"][t])
        np.testing.assert_array_equal(carry.halted.numpy(), exp["halted"][t])
        np.testing.assert_array_equal(out["logits"].argmax(-1), exp["logits"][t].argmax(-1))


def test_bf16_matches_public_approximately():
    exp, loaded, _, steps = _run_steps(HRM_FIXTURES["rope_bf16"])
    assert loaded.config.forward_dtype == "bfloat16"
    for t, (carry, out) in enumerate(steps):
        agree = (out["logits"].argmax(-1) == exp["logits"][t].argmax(-1)).mean()
        assert agree >= 0.95, f"step {t}: argmax agreement {agree:.3f}"
        assert np.abs(out["logits"] - exp["logits"][t]).max() < 0.25
        np.testing.assert_allclose(out["q_halt_logits"], exp["q_halt_logits"][t], atol=0.05)
        np.testing.assert_array_equal(carry.halted.numpy(), exp["halted"][t])


@pytest.mark.parametrize("name", sorted({**FP32, "rope_bf16": HRM_FIXTURES["rope_bf16"]}))
def test_loss_head_metrics_match_public(name):
    folder = {**FP32, **HRM_FIXTURES}[name]
    exp, loaded, meta, _ = _run_steps(folder)
    dataset = PuzzleDataset.from_arrays(
        exp["inputs"], exp["labels"], meta, puzzle_identifiers=exp["puzzle_identifiers"]
    )
    result = Evaluator(loaded.model, batch_size=4, progress=False).evaluate(dataset)
    m = result.aggregate_metrics
    count = float(exp["metric_count"])
    assert m["total_puzzles"] == count
    tol = 1e-4 if loaded.config.forward_dtype == "float32" else 2e-2
    for key in ("accuracy", "exact_accuracy", "steps", "lm_loss", "q_halt_loss"):
        assert m[key] == pytest.approx(float(exp[f"metric_{key}"]) / count, rel=tol, abs=tol), key
    if loaded.config.forward_dtype == "float32":  # a sign decision: exact only without bf16 noise
        assert m["q_halt_accuracy"] == pytest.approx(float(exp["metric_q_halt_accuracy"]) / count)
