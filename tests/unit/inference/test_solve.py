"""hrm_eval.solve: a puzzle nobody has solved, in its natural form, through the bundled model.

Known answers come from the bundled raw test CSV (unique Sudoku solutions), the rules from the
task's verifier, and the per-step answers from the model's own ACT loop run step by step."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

import hrm_eval
from hrm_eval.data.tasks import get_task
from hrm_eval.inference.solve import Solution, Solver, solve
from hrm_eval.models.checkpoint import load_checkpoint
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT

BUNDLED = ROOT / "checkpoints" / "sudoku6-hrm"
SUDOKU6 = get_task("sudoku6")


def raw_rows(n: int):
    with open(BUNDLED / "raw" / "test.csv", newline="") as f:
        return [(q, a) for _, q, a, _ in list(csv.reader(f))[1 : n + 1]]


@pytest.fixture(scope="module")
def solver() -> Solver:
    return Solver(BUNDLED, device="cpu")  # adaptive halting, the task detected from the puzzle


def test_one_puzzle_from_a_checkpoint_path(solver):
    question, answer = raw_rows(1)[0]
    s = solver.solve(question)
    assert isinstance(s, Solution) and s.task == "sudoku6"
    assert s.puzzle == question and s.answer == answer  # the CSV's unique solution
    assert s.verified is True and s.tokens == SUDOKU6.encode(answer).tolist()
    assert 1 <= s.steps <= s.max_steps == 4
    assert 0.5 <= s.q_halt_probability <= 1  # adaptive: it stopped because it was confident
    assert s.seconds > 0 and s.expected is None and s.correct is None and s.step_answers is None


def test_the_top_level_function_and_export(solver):
    question, answer = raw_rows(1)[0]
    assert hrm_eval.solve is solve and hrm_eval.Solver is Solver
    loaded = load_checkpoint(BUNDLED, overrides={"seq_len": 36})
    fixed = hrm_eval.solve(loaded, question, halting="fixed")  # a LoadedCheckpoint works too
    assert fixed.answer == answer and fixed.steps == 4 and fixed.verified


def test_a_small_list_in_every_natural_form(solver):
    rows = raw_rows(8)
    as_rows = [[int(c) if c != "." else 0 for c in q[r * 6 : (r + 1) * 6]] for r in range(6) for q in [rows[1][0]]]
    drawn = "\n".join(" ".join(rows[2][0][r * 6 : (r + 1) * 6]) for r in range(6))  # a board typed by hand
    puzzles = [rows[0][0], as_rows, drawn, json.dumps(as_rows)] + [q for q, _ in rows[3:]]
    solutions = solver.solve_all(puzzles)
    want = [rows[0][1], rows[1][1], rows[2][1], rows[1][1]] + [a for _, a in rows[3:]]
    assert [s.puzzle for s in solutions[:4]] == [rows[0][0], rows[1][0], rows[2][0], rows[1][0]]
    right = [s.answer == a for s, a in zip(solutions, want)]
    assert sum(right) >= 7  # the bundled model solves ~99% of this split
    # unique solutions: valid by the rules exactly when equal to the known answer
    assert [s.verified for s in solutions] == right


def test_per_step_answers_are_the_models_own_act_steps(solver):
    """return_steps: the answer after each ACT step, as the public ACT loop computes it."""
    question, _ = raw_rows(1)[0]
    s = solver.solve(question, return_steps=True)
    assert len(s.step_answers) == len(s.step_q_halt_probabilities) == s.steps
    assert s.step_answers[-1] == s.answer and s.step_q_halt_probabilities[-1] == s.q_halt_probability

    model = load_checkpoint(BUNDLED, overrides={"seq_len": 36}).model
    batch = {
        "inputs": torch.as_tensor(SUDOKU6.encode_puzzle(question), dtype=torch.long)[None],
        "labels": torch.zeros(1, 36, dtype=torch.long),
        "puzzle_identifiers": torch.zeros(1, dtype=torch.long),
    }
    carry, step_answers, q = model.initial_carry(batch), [], []
    with torch.inference_mode():
        for _ in range(s.steps):
            carry, out = model(carry, batch)
            step_answers.append(SUDOKU6.decode_answer(out["logits"].argmax(-1)[0]))
            q.append(torch.sigmoid(out["q_halt_logits"][0]).item())
    assert s.step_answers == step_answers
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(s.step_q_halt_probabilities, q))


@pytest.mark.parametrize(
    "question, where",
    [
        ("11" + "." * 34, "digit 1 is given twice in row 1 (positions 0 and 1)"),
        ("2" + "." * 5 + "2" + "." * 29, "digit 2 is given twice in column 1 (positions 0 and 6)"),
        ("3" + "." * 6 + "3" + "." * 28, "digit 3 is given twice in box 1 (positions 0 and 7)"),
    ],
)
def test_a_puzzle_whose_givens_break_the_rules_is_impossible(solver, question, where):
    """No answer keeps such givens and is a valid Sudoku: the model (which answers anyway, with
    0.999 confidence) is not asked; issue 27."""
    with pytest.raises(HRMEvalError, match="impossible") as e:
        solver.solve(question)
    assert str(e.value) == f"solve: the puzzle is impossible: {where}"


def test_puzzle_files_without_answers(solver, tmp_path):
    rows = raw_rows(3)
    path = tmp_path / "unsolved.csv"
    path.write_text("source,question,answer,rating\n" + f"me,{rows[0][0]},,\nme,{rows[1][0]},{rows[1][1]},5\n")
    a, b = solver.solve_file(path)
    assert (a.name, a.expected, a.correct) == ("unsolved:2", None, None)
    assert (b.name, b.expected) == ("unsolved:3", rows[1][1])
    assert a.answer == rows[0][1] and b.correct is True

    lines = tmp_path / "unsolved.jsonl"
    tokens = SUDOKU6.encode(rows[2][0]).tolist()
    lines.write_text(json.dumps({"puzzle_id": "p7", "input_sequence": tokens}) + "\n")
    (c,) = solver.solve_file(lines)
    assert (c.name, c.expected, c.puzzle, c.answer) == ("p7", None, rows[2][0], rows[2][1])


@pytest.mark.parametrize(
    "puzzle,words",
    [
        ("123", "board text must have 36 characters, got 3"),
        ("1" * 35, "board text must have 36 characters, got 35"),
        ("", "board text must have 36 characters, got 0"),
        ("." * 35 + "9", "board has character '9' at position 35 (allowed: '.0123456')"),
        ("\uff13" + "." * 35, "board has character '\uff13' at position 0 (allowed: '.0123456')"),  # full-width 3
        ("#S G" * 9, "board text must have 36 characters, got 27"),  # spaces are separators
    ],
)
def test_a_puzzle_the_one_task_cannot_read_says_what_is_wrong(solver, puzzle, words):
    """Only sudoku6 has this model's vocabulary: the error is what is wrong with the puzzle as a
    sudoku6 board (before issue 27: "fits none of the tasks ... give the task")."""
    fresh = Solver(solver.model, device="cpu")
    with pytest.raises(HRMEvalError) as e:
        fresh.solve(puzzle)
    assert str(e.value) == f"solve: not a puzzle this model can read: sudoku6: {words}"


def test_a_task_that_does_not_fit_the_model(solver):
    with pytest.raises(HRMEvalError, match=r"task sudoku4 \(vocab_size 6, seq_len 16\) does not fit the model"):
        Solver(solver.model, "sudoku4")
    with pytest.raises(HRMEvalError, match="sudoku6: board text must have 36 characters, got 16"):
        Solver(solver.model, "sudoku6").solve("1" + "." * 15)


def test_solution_to_dict_is_json(solver):
    s = solver.solve(raw_rows(1)[0][0], return_steps=True)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["answer"] == s.answer and d["verified"] is True and d["correct"] is None
    assert np.isclose(d["q_halt_probability"], s.q_halt_probability, rtol=1e-6)


def test_scaling_solves_what_one_attempt_misses_and_reports_its_cost():
    """The default model on the held-out 27-blank puzzles (its hardest): one adaptive attempt
    leaves some unsolved; --scaling verify answers every one of them with a valid board and says
    which attempt found it and what all attempts cost."""
    hard = ROOT / "checkpoints" / "sudoku6-hard-hrm"
    with open(hard / "raw" / "heldout.csv", newline="") as f:
        rows = [(q, a) for _, q, a, _ in list(csv.reader(f))[1:] if q.count(".") == 27][:24]
    plain = Solver(hard, device="cpu").solve_all([q for q, _ in rows])
    scaled_solver = Solver(hard, device="cpu", scaling="verify", budget=64)
    scaled = scaled_solver.solve_all([q for q, _ in rows])
    assert sum(s.verified for s in plain) < len(rows)  # what is there to gain
    assert all(s.attempts is None and s.act_steps_total is None for s in plain)
    for (_, answer), p, s in zip(rows, plain, scaled):
        assert s.verified and s.answer == answer  # unique solutions: valid means the known answer
        assert s.selected_by == "verified" and s.max_steps == 64
        assert 1 <= s.solved_at_attempt <= s.attempts and s.steps <= s.act_steps_total <= 64
        if p.verified:  # solved at once: the same answer, the same steps, nothing more spent
            assert (s.attempts, s.act_steps_total, s.steps, s.answer) == (1, p.steps, p.steps, p.answer)
    assert any(s.solved_at_attempt > 1 for s in scaled)
    assert json.loads(json.dumps(scaled[0].to_dict()))["act_steps_total"] == scaled[0].act_steps_total
    with pytest.raises(HRMEvalError, match="--scaling: budget must be >= 1"):
        Solver(hard, device="cpu", scaling="verify", budget=0)
