"""Claim 2, signs settle early: E_q (the step by which a share q of the binarized weights made
their last flip) as a share of training steps, over all weights and over the weights that ever
flip, per run group (recipe, norm, length); the epoch-level figure beside it for comparison."""

from __future__ import annotations

from .. import keys as K
from ..collect import Run, completed, stable_curve
from ..intervals import LEVEL, estimate
from ..results import Figure, Panel, Row, Section, Series, Table, Verdict
from ..verdicts import SETTLE_SHARE, UNTESTED, below
from .common import est, group_key, group_label, pct, plain

NEVER_FLIP_LIMIT = 0.10  # at most 10 % of the weights ever flip: E_0.90 = 0 by construction


def _xnor_runs(runs: list[Run]) -> list[Run]:
    return [
        r
        for r in completed(runs, "scaling", "signs")
        if r.scheme == "xnor" and r.binary and (r.get(K.e_frac("0.90")) is not None or r.signs.get("overall"))
    ]


def _epoch_share(r: Run):
    e = r.get(K.E_EPOCH.format(q="0.90"))
    return None if e is None or not r.epochs else e / r.epochs


def groups(runs: list[Run]) -> dict[tuple[str, str, int], list[Run]]:
    """{(recipe, norm, epochs): runs} of the binary xnor runs with sign dynamics."""
    out: dict[tuple[str, str, int], list[Run]] = {}
    for r in _xnor_runs(runs):
        out.setdefault((r.recipe, r.norm, r.epochs), []).append(r)
    return dict(sorted(out.items()))


def signs_section(runs: list[Run]) -> Section:
    s = Section("signs", "Claim 2: signs settle early (E_q as a share of training steps)")
    table_groups = groups(runs)
    if not table_groups:
        s.empty = "No completed xnor runs with sign dynamics."
        return s
    s.rule = (
        f"signs settle early when the {100 * LEVEL:.0f} % interval of E_0.90 as a share of training steps (the step "
        f"by which 90 % of the signs made their last flip, over the steps of the run) lies below {SETTLE_SHARE:g}; "
        f"wholly above: did not hold; else inconclusive. Read over all binarized weights (the definition) and over "
        f"the weights that ever flip (the others settle at step 0). Where at most {100 * NEVER_FLIP_LIMIT:g} % of the "
        "weights ever flip in every run, E_0.90 over all weights is 0 by construction: not tested. A constant "
        "learning rate separates settling early from settling because the learning rate decays."
    )
    cols = [
        "recipe, norm, length",
        "seeds",
        "steps",
        *[f"E_{q} / steps [{100 * LEVEL:.0f} % CI]" for q in K.QUANTILES],
        "E_0.90 / steps, weights that flip",
        "weights that ever flip %",
        "E_0.90 / epochs (epoch level)",
        "verdict (all weights)",
        "verdict (weights that flip)",
    ]
    keys = [
        None,
        "seeds",
        "steps",
        *[f"E_{q}_frac" for q in K.QUANTILES],
        "E_0.90_frac_flipped",
        "ever_flipped",
        "E_0.90_epochs",
        "verdict",
        "verdict_flipped",
    ]
    table = Table(cols, keys)
    curves, by_length = [], {}
    for (recipe, norm, epochs), rs in table_groups.items():
        fr = {q: est(rs, lambda r, q=q: r.get(K.e_frac(q))) for q in K.QUANTILES}
        flipped = est(rs, lambda r: r.get(K.e_frac("0.90", flipped=True)))
        ever = est(rs, lambda r: r.get(K.EVER_FLIPPED))
        ever_all = [r.get(K.EVER_FLIPPED) for r in rs]
        untested = None not in ever_all and max(ever_all) <= NEVER_FLIP_LIMIT
        verdict = UNTESTED if untested else (below(fr["0.90"], SETTLE_SHARE) if fr["0.90"].n else "-")
        verdict_flipped = below(flipped, SETTLE_SHARE) if flipped.n else "-"
        steps = sorted({r.steps for r in rs if r.steps})
        key = f"claim2.signs.{group_key(recipe, norm, epochs)}"
        table.rows.append(
            Row(
                key,
                [
                    group_label(recipe, norm, epochs),
                    len(rs),
                    ", ".join(map(str, steps)) or None,
                    *[plain(fr[q], 3) for q in K.QUANTILES],
                    plain(flipped, 3),
                    pct(ever),
                    plain(est(rs, _epoch_share), 3),
                    verdict,
                    verdict_flipped,
                ],
            )
        )
        label = group_label(recipe, norm, epochs)
        s.verdicts.append(
            Verdict(f"{label}, all weights", verdict, f"{key}.verdict", plain(fr["0.90"], 3), "E_0.90 / steps")
        )
        curve = _mean_curve(rs)
        if curve:
            curves.append(Series(label, curve[0], curve[1], band=True, marker=""))
        by_length.setdefault((recipe, norm), []).append((epochs, fr["0.90"], flipped))
    s.tables.append(table)
    s.figures.append(
        Figure(
            "claim2_stable_share.png",
            [
                Panel(
                    "share of signs stable from each step on (mean over seeds, band: 95 % CI)",
                    "share of training steps",
                    "signs stable from here on (last flip <= step) %",
                    curves,
                )
            ],
        )
    )
    length_series = []
    for (recipe, norm), pts in by_length.items():
        if len(pts) < 2:
            continue
        pts.sort(key=lambda p: p[0])
        label = f"{recipe.replace('_', ', ')}, {'BN' if norm == 'batch' else 'no BN'}"
        length_series.append(Series(f"{label}: all weights", [p[0] for p in pts], [p[1] for p in pts], scale=1.0))
        if all(p[2].n for p in pts):
            length_series.append(
                Series(f"{label}: weights that flip", [p[0] for p in pts], [p[2] for p in pts], scale=1.0, marker="s")
            )
    s.figures.append(
        Figure(
            "claim2_signs_lengths.png",
            [
                Panel(
                    f"E_0.90 / steps against training length (95 % CI; rule: below {SETTLE_SHARE:g})",
                    "training length (epochs)",
                    "E_0.90 as a share of training steps",
                    length_series,
                )
            ],
        )
    )
    return s


def _mean_curve(rs: list[Run]):
    """The stable-share curves of a group's runs on a common grid of shares of training (0..1 in
    twentieths), each run's value the last point at or before that share; None without curves."""
    curves = [c for c in (stable_curve(r) for r in rs) if c]
    if len(curves) != len(rs):
        return None
    grid = [i / 20 for i in range(21)]
    ys = []
    for g in grid:
        vals = []
        for steps, values in curves:
            total = steps[-1] or 1
            at = [v for st, v in zip(steps, values, strict=True) if st / total <= g + 1e-9]
            vals.append(at[-1] if at else values[0])
        ys.append(estimate(vals))
    return grid, ys
