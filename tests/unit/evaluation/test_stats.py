"""Intervals and the paired test against hand-computed cases and against scipy.stats values
(computed once with scipy 1.x and written here as constants: scipy is not a dependency)."""

import math

import numpy as np
import pytest

from hrm_eval.evaluation.stats import (
    Z95,
    bootstrap_mean_interval,
    mcnemar_exact,
    paired_test,
    rate_interval,
    wilson_interval,
)


def test_wilson_by_hand():
    # 0 of 10: lo = 0, hi = (z^2/n) / (1 + z^2/n) (the centre and half width coincide)
    z2n = Z95**2 / 10
    assert wilson_interval(0, 10) == [0.0, pytest.approx(z2n / (1 + z2n), abs=1e-15)]
    # 10 of 10 mirrors it
    assert wilson_interval(10, 10) == [pytest.approx(1 / (1 + z2n), abs=1e-15), 1.0]
    # 1 of 2: centre 1/2 exactly, symmetric
    lo, hi = wilson_interval(1, 2)
    assert lo + hi == pytest.approx(1.0, abs=1e-15) and lo > 0 and hi < 1
    assert wilson_interval(0, 0) == [0.0, 1.0]
    assert rate_interval(np.array([True] * 7 + [False] * 13)) == wilson_interval(7, 20)


# scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
SCIPY_WILSON = {
    (7, 20): (0.1811918241010821, 0.5671457233147637),
    (150, 300): (0.4437795161339169, 0.5562204838660831),
    (1, 300): (0.0005886577218511581, 0.018636693694531237),
    (171, 300): (0.513441160762328, 0.6247888232662354),
    (0, 10): (0.0, 0.27753279986288926),
}


@pytest.mark.parametrize("kn", sorted(SCIPY_WILSON))
def test_wilson_matches_scipy(kn):
    assert wilson_interval(*kn) == pytest.approx(list(SCIPY_WILSON[kn]), abs=1e-14)


def test_bootstrap_by_hand_and_against_scipy():
    assert bootstrap_mean_interval([0.25] * 50) == [0.25, 0.25]  # no spread: no uncertainty
    assert bootstrap_mean_interval([]) == [0.0, 0.0]
    x = np.array([0.2, 0.5, 0.9, 1.0, 0.0, 0.7, 0.3, 0.8, 0.6, 0.4])
    lo, hi = bootstrap_mean_interval(x)
    assert bootstrap_mean_interval(x) == [lo, hi]  # seeded: the same every time
    assert lo < x.mean() < hi
    # scipy.stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", random_state=1)
    assert (lo, hi) == pytest.approx((0.35, 0.72), abs=0.02)
    # the bootstrap standard error of a mean is close to sd / sqrt(n) on many puzzles
    rng = np.random.default_rng(3)
    y = rng.random(2000)
    lo, hi = bootstrap_mean_interval(y)
    assert (hi - lo) / (2 * Z95) == pytest.approx(y.std() / math.sqrt(y.size), rel=0.1)


def test_mcnemar_by_hand():
    # 0 vs 5 discordant: 2 * P(X <= 0) = 2 / 2^5
    assert mcnemar_exact(0, 5) == 2 / 32
    # 3 vs 12: 2 * (C(15,0) + C(15,1) + C(15,2) + C(15,3)) / 2^15 = 2 * 576 / 32768
    assert mcnemar_exact(3, 12) == pytest.approx(2 * 576 / 32768, rel=1e-12)
    assert mcnemar_exact(12, 3) == mcnemar_exact(3, 12)
    assert mcnemar_exact(10, 10) == 1.0 and mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(1, 0) == 1.0


# scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue
SCIPY_MCNEMAR = {(25, 40): 0.08168153394154003, (600, 700): 0.0060157938610449395}


@pytest.mark.parametrize("bc", sorted(SCIPY_MCNEMAR))
def test_mcnemar_matches_scipy(bc):
    assert mcnemar_exact(*bc) == pytest.approx(SCIPY_MCNEMAR[bc], rel=1e-9)


def test_paired_test_counts_the_table():
    # puzzles: both, A only x3, B only x1, neither x2
    a = [1, 1, 1, 1, 0, 0, 0]
    b = [1, 0, 0, 0, 1, 0, 0]
    t = paired_test(a, b, "step_5000", "step_2500")
    assert (t["both"], t["a_only"], t["b_only"], t["neither"]) == (1, 3, 1, 2)
    assert t["p_value"] == pytest.approx(2 * (1 + 4) / 16)  # n = 4, k = 1
    assert not t["significant"]
    assert t["statement"].startswith("step_5000 solves 3 puzzles step_2500 misses, step_2500 solves 1 step_5000 misses")
    with pytest.raises(ValueError, match="not the same puzzles"):
        paired_test([1, 0], [1], "a", "b")
