"""Claim 3, binary kernels cluster: the kernel entropy (plug-in and Miller-Madow bias-corrected,
bits per 3x3 kernel) and top-8 coverage of every binary run of the scaling and signs stages,
beside the null (the same layers' signs shuffled within each layer: same +1 share) and the
uniform 9 bits, per run group and training length; against training steps from each run's
kernel history."""

from __future__ import annotations

from .. import keys as K
from ..collect import Run, completed
from ..intervals import LEVEL, estimate
from ..plan import norm_slug
from ..results import Figure, Line, Panel, Row, Section, Series, Table, Verdict
from ..verdicts import CLUSTER_MARGIN, HELD, INCONCLUSIVE, NOT_HELD
from .common import by_seed, diff, est, group_label, pct, plain


def cluster_verdict(minus_null) -> str:
    """Held when the interval of H_MM - H_null lies wholly below -CLUSTER_MARGIN bits."""
    if minus_null is None or minus_null.n < 2:
        return "-" if minus_null is None or minus_null.n == 0 else INCONCLUSIVE
    if minus_null.hi < -CLUSTER_MARGIN:
        return HELD
    if minus_null.lo > -CLUSTER_MARGIN:
        return NOT_HELD
    return INCONCLUSIVE


def _runs(runs: list[Run]) -> list[Run]:
    return [r for r in completed(runs, "scaling", "signs") if r.binary and r.kernel_value(K.ENTROPY) is not None]


def kernels_section(runs: list[Run]) -> Section:
    s = Section("kernels", "Claim 3: binary kernels cluster")
    rs_all = _runs(runs)
    if not rs_all:
        s.empty = "No completed binary runs with kernel statistics."
        return s
    s.rule = (
        f"the kernels cluster when the {100 * LEVEL:.0f} % interval of the Miller-Madow entropy minus the null's "
        f"(paired by run) lies wholly below -{CLUSTER_MARGIN:g} bit per kernel; wholly above: did not hold; else "
        "inconclusive. The null: each layer's signs shuffled within the layer (the same +1 share), so clustering "
        f"beyond what the sign balance gives; uniform: {K.UNIFORM_BITS:g} bits and top-8 coverage "
        f"{100 * K.UNIFORM_TOP8:.2f} %. Headline: the shortest training length at which it held, per recipe and norm "
        "(xnor runs)."
    )
    cols = [
        "recipe, norm, length",
        "scheme",
        "seeds",
        "steps",
        f"entropy bits [{100 * LEVEL:.0f} % CI]",
        "Miller-Madow bits",
        "null (Miller-Madow) bits",
        "minus null, bits",
        "top-8 coverage %",
        "null top-8 %",
        "verdict",
    ]
    keys = [
        None,
        None,
        "seeds",
        "steps",
        "entropy",
        "entropy_mm",
        "null_entropy_mm",
        "minus_null",
        "top8",
        "null_top8",
        "verdict",
    ]
    table = Table(cols, keys)
    groups: dict[tuple, list[Run]] = {}
    for r in rs_all:
        groups.setdefault((r.recipe, r.norm, r.scheme, r.epochs), []).append(r)
    reached: dict[tuple[str, str], list] = {}
    for (recipe, norm, scheme, epochs), rs in sorted(groups.items()):
        mm, null = (
            by_seed(rs, lambda r: r.kernel_value(K.ENTROPY_MM)),
            by_seed(rs, lambda r: r.kernel_value(K.NULL_ENTROPY_MM)),
        )
        minus = diff(mm, null) if mm and null else None
        verdict = cluster_verdict(minus)
        steps = sorted({r.steps for r in rs if r.steps})
        table.rows.append(
            Row(
                f"claim3.{recipe}.{norm_slug(norm)}.{scheme}.e{epochs}",
                [
                    group_label(recipe, norm, epochs),
                    scheme,
                    len(rs),
                    ", ".join(map(str, steps)) or None,
                    plain(est(rs, lambda r: r.kernel_value(K.ENTROPY))),
                    plain(estimate(mm.values())),
                    plain(estimate(null.values())),
                    plain(minus, signed=True) if minus else None,
                    pct(est(rs, lambda r: r.kernel_value(K.TOP8))),
                    pct(est(rs, lambda r: r.kernel_value(K.NULL_TOP8))),
                    verdict,
                ],
            )
        )
        if scheme == "xnor":
            reached.setdefault((recipe, norm), []).append((epochs, steps, verdict, minus))
    s.tables.append(table)
    for (recipe, norm), pts in sorted(reached.items()):
        pts.sort(key=lambda p: p[0])
        held = [p for p in pts if p[2] == HELD]
        tried = ", ".join(str(p[0]) for p in pts)
        if held:
            text = f"reached at {held[0][0]} epochs ({', '.join(map(str, held[0][1]))} steps)"
        elif all(p[3] is None for p in pts):
            text = "not measured (no null in kernels.json)"
        else:
            text = f"not reached at {tried} epochs"
        s.verdicts.append(
            Verdict(
                f"{group_label(recipe, norm, pts[-1][0]).rsplit(',', 1)[0]}, xnor",
                text,
                f"claim3.{recipe}.{norm_slug(norm)}.reached",
                plain((held or pts)[0][3], signed=True) if (held or pts)[0][3] else None,
                "minus null, bits",
            )
        )
    lengths = Panel(
        f"minus the null against length (rule: below -{CLUSTER_MARGIN:g})",
        "training length (epochs)",
        "Miller-Madow entropy minus the null's, bits (95 % CI)",
        [
            Series(
                f"{recipe.replace('_', ', ')}, {'BN' if norm == 'batch' else 'no BN'}, xnor",
                [p[0] for p in pts if p[3] is not None],
                [p[3] for p in pts if p[3] is not None],
                scale=1.0,
            )
            for (recipe, norm), pts in sorted(reached.items())
            if sum(p[3] is not None for p in pts) > 1
        ],
        lines=[Line(f"-{CLUSTER_MARGIN:g} bit", -CLUSTER_MARGIN, 1.0, ":")],
    )
    s.figures.append(Figure("claim3_kernels.png", [*_history_panels(groups), lengths]))
    return s


def _history(r: Run, field: str) -> list[tuple[float, float]]:
    """(step, value) at each snapshot of the run's kernel history (epoch -> steps)."""
    hist = r.kernels.get(K.KERNEL_HISTORY) or {}
    per_epoch = (r.steps or 0) / r.epochs if r.epochs else 0
    pts = [(int(e) * per_epoch, v[field]) for e, v in hist.items() if isinstance(v, dict) and v.get(field) is not None]
    return sorted(pts)


def _history_panels(groups: dict[tuple, list[Run]]) -> list[Panel]:
    entropy = Panel(
        "kernel entropy against training steps (mean over seeds, 95 % CI)",
        "training steps",
        "bits per 3x3 kernel",
        lines=[Line(f"uniform: {K.UNIFORM_BITS:g} bits", K.UNIFORM_BITS, 1.0, ":")],
    )
    cover = Panel(
        "top-8 coverage against training steps",
        "training steps",
        "top-8 coverage %",
        lines=[Line(f"uniform: {100 * K.UNIFORM_TOP8:.2f} %", K.UNIFORM_TOP8, 100.0, ":")],
    )
    for (recipe, norm, scheme, epochs), rs in sorted(groups.items()):
        if scheme != "xnor":
            continue
        label = f"{recipe.replace('_', ', ')}, {'BN' if norm == 'batch' else 'no BN'}, {epochs} ep"
        for panel, field, null_key, scale, name in (
            (entropy, "entropy", K.NULL_ENTROPY_MM, 1.0, "plug-in"),
            (entropy, "entropy_mm", None, 1.0, "Miller-Madow"),
            (cover, "top8", K.NULL_TOP8, 100.0, ""),
        ):
            curves = [_history(r, field) for r in rs]
            if not curves or not all(curves) or any(len(c) != len(curves[0]) for c in curves):
                continue
            xs = [sum(c[i][0] for c in curves) / len(curves) for i in range(len(curves[0]))]
            ys = [estimate(c[i][1] for c in curves) for i in range(len(curves[0]))]
            panel.series.append(
                Series(f"{label}{', ' + name if name else ''}", xs, ys, scale=scale, band=True, marker=".")
            )
            if null_key:
                nulls = by_seed(rs, lambda r, k=null_key: r.kernel_value(k))
                if nulls:
                    panel.series.append(
                        Series(f"{label}, null (final)", [xs[-1]], [estimate(nulls.values())], scale=scale, marker="x")
                    )
    return [entropy, cover]
