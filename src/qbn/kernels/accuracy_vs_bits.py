"""The QBN view of `python -m qbn.aggregate`: test accuracy against bits per binarized weight,
mean and std over seeds per n, with the BWN (1 bit) and full-precision runs as reference lines,
and the model size in bytes (the packed file's measured size when exported, else computed).

References: jobs of the sweep without QBN (a BWN at 1 bit, a full-precision run at 32 bits), the
BWN each QBN job was quantized from (qbn.from_ckpt), and qbn.fp_reference (a full-precision run
directory recorded by the jobs)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.figure_files import pyplot, save_figure
from ..analysis.multirun_table import mean_std
from ..rundir import RunDir


def _size(row: dict) -> float | None:
    return row.get("export/file_bytes") or row.get("model_bytes")


def _run_dir(path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    for candidate in (p, *p.parents[:3]):
        if RunDir(candidate).summary.exists():
            return candidate
    return None


def references(rows: list[dict]) -> dict[str, dict]:
    """BWN and full-precision reference accuracies ({'bwn'|'fp': {'acc': [...], 'bytes': ...}})."""
    refs: dict[str, dict] = {"bwn": {"acc": [], "bytes": None, "sources": set()},
                             "fp": {"acc": [], "bytes": None, "sources": set()}}

    def add(kind: str, summary: dict | None, source: str) -> None:
        if (summary and summary.get("status") == "completed" and summary.get("test/acc") is not None
                and source not in refs[kind]["sources"]):
            refs[kind]["sources"].add(source)
            refs[kind]["acc"].append(summary["test/acc"])
            refs[kind]["bytes"] = refs[kind]["bytes"] or _size(summary)

    for r in rows:
        q = r.get("qbn") or {}
        if not q:
            add("bwn" if r.get("binary", True) else "fp", r, r.get("run_dir") or r["job"])
            continue
        for kind, key in (("bwn", "from_ckpt"), ("fp", "fp_reference")):
            d = _run_dir(q.get(key))
            if d is not None:
                add(kind, RunDir(d).read_summary(), str(d))
    return refs


def qbn_table(rows: list[dict]) -> list[dict]:
    """One entry per QBN setting (n or budget): accuracy mean/std over seeds, bits per weight, bytes."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        q = r.get("qbn")
        if q and r.get("status") == "completed":
            key = f"n={q['bits']}" if q.get("bits") is not None else f"budget={q['budget']}"
            key += f" {q.get('codebook', 'per_layer')}" + (" progressive" if q.get("progressive") else "")
            groups.setdefault(key, []).append(r)
    table = []
    for key, rs in groups.items():
        m, s, n = mean_std([r.get("test/acc") for r in rs])
        bpw, _, _ = mean_std([r.get("bits_per_weight") for r in rs])
        sizes = [x for x in (_size(r) for r in rs) if x]
        table.append({"setting": key, "n": n, "acc": m, "std": s, "bits_per_weight": bpw,
                      "bytes": max(sizes) if sizes else None, "measured": any(r.get("export/file_bytes") for r in rs),
                      "seeds": sorted({r.get("seed") for r in rs})})
    return sorted(table, key=lambda t: -t["bits_per_weight"])


def plot(path: Path, table: list[dict], refs: dict) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    x = [t["bits_per_weight"] for t in table]
    ax.errorbar(x, [100 * t["acc"] for t in table], yerr=[100 * t["std"] for t in table], marker="o", capsize=4,
                color="#4477aa", label="QBN (mean ± std over seeds)")
    for t in table:
        ax.annotate(t["setting"].split()[0], (t["bits_per_weight"], 100 * t["acc"]), textcoords="offset points",
                    xytext=(4, -12), fontsize=7)
    for kind, color, label in (("bwn", "black", "BWN, 1 bit"), ("fp", "#cc3311", "full precision")):
        acc = refs[kind]["acc"]
        if acc:
            m, s, _ = mean_std(acc)
            ax.axhline(100 * m, color=color, ls="--", lw=1.2, label=f"{label}: {100 * m:.2f} %")
    if refs["bwn"]["acc"]:
        ax.plot([1.0], [100 * mean_std(refs["bwn"]["acc"])[0]], marker="s", color="black")
    ax.set_xlabel("bits per binarized weight")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("QBN: accuracy against bits per binarized weight")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def qbn_view(sweep_dir: Path, rows: list[dict]) -> str:
    """Markdown for results.md (and figures/qbn_accuracy_bits.png); '' when no job used QBN."""
    table = qbn_table(rows)
    if not table:
        return ""
    refs = references(rows)
    plot(Path(sweep_dir) / "figures" / "qbn_accuracy_bits.png", table, refs)
    lines = ["## QBN: accuracy against bits per binarized weight", "",
             "Only 3x3 binary convs are quantized; other binary layers count 1 bit per weight. Model size: the "
             "packed file (export/file_bytes) when exported, else computed (n bits per kernel + codebooks + 32-bit "
             "full-precision values).", "",
             "| setting | seeds | bits / weight | test acc % (mean ± std) | vs BWN (pp) | model bytes |",
             "|---|---|---|---|---|---|"]
    bwn = mean_std(refs["bwn"]["acc"])[0] if refs["bwn"]["acc"] else None
    for kind, label, bits in (("fp", "full precision", "32"), ("bwn", "BWN", "1")):
        if refs[kind]["acc"]:
            m, s, n = mean_std(refs[kind]["acc"])
            lines.append(f"| {label} (reference) | {n} | {bits} | {100 * m:.2f} ± {100 * s:.2f} | - "
                         f"| {refs[kind]['bytes'] or '-'} |")
    for t in table:
        delta = "-" if bwn is None else f"{100 * (t['acc'] - bwn):+.2f}"
        size = "-" if t["bytes"] is None else f"{int(t['bytes'])}{'' if t['measured'] else ' (computed)'}"
        lines.append(f"| {t['setting']} | {t['n']} | {t['bits_per_weight']:.4f} "
                     f"| {100 * t['acc']:.2f} ± {100 * t['std']:.2f} | {delta} | {size} |")
    lines += ["", "![QBN accuracy against bits](figures/qbn_accuracy_bits.png)"]
    return "\n".join(lines)

