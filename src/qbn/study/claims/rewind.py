"""Claim 2, primary sub-networks: signs fixed from a share K of training, for each training
length and each arm: retrained from the initial weights with the trunk's S_K (rewind=rewound,
weights=init), or frozen at K in the trunk's own run and trained on (rewind=freeze); the controls
(initial signs = K 0, random signs with the final +1 share, final signs = K 1). Headline: the
smallest K whose signs keep the trunk's accuracy within 1 point, per length and arm."""

from __future__ import annotations

from .. import keys as K
from ..collect import Run, completed, stable_share_at, trunks
from ..intervals import LEVEL
from ..results import Figure, Panel, Row, Section, Series, Table, Verdict, share_text, slug
from ..verdicts import ACCURACY_MARGIN, HELD, not_worse
from .common import by_seed, diff, est, pct

ARMS = {"init": "retrain from init", "freeze": "freeze and continue"}
CONTROLS = ("random", "final")


def arm_of(r: Run) -> str:
    if r.options.get(K.REWIND) == "freeze":
        return "freeze"
    weights = r.options.get(K.REWIND_WEIGHTS, "init")
    return "init" if weights == "init" else f"w{weights}"


def signs_of(r: Run) -> str:
    """What the run fixed: k_<share> (init signs: k_0, final: k_1 only when named so), random, final."""
    spec = r.options.get(K.FREEZE_AT) if arm_of(r) == "freeze" else r.options.get(K.REWIND_SIGNS)
    spec = str(spec or r.summary.get("rewind/signs") or "?")
    share = K.parse_share(spec)
    if share is not None:
        return f"k_{slug(share)}"
    if spec in ("init", "epoch:0"):
        return "k_0"
    return spec.replace(":", "_")


def share_of(signs: str) -> float | None:
    return float(signs[2:]) if signs.startswith("k_") else None


def _order(item) -> tuple:
    (epochs, arm, signs), _ = item
    share = share_of(signs)
    return epochs, list(ARMS).index(arm) if arm in ARMS else 9, share is None, share or 0.0, signs


def _acc(r: Run):
    return r.get(K.TEST_ACC)


def rewind_section(runs: list[Run]) -> Section:
    s = Section("rewind", "Claim 2: primary sub-networks (signs fixed from a share K of training)")
    done = completed(runs, "rewind")
    if not done:
        s.empty = "No completed runs in rewind/."
        return s
    s.rule = (
        f"signs fixed at share K of training keep the trunk's accuracy (same seed, same length) when the "
        f"{100 * LEVEL:.0f} % interval of the paired difference lies above -{100 * ACCURACY_MARGIN:g} point; wholly "
        "below: did not hold; else inconclusive. Retrain from init: the trunk's signs at K fixed, every other "
        "parameter trained again from the trunk's initial state over the whole schedule. Freeze and continue: the "
        "trunk's own run (same seed) with its signs frozen from step K on. Controls: initial signs (K = 0), random "
        "signs with each layer's final +1 share, the final signs. Headline: the smallest K that held."
    )
    trunk = trunks(runs)
    trunk_acc = {}
    for (epochs, seed), t in trunk.items():
        if _acc(t) is not None:
            trunk_acc.setdefault(epochs, {})[seed] = _acc(t)
    cells: dict[tuple, list[Run]] = {}
    for r in done:
        cells.setdefault((r.epochs, arm_of(r), signs_of(r)), []).append(r)
    cols = [
        "length",
        "arm",
        "signs fixed",
        "K",
        "stable from K on % (trunk)",
        "seeds",
        f"test acc % [{100 * LEVEL:.0f} % CI]",
        "minus trunk, points",
        "minus random signs, points",
        "verdict",
    ]
    keys = [None, None, None, None, "stable_at_k", "seeds", "acc", "minus_trunk", "minus_random", "verdict"]
    table = Table(cols, keys)
    headline: dict[tuple[int, str], tuple[float, object]] = {}
    lengths: dict[tuple[str, str], list] = {}
    per_length_panels = {}
    for (epochs, arm, signs), rs in sorted(cells.items(), key=_order):
        if epochs not in per_length_panels:  # each length's rows start with its trunks
            t_runs = [t for (e, _), t in trunk.items() if e == epochs]
            table.rows.append(
                Row(
                    f"claim2.rewind.e{epochs}.trunk",
                    [
                        f"{epochs} epochs",
                        "trunk",
                        "its own",
                        "-",
                        None,
                        len(t_runs),
                        pct(est(t_runs, _acc)),
                        None,
                        None,
                        None,
                    ],
                )
            )
            per_length_panels[epochs] = {}
        accs = by_seed(rs, _acc)
        tr = trunk_acc.get(epochs, {})
        random = cells.get((epochs, "init", "random"))
        vs_trunk = diff(accs, tr)
        vs_random = diff(accs, by_seed(random, _acc)) if random and signs != "random" else None
        share = share_of(signs)
        control = signs in ("k_0", "random")
        verdict = "(control)" if control else not_worse(vs_trunk)
        stable = None
        if share is not None:
            vals = [
                v for v in (stable_share_at(t, share) for (e, _), t in trunk.items() if e == epochs) if v is not None
            ]
            stable = f"{100 * sum(vals) / len(vals):.1f}" if vals else None
        label = {"k_0": "initial (S_0)", "random": "random", "final": "final"}.get(signs, "S_K")
        table.rows.append(
            Row(
                f"claim2.rewind.e{epochs}.{signs}.{arm}",
                [
                    f"{epochs} epochs",
                    ARMS.get(arm, arm),
                    label,
                    share_text(share) if share is not None else "-",
                    stable,
                    len(accs),
                    pct(est(rs, _acc)),
                    pct(vs_trunk, True),
                    pct(vs_random, True) if vs_random else None,
                    verdict,
                ],
            )
        )
        if share is not None and share > 0 and verdict == HELD and (epochs, arm) not in headline:
            headline[(epochs, arm)] = (share, vs_trunk)
        if share is not None and share > 0 or signs == "final":
            x = 1.0 if signs == "final" else share
            per_length_panels[epochs].setdefault(arm, []).append((x, vs_trunk))
            lengths.setdefault((arm, signs), []).append((epochs, vs_trunk))
    s.tables.append(table)
    for epochs in sorted(per_length_panels):
        for arm in ARMS:
            if not per_length_panels[epochs].get(arm):
                continue
            found = headline.get((epochs, arm))
            s.verdicts.append(
                Verdict(
                    f"{epochs} epochs, {ARMS[arm]}: smallest K within {100 * ACCURACY_MARGIN:g} point of the trunk",
                    f"K = {share_text(found[0])}" if found else "none of the K tried",
                    f"claim2.rewind.e{epochs}.{arm}.smallest_k",
                    pct(found[1], True) if found else None,
                    "minus trunk",
                )
            )
    xs = sorted({x for panels in per_length_panels.values() for pts in panels.values() for x, _ in pts})
    ticks = [share_text(x) + (" (final)" if x == 1.0 else "") for x in xs]
    panels = []
    for epochs, arms in sorted(per_length_panels.items()):
        series = [
            Series(
                ARMS.get(arm, arm),
                [xs.index(x) for x, _ in sorted(pts, key=lambda p: p[0])],
                [e for _, e in sorted(pts, key=lambda p: p[0])],
            )
            for arm, pts in arms.items()
        ]
        panels.append(
            Panel(
                f"{epochs} epochs",
                "K (share of training at which the signs are fixed)",
                "test acc minus trunk (points, 95 % CI)",
                series,
                xticks=ticks,
                margin=100 * ACCURACY_MARGIN,
            )
        )
    s.figures.append(Figure("claim2_rewind.png", panels))
    series = [
        Series(
            f"{ARMS.get(arm, arm)}, K = {share_text(share_of(signs)) if share_of(signs) is not None else signs}",
            [e for e, _ in sorted(pts, key=lambda p: p[0])],
            [v for _, v in sorted(pts, key=lambda p: p[0])],
        )
        for (arm, signs), pts in sorted(lengths.items())
        if len(pts) > 1
    ]
    s.figures.append(
        Figure(
            "claim2_rewind_lengths.png",
            [
                Panel(
                    "fixed signs against training length",
                    "training length (epochs)",
                    "test acc minus trunk (points, 95 % CI)",
                    series,
                    margin=100 * ACCURACY_MARGIN,
                )
            ],
        )
    )
    return s
