"""The ACT engine: fixed halting reproduces the public outputs; continuous batching gives every
puzzle exactly what it gets when run alone; adaptive halting follows the model's own rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.format import DatasetMetadata
from hrm_eval.inference import ACTEngine, HaltingPolicy, PuzzleChunk
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import HRM_FIXTURES, PARITY_REL_TOL, ROOT, TRM_FIXTURES, expected_outputs

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
FP32 = {"rope_f32": HRM_FIXTURES["rope_f32"], **TRM_FIXTURES}
REL_TOL = PARITY_REL_TOL  # tests/conftest.py says why


def chunks(inputs, ids, labels=None, size=5):
    """The puzzles as the engine's source: chunks of `size` rows, index = row number."""
    n = len(inputs)
    for s in range(0, n, size):
        yield PuzzleChunk(
            torch.arange(s, min(n, s + size)),
            inputs[s : s + size],
            ids[s : s + size],
            None if labels is None else labels[s : s + size],
        )


def run_all(engine, inputs, ids, labels=None, size=5):
    """Every finished row, keyed by its index."""
    out = {}
    for fin in engine.run(chunks(inputs, ids, labels, size)):
        for j, i in enumerate(fin.index.tolist()):
            assert i not in out, "a puzzle finished twice"
            out[i] = {
                "preds": fin.preds[j],
                "logits": fin.logits[j].float(),
                "steps": int(fin.steps[j]),
                "q_halt": float(fin.q_halt_logits[j]),
                "q_halt_by_step": fin.q_halt_by_step[j],
                "exact_by_step": None if fin.exact_by_step is None else fin.exact_by_step[j],
            }
    return out


def _fixture_model(folder):
    """The fixture's checkpoint, loaded for its batch's sequence length (as tests/models/test_parity.py)."""
    exp = expected_outputs(folder)
    probe = load_checkpoint(folder, require_seq_len=False)
    meta = DatasetMetadata(
        pad_id=0,
        ignore_label_id=None,
        blank_identifier_id=0,
        vocab_size=probe.config.vocab_size,
        seq_len=exp["inputs"].shape[1],
        num_puzzle_identifiers=probe.config.num_puzzle_identifiers,
        total_groups=len(exp["inputs"]),
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
    return exp, load_checkpoint(folder, dataset=meta).model


@pytest.mark.parametrize("name", sorted(FP32))
@pytest.mark.parametrize("slots", [1, 3, 64])
def test_fixed_halting_reproduces_the_public_outputs(name, slots):
    exp, model = _fixture_model(FP32[name])
    inputs, ids = torch.from_numpy(exp["inputs"]), torch.from_numpy(exp["puzzle_identifiers"])
    engine = ACTEngine(model, slots=slots)
    got = run_all(engine, inputs, ids)
    T = exp["logits"].shape[0]
    assert sorted(got) == list(range(len(inputs)))
    scale = np.abs(exp["logits"][-1]).max()
    for i, r in got.items():
        assert r["steps"] == T == model.config.halt_max_steps
        assert np.abs(r["logits"].numpy() - exp["logits"][-1][i]).max() <= REL_TOL[name] * scale
        np.testing.assert_array_equal(r["preds"].numpy(), exp["logits"][-1][i].argmax(-1))
        np.testing.assert_allclose(r["q_halt_by_step"].numpy(), exp["q_halt_logits"][:, i], atol=1e-5)


@pytest.mark.slow
def test_compiled_step_reproduces_the_public_outputs_and_is_built_once_per_model():
    """--compile: the same answers (argmax exact; logits within fp32 rounding: inductor fuses the
    element-wise chains, so sums are reassociated), compiled once and reused by later engines."""
    from hrm_eval.inference.engine import COMPILED_STEP_ATTR

    exp, model = _fixture_model(FP32["rope_f32"])
    inputs, ids = torch.from_numpy(exp["inputs"]), torch.from_numpy(exp["puzzle_identifiers"])
    first = ACTEngine(model, slots=3)
    assert first.compile()
    got = run_all(first, inputs, ids)
    scale = np.abs(exp["logits"][-1]).max()
    for i, r in got.items():
        np.testing.assert_array_equal(r["preds"].numpy(), exp["logits"][-1][i].argmax(-1))
        assert np.abs(r["logits"].numpy() - exp["logits"][-1][i]).max() <= 1e-4 * scale
    compiled = getattr(model.inner, COMPILED_STEP_ATTR)
    second = ACTEngine(model, slots=3)
    assert second.compile() and getattr(model.inner, COMPILED_STEP_ATTR) is compiled
    again = run_all(second, inputs, ids)
    for i in got:
        assert torch.equal(again[i]["logits"], got[i]["logits"])


def _bundled_puzzles(n):
    pb = next(PuzzleDataset(BUNDLED / "data", split="test").iter_batches(n))
    return pb.inputs, pb.puzzle_identifiers, pb.labels


@pytest.fixture(scope="module")
def bundled_model():
    meta = PuzzleDataset(BUNDLED / "data", split="test").metadata
    return load_checkpoint(BUNDLED / "step_1875", dataset=meta).model  # the middle checkpoint halts at 1..4 steps


def test_continuous_batching_gives_each_puzzle_its_solo_result(bundled_model):
    """Adaptive halting frees slots at different steps and refills them with new puzzles; each
    puzzle must come out with the answer and step count it gets when it runs alone."""
    inputs, ids, labels = _bundled_puzzles(40)
    policy = HaltingPolicy("adaptive")
    together = run_all(ACTEngine(bundled_model, slots=8, halting=policy), inputs, ids, labels, size=7)
    steps_seen = {r["steps"] for r in together.values()}
    assert len(steps_seen) >= 2, "the test needs puzzles that halt at different steps"
    for i in range(len(inputs)):
        alone = run_all(
            ACTEngine(bundled_model, slots=1, halting=policy), inputs[i : i + 1], ids[i : i + 1], labels[i : i + 1]
        )[0]
        assert together[i]["steps"] == alone["steps"], f"puzzle {i}"
        assert torch.equal(together[i]["preds"], alone["preds"]), f"puzzle {i}"
        assert torch.equal(together[i]["exact_by_step"], alone["exact_by_step"]), f"puzzle {i}"


def test_adaptive_halting_stops_where_the_q_rule_first_says_halt(bundled_model):
    """The step a puzzle stops at under `adaptive` is the first step of the fixed run at which
    q_halt > q_continue (or the last step), and its answer is the fixed run's answer at that step."""
    inputs, ids, labels = _bundled_puzzles(32)
    T = bundled_model.config.halt_max_steps
    fixed = ACTEngine(bundled_model, slots=32, trace_preds=True)
    fixed_rows = {}
    for fin in fixed.run(chunks(inputs, ids, labels, size=32)):
        for j, i in enumerate(fin.index.tolist()):
            fixed_rows[i] = (fin.q_halt_by_step[j], fin.q_continue_by_step[j], fin.preds_by_step[j])
    adaptive = run_all(ACTEngine(bundled_model, slots=32, halting=HaltingPolicy("adaptive")), inputs, ids, labels, 32)
    for i, (qh, qc, preds) in fixed_rows.items():
        wants = (qh > qc).tolist()
        expected = next((t + 1 for t in range(T) if wants[t]), T)
        assert adaptive[i]["steps"] == expected
        assert torch.equal(adaptive[i]["preds"], preds[expected - 1].to(adaptive[i]["preds"].dtype))


def test_threshold_and_step_bounds(bundled_model):
    inputs, ids, labels = _bundled_puzzles(24)
    lo = run_all(ACTEngine(bundled_model, slots=6, halting=HaltingPolicy("threshold", threshold=0.01)), inputs, ids)
    assert all(r["steps"] == 1 for r in lo.values())  # everyone is confident enough after one step
    bounded = run_all(
        ACTEngine(bundled_model, slots=6, halting=HaltingPolicy("threshold", threshold=0.01, min_steps=2)), inputs, ids
    )
    assert all(r["steps"] == 2 for r in bounded.values())
    capped = run_all(ACTEngine(bundled_model, slots=6, halting=HaltingPolicy("fixed", max_steps=2)), inputs, ids)
    assert all(r["steps"] == 2 for r in capped.values())


def test_out_of_memory_halves_the_slots_and_loses_nothing(bundled_model, caplog):
    """Inject a CUDA out-of-memory error into the third engine step: the engine halves its slots,
    restarts the puzzles in flight and every puzzle still comes out once, with the same answer."""
    inputs, ids, labels = _bundled_puzzles(20)
    reference = run_all(ACTEngine(bundled_model, slots=8), inputs, ids, labels)

    engine = ACTEngine(bundled_model, slots=8)
    engine.oom_recovery = True  # on by default on CUDA only; the recovery itself is device-independent
    real_step, calls = engine._step_fn, {"n": 0}

    def flaky(carry, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_step(carry, x)

    engine._step_fn = flaky
    got = run_all(engine, inputs, ids, labels)
    assert engine.slots == 4
    assert "out of memory with 8 slots: continuing with 4" in caplog.text
    assert sorted(got) == sorted(reference)
    for i in reference:
        assert got[i]["steps"] == reference[i]["steps"]
        assert torch.equal(got[i]["preds"], reference[i]["preds"])


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="halting must be one of"):
        HaltingPolicy("sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        HaltingPolicy("threshold", threshold=1.5)
    with pytest.raises(ValueError, match="min_steps"):
        HaltingPolicy("adaptive", min_steps=3, max_steps=2)
