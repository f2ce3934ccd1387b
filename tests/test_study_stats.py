"""The study's statistics and verdict rules against hand computations and hand-made tables."""

from __future__ import annotations

import math

import pytest

from qbn.study.stats import Estimate, estimate, paired_difference, t_quantile
from qbn.study.verdicts import HELD, INCONCLUSIVE, NOT_HELD, below, combine, equivalent, not_worse

# Student's t, 97.5 % quantile, from a printed table: 2 and 4 degrees of freedom
T_2, T_4 = 4.303, 2.776


def test_t_quantile_matches_the_printed_table():
    assert t_quantile(3) == pytest.approx(T_2, abs=5e-4)
    assert t_quantile(5) == pytest.approx(T_4, abs=5e-4)


def test_estimate_by_hand():
    # 0.90, 0.92, 0.94: mean 0.92, deviations -0.02, 0, 0.02 -> variance 0.0008 / 2 = 0.0004, std 0.02
    e = estimate([0.90, 0.92, 0.94])
    half = T_2 * 0.02 / math.sqrt(3)     # 0.04968
    assert (e.mean, e.n) == (pytest.approx(0.92), 3)
    assert e.std == pytest.approx(0.02)
    assert e.lo == pytest.approx(0.92 - half, abs=1e-5)
    assert e.hi == pytest.approx(0.92 + half, abs=1e-5)


def test_paired_difference_uses_common_seeds_only():
    a = {0: 0.91, 1: 0.93, 2: 0.90, 3: 0.5}
    b = {0: 0.90, 1: 0.90, 2: 0.90}          # seed 3 has no partner: left out
    e = paired_difference(a, b)
    # differences 0.01, 0.03, 0.00: mean 0.013333, std sqrt(((-1/3)^2 + (5/3)^2 + (-4/3)^2) / 2) / 100 = 0.015275
    assert e.n == 3
    assert e.mean == pytest.approx(0.0133333, abs=1e-6)
    assert e.std == pytest.approx(0.0152753, abs=1e-6)
    assert e.hi - e.mean == pytest.approx(T_2 * 0.0152753 / math.sqrt(3), abs=1e-4)


def test_one_or_no_value_has_no_interval():
    one, none = estimate([0.5]), estimate([None])
    assert one.n == 1 and math.isnan(one.lo)
    assert none.n == 0 and math.isnan(none.mean)


def E(lo, hi, n=3):
    return Estimate((lo + hi) / 2, 0.01, n, lo, hi)


@pytest.mark.parametrize("e, verdict", [
    (E(-0.004, 0.006), HELD),             # wholly inside ±1 point
    (E(0.012, 0.03), NOT_HELD),           # wholly above +1 point
    (E(-0.05, -0.02), NOT_HELD),          # wholly below -1 point
    (E(-0.02, 0.005), INCONCLUSIVE),      # straddles the margin
    (E(-0.001, 0.001, n=1), INCONCLUSIVE),  # one seed: no interval
])
def test_equivalent(e, verdict):
    assert equivalent(e, 0.01) == verdict


@pytest.mark.parametrize("e, verdict", [
    (E(-0.008, 0.01), HELD), (E(-0.04, -0.011), NOT_HELD), (E(-0.03, 0.0), INCONCLUSIVE)])
def test_not_worse(e, verdict):
    assert not_worse(e, 0.01) == verdict


@pytest.mark.parametrize("e, verdict", [(E(0.2, 0.45), HELD), (E(0.55, 0.9), NOT_HELD), (E(0.3, 0.7), INCONCLUSIVE),
                                        (E(0.5, 0.5), INCONCLUSIVE)])   # exactly at the threshold: not below it
def test_below(e, verdict):
    assert below(e, 0.5) == verdict


def test_combine():
    assert combine([HELD, HELD]) == HELD
    assert combine([HELD, NOT_HELD, INCONCLUSIVE]) == NOT_HELD
    assert combine([HELD, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([]) == INCONCLUSIVE
