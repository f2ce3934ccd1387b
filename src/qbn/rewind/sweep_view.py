"""The rewinding view of a sweep (claim 2): test accuracy of rewound runs against K, with the
trunk's accuracy, the controls, and the share of signs already final at K (1 - d_K)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.figure_files import pyplot, save_figure
from ..analysis.multirun_table import mean_std, pct
from ..rundir import RunDir
from .trunk import share_final, trunk_last_epoch


def _order(mode: str, k) -> tuple:
    rank = {"epoch": 0, "stable": 1, "random": 2, "final": 3}.get(mode, 4)
    return rank, -1 if k is None else int(k)


def rewind_groups(rows: list[dict]) -> dict[str, dict]:
    """Rewound runs grouped by trunk, then by (weights, signs): accuracies over seeds."""
    out: dict[str, dict] = {}
    for r in rows:
        trunk = r.get("rewind/trunk")
        if not trunk:
            continue
        g = out.setdefault(trunk, {}).setdefault((r.get("rewind/weights"), r.get("rewind/signs")), {
            "weights": r.get("rewind/weights"), "signs": r.get("rewind/signs"), "mode": r.get("rewind/mode"),
            "K": r.get("rewind/K"), "fixed_share": r.get("rewind/fixed_share"), "acc": [], "jobs": 0})
        g["jobs"] += 1
        if r.get("status") == "completed" and r.get("test/acc") is not None:
            g["acc"].append(r["test/acc"])
    return out


def _trunk_info(trunk: str) -> dict:
    path = Path(trunk)
    summary = RunDir(path).read_summary() or {}
    info = {"dir": path, "acc": summary.get("test/acc"), "epochs": summary.get("epochs"), "share_final": None}
    try:
        last = trunk_last_epoch(path)
        info["epochs"] = last
        info["share_final"] = share_final(path, last)
    except Exception:  # noqa: BLE001  a moved or partial trunk: the table still shows the runs
        pass
    return info


def plot_rewind(path: Path, trunk: dict, groups: list[dict]) -> None:
    """Accuracy against K (mean and std over seeds) per weights rewind point; trunk line; controls
    as marks; share of signs final at K on the right axis."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series: dict[tuple[str, str], list] = {}
    for g in groups:
        if g["mode"] in ("epoch", "stable") and g["acc"]:
            series.setdefault((g["mode"], g["weights"]), []).append(g)
    for i, ((mode, weights), gs) in enumerate(sorted(series.items())):
        gs = sorted(gs, key=lambda g: g["K"])
        ms = [mean_std(g["acc"]) for g in gs]
        label = f"{'signs S_K' if mode == 'epoch' else 'stable signs L_i<=K'}, weights={weights}"
        ax.errorbar([g["K"] for g in gs], [100 * m for m, _, _ in ms], yerr=[100 * s for _, s, _ in ms], marker="o",
                    capsize=4, color=colors[i % len(colors)], linestyle="-" if mode == "epoch" else ":", label=label)
    if trunk.get("acc") is not None:
        ax.axhline(100 * trunk["acc"], color="black", linewidth=1.2, label=f"trunk ({pct(trunk['acc'])} %)")
    last = trunk.get("epochs")
    marks = {"final": ("*", last if last is not None else 0), "random": ("X", -1)}
    for g in groups:
        if g["mode"] in marks and g["acc"]:
            m, s, _ = mean_std(g["acc"])
            shape, x = marks[g["mode"]]
            ax.errorbar([x], [100 * m], yerr=[100 * s], marker=shape, markersize=11, capsize=4, linestyle="none",
                        color="#aa3377" if g["mode"] == "random" else "#228833",
                        label=f"control: {g['signs']} signs, weights={g['weights']}")
    if last is not None:
        step = max(1, (int(last) + 1) // 15)
        ticks = list(range(0, int(last) + 1, step))
        labels = [str(t) for t in ticks]
        if any(g["mode"] == "random" and g["acc"] for g in groups):
            ticks, labels = [-1, *ticks], ["random", *labels]
        ax.set_xticks(ticks, labels)
    ax.set_xlabel("K (signs fixed to the trunk's S_K; X = random signs, * = final signs)")
    ax.set_ylabel("test accuracy (%)")
    share = trunk.get("share_final")
    if share:
        ax2 = ax.twinx()
        ax2.plot(range(len(share)), [100 * s for s in share], color="grey", marker="s", markersize=3, linewidth=1,
                 alpha=0.7, label="signs already final at K (1 - d_K)")
        ax2.set_ylabel("signs already final at K (%)", color="grey")
        ax2.set_ylim(0, 101)
        h2, l2 = ax2.get_legend_handles_labels()
    else:
        h2, l2 = [], []
    h1, l1 = ax.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower right")
    ax.set_title("rewound runs: test accuracy against K (mean ± std over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def rewind_view(sweep_dir: Path, rows: list[dict]) -> str:
    """Markdown table (and figures/rewind*.png) for the rewound runs of a sweep; "" when none."""
    by_trunk = rewind_groups(rows)
    if not by_trunk:
        return ""
    lines = ["## Rewinding with fixed signs (claim 2)", ""]
    for i, (trunk_dir, groups) in enumerate(sorted(by_trunk.items())):
        trunk = _trunk_info(trunk_dir)
        gs = sorted(groups.values(), key=lambda g: (str(g["weights"]), *_order(g["mode"], g["K"])))
        share = trunk["share_final"]
        name = "rewind.png" if len(by_trunk) == 1 else f"rewind_{i}.png"
        plot_rewind(Path(sweep_dir) / "figures" / name, trunk, gs)
        lines += [f"Trunk `{trunk_dir}`: {trunk['epochs']} epochs, test accuracy {pct(trunk['acc'])} %.", "",
                  "| signs | K | weights | signs final at K (1 - d_K) % | signs fixed % | seeds "
                  "| test acc % (mean ± std) | vs trunk (points) |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| trunk | - | - | - | - | 1 | {pct(trunk['acc'])} | 0 |"]
        for g in gs:
            m, s, n = mean_std(g["acc"])
            k = g["K"]
            final_at_k = share[k] if share and k is not None and k < len(share) else None
            delta = "-" if trunk["acc"] is None or n == 0 else f"{100 * (m - trunk['acc']):+.2f}"
            lines.append(f"| {g['signs']} | {'-' if k is None else k} | {g['weights']} | {pct(final_at_k)} | "
                         f"{pct(g['fixed_share'])} | {n}/{g['jobs']} | {pct(m)} ± {pct(s)} | {delta} |")
        lines += ["", f"![rewinding](figures/{name})", ""]
    return "\n".join(lines)

