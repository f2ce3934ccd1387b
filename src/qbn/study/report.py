"""RESULTS.md and figures/ of a study directory, from its run directories alone: per claim a
table, a figure and a verdict computed from the numbers (qbn.study.collect), then the runs:
commands, commit, machine and wall times. Regenerating it from the same directories gives the
same bytes (nothing in it depends on when or where the report is written)."""

from __future__ import annotations

import statistics
from pathlib import Path

from omegaconf import OmegaConf

from ..analysis.figures import label_axes, pyplot, save_figure
from ..errors import QbnError
from ..rundir import read_json, read_yaml, write_text
from .collect import (
    COMPARED,
    HEADLINE_BITS,
    HEADLINE_K,
    QUANTILES,
    SCHEMES,
    completed,
    damaged,
    kernel_table,
    qbn_table,
    read_study,
    rewind_table,
    scaling_table,
    settle_table,
)
from .plan import STAGES, plan
from .runner import STUDY_JSON
from .stats import LEVEL, Estimate
from .verdicts import ACCURACY_MARGIN, ENTROPY_THRESHOLD, SETTLE_SHARE

FIGURES = "figures"
RESULTS = "RESULTS.md"


def _pct(e: Estimate) -> str:
    """'mean ± std' in percent."""
    return "-" if e.n == 0 else f"{100 * e.mean:.2f} ± {100 * e.std:.2f}"


def _num(e: Estimate, digits: int = 2) -> str:
    return "-" if e.n == 0 else f"{e.mean:.{digits}f} ± {e.std:.{digits}f}"


def _ci(e: Estimate | None, scale: float = 100, digits: int = 2, signed: bool = True) -> str:
    if e is None or e.n == 0:
        return "-"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if e.n < 2:
        return f.format(scale * e.mean) + " (1 seed)"
    return f"{f.format(scale * e.mean)} [{f.format(scale * e.lo)}, {f.format(scale * e.hi)}]"


def _fig(study_dir: Path, name: str, fig) -> str:
    save_figure(fig, study_dir / FIGURES / name, dpi=100)
    return f"![{name}]({FIGURES}/{name})"


# ---- claim sections -----------------------------------------------------------------------------

def scaling_section(study_dir: Path, rows: list[dict]) -> str:
    table = scaling_table(rows)
    if not table:
        return "## Claim 1: scaling factors barely matter\n\nNo completed runs in scaling/."
    lines = ["## Claim 1: scaling factors barely matter", "",
             f"Rule: for each of {', '.join(COMPARED)}, the {100 * LEVEL:.0f} % interval of its test-accuracy difference to xnor "
             f"(paired by seed) within ±{100 * ACCURACY_MARGIN:g} points: held; wholly outside: did not hold; else "
             "inconclusive. The recipe's verdict: all three held -> held, one did not hold -> did not hold.", ""]
    for recipe, t in table.items():
        lines += [f"**{recipe}** ({t['epochs']} epochs): **{t['verdict']}**", "",
                  "| scheme | seeds | test acc % (mean ± std) | 95 % CI of the mean | minus xnor, points [95 % CI] | verdict |",
                  "|---|---|---|---|---|---|"]
        for s, e in t["schemes"].items():
            lines.append(f"| {s} | {e['acc'].n} | {_pct(e['acc'])} | {_ci(e['acc'], signed=False)} | "
                         f"{_ci(e['diff']) if e['diff'] else '(reference)'} | {e['verdict'] or '-'} |")
        lines.append("")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 3.6), squeeze=False)
    for ax, (recipe, t) in zip(axes[0], table.items(), strict=True):
        names = [s for s in SCHEMES if s in t["schemes"] and t["schemes"][s]["diff"] is not None]
        for i, s in enumerate(names):
            d = t["schemes"][s]["diff"]
            err = [[100 * (d.mean - d.lo)], [100 * (d.hi - d.mean)]] if d.n > 1 else None
            ax.errorbar([i], [100 * d.mean], yerr=err, marker="o", capsize=5, color="#4477aa")
        ax.axhspan(-100 * ACCURACY_MARGIN, 100 * ACCURACY_MARGIN, color="#228833", alpha=0.15, label=f"±{100 * ACCURACY_MARGIN:g} points")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(f"{recipe}: verdict {t['verdict']}", fontsize=9)
        ax.set_ylabel("test acc minus xnor (points, 95 % CI)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    lines.append(_fig(study_dir, "claim1_scaling.png", fig))
    return "\n".join(lines)


def settle_section(study_dir: Path, rows: list[dict]) -> str:
    table = settle_table(rows)
    if not table:
        return "## Claim 2: signs settle early\n\nNo completed xnor runs with signs.json."
    lines = ["## Claim 2: signs settle early", "",
             f"Rule: signs settle early when the {100 * LEVEL:.0f} % interval of E_0.90 / epochs (the share of training after which "
             f"90 % of the signs made their last flip) lies below {SETTLE_SHARE:g}; above it: did not hold. A constant "
             "learning rate separates 'signs settle early' from 'signs settle because the learning rate decays'. "
             "Where at least 90 % of the signs never flip in any run, E_0.90 = 0 by construction and the claim is not tested.", "",
             "| recipe, schedule | seeds | " + " | ".join(f"{q} (mean ± std)" for q in QUANTILES)
             + " | E_0.90 / epochs [95 % CI] | signs changed since init % | signs never flipped % | verdict |",
             "|---|---|" + "---|" * (len(QUANTILES) + 4)]
    for name, g in table.items():
        never = _pct(g["never_flipped"]) if g["never_flipped"] is not None else "-"
        lines.append(f"| {name} | {len(g['seeds'])} | " + " | ".join(_num(g[q], 1) for q in QUANTILES)
                     + f" | {_ci(g['share'], 1, 2, False)} | {_pct(g['changed'])} | {never} | {g['verdict']} |")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, g in table.items():
        curves = g["curves"]
        epochs = curves[0][0]
        if any(c[0] != epochs for c in curves):
            continue
        mean = [statistics.fmean(c[1][i] for c in curves) for i in range(len(epochs))]
        lo = [min(c[1][i] for c in curves) for i in range(len(epochs))]
        hi = [max(c[1][i] for c in curves) for i in range(len(epochs))]
        x = [e / g["epochs"] for e in epochs]
        line, = ax.plot(x, [100 * m for m in mean], marker="o", ms=3, label=name)
        ax.fill_between(x, [100 * v for v in lo], [100 * v for v in hi], color=line.get_color(), alpha=0.15)
    label_axes(ax, "epoch / epochs of the schedule", "d_e: % of signs differing from the final signs", "distance to the final signs (mean over seeds, band: min..max)", title_size=9, legend_size=7)
    lines += ["", _fig(study_dir, "claim2_sign_distance.png", fig), "", "Per-layer sign-freeze epoch E_0.95 (mean over seeds):", ""]
    names = list(table)
    layers = sorted({layer for g in table.values() for layer in g["layers"]}, key=lambda n: list(next(iter(table.values()))["layers"]).index(n)
                    if n in next(iter(table.values()))["layers"] else 10**6)
    lines += ["| layer | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for layer in layers:
        lines.append(f"| {layer} | " + " | ".join("-" if layer not in table[n]["layers"] else f"{table[n]['layers'][layer]:.1f}" for n in names) + " |")
    return "\n".join(lines)


def rewind_section(study_dir: Path, rows: list[dict]) -> str:
    t = rewind_table(rows, study_dir)
    if not t["groups"]:
        return "## Claim 2: primary sub-networks\n\nNo completed runs in rewind/."
    lines = ["## Claim 2: primary sub-networks (rewinding with fixed signs)", "",
             f"Rule: signs S_K fixed from the trunk (same seed) keep the trunk's accuracy when the {100 * LEVEL:.0f} % interval of "
             f"the paired difference lies above -{100 * ACCURACY_MARGIN:g} points; wholly below: did not hold. Headline: "
             f"K = {HEADLINE_K}, " + ", ".join(f"weights={w}: **{v}**" for w, v in t["headline"].items()) + ".", "",
             f"Trunks (the scaling stage's xnor runs): test acc {_pct(t['trunk'])} % over {t['trunk'].n} seeds.", "",
             "| signs | K | weights | signs final at K (1 - d_K) % | seeds | test acc % (mean ± std) | minus trunk, points [95 % CI] | minus random signs [95 % CI] | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in t["groups"]:
        fin = "-" if g["final_at_K"] is None else f"{100 * g['final_at_K']:.1f}"
        lines.append(f"| {g['signs']} | {'-' if g['K'] is None else g['K']} | {g['weights']} | {fin} | {g['estimate'].n} | "
                     f"{_pct(g['estimate'])} | {_ci(g['vs_trunk'])} | {_ci(g['vs_random'])} | {g['verdict']} |")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for weights in sorted({g["weights"] for g in t["groups"]}):
        gs = [g for g in t["groups"] if g["weights"] == weights and g["mode"] == "epoch" and g["estimate"].n]
        if not gs:
            continue
        ks = [g["K"] for g in gs]
        m = [100 * g["estimate"].mean for g in gs]
        line, = ax.plot(ks, m, marker="o", label=f"signs S_K, weights={weights}")
        if all(g["estimate"].n > 1 for g in gs):
            ax.fill_between(ks, [100 * g["estimate"].lo for g in gs], [100 * g["estimate"].hi for g in gs], color=line.get_color(), alpha=0.15)
        for g in t["groups"]:
            if g["weights"] == weights and g["mode"] in ("random", "final") and g["estimate"].n:
                x = -0.5 if g["mode"] == "random" else max(ks) + 0.5
                ax.plot([x], [100 * g["estimate"].mean], marker="X" if g["mode"] == "random" else "*", ms=10, color=line.get_color(),
                        linestyle="none", label=f"{g['signs']} signs, weights={weights}")
    tr = t["trunk"]
    if tr.n:
        ax.axhline(100 * tr.mean, color="black", lw=1.2, label="trunk (mean)")
        if tr.n > 1:
            ax.axhspan(100 * tr.lo, 100 * tr.hi, color="black", alpha=0.08)
    finals = [(g["K"], g["final_at_K"]) for g in t["groups"] if g["mode"] == "epoch" and g["final_at_K"] is not None]
    if finals:
        ax2 = ax.twinx()
        xs = sorted(set(finals))
        ax2.plot([k for k, _ in xs], [100 * f for _, f in xs], color="grey", ls=":", marker="s", ms=3)
        ax2.set_ylabel("signs already final at K, 1 - d_K (%)", color="grey")
        ax2.set_ylim(0, 101)
    label_axes(ax, "K (X: random signs, *: final signs)", "test accuracy % (band: 95 % CI)", "rewound runs with signs fixed to the trunk's S_K", title_size=9, legend_size=7, legend_loc="lower right")
    lines += ["", _fig(study_dir, "claim2_rewind.png", fig)]
    return "\n".join(lines)


def kernel_section(study_dir: Path, rows: list[dict]) -> str:
    table = kernel_table(rows)
    if not table:
        return "## Claim 3: binary kernels cluster\n\nNo completed xnor runs with kernels.json."
    lines = ["## Claim 3: binary kernels cluster", "",
             f"Rule: the {100 * LEVEL:.0f} % interval of the kernel entropy (bits per 3x3 kernel, over all 3x3 binary layers) below "
             f"{ENTROPY_THRESHOLD:g} bits (9 bits: 512 equally likely kernels): held; wholly above: did not hold.", "",
             "| recipe | seeds | entropy bits [95 % CI] | top-1 % | top-8 % | top-32 % | uniform top-1 / 8 / 32 % | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for recipe, t in table.items():
        u = t["uniform"]
        lines.append(f"| {recipe} | {t['entropy'].n} | {_ci(t['entropy'], 1, 3, False)} | {_pct(t['top1'])} | {_pct(t['top8'])} | "
                     f"{_pct(t['top32'])} | {' / '.join(f'{100 * u[k]:.2f}' for k in ('top1', 'top8', 'top32') if k in u)} | {t['verdict']} |")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for recipe, t in table.items():
        curves = [c for c in t["coverage"] if c]
        if curves:
            mean = [statistics.fmean(c[i] for c in curves) for i in range(len(curves[0]))]
            ax.plot(range(1, len(mean) + 1), [100 * m for m in mean], label=f"{recipe} (mean over {len(curves)} seeds)")
    ax.plot(range(1, 513), [100 * k / 512 for k in range(1, 513)], color="black", ls="--", lw=1, label="uniform")
    ax.set_xscale("log")
    label_axes(ax, "k most frequent kernels", "top-k coverage C(k) %", "share of 3x3 kernels among the k most frequent", title_size=9, legend_size=7, grid_which="both")
    lines += ["", _fig(study_dir, "claim3_coverage.png", fig)]
    return "\n".join(lines)


def qbn_section(study_dir: Path, rows: list[dict]) -> str:
    t = qbn_table(rows, study_dir)
    if not t["groups"]:
        return "## Claim 4: QBN\n\nNo packed and evaluated runs in qbn/."
    lines = ["## Claim 4: QBN, sub-bit binary kernels", "",
             f"Rule: the accuracy of the packed file (n bits per 3x3 kernel) keeps the BWN's it was fine-tuned from (same seed) "
             f"when the {100 * LEVEL:.0f} % interval of the paired difference lies above -{100 * ACCURACY_MARGIN:g} points; wholly below: did "
             f"not hold. Headline: n = {HEADLINE_BITS}, per-layer codebooks: **{t['verdict']}**. Bits per binarized weight and "
             "bytes are measured from the packed file (qbn.export), accuracy by evaluating the file.", "",
             f"BWN (1 bit): {_pct(t['bwn'])} % over {t['bwn'].n} seeds; full precision: {_pct(t['fp'])} % over {t['fp'].n} seeds.", "",
             "| codebook | n | bits / binarized weight | file bytes | seeds | file test acc % (mean ± std) | minus BWN, points [95 % CI] | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for g in t["groups"]:
        bpw = "-" if g["bits_per_weight"] is None else f"{g['bits_per_weight']:.4f}"
        lines.append(f"| {g['codebook']} | {g['bits']} | {bpw} | {g['file_bytes'] or '-'} | {g['estimate'].n} | "
                     f"{_pct(g['estimate'])} | {_ci(g['vs_bwn'])} | {g['verdict']} |")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for codebook in sorted({g["codebook"] for g in t["groups"]}):
        gs = [g for g in t["groups"] if g["codebook"] == codebook and g["bits_per_weight"] is not None]
        e = [g["estimate"] for g in gs]
        err = [[100 * (x.mean - x.lo) for x in e], [100 * (x.hi - x.mean) for x in e]] if all(x.n > 1 for x in e) else None
        ax.errorbar([g["bits_per_weight"] for g in gs], [100 * x.mean for x in e], yerr=err, marker="o", capsize=4, label=f"QBN, {codebook} codebook")
    for est, color, label in ((t["bwn"], "black", "BWN, 1 bit"), (t["fp"], "#cc3311", "full precision")):
        if est.n:
            ax.axhline(100 * est.mean, color=color, ls="--", lw=1.2, label=f"{label}: {100 * est.mean:.2f} %")
    label_axes(ax, "bits per binarized weight (measured from the packed file)", "test accuracy of the file % (95 % CI)", "QBN: accuracy against bits", title_size=9, legend_size=7, legend_loc="lower right")
    lines += ["", _fig(study_dir, "claim4_qbn.png", fig)]
    return "\n".join(lines)


# ---- runs: commands, commit, machine, wall times -------------------------------------------------------

def _overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    return [str(o) for o in OmegaConf.load(path)]


def _portable(override: str, study_dir: Path) -> str:
    """An override as the report shows it: the study directory, however it was spelt, as $STUDY."""
    for root in sorted({str(study_dir.resolve()), str(study_dir)}, key=len, reverse=True):
        override = override.replace(root, "$STUDY")
    return override


def planned_runs(study_dir: Path) -> dict[str, int]:
    """Runs per stage that the study's last invocation planned (its composed config in .study/);
    {} when that config is missing or no longer composes a plan."""
    cfg = read_yaml(study_dir / ".study" / "config.yaml")   # a damaged one is named, not read as absent
    if cfg is None:
        return {}
    try:
        return {stage: len(jobs) for stage, jobs in plan(cfg).items() if stage in cfg.stages}
    except Exception:  # noqa: BLE001 - a config of another qbn version: report without the plan
        return {}


def runs_section(study_dir: Path, rows: list[dict]) -> str:
    info = read_json(study_dir / STUDY_JSON) or {}
    lines = ["## Runs", ""]
    for inv in info.get("invocations", []):
        took = f", took {inv['wall_s'] / 60:.1f} min" if inv.get("wall_s") is not None else ", did not finish"
        lines.append(f"- `{inv['command']}` at commit {inv['commit']}, started {inv['started']}{took}, on {inv['machine']}")
    planned = planned_runs(study_dir)
    lines += ["", "| stage | planned | started | completed | failed or unfinished | damaged "
              "| wall time (sum of runs) |",
              "|---|---|---|---|---|---|---|"]
    for stage in STAGES:
        rs = [r for r in rows if r["stage"] == stage]
        if not rs and stage not in planned:
            continue
        done, unread = completed(rs), [r for r in damaged(rs) if not r["summary"]]
        wall = sum(r["summary"].get("wall_s") or 0 for r in done)
        unfinished = len(rs) - len(done) - len(unread)
        lines.append(f"| {stage} | {planned.get(stage, '-')} | {len(rs)} | {len(done)} | {unfinished} | "
                     f"{len(damaged(rs))} | {wall / 60:.1f} min |")
    bad = damaged(rows)
    if bad:
        lines += ["", "Runs with a damaged file (not counted in any table: a damaged summary.json is neither "
                  "completed nor unfinished; repair the file, or move the run directory away and run the study "
                  "again to redo it):", ""]
        lines += [f"- {_portable(str(r['dir']), study_dir)}: "
                  + "; ".join(_portable(m, study_dir) for m in r["damaged"]) for r in bad]
    lines += ["", "Each run is `python -m qbn.train OVERRIDES paths.data_dir=$DATA hydra.run.dir=$STUDY/<stage>/<run>` "
              "($STUDY: the study directory; $DATA: the data directory of the machine it ran on):", ""]
    for stage in STAGES:
        rs = [r for r in rows if r["stage"] == stage]
        if rs:
            lines += [f"<details><summary>{stage}: {len(rs)} commands</summary>", "", "```"]
            lines += [f"{r['job']}: " + " ".join(_portable(o, study_dir) for o in _overrides(r["dir"])
                                                 if not o.startswith(("hydra.run.dir=", "paths.data_dir="))) for r in rs]
            lines += ["```", "", "</details>", ""]
    return "\n".join(lines)


# (key in readings.md, section): a reading written by hand follows the section it is keyed to
SECTIONS = [("scaling", scaling_section), ("signs", settle_section), ("rewind", rewind_section),
            ("kernels", kernel_section), ("qbn", qbn_section), ("runs", runs_section)]
READINGS = "readings.md"


def read_readings(study_dir: Path) -> dict[str, str]:
    """The hand-written readings of <study_dir>/readings.md, keyed by its '## <key>' headings
    (keys: scaling, signs, rewind, kernels, qbn, runs); none when the file is absent. They sit in
    the study directory beside the runs, so regenerating RESULTS.md gives the same bytes."""
    path = study_dir / READINGS
    if not path.exists():
        return {}
    keys, readings, key = [k for k, _ in SECTIONS], {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            key = line[3:].strip()
            if key not in keys:
                raise QbnError(f"{path}: unknown section '## {key}'; readings are keyed by one of: {', '.join(keys)}")
            readings[key] = []
        elif key is not None:
            readings[key].append(line)
        elif line.strip():
            raise QbnError(f"{path}: text before the first '## <section>' heading; start with one of: {', '.join(keys)}")
    texts = {k: "\n".join(v).strip() for k, v in readings.items()}
    return {k: t for k, t in texts.items() if t}


def write_results(study_dir: str | Path) -> Path:
    """Write <study_dir>/RESULTS.md and <study_dir>/figures/*.png; return the RESULTS.md path."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise QbnError(f"{study_dir} is not a directory: give a study directory (outputs/study/<scale>)")
    rows = read_study(study_dir)
    if not rows:
        raise QbnError(f"{study_dir} holds no runs (<stage>/<run>/summary.json): run python -m qbn.study first")
    info = read_json(study_dir / STUDY_JSON) or {}
    parts = [f"# Study results ({info.get('scale', study_dir.name)} scale)", "",
             "Generated by `python -m qbn.study report` from the run directories alone; every number below is computed from "
             f"summary.json, signs.json and kernels.json. Intervals: {100 * LEVEL:.0f} % confidence intervals (Student's t over "
             "seeds); differences are paired by seed, in percentage points.", ""]
    planned, done = sum(planned_runs(study_dir).values()), len(completed(rows))
    if planned > done:
        parts += [f"**Partial: {done} of the {planned} planned runs are complete** (the stage table under Runs); every "
                  "table and verdict below is computed from the completed runs only. Run the same study command again "
                  "to finish it.", ""]
    if damaged(rows):
        parts += [f"**Damaged: {len(damaged(rows))} runs have a damaged file** and are not counted (listed by path "
                  "under Runs).", ""]
    readings = read_readings(study_dir)
    for key, section in SECTIONS:
        parts += [section(study_dir, rows), ""]
        if key in readings:
            parts += [f"**Reading** (written by hand, in {READINGS} of the study directory; the numbers it cites are the "
                      "generated ones above):", "", readings[key], ""]
    path = study_dir / RESULTS
    write_text(path, "\n".join(parts).rstrip() + "\n")
    return path

