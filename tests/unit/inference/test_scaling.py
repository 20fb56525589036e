"""Test-time scaling over the real default model and its held-out puzzles: verified answers obey
Sudoku's rules (checked here, not by the task), scaling never loses a puzzle the plain run
solves, a smaller budget is a prefix of a larger one, and the engine's new knobs (per-row
limits, a verifier, noise) leave a plain run as it was."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from hrm_eval.data.tasks import get_task
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy
from hrm_eval.inference.runner import PuzzleChunk
from hrm_eval.inference.scaling import ScaledRunner, ScalingPolicy, frontier, rule_verifier
from hrm_eval.models.checkpoint import load_checkpoint
from tests.conftest import ROOT

HARD = ROOT / "checkpoints" / "sudoku6-hard-hrm"
SUDOKU6 = get_task("sudoku6")


def sudoku6_is_solution(puzzle: np.ndarray, answer: np.ndarray) -> bool:
    """An independent rule check of a 6x6 answer in token form (digit d is token d + 1, blank 1):
    the givens kept, every row, column and 2x3 box a permutation of 1..6."""
    grid = answer.reshape(6, 6) - 1
    given = puzzle.reshape(6, 6) >= 2
    if not np.array_equal(grid[given], puzzle.reshape(6, 6)[given] - 1):
        return False
    units = [grid[r, :] for r in range(6)] + [grid[:, c] for c in range(6)]
    units += [grid[br : br + 2, bc : bc + 3].reshape(-1) for br in (0, 2, 4) for bc in (0, 3)]
    return all(sorted(u.tolist()) == [1, 2, 3, 4, 5, 6] for u in units)


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(HARD).model


@pytest.fixture(scope="module")
def heldout():
    """A band of each difficulty from the held-out set: 40 with 6-18 blanks, 160 with 19-27."""
    inputs = np.load(HARD / "heldout" / "test" / "all__inputs.npy").astype(np.int64)
    labels = np.load(HARD / "heldout" / "test" / "all__labels.npy").astype(np.int64)
    blanks = SUDOKU6.difficulty(inputs)
    pick = np.concatenate([np.where(blanks < 19)[0][:40], np.where(blanks >= 19)[0][:160]])
    return torch.from_numpy(inputs[pick]), torch.from_numpy(labels[pick]), blanks[pick]


def ids(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.long)


@pytest.fixture(scope="module")
def plain(model, heldout):
    x, y, _ = heldout
    return ACTEngine(model, slots=64, halting=HaltingPolicy("adaptive")).run_all(x, ids(len(x)), y)


@pytest.fixture(scope="module")
def scaled(model, heldout):
    x, y, _ = heldout
    # attempts of 16 steps (twice the trained limit): the first one's carry goes on past step 8
    policy = ScalingPolicy("verify", budget=64, attempt_steps=16)
    runner = ScaledRunner(model, SUDOKU6, policy, halting=HaltingPolicy("adaptive"))
    return runner.run_all(x, ids(len(x)), y)


def test_every_verified_answer_obeys_the_rules_and_scaling_loses_no_puzzle(heldout, plain, scaled):
    x, y, blanks = heldout
    preds = scaled.preds.numpy()
    for i, how in enumerate(scaled.selected_by):
        if how == "verified":
            assert sudoku6_is_solution(x[i].numpy(), preds[i]), i
        else:
            assert not sudoku6_is_solution(x[i].numpy(), preds[i]), i  # only an unverified answer is voted on
    plain_exact = (plain.preds == y).all(1).numpy()
    scaled_exact = (scaled.preds == y).all(1).numpy()
    assert not np.any(plain_exact & ~scaled_exact), "a puzzle the plain run solves was lost"
    for band in (blanks < 19, blanks >= 19):
        assert scaled_exact[band].mean() >= plain_exact[band].mean()
    hard = blanks >= 19
    # the gain is real on the hard band (the plain run leaves ~14% unsolved there)
    assert scaled_exact[hard].sum() >= plain_exact[hard].sum() + 10


def test_cost_fields_add_up_and_easy_puzzles_cost_what_they_did(heldout, plain, scaled):
    x, _, _ = heldout
    attempts, total, at = scaled.attempts.numpy(), scaled.act_steps_total.numpy(), scaled.solved_at_attempt.numpy()
    assert np.all(total <= 64) and np.all(attempts >= 1)
    assert np.all(scaled.steps.numpy() <= total)
    # a puzzle whose plain answer passes the check ran exactly the plain run's steps, once
    plain_ok = SUDOKU6.verify_many(x.numpy(), plain.preds.numpy())
    assert np.all(at[plain_ok] == 1) and np.all(attempts[plain_ok] == 1)
    np.testing.assert_array_equal(total[plain_ok], plain.steps.numpy()[plain_ok])
    np.testing.assert_array_equal(scaled.preds.numpy()[plain_ok], plain.preds.numpy()[plain_ok])
    # the others thought longer: on in the first attempt (its carry going on), or in more attempts
    assert np.all(total[~plain_ok] > plain.steps.numpy()[~plain_ok])
    extended = ~plain_ok & (at == 1)  # solved by thinking on past step 8
    assert extended.any() and np.all(scaled.steps.numpy()[extended] > 8)
    verified = np.array([h == "verified" for h in scaled.selected_by])
    np.testing.assert_array_equal(verified, at > 0)
    np.testing.assert_array_equal(scaled.verified.numpy(), verified)
    assert np.all((scaled.verified_at_step.numpy() > 0) == verified)
    assert np.all(scaled.verified_at_step.numpy()[verified] <= total[verified])
    assert set(Counter(scaled.selected_by)) <= {"verified", "vote"}


def test_a_smaller_budget_is_a_prefix_of_a_larger_one(model, heldout, scaled):
    """The frontier read off the budget-64 run at budget 24 is what a budget-24 run gives."""
    x, y, _ = heldout
    exact = (scaled.preds == y).all(1).numpy()
    points = frontier(scaled.act_steps_total.numpy(), scaled.verified_at_step.numpy(), exact, 64, points=64)
    at24 = next(p for p in points if p["budget"] == 24)
    policy = ScalingPolicy("verify", budget=24, attempt_steps=16)
    runner = ScaledRunner(model, SUDOKU6, policy, halting=HaltingPolicy("adaptive"))
    small = runner.run_all(x, ids(len(x)), y)
    assert float((small.preds == y).all(1).double().mean()) == pytest.approx(at24["exact_accuracy"], abs=1e-12)
    assert float(small.act_steps_total.double().mean()) == pytest.approx(at24["mean_act_steps"], abs=1e-12)
    assert points[-1]["exact_accuracy"] == pytest.approx(exact.mean())
    accs = [p["exact_accuracy"] for p in points]
    assert accs == sorted(accs)  # more budget never solves fewer


def test_frontier_hand_computed():
    # three puzzles: verified after 3 steps (exact), verified after 10 (exact), never (all 12 spent)
    points = frontier(np.array([3, 10, 12]), np.array([3, 10, 0]), np.array([True, True, False]), 12, points=12)
    by = {p["budget"]: p for p in points}
    assert by[2] == {"budget": 2, "exact_accuracy": 0.0, "mean_act_steps": 2.0}
    assert by[3]["exact_accuracy"] == pytest.approx(1 / 3) and by[3]["mean_act_steps"] == pytest.approx(3.0)
    assert by[10]["exact_accuracy"] == pytest.approx(2 / 3) and by[10]["mean_act_steps"] == pytest.approx(23 / 3)
    assert by[12]["mean_act_steps"] == pytest.approx(25 / 3)


def hand_adaptive(model, inputs: torch.Tensor, limit: int):
    """The model's inner step run by hand: stop when q_halt > q_continue or at `limit`."""
    inner = model.inner
    x = inner.input_embeddings(inputs, ids(len(inputs)))
    shape = (len(inputs), model.config.full_seq_len, model.config.hidden_size)
    from hrm_eval.models.base import InnerCarry

    carry = InnerCarry(inner.H_init.expand(shape).clone(), inner.L_init.expand(shape).clone())
    steps = torch.zeros(len(inputs), dtype=torch.long)
    preds = torch.zeros_like(inputs)
    done = torch.zeros(len(inputs), dtype=torch.bool)
    with torch.inference_mode():
        for t in range(1, limit + 1):
            carry, logits, q_halt, q_continue = inner.step(carry, x, inner.cos_sin())
            now = ~done & ((q_halt > q_continue) | (t == limit))
            preds[now], steps[now] = logits.argmax(-1)[now], t
            done |= now
    return steps, preds


@pytest.mark.parametrize("mode", ["adaptive", "fixed"])
def test_max_steps_above_the_trained_limit(model, heldout, mode):
    """--max-steps 12 on an 8-step model: the engine runs past halt_max_steps as a hand loop does."""
    x, _, _ = heldout
    x = x[-48:] if mode == "adaptive" else x[-8:]  # the hardest: some think past step 8
    slots = 16 if mode == "adaptive" else 4  # either way slots are refilled past halt_max_steps
    got = ACTEngine(model, slots=slots, halting=HaltingPolicy(mode, max_steps=12)).run_all(x, ids(len(x)))
    steps, preds = hand_adaptive(model, x, 12) if mode == "adaptive" else (None, None)
    if mode == "fixed":
        assert torch.all(got.steps == 12)
        return
    assert (got.steps.long() > 8).any()
    torch.testing.assert_close(got.steps.long(), steps, rtol=0, atol=0)
    assert torch.equal(got.preds, preds)


def test_engine_knobs_off_leave_a_plain_run_as_it_was(model, heldout, plain):
    x, y, _ = heldout
    chunk = PuzzleChunk(torch.arange(len(x)), x, ids(len(x)), y, step_limit=torch.full((len(x),), -1))
    again = logits_in_order(ACTEngine(model, slots=64, halting=HaltingPolicy("adaptive"), init_noise=0.5), chunk)
    assert torch.equal(again, plain.logits)  # -1 limits and no noise seed: the plain run, bit for bit


def logits_in_order(engine: ACTEngine, chunk: PuzzleChunk) -> torch.Tensor:
    parts = list(engine.run([chunk]))
    order = torch.cat([p.index for p in parts]).argsort()
    return torch.cat([p.logits for p in parts])[order]


def test_noise_is_seeded_and_moves_the_start(model, heldout):
    x, _, _ = heldout
    x = x[-16:]

    def run(seed: int):
        chunk = PuzzleChunk(torch.arange(len(x)), x, ids(len(x)), noise_seed=torch.full((len(x),), seed))
        return logits_in_order(
            ACTEngine(model, slots=16, halting=HaltingPolicy("fixed", max_steps=2), init_noise=1.0), chunk
        )

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rule_less_tasks_accept_by_confidence():
    check = rule_verifier(get_task("arc"), 0.9)
    q = torch.tensor([-3.0, 2.0, 2.3, 5.0])  # sigmoid: 0.047, 0.881, 0.909, 0.993
    assert check(torch.zeros(4, 900), torch.zeros(4, 900), q).tolist() == [False, False, True, True]
    rules = rule_verifier(SUDOKU6, 0.9)
    x = np.load(HARD / "heldout" / "test" / "all__inputs.npy")[:3].astype(np.int64)
    y = np.load(HARD / "heldout" / "test" / "all__labels.npy")[:3].astype(np.int64)
    assert rules(torch.from_numpy(x), torch.from_numpy(y), torch.full((3,), -9.0)).tolist() == [True] * 3
    assert rules(torch.from_numpy(x), torch.from_numpy(x), torch.full((3,), 9.0)).tolist() == [False] * 3


def test_scaling_policy_refuses_nonsense():
    for bad in (dict(mode="more"), dict(budget=0), dict(views=0), dict(noise=-1.0), dict(confidence=1.0)):
        with pytest.raises(ValueError):
            ScalingPolicy(**{"mode": "verify", **bad})
    assert ScalingPolicy("verify").resolve(8, 8).budget == 32
    assert ScalingPolicy("verify").resolve(8, 8).attempt_steps == 8
    assert ScalingPolicy("verify").resolve(8, 12).attempt_steps == 12  # --max-steps 12: attempts of 12
    assert ScalingPolicy("verify", budget=6).resolve(8, 8).attempt_steps == 6  # never more than the budget
