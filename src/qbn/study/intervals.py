"""The study's statistics: mean, standard deviation and the confidence interval of a mean
(Student's t; 95 % unless a rule asks for another level), and the paired-by-seed difference of
two settings.

With 3 seeds the t quantile is 4.30 (not the normal 1.96): the intervals are honest about how
little 3 runs say, which is why every verdict reads the interval, not the mean. Equivalence
(claim 1) is two one-sided tests at 5 %, i.e. a 90 % interval (EQUIVALENCE_LEVEL).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy.stats import t as student_t

LEVEL = 0.95
EQUIVALENCE_LEVEL = 0.90   # two one-sided tests at 5 % each: the 90 % two-sided interval


@dataclass(frozen=True)
class Estimate:
    """Mean of n values with its sample std and the LEVEL confidence interval [lo, hi]."""

    mean: float
    std: float
    n: int
    lo: float
    hi: float
    level: float = LEVEL

    @property
    def all_equal(self) -> bool:
        """Two or more values, all the same: the interval has zero width and is not one."""
        return self.n >= 2 and self.std == 0.0

    def pp(self) -> str:
        """In percentage points: 'mean [lo, hi]', '-' without values."""
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{100 * self.mean:+.2f} (1 seed, no interval)"
        if self.all_equal:
            return f"{100 * self.mean:+.2f} (all {self.n} seeds equal)"
        return f"{100 * self.mean:+.2f} [{100 * self.lo:+.2f}, {100 * self.hi:+.2f}]"


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided t quantile for a mean of n values (n - 1 degrees of freedom)."""
    return float(student_t.ppf(0.5 + level / 2, n - 1))


def estimate(values, level: float = LEVEL) -> Estimate:
    """Mean, sample std (n - 1) and mean ± t * std / sqrt(n); NaN bounds for fewer than 2 values."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan, math.nan, level)
    mean = statistics.fmean(vals)
    if n == 1:
        return Estimate(mean, 0.0, 1, math.nan, math.nan, level)
    # values equal up to float rounding (0.900 - 0.05 and 0.91 - 0.06) are equal: no interval
    std = 0.0 if max(vals) - min(vals) <= 1e-12 * max(1.0, abs(mean)) else statistics.stdev(vals)
    half = t_quantile(n, level) * std / math.sqrt(n)
    return Estimate(mean, std, n, mean - half, mean + half, level)


def paired_difference(a: dict, b: dict, level: float = LEVEL) -> Estimate:
    """The estimate of a - b over the keys (seeds) both have a value for."""
    seeds = sorted(k for k in a if k in b and a[k] is not None and b[k] is not None)
    return estimate([a[s] - b[s] for s in seeds], level)
