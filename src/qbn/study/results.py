"""The study's results as typed values, apart from how they are shown: each claim's collector
(qbn.study.claims) returns a Section of tables, verdicts and figure data; qbn.study.render writes
every table, figure and verdict line from them, and every citable number gets a key that a
reading may cite ({claim2.rewind.e4.k_0.125.init.minus_trunk})."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .intervals import Estimate


@dataclass(frozen=True)
class Num:
    """An estimate over seeds and how to show it: shown = scale * value, `digits` decimals, a
    sign when `signed` (differences)."""

    est: Estimate
    scale: float = 100.0
    digits: int = 2
    signed: bool = False


Cell = Num | str | int | float | None


@dataclass
class Row:
    key: str | None  # the reading key of the row (None: not citable): <key>.<column key>
    cells: list[Cell]


@dataclass
class Table:
    columns: list[str]
    column_keys: list[str | None]  # per column, the last part of its cells' keys (None: not citable)
    rows: list[Row] = field(default_factory=list)
    caption: str = ""


@dataclass
class Verdict:
    label: str  # what it is about, e.g. "with BatchNorm"
    verdict: str  # held | did not hold | inconclusive | ..., or a finding such as "K = 1/8"
    key: str  # the reading key of `verdict`
    detail: Cell = None  # the number it read
    detail_label: str = ""


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[Estimate]  # shown: scale * mean, bars or band: the interval
    scale: float = 100.0
    band: bool = False  # a shaded band instead of error bars
    marker: str = "o"


@dataclass
class Line:
    """A horizontal reference line (with its interval as a band when it has one)."""

    label: str
    y: Estimate | float
    scale: float = 100.0
    style: str = "--"


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    xticks: list[str] | None = None  # categorical x: series' x are 0..len-1
    margin: float | None = None  # a ±margin band around 0 (in shown units)
    xlog: bool = False


@dataclass
class Figure:
    name: str  # file name under figures/
    panels: list[Panel]


@dataclass
class Section:
    key: str  # readings.md's '## <key>'
    title: str
    rule: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    empty: str | None = None  # said instead of everything else when there is nothing to show


def share_text(share: float) -> str:
    """A share of training as people write it: 1/16, 1/8, 3/4, 0, 1."""
    f = Fraction(share).limit_denominator(256)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def slug(value) -> str:
    """A key part: numbers without trailing zeros, no spaces."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace(" ", "_")
