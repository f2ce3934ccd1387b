"""Figures: one place that selects the headless backend and saves (every figure is a PNG file)."""

from __future__ import annotations

from pathlib import Path

from ..file_io import replaced


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_axes(ax, xlabel: str, ylabel: str, title: str, title_size: int | None = None, legend_size: int = 8,
               legend_loc: str = "best", grid_which: str = "major") -> None:
    """The axes' labels, title, legend and light grid, the same way in every report figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))  # None: matplotlib's title size
    ax.legend(fontsize=legend_size, loc=legend_loc)
    ax.grid(alpha=0.3, which=grid_which)


def save_figure(fig, path: str | Path, dpi: int = 120, tight: bool = True) -> Path:
    """Lay out (unless `tight` is off), write `path` (creating its folder; through a temporary file,
    renamed once complete) and close the figure; OutputError when it cannot be written."""
    path = Path(path)
    try:
        if tight:
            fig.tight_layout()
        with replaced(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        pyplot().close(fig)
    return path
