"""Claim 4 and the sub-bit methods beside it: each packed file's test accuracy (evaluated from the
file) against its bits per binarized weight (measured from the file), for each method (topk: QBN;
learned: learned codebooks), with and without distillation, n bits per 3x3 kernel; every
difference is to the matched control (n = 9: the same fine-tune, the same teacher, no codebook).
Per BWN length and fine-tune length. The n = 4 goal: the best method (chosen on the validation
split) within 1 point of its matched control at <= 0.45 bit per binarized weight."""

from __future__ import annotations

import statistics
from pathlib import Path

from .. import keys as K
from ..collect import Run, completed, find_run
from ..intervals import LEVEL, estimate
from ..plan import distill_slug
from ..results import Figure, Line, Panel, Row, Section, Series, Table, Verdict
from ..verdicts import ACCURACY_MARGIN, GOAL_BITS, GOAL_BITS_PER_WEIGHT, goal, not_worse
from .common import by_seed, diff, est, pct


def _file_acc(r: Run):
    return r.get(K.FILE_ACC)


def _val(r: Run):
    return r.get(K.VAL_ACC)


def method_of(r: Run) -> tuple[str, float, int]:
    """(method, distillation weight, n); the control's method is 'control'."""
    bits = int(r.options.get(K.QBN_BITS) or (r.summary.get("qbn") or {}).get("bits") or 0)
    weight = float(r.options.get(K.DISTILL_WEIGHT, 0) or 0)
    method = "control" if bits == K.CONTROL_BITS else r.options.get(K.QBN_METHOD, "topk")
    if method == "learned" and r.options.get(K.QBN_LEARNED_LR) is not None:
        method = f"learned@{float(r.options[K.QBN_LEARNED_LR]):g}"  # the plan's name of this variant
    return method, weight, bits


def _label(method: str, weight: float) -> str:
    return f"{method}{f', distilled ({weight:g})' if weight else ''}"


def subbit_section(runs: list[Run], study_dir: Path) -> Section:
    s = Section("qbn", "Claim 4 and sub-bit methods: accuracy against bits per binarized weight")
    done = [r for r in completed(runs, "qbn") if _file_acc(r) is not None]
    if not done:
        s.empty = "No packed and evaluated runs in qbn/."
        return s
    s.rule = (
        f"a row keeps its matched control's accuracy (n = {K.CONTROL_BITS}: the same fine-tune from the same BWN, "
        f"the same teacher, no codebook; same seed) when the {100 * LEVEL:.0f} % interval of the paired difference "
        f"of the packed files' test accuracy lies above -{100 * ACCURACY_MARGIN:g} point; wholly below: did not hold. "
        f"Goal at n = {GOAL_BITS}: the method with the best mean validation accuracy (options are chosen on the "
        f"validation split, never on test) keeps its control's accuracy at <= {GOAL_BITS_PER_WEIGHT:g} bit per "
        "binarized weight. Bits per binarized weight and accuracy are measured from the packed files."
    )
    by_dir = {r.dir.resolve(): r for r in runs}
    bwn_of: dict[str, Run | None] = {}
    blocks: dict[tuple[int, int], list[Run]] = {}
    bwn_acc: dict[int, dict] = {}
    for r in done:
        src = r.options.get(K.QBN_FROM) or (r.summary.get("qbn") or {}).get("from_ckpt")
        if src not in bwn_of:
            d = find_run(study_dir, src)
            bwn_of[src] = by_dir.get(d.resolve()) if d is not None else None
        bwn = bwn_of[src]
        bwn_epochs = bwn.epochs if bwn else 0
        if bwn is not None and bwn.get(K.TEST_ACC) is not None and bwn.completed:
            bwn_acc.setdefault(bwn_epochs, {})[bwn.seed] = bwn.get(K.TEST_ACC)
        blocks.setdefault((bwn_epochs, r.epochs), []).append(r)
    cols = [
        "method",
        "n",
        "bits / binarized weight (file)",
        "file bytes",
        "seeds",
        "val acc % (mean)",
        f"file test acc % [{100 * LEVEL:.0f} % CI]",
        "minus matched control, points",
        "minus BWN, points",
        "verdict",
    ]
    keys = [None, None, "bits", "bytes", "seeds", "val_acc", "acc", "minus_control", "minus_bwn", "verdict"]
    panels, lengths = [], {}
    for (bwn_epochs, epochs), rs in sorted(blocks.items()):
        bwn = bwn_acc.get(bwn_epochs, {})
        prefix = f"claim4.e{bwn_epochs}.f{epochs}"
        table = Table(cols, keys, caption=f"**BWN of {bwn_epochs} epochs, fine-tuned {epochs} epoch(s)**:")
        table.rows.append(
            Row(
                f"{prefix}.bwn",
                [
                    "BWN (before fine-tuning)",
                    1,
                    "1",
                    None,
                    len(bwn),
                    None,
                    pct(estimate(bwn.values())),
                    None,
                    None,
                    "(reference)",
                ],
            )
        )
        rows: dict[tuple, list[Run]] = {}
        for r in rs:
            rows.setdefault(method_of(r), []).append(r)
        controls = {w: by_seed(g, _file_acc) for (m, w, _), g in rows.items() if m == "control"}
        best: tuple | None = None
        series: dict[tuple[str, float], list] = {}
        for (method, weight, bits), g in sorted(
            rows.items(), key=lambda kv: (kv[0][0] != "control", kv[0][0], kv[0][1], -kv[0][2])
        ):
            accs = by_seed(g, _file_acc)
            bpw = [r.get(K.FILE_BITS) for r in g]
            mean_bpw = statistics.fmean(bpw) if bpw and None not in bpw else None
            vals = [v for v in (_val(r) for r in g) if v is not None]
            val = statistics.fmean(vals) if vals else None
            control = controls.get(weight)
            vs_control = diff(accs, control) if control and method != "control" else None
            verdict = not_worse(vs_control) if vs_control is not None else ("(control)" if method == "control" else "-")
            name = (
                f"control.{distill_slug(weight)}" if method == "control" else f"{method}.{distill_slug(weight)}.n{bits}"
            )
            table.rows.append(
                Row(
                    f"{prefix}.{name}",
                    [
                        _label(method, weight),
                        bits,
                        None if mean_bpw is None else f"{mean_bpw:.4f}",
                        max((r.get(K.FILE_BYTES) or 0) for r in g) or None,
                        len(accs),
                        None if val is None else f"{100 * val:.2f}",
                        pct(est(g, _file_acc)),
                        pct(vs_control, True) if vs_control is not None else None,
                        pct(diff(accs, bwn), True) if bwn else None,
                        verdict,
                    ],
                )
            )
            if method != "control" and mean_bpw is not None:
                series.setdefault((method, weight), []).append((mean_bpw, est(g, _file_acc)))
            if method != "control" and bits == GOAL_BITS and val is not None and vs_control is not None:
                if best is None or val > best[0]:
                    best = (val, method, weight, vs_control, mean_bpw)
                lengths.setdefault((method, weight, epochs), []).append((bwn_epochs, vs_control))
        s.tables.append(table)
        if best is not None:
            _, method, weight, vs_control, mean_bpw = best
            at = f" at {mean_bpw:.4f} bit per binarized weight" if mean_bpw is not None else ""
            s.verdicts.append(
                Verdict(
                    f"BWN {bwn_epochs} epochs, fine-tune {epochs}: n = {GOAL_BITS} goal, best on validation: "
                    f"{_label(method, weight)}{at}",
                    goal(vs_control, mean_bpw),
                    f"{prefix}.goal.verdict",
                    pct(vs_control, True),
                    "minus matched control",
                )
            )
        panel = Panel(
            f"BWN {bwn_epochs} epochs, fine-tune {epochs}",
            "bits per binarized weight (from the packed file)",
            "file test accuracy % (95 % CI)",
            [
                Series(
                    _label(m, w),
                    [p[0] for p in sorted(pts, key=lambda p: p[0])],
                    [p[1] for p in sorted(pts, key=lambda p: p[0])],
                )
                for (m, w), pts in sorted(series.items())
            ],
        )
        if bwn:
            panel.lines.append(Line("BWN (1 bit)", estimate(bwn.values()), 100.0, "-"))
        for w, c in sorted(controls.items()):
            panel.lines.append(
                Line(f"control n = {K.CONTROL_BITS}{f', distilled ({w:g})' if w else ''}", estimate(c.values()), 100.0)
            )
        panels.append(panel)
    s.figures.append(Figure("claim4_subbit.png", panels))
    s.figures.append(
        Figure(
            "claim4_lengths.png",
            [
                Panel(
                    f"n = {GOAL_BITS}: minus the matched control against the BWN's training length",
                    "BWN training length (epochs)",
                    "file test acc minus control (points, 95 % CI)",
                    [
                        Series(
                            f"{_label(m, w)}, fine-tune {f}",
                            [p[0] for p in sorted(pts, key=lambda p: p[0])],
                            [p[1] for p in sorted(pts, key=lambda p: p[0])],
                        )
                        for (m, w, f), pts in sorted(lengths.items())
                        if len(pts) > 1
                    ],
                    margin=100 * ACCURACY_MARGIN,
                )
            ],
        )
    )
    return s
