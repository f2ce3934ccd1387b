"""`python -m qbn.aggregate SWEEP_DIR`: results.csv, results.md and figures across a sweep's jobs
(mean and spread over seeds). Also runs by itself at the end of every multirun. A sweep it cannot
aggregate (no such directory, no job directories) is one line and leaves the directory as it was:
every file is written to a temporary file and renamed, and only once every check passed. A job
whose summary.json is damaged is listed by path, not counted.

Study-specific views (rewinding, QBN) add their own tables and figures through VIEWS: each is
called with the sweep directory and the rows, and returns markdown to append (or ""). A new view
is imported and listed here.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path

from .analysis.figure_files import pyplot, save_figure
from .analysis.multirun_table import KEY_METRICS, group_key, mean_std, pct, read_rows
from .errors import QbnError, command
from .file_io import write_text
from .kernels.accuracy_vs_bits import qbn_view
from .rewind.sweep_view import rewind_view

VIEWS: list[Callable[[Path, list[dict]], str]] = [rewind_view, qbn_view]


def csv_text(rows: list[dict]) -> str:
    """results.csv: one line per job."""
    columns = ["job", "status", "group", *KEY_METRICS]
    extra = sorted({k for r in rows for k in r if k not in columns and k not in ("overrides", "error")
                    and isinstance(r[k], (int, float, str, bool)) and not isinstance(r[k], dict)})
    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=[*columns, *extra, "overrides", "error"], extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "group": group_key(r), "overrides": " ".join(f"{k}={v}" for k, v in r["overrides"].items())})
    return f.getvalue()


def summary_table(rows: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(group_key(r), []).append(r)
    table = []
    for key, rs in groups.items():
        done = [r for r in rs if r.get("status") == "completed"]
        m, s, n = mean_std([r.get("test/acc") for r in done])
        vm, vs, _ = mean_std([r.get("val/acc_best") for r in done])
        table.append({"group": key, "n": n, "jobs": len(rs), "test_mean": m, "test_std": s,
                      "val_mean": vm, "val_std": vs,
                      "seeds": sorted({r.get("seed") for r in done if r.get("seed") is not None})})
    return table


def plot_groups(path: Path, table: list[dict]) -> None:
    plt = pyplot()

    rows = [t for t in table if t["n"]]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows) + 2), 3.5))
    ax.bar(range(len(rows)), [100 * t["test_mean"] for t in rows], yerr=[100 * t["test_std"] for t in rows],
           capsize=4, color="#4477aa")
    ax.set_xticks(range(len(rows)), [t["group"].replace(" ", "\n") for t in rows], fontsize=8)
    lo = min(100 * (t["test_mean"] - t["test_std"]) for t in rows)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("test accuracy, mean and std over seeds")
    save_figure(fig, path)


def aggregate(sweep_dir: str | Path) -> list[dict]:
    """Write results.csv, results.md and figures/test_acc.png into the sweep directory; a QbnError,
    and nothing written, when it is not a directory or holds no job directories."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise QbnError(f"{sweep_dir} is not a directory: give a multirun directory (outputs/<name>/multirun_<time>)")
    rows = read_rows(sweep_dir)
    if not rows:
        raise QbnError(f"{sweep_dir} holds no job directories (folders with .hydra/): give a multirun directory")
    table = summary_table(rows)
    plot_groups(sweep_dir / "figures" / "test_acc.png", table)
    completed = sum(r.get("status") == "completed" for r in rows)
    lines = [f"# Sweep {sweep_dir.name}", "", f"{len(rows)} jobs, {completed} completed.", "",
             "| setting | seeds | test acc % (mean ± std) | best val acc % |", "|---|---|---|---|"]
    for t in table:
        lines.append(f"| {t['group']} | {t['n']}/{t['jobs']} | {pct(t['test_mean'])} ± {pct(t['test_std'])} "
                     f"| {pct(t['val_mean'])} |")
    failed = [r for r in rows if r.get("status") != "completed"]
    if failed:
        lines += ["", "## Jobs that did not complete", ""]
        lines += [f"- job {r['job']} ({group_key(r)}): {r.get('status')}: {r.get('error', '')}" for r in failed]
    lines += ["", "![test accuracy](figures/test_acc.png)", ""]
    for view in VIEWS:
        extra = view(sweep_dir, rows)
        if extra:
            lines += [extra, ""]
    write_text(sweep_dir / "results.csv", csv_text(rows))
    write_text(sweep_dir / "results.md", "\n".join(lines))
    return rows


def _aggregate_and_show(args: list[str]) -> str:
    aggregate(args[0])
    return (Path(args[0]) / "results.md").read_text()


def main(argv: list[str] | None = None) -> int:
    return command(sys.argv[1:] if argv is None else argv, "python -m qbn.aggregate SWEEP_DIR (a multirun directory)",
                   lambda a: len(a) == 1, _aggregate_and_show)


if __name__ == "__main__":
    sys.exit(main())
