"""The study's statistics and verdict rules against hand computations and hand-made tables."""

from __future__ import annotations

import math

import pytest

from qbn.study.intervals import EQUIVALENCE_LEVEL, Estimate, estimate, paired_difference, t_quantile
from qbn.study.verdicts import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    below,
    combine,
    equivalent,
    goal,
    not_worse,
    tost,
)

# Student's t, 97.5 % quantile, from a printed table: 2 and 4 degrees of freedom; 95 % quantile, 4
T_2, T_4 = 4.303, 2.776
T_4_90 = 2.132


def test_t_quantile_matches_the_printed_table():
    assert t_quantile(3) == pytest.approx(T_2, abs=5e-4)
    assert t_quantile(5) == pytest.approx(T_4, abs=5e-4)


def test_estimate_by_hand():
    # 0.90, 0.92, 0.94: mean 0.92, deviations -0.02, 0, 0.02 -> variance 0.0008 / 2 = 0.0004, std 0.02
    e = estimate([0.90, 0.92, 0.94])
    half = T_2 * 0.02 / math.sqrt(3)  # 0.04968
    assert (e.mean, e.n) == (pytest.approx(0.92), 3)
    assert e.std == pytest.approx(0.02)
    assert e.lo == pytest.approx(0.92 - half, abs=1e-5)
    assert e.hi == pytest.approx(0.92 + half, abs=1e-5)


def test_paired_difference_uses_common_seeds_only():
    a = {0: 0.91, 1: 0.93, 2: 0.90, 3: 0.5}
    b = {0: 0.90, 1: 0.90, 2: 0.90}  # seed 3 has no partner: left out
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


@pytest.mark.parametrize(
    "e, verdict",
    [
        (E(-0.004, 0.006), HELD),  # wholly inside ±1 point
        (E(0.012, 0.03), NOT_HELD),  # wholly above +1 point
        (E(-0.05, -0.02), NOT_HELD),  # wholly below -1 point
        (E(-0.02, 0.005), INCONCLUSIVE),  # straddles the margin
        (E(-0.001, 0.001, n=1), INCONCLUSIVE),  # one seed: no interval
    ],
)
def test_equivalent(e, verdict):
    assert equivalent(e, 0.01) == verdict


@pytest.mark.parametrize(
    "e, verdict", [(E(-0.008, 0.01), HELD), (E(-0.04, -0.011), NOT_HELD), (E(-0.03, 0.0), INCONCLUSIVE)]
)
def test_not_worse(e, verdict):
    assert not_worse(e, 0.01) == verdict


@pytest.mark.parametrize(
    "e, verdict",
    [(E(0.2, 0.45), HELD), (E(0.55, 0.9), NOT_HELD), (E(0.3, 0.7), INCONCLUSIVE), (E(0.5, 0.5), INCONCLUSIVE)],
)  # exactly at the threshold: not below it
def test_below(e, verdict):
    assert below(e, 0.5) == verdict


def test_combine():
    assert combine([HELD, HELD]) == HELD
    assert combine([HELD, NOT_HELD, INCONCLUSIVE]) == NOT_HELD
    assert combine([HELD, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([]) == INCONCLUSIVE


def test_t_quantile_of_the_equivalence_test_matches_the_printed_table():
    assert t_quantile(5, EQUIVALENCE_LEVEL) == pytest.approx(T_4_90, abs=5e-4)


# TOST on hand-made tables: five seeds' accuracies of a scheme and of xnor; the 90 % interval of
# the paired differences by hand: mean ± 2.132 * std / sqrt(5)
@pytest.mark.parametrize(
    "scheme, xnor, verdict",
    [
        # differences +0.1, -0.2, +0.2, 0, -0.1 points: mean 0, std 0.158 -> ±0.15: within ±1 point
        ((0.901, 0.908, 0.907, 0.895, 0.907), (0.900, 0.910, 0.905, 0.895, 0.908), HELD),
        # differences -3.0, -3.5, -3.2, -3.1, -2.9: mean -3.14, std 0.23 -> [-3.36, -2.92]: wholly below -1
        ((0.870, 0.875, 0.873, 0.864, 0.879), (0.900, 0.910, 0.905, 0.895, 0.908), NOT_HELD),
        # differences +1, -1.2, +2, -1.5, 0: mean 0.06, std 1.46 -> [-1.34, +1.46]: straddles ±1
        ((0.910, 0.898, 0.925, 0.880, 0.908), (0.900, 0.910, 0.905, 0.895, 0.908), INCONCLUSIVE),
    ],
)
def test_tost_on_hand_made_tables(scheme, xnor, verdict):
    d = paired_difference(dict(enumerate(scheme)), dict(enumerate(xnor)), EQUIVALENCE_LEVEL)
    diffs = [a - b for a, b in zip(scheme, xnor, strict=True)]
    mean = sum(diffs) / 5
    std = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 4)
    assert d.lo == pytest.approx(mean - T_4_90 * std / math.sqrt(5), abs=1e-5)
    assert d.hi == pytest.approx(mean + T_4_90 * std / math.sqrt(5), abs=1e-5)
    assert tost(d, 0.01) == verdict


def test_tost_refuses_a_95_percent_interval():
    with pytest.raises(ValueError, match="90 % interval"):
        tost(estimate([0.001, -0.002, 0.0]), 0.01)


def test_equal_values_are_flagged_and_have_no_interval_width():
    e = estimate([0.25, 0.25, 0.25])
    assert e.all_equal and e.std == 0.0 and e.lo == e.hi == 0.25
    assert estimate([0.9 - 0.05, 0.91 - 0.06, 0.905 - 0.055]).all_equal  # equal up to float rounding
    assert not estimate([0.25, 0.25, 0.26]).all_equal
    assert e.pp() == "+25.00 (all 3 seeds equal)"


@pytest.mark.parametrize(
    "e, bits, verdict",
    [
        (E(-0.008, 0.002), 0.445, HELD),
        (E(-0.008, 0.002), 0.46, NOT_HELD),  # within 1 point, but too many bits
        (E(-0.05, -0.02), 0.445, NOT_HELD),
        (E(-0.02, 0.0), 0.445, INCONCLUSIVE),
        (E(-0.008, 0.002), None, INCONCLUSIVE),
    ],
)
def test_goal_of_issue_21(e, bits, verdict):
    assert goal(e, bits) == verdict
