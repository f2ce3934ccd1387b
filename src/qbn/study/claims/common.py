"""What every claim's collector shares: labels of run groups, estimates by seed, cells."""

from __future__ import annotations

from ..collect import Run
from ..intervals import LEVEL, Estimate, estimate, paired_difference
from ..plan import norm_slug
from ..results import Num

NORM_LABEL = {"batch": "BatchNorm", "none": "no BatchNorm"}


def by_seed(runs: list[Run], value) -> dict:
    """{seed: value(run)} over the runs whose value is known."""
    out = {}
    for r in runs:
        v = value(r)
        if v is not None:
            out[r.seed] = v
    return out


def est(runs: list[Run], value, level: float = LEVEL) -> Estimate:
    return estimate(by_seed(runs, value).values(), level)


def diff(a: dict, b: dict, level: float = LEVEL) -> Estimate:
    return paired_difference(a, b, level)


def pct(e: Estimate, signed: bool = False) -> Num:
    """Accuracy or a share in percent (differences: percentage points, signed)."""
    return Num(e, 100.0, 2, signed)


def plain(e: Estimate, digits: int = 3, signed: bool = False) -> Num:
    return Num(e, 1.0, digits, signed)


def recipe_label(recipe: str) -> str:
    return recipe.replace("_", ", ")


def group_key(recipe: str, norm: str, epochs: int) -> str:
    """A run group's key part: adam_cosine.bn.e4."""
    return f"{recipe}.{norm_slug(norm)}.e{epochs}"


def group_label(recipe: str, norm: str, epochs: int) -> str:
    return f"{recipe_label(recipe)}, {NORM_LABEL.get(norm, norm)}, {epochs} epochs"
