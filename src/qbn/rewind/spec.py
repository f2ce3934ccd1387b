"""The rewind options' grammar: `rewind.signs` (which signs a rewound run fixes) and
`rewind.weights` (where its training restarts), parsed into typed specs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QbnError

_EPOCH_SPEC = re.compile(r"^(epoch|stable|random):(\d+|last)$")


class RewindError(QbnError):
    pass


@dataclass
class SignSpec:
    """Which signs a rewound run fixes: mode in epoch/final/random/stable, epoch K where it has one."""

    text: str
    mode: str
    epoch: int | str | None = None


@dataclass
class WeightSpec:
    """Where a rewound run's training restarts: mode in init/epoch/fresh (epoch J, or "last")."""

    text: str
    mode: str
    epoch: int | str | None = None


def parse_signs(text) -> SignSpec:
    """`epoch:K | init | final | random | random:K | stable:K` -> SignSpec."""
    t = str(text).strip()
    if t == "init":
        return SignSpec(t, "epoch", 0)
    if t in ("final", "random"):
        return SignSpec(t, t, None)
    m = _EPOCH_SPEC.match(t)
    if m:
        k = m.group(2)
        return SignSpec(t, m.group(1), k if k == "last" else int(k))
    raise RewindError(f"rewind.signs={t!r} is not understood: use epoch:K, init, final, random, random:K or stable:K")


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
