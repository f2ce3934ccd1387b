"""The rewind options' grammar: `rewind.signs` (which signs a rewound run fixes), `rewind.weights`
(where its training restarts), `rewind.freeze_signs_at` (when a run fixes its own signs) and
`rewind.save_shares` (the shares of training a trunk snapshots), parsed into typed specs.

A share of training F (0 < F < 1) names the moment after optimizer step round(F * total steps),
so the same spec means the same point of training at every run length."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import QbnError

_EPOCH_SPEC = re.compile(r"^(epoch|stable|random):(\d+|last)$")


class RewindError(QbnError):
    pass


@dataclass
class SignSpec:
    """Which signs a rewound run fixes: mode in epoch/final/random/stable/share, epoch K where it has
    one, the share of training F for share:F and random:share:F."""

    text: str
    mode: str
    epoch: int | str | None = None
    share: float | None = None


@dataclass
class WeightSpec:
    """Where a rewound run's training restarts: mode in init/epoch/fresh (epoch J, or "last")."""

    text: str
    mode: str
    epoch: int | str | None = None


def parse_share(text, what: str) -> float:
    """A share of training F with 0 < F < 1 from "F"; else one RewindError naming `what`."""
    try:
        share = float(str(text).strip())
    except ValueError:
        share = math.nan
    if not 0 < share < 1:
        raise RewindError(f"{what}: {text!r} is not a share of training (a number between 0 and 1, e.g. 0.125)")
    return share


def check_shares(values: Iterable, what: str = "rewind.save_shares") -> list[float]:
    """The shares of a list option, each 0 < F < 1, sorted without repeats."""
    return sorted({parse_share(v, what) for v in values or []})


def parse_signs(text) -> SignSpec:
    """`epoch:K | init | final | random | random:K | stable:K | share:F | random:share:F` -> SignSpec."""
    t = str(text).strip()
    if t == "init":
        return SignSpec(t, "epoch", 0)
    if t in ("final", "random"):
        return SignSpec(t, t, None)
    for prefix, mode in (("share:", "share"), ("random:share:", "random")):
        if t.startswith(prefix):
            return SignSpec(t, mode, None, parse_share(t[len(prefix):], f"rewind.signs={t}"))
    m = _EPOCH_SPEC.match(t)
    if m:
        k = m.group(2)
        return SignSpec(t, m.group(1), k if k == "last" else int(k))
    raise RewindError(f"rewind.signs={t!r} is not understood: use epoch:K, init, final, random, random:K, stable:K, "
                      "share:F or random:share:F")


@dataclass
class FreezeAt:
    """When FreezeSigns fixes a run's own signs: at the end of epoch `epoch`, or after the optimizer
    step that ends the share `share` of training."""

    text: str
    epoch: int | None = None
    share: float | None = None


def parse_freeze_at(value) -> FreezeAt:
    """`K` (an epoch >= 0; 0: at the start), `epoch:K` or `share:F` (0 < F < 1) -> FreezeAt."""
    t = str(value).strip()
    if t.startswith("share:"):
        return FreezeAt(t, None, parse_share(t[len("share:"):], f"rewind.freeze_signs_at={t}"))
    digits = t[len("epoch:"):] if t.startswith("epoch:") else t
    if digits.isdigit():
        return FreezeAt(t, int(digits), None)
    raise RewindError(f"rewind.freeze_signs_at={t!r} is not understood: use an epoch K >= 0 or share:F (0 < F < 1)")


def parse_weights(text) -> WeightSpec:
    """`init | epoch:J | epoch:last | fresh` -> WeightSpec."""
    t = str(text).strip()
    if t in ("init", "fresh"):
        return WeightSpec(t, t, 0 if t == "init" else None)
    m = _EPOCH_SPEC.match(t)
    if m and m.group(1) == "epoch":
        j = m.group(2)
        if j == "0":
            return WeightSpec(t, "init", 0)
        return WeightSpec(t, "epoch", j if j == "last" else int(j))
    raise RewindError(f"rewind.weights={t!r} is not understood: use init, epoch:J, epoch:last or fresh")
