"""Read a multirun directory: one row per job from its summary.json and .hydra/ files."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import DamagedFileError
from ..rundir import RunDir

KEY_METRICS = ("test/acc", "val/acc_best", "epochs", "wall_s")


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep (those with a .hydra folder), in job order."""
    dirs = [d for d in sweep_dir.iterdir() if d.is_dir() and RunDir(d).hydra_dir.is_dir()]
    return sorted(dirs, key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name))


def job_overrides(job_dir: Path) -> dict[str, str]:
    path = RunDir(job_dir).overrides_yaml
    if not path.exists():
        return {}
    out = {}
    for item in OmegaConf.load(path):
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def read_rows(sweep_dir: Path) -> list[dict]:
    rows = []
    for d in job_dirs(sweep_dir):
        try:
            summary = RunDir(d).read_summary() or {"status": "missing"}
        except DamagedFileError as e:   # listed by path with the jobs that did not complete, never counted
            summary = {"status": "damaged", "error": str(e)}
        row = {"job": d.name, **summary}
        row["overrides"] = job_overrides(d)
        rows.append(row)
    # A setting is named by the overrides that differ between jobs; the shared ones say nothing.
    keys = {k for r in rows for k in r["overrides"]}
    varying = sorted(k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1)
    for r in rows:
        r["varying"] = varying
    return rows


def group_key(row: dict, ignore: tuple[str, ...] = ("seed",)) -> str:
    """The run's setting without the seed: rows with the same key are repeats."""
    keys = row.get("varying", sorted(row["overrides"]))
    items = [f"{k}={row['overrides'].get(k, '(default)')}".replace("\\:", ":") for k in keys if k not in ignore]
    return " ".join(items) or "(all jobs)"


def mean_std(values: list[float]) -> tuple[float, float, int]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan"), 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def pct(x) -> str:
    """A share as a percentage with two decimals, "-" when there is none (None or NaN)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"
