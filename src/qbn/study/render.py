"""The one renderer of the study's results (qbn.study.results): Markdown for every table and
verdict, PNG for every figure, and the text of every citable number (the readings' keys).

An interval is printed only when it has a width: one seed is "x (1 seed)", equal values are
"x (all 3 seeds equal)", and an interval narrower than the digits shown gets more digits."""

from __future__ import annotations

import math
from pathlib import Path

from ..analysis.figure_files import label_axes, pyplot, save_figure
from .intervals import Estimate
from .results import Cell, Figure, Num, Panel, Section, Table

FIGURES = "figures"
MORE_DIGITS = 3  # at most this many extra decimals to show an interval's width


def number(value: float, digits: int, signed: bool) -> str:
    return f"{value:{'+' if signed else ''}.{digits}f}"


def estimate_text(e: Estimate | None, scale: float = 100.0, digits: int = 2, signed: bool = False) -> str:
    """'mean [lo, hi]' (the estimate's own level), never an interval of zero width."""
    if e is None or e.n == 0 or math.isnan(e.mean):
        return "-"
    mean = number(scale * e.mean, digits, signed)
    if e.n == 1:
        return f"{mean} (1 seed)"
    if e.all_equal:
        return f"{mean} (all {e.n} seeds equal)"
    for d in range(digits, digits + MORE_DIGITS + 1):
        lo, hi = number(scale * e.lo, d, signed), number(scale * e.hi, d, signed)
        if lo != hi:
            return f"{number(scale * e.mean, d, signed)} [{lo}, {hi}]"
    return f"{mean} (interval narrower than {10.0 ** -(digits + MORE_DIGITS):g})"


def cell_text(cell: Cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, Num):
        return estimate_text(cell.est, cell.scale, cell.digits, cell.signed)
    if isinstance(cell, float):
        return f"{cell:.2f}"
    return str(cell)


def table_markdown(t: Table) -> list[str]:
    lines = [t.caption, ""] if t.caption else []
    lines += ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(cell_text(c) for c in row.cells) + " |" for row in t.rows]
    return lines


def numbers(section: Section) -> dict[str, str]:
    """Every citable number of a section, by key: table cells and verdicts, as printed."""
    out: dict[str, str] = {}
    for t in section.tables:
        for row in t.rows:
            if row.key is None:
                continue
            for key, cell in zip(t.column_keys, row.cells, strict=True):
                if key is not None and cell is not None:
                    out[f"{row.key}.{key}"] = cell_text(cell)
    for v in section.verdicts:
        out[v.key] = v.verdict
        if v.detail is not None:
            out[v.key.rsplit(".", 1)[0] + ".detail"] = cell_text(v.detail)
    return out


def _draw_panel(ax, p: Panel) -> None:
    for s in p.series:
        if not s.x:
            continue
        ys = [s.scale * e.mean for e in s.y]
        have = all(e.n > 1 and not e.all_equal for e in s.y)
        if s.band and have:
            (line,) = ax.plot(s.x, ys, marker=s.marker, ms=3, label=s.label)
            ax.fill_between(
                s.x, [s.scale * e.lo for e in s.y], [s.scale * e.hi for e in s.y], color=line.get_color(), alpha=0.15
            )
        else:
            err = [[s.scale * (e.mean - e.lo) for e in s.y], [s.scale * (e.hi - e.mean) for e in s.y]] if have else None
            ax.errorbar(s.x, ys, yerr=err, marker=s.marker, capsize=4, label=s.label)
    for ln in p.lines:
        e = ln.y if isinstance(ln.y, Estimate) else None
        y = ln.scale * (e.mean if e else float(ln.y))
        if e is not None and (e.n == 0 or math.isnan(e.mean)):
            continue
        line = ax.axhline(y, ls=ln.style, lw=1.2, label=ln.label, color="black" if ln.style == "-" else None)
        if e is not None and e.n > 1 and not e.all_equal:
            ax.axhspan(ln.scale * e.lo, ln.scale * e.hi, color=line.get_color(), alpha=0.08)
    if p.margin is not None:
        ax.axhspan(-p.margin, p.margin, color="#228833", alpha=0.12, label=f"±{p.margin:g}")
        ax.axhline(0, color="black", lw=0.8)
    if p.xticks is not None:
        ax.set_xticks(range(len(p.xticks)), p.xticks)
    if p.xlog:
        ax.set_xscale("log")
    label_axes(ax, p.xlabel, p.ylabel, p.title, title_size=9, legend_size=7)


def draw(study_dir: Path, fig_spec: Figure) -> str:
    """Write figures/<name> and return its Markdown image line."""
    plt = pyplot()
    n = len(fig_spec.panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.0), squeeze=False)
    for ax, p in zip(axes[0], fig_spec.panels, strict=True):
        _draw_panel(ax, p)
    save_figure(fig, study_dir / FIGURES / fig_spec.name, dpi=100)
    return f"![{fig_spec.name}]({FIGURES}/{fig_spec.name})"


def section_markdown(study_dir: Path, s: Section) -> str:
    """A claim's section: title, rule, verdict lines, tables, figures."""
    lines = [f"## {s.title}", ""]
    if s.empty:
        return "\n".join(lines + [s.empty])
    if s.rule:
        lines += [f"Rule: {s.rule}", ""]
    for v in s.verdicts:
        detail = (
            f" ({v.detail_label + ': ' if v.detail_label else ''}{cell_text(v.detail)})" if v.detail is not None else ""
        )
        lines.append(f"- {v.label}: **{v.verdict}**{detail}")
    if s.verdicts:
        lines.append("")
    for t in s.tables:
        lines += [*table_markdown(t), ""]
    for f in s.figures:
        if any(p.series or p.lines for p in f.panels):
            lines += [draw(study_dir, f), ""]
    return "\n".join(lines).rstrip()
