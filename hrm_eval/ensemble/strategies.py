"""Combining members' predictions: average, vote, q_vote, stacking.

Every strategy sees the *voters* of a chunk of puzzles: one voter per (member, test-time
view), each with its log-probabilities [B, L, C] (the member's own normalisation: stablemax or
softmax), its q_halt logit and a weight (the member's weight divided by the number of views).
Each strategy returns, per puzzle, a distribution over tokens whose argmax is its answer, a
confidence (as a q_halt logit), steps and halted flags: the ensemble is then scored with the
same `row_metrics` as a single model.

- average: the weighted mean of the voters' probabilities.
- vote: whole answers pooled; the answer with the largest summed weight wins, ties broken by
  the weighted mean sigmoid(q_halt) of its voters (the ARC scorer's rule), then first seen.
- q_vote: as vote, each vote weighted by the voter's sigmoid(q_halt) (ties: summed weight).
- stacking: a logistic regression, fitted on a calibration split, scores each candidate answer
  from per-member features; the best-scoring candidate wins.
For the answer-level strategies the distribution is the weighted mean of the winning voters'
probabilities (its argmax is their common answer) and the confidence their mean sigmoid(q_halt)
(stacking: the meta-learner's probability that the answer is right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

STRATEGIES = ("average", "vote", "q_vote", "stacking")
STACKER_FORMAT = "hrm_eval.stacker/1"
_ROUND = 12  # digits kept when comparing summed weights (1/3 + 1/3 == 2/3)


@dataclass
class Voters:
    """The voters on a chunk of B puzzles: K = members x views."""

    logp: torch.Tensor  # [K, B, L, C] float64 log-probabilities
    q: torch.Tensor  # [K, B] float64 q_halt logits
    steps: torch.Tensor  # [K, B] float64
    halted: torch.Tensor  # [K, B] bool
    weight: torch.Tensor  # [K] float64, sums to 1
    member: torch.Tensor  # [K] long: the member of each voter
    num_members: int

    @property
    def preds(self) -> torch.Tensor:
        return self.logp.argmax(-1)  # [K, B, L]

    @property
    def num_voters(self) -> int:
        return self.logp.shape[0]


@dataclass
class Combined:
    logp: torch.Tensor  # [B, L, C] float64: the ensemble's distribution
    q: torch.Tensor  # [B] float64 q_halt logit: the ensemble's confidence
    steps: torch.Tensor  # [B] float64
    halted: torch.Tensor  # [B] bool
    support: torch.Tensor  # [B] float64: share of the voters' weight behind the answer (average: 1)
    num_candidates: torch.Tensor  # [B] distinct answers among the voters

    @property
    def answer(self) -> torch.Tensor:
        return self.logp.argmax(-1)


def mix(voters: Voters, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted mixture with per-puzzle voter weights u [K, B] (zero = left out; normalised
    here): (log-probabilities [B, L, C], q logit of the mean sigmoid(q), steps, halted)."""
    u = u / u.sum(0, keepdim=True)
    log_u = torch.log(u)  # -inf where left out
    logp = torch.logsumexp(voters.logp + log_u[:, :, None, None], dim=0)
    # logit(sum u sigmoid(q)), computed without forming sigmoid(q) (exact for one voter)
    q = torch.logsumexp(log_u + F.logsigmoid(voters.q), 0) - torch.logsumexp(log_u + F.logsigmoid(-voters.q), 0)
    steps = (u * voters.steps).sum(0)
    halted = (voters.halted | (u == 0)).all(0)
    return logp, q, steps, halted


def _force_answer(logp: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """Mixing the winners' distributions keeps their common argmax; guard against float ties."""
    wrong = logp.argmax(-1) != answer
    if wrong.any():
        top = logp.max(-1).values
        picked = torch.gather(logp, -1, answer.unsqueeze(-1)).squeeze(-1)
        fixed = torch.where(wrong, torch.nextafter(top, torch.full_like(top, math.inf)), picked)
        logp = logp.scatter(-1, answer.unsqueeze(-1), fixed.unsqueeze(-1))
    return logp


# ---- average ---------------------------------------------------------------------------------
def average(voters: Voters) -> Combined:
    K, B = voters.q.shape
    u = voters.weight[:, None].expand(K, B).clone()
    logp, q, steps, halted = mix(voters, u)
    return Combined(logp, q, steps, halted, torch.ones(B, dtype=torch.float64), _count_candidates(voters))


def _count_candidates(voters: Voters) -> torch.Tensor:
    preds = voters.preds
    return torch.tensor(
        [len({preds[k, b].numpy().tobytes() for k in range(voters.num_voters)}) for b in range(preds.shape[1])],
        dtype=torch.long,
    )


# ---- answer-level voting ---------------------------------------------------------------------
@dataclass
class Candidate:
    answer: torch.Tensor  # [L]
    voters: list[int]
    weight: float  # summed voter weight
    q_weight: float  # summed weight * sigmoid(q)

    @property
    def mean_q(self) -> float:
        return self.q_weight / self.weight if self.weight > 0 else 0.0


def candidates(voters: Voters, b: int, *, by_q: bool = False) -> list[Candidate]:
    """Distinct answers of puzzle b, best first (vote: weight, then mean sigmoid(q); q_vote:
    summed weight x sigmoid(q), then weight); ties keep the order first seen (member order)."""
    preds = voters.preds[:, b]
    sig = torch.sigmoid(voters.q[:, b])
    found: dict[bytes, Candidate] = {}
    for k in range(voters.num_voters):
        key = preds[k].numpy().tobytes()
        w = float(voters.weight[k])
        c = found.get(key)
        if c is None:
            found[key] = Candidate(preds[k], [k], w, w * float(sig[k]))
        else:
            c.voters.append(k)
            c.weight += w
            c.q_weight += w * float(sig[k])
    pool = list(found.values())
    if by_q:
        return sorted(pool, key=lambda c: (-round(c.q_weight, _ROUND), -round(c.weight, _ROUND)))
    return sorted(pool, key=lambda c: (-round(c.weight, _ROUND), -round(c.mean_q, _ROUND)))


def _from_choices(
    voters: Voters,
    chosen: list[Candidate],
    q_override: torch.Tensor | None = None,
    counts: list[int] | None = None,
) -> Combined:
    K, B = voters.q.shape
    u = torch.zeros(K, B, dtype=torch.float64)
    for b, c in enumerate(chosen):
        u[c.voters, b] = voters.weight[c.voters]
    logp, q, steps, halted = mix(voters, u)
    logp = _force_answer(logp, torch.stack([c.answer for c in chosen]))
    support = torch.tensor([c.weight for c in chosen], dtype=torch.float64)
    n = torch.tensor(counts if counts is not None else [0] * B, dtype=torch.long)
    return Combined(logp, q if q_override is None else q_override, steps, halted, support, n)


def vote(voters: Voters, *, by_q: bool = False) -> Combined:
    pools = [candidates(voters, b, by_q=by_q) for b in range(voters.q.shape[1])]
    return _from_choices(voters, [p[0] for p in pools], counts=[len(p) for p in pools])


def q_vote(voters: Voters) -> Combined:
    return vote(voters, by_q=True)


# ---- stacking --------------------------------------------------------------------------------
def feature_names(num_members: int) -> list[str]:
    names = []
    for m in range(num_members):
        names += [f"m{m + 1}_agree", f"m{m + 1}_q_agree", f"m{m + 1}_logp_mean", f"m{m + 1}_logp_min"]
    return names + ["vote_share", "inv_num_candidates"]


def candidate_features(voters: Voters, b: int, pool: list[Candidate]) -> torch.Tensor:
    """[num candidates, 4 M + 2] features of each candidate answer of puzzle b, per member m
    (averaged over its views): share of its views giving this answer, mean sigmoid(q_halt) of
    those views (0 if none), mean and min token log-probability of the answer under the member;
    then the answer's share of all votes and 1 / the number of distinct answers."""
    M = voters.num_members
    answers = torch.stack([c.answer for c in pool])  # [n, L]
    logp_b = voters.logp[:, b]  # [K, L, C]
    idx = answers.unsqueeze(0).expand(voters.num_voters, -1, -1)  # [K, n, L]
    token_lp = torch.gather(logp_b, -1, idx.transpose(1, 2)).transpose(1, 2)  # [K, n, L]
    token_lp = token_lp.clamp_min(-50.0)  # stablemax/softmax zeros stay finite
    lp_mean, lp_min = token_lp.mean(-1), token_lp.min(-1).values  # [K, n]
    sig = torch.sigmoid(voters.q[:, b])  # [K]
    agree = torch.zeros(voters.num_voters, len(pool), dtype=torch.float64)
    for j, c in enumerate(pool):
        agree[c.voters, j] = 1.0
    feats = []
    for m in range(M):
        ks = (voters.member == m).nonzero().squeeze(-1)
        a = agree[ks]  # [V, n]
        n_agree = a.sum(0)
        feats += [
            a.mean(0),
            torch.where(n_agree > 0, (a * sig[ks, None]).sum(0) / n_agree.clamp_min(1), 0.0),
            lp_mean[ks].mean(0),
            lp_min[ks].mean(0),
        ]
    share = torch.tensor([c.weight for c in pool], dtype=torch.float64)
    feats += [share, torch.full((len(pool),), 1.0 / len(pool), dtype=torch.float64)]
    return torch.stack(feats, dim=1)


class LogisticStacker:
    """Logistic regression over candidate features: P(candidate answer is right).
    Features are standardised with the calibration split's mean and std; L2 on the weights."""

    def __init__(
        self,
        names: list[str],
        mean: torch.Tensor,
        std: torch.Tensor,
        coef: torch.Tensor,
        intercept: float,
        l2: float,
        info: dict[str, Any] | None = None,
    ):
        self.names, self.mean, self.std, self.coef, self.intercept, self.l2 = (
            names,
            mean,
            std,
            coef,
            float(intercept),
            l2,
        )
        self.info = info or {}

    @classmethod
    def fit(
        cls, X: torch.Tensor, y: torch.Tensor, names: list[str], *, l2: float = 1e-2, max_iter: int = 100
    ) -> LogisticStacker:
        """Newton's method (with a backtracking line search) on the mean log-loss + l2/2 |coef|^2.
        When the calibration candidates are all right or all wrong there is nothing to learn:
        the coefficients stay 0 and the choice falls back to the vote order."""
        if len(X) == 0:
            raise HRMEvalError("stacking: the calibration split has no puzzles to fit on")
        X, y = X.to(torch.float64), y.to(torch.float64)
        mean, std = X.mean(0), X.std(0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        A = torch.cat([(X - mean) / std, torch.ones(len(X), 1, dtype=torch.float64)], dim=1)
        p0 = float(y.mean().clamp(1e-4, 1 - 1e-4))
        theta = torch.zeros(A.shape[1], dtype=torch.float64)
        theta[-1] = math.log(p0 / (1 - p0))
        reg = torch.full((A.shape[1],), l2, dtype=torch.float64)
        reg[-1] = 0.0
        degenerate = bool(y.min() == y.max())

        def loss(t: torch.Tensor) -> float:
            return float(F.binary_cross_entropy_with_logits(A @ t, y) + 0.5 * (reg * t * t).sum())

        iterations = 0
        if not degenerate:
            current = loss(theta)
            for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
                p = torch.sigmoid(A @ theta)
                grad = A.T @ (p - y) / len(y) + reg * theta
                hess = (
                    A.T @ (A * (p * (1 - p))[:, None]) / len(y)
                    + torch.diag(reg)
                    + 1e-9 * torch.eye(len(theta), dtype=torch.float64)
                )
                step = torch.linalg.solve(hess, grad)
                t = 1.0
                while t > 1e-8:
                    candidate = theta - t * step
                    new = loss(candidate)
                    if new <= current:
                        break
                    t /= 2
                else:
                    break
                theta, improvement, current = candidate, current - new, new
                if float((t * step).abs().max()) < 1e-10 or improvement < 1e-14:
                    break
        stacker = cls(names, mean, std, theta[:-1].clone(), float(theta[-1]), l2)
        pred = stacker.predict(X)
        stacker.info = {
            "num_candidates": len(X),
            "num_positive": int(y.sum()),
            "newton_iterations": iterations,
            "degenerate": degenerate,
            "log_loss": float(F.binary_cross_entropy(pred.clamp(1e-12, 1 - 1e-12), y)),
            "accuracy": float(((pred >= 0.5) == (y > 0.5)).double().mean()),
        }
        return stacker

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return ((X.to(torch.float64) - self.mean) / self.std) @ self.coef + self.intercept

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(X))

    def to_json(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": STACKER_FORMAT,
            "model": "logistic_regression",
            "features": self.names,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "l2": self.l2,
            "fit": self.info,
            **extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> LogisticStacker:
        if not isinstance(data, dict) or data.get("format") != STACKER_FORMAT:
            raise HRMEvalError(f"{where} is not a stacker saved by hrm-eval (format {STACKER_FORMAT})")
        try:
            t = lambda k: torch.tensor(data[k], dtype=torch.float64)  # noqa: E731
            stacker = cls(
                list(data["features"]),
                t("mean"),
                t("std"),
                t("coef"),
                float(data["intercept"]),
                float(data.get("l2", 0.0)),
                data.get("fit"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise HRMEvalError(f"{where}: malformed stacker ({type(e).__name__}: {e})") from e
        n = len(stacker.names)
        if not (len(stacker.mean) == len(stacker.std) == len(stacker.coef) == n):
            raise HRMEvalError(f"{where}: malformed stacker (feature vectors of different lengths)")
        return stacker


def stacking_training_data(voters: Voters, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, is-right) of every candidate answer of every puzzle in the chunk."""
    scored = labels != -100
    X, y = [], []
    for b in range(voters.q.shape[1]):
        pool = candidates(voters, b)
        X.append(candidate_features(voters, b, pool))
        y += [float(bool(((c.answer == labels[b]) | ~scored[b]).all())) for c in pool]
    return torch.cat(X), torch.tensor(y, dtype=torch.float64)


def stacking(voters: Voters, stacker: LogisticStacker) -> Combined:
    if len(stacker.names) != len(feature_names(voters.num_members)):
        raise HRMEvalError(
            f"the stacker was fitted for {(len(stacker.names) - 2) // 4} members, "
            f"this ensemble has {voters.num_members}"
        )
    chosen, qs, counts = [], [], []
    for b in range(voters.q.shape[1]):
        pool = candidates(voters, b)
        logit = stacker.logits(candidate_features(voters, b, pool))
        j = int(torch.argmax(logit))  # first best: ties fall back to the vote order
        chosen.append(pool[j])
        qs.append(float(logit[j]))
        counts.append(len(pool))
    return _from_choices(voters, chosen, q_override=torch.tensor(qs, dtype=torch.float64), counts=counts)


# ---- weights ---------------------------------------------------------------------------------
def check_weights(weights: Sequence[float], num_members: int) -> list[float]:
    w = [float(x) for x in weights]
    if len(w) != num_members:
        raise HRMEvalError(
            f"--weights: {len(w)} value{'s' if len(w) != 1 else ''} for {num_members} member"
            f"{'s' if num_members != 1 else ''} (give one weight per checkpoint)"
        )
    bad = next((x for x in w if not math.isfinite(x) or x < 0), None)
    if bad is not None:
        raise HRMEvalError(f"--weights: {bad} is not a finite non-negative number")
    if sum(w) <= 0:
        raise HRMEvalError("--weights: at least one weight must be positive")
    return [x / sum(w) for x in w]


def weights_from_accuracy(exact: Sequence[float], token: Sequence[float]) -> tuple[list[float], str]:
    """Weights proportional to validation exact accuracy (token accuracy when no member solves
    any validation puzzle; uniform when those are all zero too)."""
    for values, basis in ((exact, "exact_accuracy"), (token, "accuracy")):
        total = float(sum(values))
        if total > 0:
            return [float(v) / total for v in values], basis
    n = len(exact)
    return [1.0 / n] * n, "uniform (every member scored 0 on the validation split)"


def load_stacker_file(path: str) -> dict[str, Any]:
    return guarded.mapping(guarded.read_json(path, "stacker"), f"stacker {path}", "a JSON object")
