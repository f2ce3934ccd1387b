"""Verdicts from intervals: each claim's rule reads a confidence interval against a margin.

- `equivalent`: the two settings are "nearly the same" when the whole interval of their
  difference lies within ±margin; they differ when it lies wholly outside; else inconclusive.
  With the 90 % interval (`tost`) this is the equivalence test of two one-sided tests at 5 %.
- `not_worse`: a setting keeps the reference's accuracy when the interval's lower bound is
  above -margin; it loses accuracy when the upper bound is below -margin; else inconclusive.
- `below`: a quantity is below a threshold when the upper bound is (strictly); above when the lower
  bound is; an interval touching the threshold is inconclusive.

An estimate from fewer than 2 seeds has no interval and is always inconclusive.
"""

from __future__ import annotations

import math

from .intervals import Estimate

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive"
# Claim 2 with a recipe under which at least 90 % of the signs never leave their initial value
# (SGD from a Kaiming init, for example): E_0.90 = 0 then holds by construction and says nothing
# about when signs settle.
UNTESTED = "not tested: >= 90 % of signs never flip"

# "Nearly the same accuracy" and "a small accuracy cost" (claims 1, 2, 4): one percentage point,
# about the seed-to-seed spread of a ResNet-20 on Fashion-MNIST and CIFAR-10.
ACCURACY_MARGIN = 0.01
# Claim 2, signs settle early: 90 % of the signs have made their last flip in the first half
# of training (E_0.90 / epochs <= 0.5).
SETTLE_SHARE = 0.5
# Claim 3, kernels cluster: the kernel entropy is at least half a bit per kernel below the
# 9 bits of 512 equally likely kernels, so 1 bit per weight is not the floor.
ENTROPY_THRESHOLD = 8.5
# Claim 3 against the null: the bias-corrected kernel entropy at least half a bit per kernel below
# the same layers' signs shuffled within each layer (same +1 share), i.e. clustering beyond what
# the sign balance alone gives.
CLUSTER_MARGIN = 0.5
# Issue 21's goal: a sub-bit method within ACCURACY_MARGIN of its matched control at n = 4, at
# most this many bits per binarized weight (measured from the packed file).
GOAL_BITS = 4
GOAL_BITS_PER_WEIGHT = 0.45


def _has_interval(e: Estimate) -> bool:
    return e.n >= 2 and not math.isnan(e.lo)


def equivalent(e: Estimate, margin: float = ACCURACY_MARGIN) -> str:
    if not _has_interval(e):
        return INCONCLUSIVE
    if -margin <= e.lo and e.hi <= margin:
        return HELD
    if e.lo > margin or e.hi < -margin:
        return NOT_HELD
    return INCONCLUSIVE


def tost(e: Estimate, margin: float = ACCURACY_MARGIN) -> str:
    """Two one-sided tests at 5 %: `e` must be a 90 % interval (stats.EQUIVALENCE_LEVEL)."""
    if _has_interval(e) and abs(e.level - 0.90) > 1e-9:
        raise ValueError(f"the equivalence test reads a 90 % interval, not a {100 * e.level:g} % one")
    return equivalent(e, margin)


def not_worse(e: Estimate, margin: float = ACCURACY_MARGIN) -> str:
    if not _has_interval(e):
        return INCONCLUSIVE
    if e.lo >= -margin:
        return HELD
    if e.hi < -margin:
        return NOT_HELD
    return INCONCLUSIVE


def below(e: Estimate, threshold: float) -> str:
    if not _has_interval(e):
        return INCONCLUSIVE
    if e.hi < threshold:
        return HELD
    if e.lo > threshold:
        return NOT_HELD
    return INCONCLUSIVE


def goal(e: Estimate, bits_per_weight: float | None, margin: float = ACCURACY_MARGIN,
         max_bits: float = GOAL_BITS_PER_WEIGHT) -> str:
    """Issue 21's n = 4 goal: within `margin` of the matched control (not_worse) at <= max_bits."""
    if bits_per_weight is None or bits_per_weight > max_bits:
        return NOT_HELD if bits_per_weight is not None else INCONCLUSIVE
    return not_worse(e, margin)


def combine(verdicts: list[str]) -> str:
    """All parts held -> held; any part did not hold -> did not hold; else inconclusive."""
    if verdicts and all(v == HELD for v in verdicts):
        return HELD
    if any(v == NOT_HELD for v in verdicts):
        return NOT_HELD
    return INCONCLUSIVE
