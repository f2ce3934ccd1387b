"""Claim 1, scaling factors barely matter: each scheme's test accuracy and its paired difference
to xnor, with BatchNorm after every binary conv and without, side by side. The rule is an
equivalence test (two one-sided tests at 5 %: the 90 % interval within ±1 point)."""

from __future__ import annotations

from ..collect import Run, completed
from ..intervals import EQUIVALENCE_LEVEL, LEVEL
from ..plan import norm_slug
from ..results import Figure, Panel, Row, Section, Series, Table, Verdict
from ..verdicts import ACCURACY_MARGIN, HELD, INCONCLUSIVE, combine, tost
from .common import NORM_LABEL, by_seed, diff, est, pct, recipe_label

SCHEMES = ("none", "xnor", "learnable", "lq", "fp")
COMPARED = ("none", "learnable", "lq")  # each against xnor
REFERENCE = "xnor"


def _acc(r: Run):
    return r.get("test/acc")


def scaling_section(runs: list[Run]) -> Section:
    done = completed(runs, "scaling")
    s = Section("scaling", "Claim 1: scaling factors barely matter, with and without BatchNorm")
    if not done:
        s.empty = "No completed runs in scaling/."
        return s
    s.rule = (
        f"for each scheme the study ran among {', '.join(COMPARED)}, the {100 * EQUIVALENCE_LEVEL:.0f} % interval of "
        f"its test-accuracy difference to {REFERENCE} (paired by seed) within ±{100 * ACCURACY_MARGIN:g} point: held "
        f"(two one-sided tests at 5 %); wholly outside: did not hold; else inconclusive. A column's verdict: every "
        "scheme held -> held, one did not hold -> did not hold. With BatchNorm after each binary conv, "
        "training-mode BatchNorm cancels any positive per-channel scale, so that column is expected to hold by "
        "construction; the column without "
        f"BatchNorm is where scaling can matter. Accuracy intervals: {100 * LEVEL:.0f} %."
    )
    panels = []
    for recipe in sorted({r.recipe for r in done}):
        rs = [r for r in done if r.recipe == recipe]
        norms = [n for n in ("batch", "none") if any(r.norm == n for r in rs)]
        columns, column_keys = ["scheme"], [None]
        for n in norms:
            columns += [
                f"{NORM_LABEL[n]}: seeds",
                f"{NORM_LABEL[n]}: test acc % [{100 * LEVEL:.0f} % CI]",
                f"{NORM_LABEL[n]}: minus {REFERENCE}, points [{100 * EQUIVALENCE_LEVEL:.0f} % CI]",
                f"{NORM_LABEL[n]}: verdict",
            ]
            column_keys += [
                f"{norm_slug(n)}.seeds",
                f"{norm_slug(n)}.acc",
                f"{norm_slug(n)}.minus_xnor",
                f"{norm_slug(n)}.verdict",
            ]
        table = Table(columns, column_keys, caption=f"**{recipe_label(recipe)}**, {max(r.epochs for r in rs)} epochs:")
        accs = {
            (n, sc): by_seed([r for r in rs if r.norm == n and r.scheme == sc], _acc) for n in norms for sc in SCHEMES
        }
        verdicts = {n: [] for n in norms}
        diffs = {n: {} for n in norms}
        for sc in SCHEMES:
            if not any(accs[(n, sc)] for n in norms):
                continue
            cells: list = [sc]
            for n in norms:
                a = accs[(n, sc)]
                if not a:
                    cells += [None, None, None, None]
                    continue
                d = diff(a, accs[(n, REFERENCE)], EQUIVALENCE_LEVEL) if sc != REFERENCE else None
                v = tost(d) if sc in COMPARED and d is not None else None
                if v is not None:
                    verdicts[n].append(v)
                    diffs[n][sc] = d
                cells += [
                    len(a),
                    pct(est([r for r in rs if r.norm == n and r.scheme == sc], _acc)),
                    pct(d, signed=True) if d is not None else "(reference)",
                    v,
                ]
            table.rows.append(Row(f"claim1.{recipe}.{sc}", cells))
        s.tables.append(table)
        ran = [sc for sc in COMPARED if any(accs[(n, sc)] for n in norms)]  # a scale may run only some schemes
        for n in norms:
            verdict = combine(verdicts[n])
            if verdict == HELD and len(verdicts[n]) < len(ran):  # held only if every scheme run was compared here
                verdict = INCONCLUSIVE
            s.verdicts.append(
                Verdict(f"{recipe_label(recipe)}, {NORM_LABEL[n]}", verdict, f"claim1.{recipe}.{norm_slug(n)}.verdict")
            )
            names = [sc for sc in COMPARED if sc in diffs[n]]
            panels.append(
                Panel(
                    f"{recipe_label(recipe)}, {NORM_LABEL[n]}: {verdict}",
                    "scheme",
                    f"test acc minus {REFERENCE} (points, {100 * EQUIVALENCE_LEVEL:.0f} % CI)",
                    [Series("minus xnor", list(range(len(names))), [diffs[n][sc] for sc in names])],
                    xticks=names,
                    margin=100 * ACCURACY_MARGIN,
                )
            )
    s.figures.append(Figure("claim1_scaling.png", panels))
    return s
