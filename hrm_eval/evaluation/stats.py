"""The uncertainty of a number measured on a finite set of puzzles: 95% intervals (Wilson for a
rate, a seeded percentile bootstrap over puzzles for a mean) and McNemar's exact test for two
things that ran on the same puzzles. The one place these are computed (results.json, the
summary, compare and the ensemble all call here); README: Reading the numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975): the two-sided 95% normal quantile
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same records always give the same interval
SIGNIFICANCE = 0.05
_BOOTSTRAP_CHUNK_VALUES = 4_000_000  # resample indices drawn per chunk: memory flat in the puzzle count

INTERVALS_DEFINITION = (
    "*_ci95: 95% interval [lo, hi] of the number beside it, from the puzzles measured (the uncertainty "
    "of measuring on this many puzzles, not of training). Rates (exact_accuracy, verified_solve_rate, "
    "q_halt_accuracy, per-difficulty exact_accuracy): Wilson score interval of k successes in n puzzles. "
    "Means over puzzles (accuracy = mean per-puzzle token accuracy): percentile bootstrap over puzzles, "
    f"{BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}."
)
PAIRED_TEST_DEFINITION = (
    "paired test of two runs on the same puzzles: McNemar's exact test, i.e. a two-sided binomial test "
    "(p = 1/2) on the discordant puzzles (solved by exactly one of the two). p < 0.05: the difference in "
    "exact accuracy is more than the noise of these puzzles; otherwise it is not shown to be."
)


def wilson_interval(k: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval of a rate k / n. Unlike p +/- z*SE it stays inside [0, 1] and does
    not collapse to a point at 0 / n or n / n. n == 0: [0, 1] (nothing is known)."""
    if n <= 0:
        return [0.0, 1.0]
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: k={k} outside 0..n={n}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # exact 0 and 1 at the ends (rounding would otherwise leave 1e-17 below 0 or above 1)
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return [lo, hi]


def rate_interval(successes: np.ndarray) -> list[float]:
    """Wilson interval of the share of True in a per-puzzle boolean vector."""
    s = np.asarray(successes, bool)
    return wilson_interval(int(s.sum()), int(s.size))


def bootstrap_mean_interval(
    values: Sequence[float] | np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> list[float]:
    """95% percentile bootstrap interval of the mean of per-puzzle `values`: the puzzles are
    resampled with replacement `resamples` times (seeded, so reproducible). No values: [0.0, 0.0],
    as the mean itself reads 0.0 then (NaN is not JSON)."""
    x = np.asarray(values, np.float64).ravel()
    n = x.size
    if n == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, np.float64)
    per_chunk = max(1, _BOOTSTRAP_CHUNK_VALUES // n)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return [float(lo), float(hi)]


def _log_binom_pmf(i: int, n: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided p-value of McNemar's exact test from the discordant counts: under "A and B are
    equally good", each of the n = a_only + b_only puzzles that only one solves is A's with
    probability 1/2, so p = min(1, 2 * P(Binomial(n, 1/2) <= min(a_only, b_only))).
    Summed in log space: exact to rounding for any n (2^-n underflows past n = 1074)."""
    if a_only < 0 or b_only < 0:
        raise ValueError("mcnemar_exact: counts must be >= 0")
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    logs = [_log_binom_pmf(i, n) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2.0 * tail)


def paired_test(a_solved: Any, b_solved: Any, a_name: str, b_name: str) -> dict[str, Any]:
    """McNemar's exact test of two per-puzzle solved vectors over the same puzzles, with the
    sentence the reports print: "A solves k puzzles B misses, B solves m A misses, p = ..."."""
    a, b = np.asarray(a_solved, bool).ravel(), np.asarray(b_solved, bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test: {a_name} has {a.size} puzzles, {b_name} {b.size}: not the same puzzles")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    p = mcnemar_exact(a_only, b_only)
    significant = p < SIGNIFICANCE
    statement = (
        f"{a_name} solves {a_only} puzzles {b_name} misses, {b_name} solves {b_only} {a_name} misses, "
        f"p = {p:.3g} (McNemar exact, {a.size} puzzles): "
        + ("a significant difference" if significant else "not a significant difference")
    )
    return {
        "a": a_name,
        "b": b_name,
        "num_puzzles": int(a.size),
        "a_only": a_only,
        "b_only": b_only,
        "both": int((a & b).sum()),
        "neither": int((~a & ~b).sum()),
        "p_value": p,
        "significant": significant,
        "test": "McNemar exact (two-sided binomial on the discordant puzzles)",
        "statement": statement,
    }
