"""`python -m qbn.report RUN_DIR`: figures/*.png and report.md for one run directory.

Reads only what the run left on disk (summary.json, metrics.csv, signs.json, signs/*.pt), so a
report can be rebuilt at any time without re-training. `train.py` calls `write_report` at the end
of a run when `report: true`.

The report is a list of SECTIONS: functions run_dir -> markdown ("" to skip) that may write
figures under run_dir/figures. Another instrument's section is imported and listed in SECTIONS
below (as qbn.kernels.report_section.kernel_section is).
"""

from __future__ import annotations

import csv
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

from matplotlib.ticker import MaxNLocator  # matplotlib but not pyplot: the backend is chosen later

from .analysis.figure_files import label_axes, pyplot, save_figure
from .analysis.multirun_table import pct
from .analysis.sign_dynamics import analyze_run
from .errors import DamagedFileError, OutputError, QbnError, command
from .file_io import check_can_write, read_json, write_text
from .kernels.report_section import kernel_section
from .rundir import RunDir
from .signs import list_snapshots

log = logging.getLogger("qbn.report")

SECTIONS: list[Callable[[Path], str]] = []
FIGURES = RunDir.FIGURES
# report.md and its figures; signs.json (and its summary.json fields) when the run has snapshots but no signs.json
WRITES = (RunDir.REPORT, RunDir.FIGURES, RunDir.SIGNS_JSON)


# ---- reading the run directory ------------------------------------------------------------

def read_epoch_metrics(run_dir: Path, prefix: str = "") -> dict[str, dict[int, float]]:
    """{metric: {epoch (1-based, end of epoch): value}} for epoch-level metrics.csv columns."""
    path = RunDir(run_dir).metrics
    out: dict[str, dict[int, float]] = {}
    if not path.exists():
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if not epoch:
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or not value or not key.startswith(prefix):
                    continue
                try:
                    out.setdefault(key, {})[int(float(epoch)) + 1] = float(value)
                except ValueError:
                    continue
    return out


def read_signs(run_dir: Path) -> dict | None:
    """signs.json, computed from the snapshots first when it is absent."""
    path = RunDir(run_dir).signs_json
    if not path.exists():
        if not list_snapshots(run_dir):
            return None
        return analyze_run(run_dir)
    return read_json(path)


def _save(fig, run_dir: Path, name: str) -> str:
    path = RunDir(run_dir).figures / name
    for ax in fig.axes:
        if "epoch" in ax.get_xlabel():
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    save_figure(fig, path, dpi=110)
    return f"{FIGURES}/{name}"


def _layer_colors(n: int):
    cmap = pyplot().get_cmap("viridis")
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


# ---- sections -------------------------------------------------------------------------------

def summary_section(run_dir: Path) -> str:
    """The run's basics from summary.json: accuracy, model, recipe."""
    s = RunDir(run_dir).read_summary()
    if s is None:
        return "## Run\n\nNo summary.json in this run directory."
    rows = [("status", s.get("status")), ("test accuracy %", pct(s.get("test/acc"))),
            ("best val accuracy %", pct(s.get("val/acc_best"))),
            ("model", s.get("model")), ("scaling", s.get("scaling")), ("dataset", s.get("dataset")),
            ("optimizer", s.get("optimizer")), ("lr", s.get("lr")), ("scheduler", s.get("scheduler")),
            ("epochs", f"{s.get('epochs', '-')} of {s.get('max_epochs', '-')}"), ("seed", s.get("seed")),
            ("parameters / binarized", f"{s.get('params', '-')} / {s.get('binarized_params', '-')}"),
            ("wall time s", s.get("wall_s"))]
    lines = ["## Run", "", "| | |", "|---|---|"] + [f"| {k} | {'-' if v is None else v} |" for k, v in rows]
    return "\n".join(lines)


def flip_section(run_dir: Path) -> str:
    """Epoch flip ratio, overall and per layer, on a log scale."""
    m = read_epoch_metrics(run_dir, "signs/flip_ratio")
    overall = m.pop("signs/flip_ratio", None)
    m = {k: v for k, v in m.items() if k.startswith("signs/flip_ratio/")}  # not the per-step column
    if not overall:
        return ""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    layers = list(m)  # metrics.csv column order: shallow to deep for the backbones' layer names
    for color, key in zip(_layer_colors(len(layers)), layers, strict=False):
        xs = sorted(m[key])
        ax.plot(xs, [max(m[key][x], 1e-9) for x in xs], color=color, lw=0.9, alpha=0.8)
    xs = sorted(overall)
    ax.plot(xs, [max(overall[x], 1e-9) for x in xs], color="black", lw=2.2, marker="o", ms=3,
            label="all binarized weights")
    ax.set_yscale("log")
    label_axes(ax, "epoch", "mean step flip ratio",
               "sign flips per optimizer step (epoch mean); thin: layers, shallow (purple) to deep (yellow)",
               title_size=9, legend_size=8, grid_which="both")
    fig_path = _save(fig, run_dir, "flip_ratio.png")
    first, last = xs[0], xs[-1]
    return "\n".join(["## Sign flips", "",
                      f"Mean step flip ratio: {overall[first]:.2e} in epoch {first}, "
                      f"{overall[last]:.2e} in epoch {last}.", "",
                      f"![flip ratio]({fig_path})"])


def signs_section(run_dir: Path) -> str:
    """d_e, c_e, stable-sign curves, last-flip histogram with E_q, per-layer freeze epochs."""
    signs = read_signs(run_dir)
    if signs is None:
        return ""
    lines = ["## Sign dynamics (from signs/epoch_NNN.pt)", ""]
    for p in signs.get("problems", []):
        lines.append(f"- warning: {p}")
    o = signs.get("overall")
    if not o:
        return "\n".join(lines)
    epochs = signs["epochs"]
    plt = pyplot()
    qs = [k for k in o if k.startswith("E_")]
    q_colors = dict(zip(qs, ["#228833", "#ee7733", "#cc3311"], strict=False))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(epochs, [100 * v for v in o["d_e"]], marker="o", ms=3, label="d_e: differ from final signs")
    a1.plot(epochs[1:], [100 * v for v in o["c_e"]], marker="s", ms=3, label="c_e: differ from previous epoch")
    label_axes(a1, "epoch", "% of binarized weights", "distance to final and epoch change", legend_size=8)
    layers = signs["layers"]
    for color, (_name, d) in zip(_layer_colors(len(layers)), layers.items(), strict=False):
        a2.plot(epochs, [100 * v for v in d["stable_fraction"]], color=color, lw=0.8, alpha=0.7)
    a2.plot(epochs, [100 * v for v in o["stable_fraction"]], color="black", lw=2, label="all layers")
    for q in qs:
        a2.axhline(100 * float(q[2:]), color=q_colors[q], ls=":", lw=1)
    label_axes(a2, "epoch e", "% of weights with last flip <= e", "stable-sign fraction (thin: layers)", legend_size=8)
    dist_fig = _save(fig, run_dir, "sign_distance.png")

    fig, ax = plt.subplots(figsize=(7, 3.8))
    n = o["num_weights"]
    ax.bar(epochs, [100 * c / n for c in o["last_flip_histogram"]], color="#4477aa", width=0.8)
    for q in qs:
        ax.axvline(o[q], color=q_colors[q], ls="--", lw=1.5, label=f"{q} = {o[q]}")
    ax.set_xlabel("last-flip epoch L_i (0: never flipped)")
    ax.set_ylabel("% of binarized weights")
    ax.set_title("when each weight's sign last changed")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    hist_fig = _save(fig, run_dir, "last_flip.png")

    names = list(layers)
    fig, ax = plt.subplots(figsize=(4 + 0.5 * len(qs), 1.2 + 0.28 * len(names)))
    grid = [[layers[nm][q] for q in qs] for nm in names]
    im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=epochs[0], vmax=epochs[-1])
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > (epochs[0] + epochs[-1]) / 2 else "black")
    ax.set_xticks(range(len(qs)), qs)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title("sign-freeze epoch per layer", fontsize=9)
    fig.colorbar(im, ax=ax, label="epoch", ticks=MaxNLocator(integer=True))
    heat_fig = _save(fig, run_dir, "freeze_epochs.png")

    latest = sorted(names, key=lambda nm: (layers[nm].get("E_0.95", 0), layers[nm]["num_weights"]), reverse=True)[:3]
    lines += [f"Snapshots of epochs {epochs[0]}..{epochs[-1]} ({len(epochs)} files), {n} binarized weights.", "",
              "| | " + " | ".join(qs) + " | signs changed since first snapshot % |",
              "|---|" + "---|" * (len(qs) + 1),
              "| all layers | " + " | ".join(str(o[q]) for q in qs) + f" | {pct(o['changed_from_init'])} |", "",
              "d_e % by epoch: " + ", ".join(f"{e}: {100 * d:.1f}" for e, d in zip(epochs, o["d_e"], strict=False)), "",
              "Layers that settle last (E_0.95): "
              + ", ".join(f"{nm} ({layers[nm].get('E_0.95')})" for nm in latest), "",
              f"![distance to final]({dist_fig})", "", f"![last flip]({hist_fig})", "", f"![freeze epochs]({heat_fig})"]
    return "\n".join(lines)


def step_signs_section(run_dir: Path) -> str:
    """The stable share against the share of training steps (signs.json `steps`): overall, per layer,
    and over the weights that ever flip, with the E_q marks."""
    signs = read_signs(run_dir)
    steps = (signs or {}).get("steps")
    if not steps:
        return ""
    o, layers = steps["overall"], steps["layers"]
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for color, d in zip(_layer_colors(len(layers)), layers.values(), strict=False):
        a1.plot(d["stable_share"]["share_of_training"], [100 * v for v in d["stable_share"]["all"]], color=color,
                lw=0.8, alpha=0.7)
    curve = o["stable_share"]
    a1.plot(curve["share_of_training"], [100 * v for v in curve["all"]], color="black", lw=2, label="all weights")
    if curve["flipped"] is not None:
        a1.plot(curve["share_of_training"], [100 * v for v in curve["flipped"]], color="#cc3311", lw=2,
                label="weights that ever flip")
    label_axes(a1, "share of training steps", "% with last flip <= step", "stable share (thin: layers)",
               legend_size=8)
    qs = [0.90, 0.95, 0.99]
    names = list(layers)
    a2.barh(range(len(names)), [layers[n]["E_0.95_frac_flipped"] or 0 for n in names], color="#4477aa")
    a2.set_yticks(range(len(names)), names, fontsize=6)
    a2.invert_yaxis()
    a2.set_xlabel("E_0.95 over the weights that ever flip (share of training)")
    a2.set_title("per layer")
    a2.grid(alpha=0.3, axis="x")
    fig_path = _save(fig, run_dir, "stable_steps.png")

    def frac(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = ["## Sign timing at step resolution (signs/last_flip_step.pt)", "",
             f"{steps['total_steps']} optimizer steps; {pct(o['ever_flipped'])} % of the binarized weights ever flip. "
             "E_q: the share of training by which a share q of the weights made their last flip.", "",
             "| | " + " | ".join(f"E_{q:.2f}" for q in qs) + " |", "|---|" + "---|" * len(qs),
             "| all weights | " + " | ".join(frac(o[f"E_{q:.2f}_frac"]) for q in qs) + " |",
             "| weights that ever flip | " + " | ".join(frac(o[f"E_{q:.2f}_frac_flipped"]) for q in qs) + " |", "",
             f"![stable share against steps]({fig_path})"]
    return "\n".join(lines)


def weights_section(run_dir: Path) -> str:
    """Latent weight norms, mean |W|, share inside the STE clip range, alpha over epochs."""
    m = read_epoch_metrics(run_dir, "weights/")
    if not m:
        return ""
    plt = pyplot()
    panels = [("l2", "latent L2 norm"), ("mean_abs", "mean |W|"), ("clip_share", "share with |W| <= 1"),
              ("alpha_mean", "alpha mean (band: min..max)")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for ax, (stat, title) in zip(axes.flat, panels, strict=False):
        keys = [k for k in m if k.startswith(f"weights/{stat}/")]
        for color, key in zip(_layer_colors(len(keys)), keys, strict=False):
            xs = sorted(m[key])
            ax.plot(xs, [m[key][x] for x in xs], color=color, lw=1)
            if stat == "alpha_mean":
                layer = key.split("/", 2)[2]
                lo, hi = m.get(f"weights/alpha_min/{layer}", {}), m.get(f"weights/alpha_max/{layer}", {})
                if lo and hi:
                    ax.fill_between(xs, [lo.get(x, math.nan) for x in xs], [hi.get(x, math.nan) for x in xs],
                                    color=color, alpha=0.04)
        if stat == "clip_share" and "weights/clip_share" in m:
            xs = sorted(m["weights/clip_share"])
            ax.plot(xs, [m["weights/clip_share"][x] for x in xs], color="black", lw=2, label="all layers")
            ax.legend(fontsize=8)
        if not keys:
            ax.text(0.5, 0.5, "no alpha (scaling none)" if stat == "alpha_mean" else "not logged",
                    ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle("binary layers' latent weights and scales (shallow: purple, deep: yellow)", fontsize=9)
    path = _save(fig, run_dir, "weights.png")
    return "\n".join(["## Latent weights and scales", "", f"![weights]({path})"])


SECTIONS += [summary_section, flip_section, signs_section, step_signs_section, weights_section, kernel_section]


# ---- the report ----------------------------------------------------------------------------

def write_report(run_dir: str | Path) -> Path:
    """Run every section; write report.md. A failing section becomes a line in the report. Checked
    first, before anything is written: the files the sections read (a damaged one is named in one
    QbnError) and that report.md and figures/ can be written (OutputError)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise QbnError(f"{run_dir} is not a directory: give a run directory (outputs/<name>/<timestamp>)")
    RunDir(run_dir).read_summary()   # each raises DamagedFileError, naming the file, when it does not read
    run = RunDir(run_dir)
    read_json(run.signs_json)
    read_json(run.kernels_json)
    path = run.report
    # signs.json and summary.json too when the signs section computes them from the snapshots
    computes_signs = [run.signs_json, run.summary] if not run.signs_json.exists() else []
    check_can_write(path, run.figures / "report.png", *computes_signs)
    parts = [f"# Run report: {run_dir.name}", ""]
    for section in SECTIONS:
        try:
            text = section(run_dir)
        except (DamagedFileError, OutputError):
            raise
        except Exception as e:  # noqa: BLE001  one broken section must not hide the others
            log.warning("report section %s failed: %s", section.__name__, e)
            text = f"_(section {section.__name__} failed: {type(e).__name__}: {e})_"
        if text:
            parts += [text, ""]
    write_text(path, "\n".join(parts))
    return path


def report_figures(run_dir: str | Path) -> list[Path]:
    return sorted(RunDir(run_dir).figures.glob("*.png"))


def log_figures(loggers, run_dir: str | Path) -> None:
    """Send the report's figures to W&B as images when a WandbLogger is among `loggers`."""
    for logger in loggers or []:
        if type(logger).__name__ != "WandbLogger":
            continue
        import wandb

        logger.experiment.log({f"report/{p.stem}": wandb.Image(str(p)) for p in report_figures(run_dir)})


def main(argv: list[str] | None = None) -> int:
    def report(args: list[str]) -> str:
        path = write_report(args[0])
        return f"wrote {path} and {len(report_figures(args[0]))} figures in {RunDir(args[0]).figures}"

    return command(sys.argv[1:] if argv is None else argv, "python -m qbn.report RUN_DIR", lambda a: len(a) == 1,
                   report)


if __name__ == "__main__":
    sys.exit(main())
