"""The combination rules on hand-made voters whose right answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from hrm_eval.ensemble.strategies import (
    LogisticStacker,
    Voters,
    average,
    candidates,
    check_weights,
    feature_names,
    q_vote,
    stacking,
    stacking_training_data,
    vote,
    weights_from_accuracy,
)
from hrm_eval.utils.errors import HRMEvalError

C = 4  # tokens


def voters_from(answers, confidences, q, weight=None, sharp: float = 3.0) -> Voters:
    """K voters on B puzzles of L cells: voter k puts probability mass `confidences[k][b]` on
    `answers[k][b]` at every cell (the rest spread evenly)."""
    answers = torch.tensor(answers)  # [K, B, L]
    K, B, L = answers.shape
    conf = torch.tensor(confidences, dtype=torch.float64)[:, :, None, None]  # [K, B, 1, 1]
    p = ((1 - conf) / (C - 1)).expand(K, B, L, C).clone()
    p.scatter_(-1, answers.unsqueeze(-1), conf.expand(K, B, L, 1))
    w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weight is None else torch.tensor(weight, dtype=torch.float64)
    return Voters(
        p.log(),
        torch.tensor(q, dtype=torch.float64),
        torch.full((K, B), 4.0, dtype=torch.float64),
        torch.ones(K, B, dtype=torch.bool),
        w / w.sum(),
        torch.arange(K),
        K,
    )


def test_average_is_the_weighted_mean_of_probabilities():
    v = voters_from([[[0, 1]], [[2, 1]]], [[0.6], [0.9]], [[0.0], [2.0]], weight=[3, 1])
    comb = average(v)
    p = v.logp.exp()
    expected = 0.75 * p[0] + 0.25 * p[1]
    assert torch.allclose(comb.logp.exp(), expected, atol=1e-12)
    assert comb.answer.tolist() == [[0, 1]]  # cell 0: 0.75*0.6 = 0.45 for token 0 vs 0.25*0.9 = 0.225 for token 2
    conf = 0.75 * 0.5 + 0.25 / (1 + math.exp(-2.0))
    assert math.isclose(float(torch.sigmoid(comb.q[0])), float(conf), rel_tol=1e-12)


def test_one_voter_is_returned_unchanged_by_every_mixture():
    v = voters_from([[[0, 3, 1]]], [[0.7]], [[-1.5]])
    for comb in (average(v), vote(v), q_vote(v)):
        assert torch.allclose(comb.logp, v.logp[0], atol=1e-12)
        assert math.isclose(float(comb.q[0]), -1.5, rel_tol=1e-12)


def test_vote_takes_the_majority_answer_not_the_most_confident():
    # puzzle 0: two voters say [1, 1], one very sure voter says [2, 2]
    v = voters_from([[[1, 1]], [[1, 1]], [[2, 2]]], [[0.4], [0.4], [0.99]], [[0.0], [0.0], [5.0]])
    assert vote(v).answer.tolist() == [[1, 1]]
    assert average(v).answer.tolist() == [[2, 2]]  # the mean probability follows the sure voter
    comb = vote(v)
    assert math.isclose(float(comb.support[0]), 2 / 3) and int(comb.num_candidates[0]) == 2
    # the distribution is the winners' mean: their argmax, their confidence
    assert torch.allclose(comb.logp, v.logp[0], atol=1e-12)
    assert math.isclose(float(comb.q[0]), 0.0, abs_tol=1e-12)


def test_vote_ties_are_broken_by_mean_halting_confidence_then_first_seen():
    v = voters_from([[[1]], [[2]]], [[0.9], [0.5]], [[-1.0], [1.0]])
    assert vote(v).answer.tolist() == [[2]]  # same count, voter 2 more sure it is right
    v = voters_from([[[1]], [[2]]], [[0.9], [0.5]], [[1.0], [1.0]])
    assert vote(v).answer.tolist() == [[1]]  # full tie: first seen (member order)


def test_q_vote_weights_each_vote_by_sigmoid_q_halt():
    # two voters for [1] with sigmoid(q) ~ 0.12 each, one for [2] with sigmoid(q) ~ 0.95
    v = voters_from([[[1]], [[1]], [[2]]], [[0.9], [0.9], [0.6]], [[-2.0], [-2.0], [3.0]])
    assert vote(v).answer.tolist() == [[1]]
    assert q_vote(v).answer.tolist() == [[2]]
    pool = candidates(v, 0, by_q=True)
    assert math.isclose(pool[0].q_weight, 1 / (1 + math.exp(-3.0)) / 3, rel_tol=1e-12)


def test_member_weights_change_the_vote():
    v = voters_from([[[1]], [[1]], [[2]]], [[0.9], [0.9], [0.9]], [[0.0], [0.0], [0.0]], weight=[1, 1, 3])
    assert vote(v).answer.tolist() == [[2]]


def test_stacker_learns_which_member_to_trust_and_beats_the_vote():
    """Member 1 is right whenever it disagrees with members 2 and 3 (who share their mistakes);
    a vote follows the majority, the fitted stacker follows member 1."""
    torch.manual_seed(0)
    B, L = 60, 3
    truth = torch.randint(0, C, (B, L))
    wrong = (truth + 1) % C
    answers = torch.stack([truth, wrong, wrong])
    answers[1:, :10] = truth[:10]  # on the first 10 puzzles everyone is right
    v = voters_from(answers.tolist(), [[0.8] * B] * 3, [[0.0] * B] * 3)
    X, y = stacking_training_data(v, truth)
    assert X.shape == (int(y.numel()), len(feature_names(3)))
    stacker = LogisticStacker.fit(X, y, feature_names(3))
    assert stacker.info["accuracy"] == 1.0 and not stacker.info["degenerate"]
    assert (vote(v).answer == truth).all(-1).sum() == 10
    assert (stacking(v, stacker).answer == truth).all(-1).all()
    # saved and read back: the same choices
    again = LogisticStacker.from_json(stacker.to_json({}), "stacker.json")
    assert torch.equal(stacking(v, again).answer, stacking(v, stacker).answer)


def test_stacker_with_nothing_to_learn_falls_back_to_the_vote():
    v = voters_from([[[1]], [[1]], [[2]]], [[0.9], [0.9], [0.9]], [[0.0], [0.0], [4.0]])
    X, y = stacking_training_data(v, torch.tensor([[3]]))  # nobody is right
    stacker = LogisticStacker.fit(X, y, feature_names(3))
    assert stacker.info["degenerate"] and torch.all(stacker.coef == 0)
    assert torch.equal(stacking(v, stacker).answer, vote(v).answer)


def test_weights_are_checked_and_learned_from_accuracy():
    assert check_weights([1, 3], 2) == [0.25, 0.75]
    for bad, msg in (
        ([1], "1 value for 2 members"),
        ([1, -1], "non-negative"),
        ([0, 0], "positive"),
        ([1, float("nan")], "finite"),
    ):
        with pytest.raises(HRMEvalError, match=msg):
            check_weights(bad, 2)
    w, basis = weights_from_accuracy([0.2, 0.6], [0.5, 0.9])
    assert w == pytest.approx([0.25, 0.75]) and basis == "exact_accuracy"
    w, basis = weights_from_accuracy([0.0, 0.0], [0.25, 0.75])
    assert w == [0.25, 0.75] and basis == "accuracy"
    assert weights_from_accuracy([0, 0], [0, 0])[0] == [0.5, 0.5]
    with pytest.raises(HRMEvalError, match="not a stacker"):
        LogisticStacker.from_json({"format": "something else"}, "x.json")
