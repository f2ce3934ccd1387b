"""The study's runs, read from their directories alone: one Run per <study>/<stage>/<job>/ with a
summary.json, its options (the overrides it was started with, .hydra/overrides.yaml), signs.json
and kernels.json. The claims (qbn.study.claims) are pure functions of these runs, so tests build
them from hand-made run directories."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import DamagedFileError
from ..file_io import read_json, read_yaml
from ..rundir import RunDir
from . import keys as K
from .plan import STAGES


def _json(path: Path, damaged: list[str] | None = None) -> dict | None:
    """A JSON file of a run; None when absent, or when damaged (its message then added to `damaged`)."""
    try:
        data = read_json(path) if path.name != RunDir.SUMMARY else RunDir(path.parent).read_summary()
    except DamagedFileError as e:
        if damaged is None:
            raise
        damaged.append(str(e))
        return None
    return data if isinstance(data, dict) else None


def read_options(run_dir: Path, damaged: list[str] | None = None) -> dict[str, str]:
    """The run's overrides as {key: value} (as typed, '+'/'~' dropped); a damaged overrides.yaml
    reads as none, its message added to `damaged` (raised when `damaged` is None)."""
    try:
        overrides = read_yaml(RunDir(run_dir).overrides_yaml)
    except DamagedFileError as e:
        if damaged is None:
            raise
        damaged.append(str(e))
        return {}
    out = {}
    for o in overrides or []:
        key, _, value = str(o).partition("=")
        out[key.lstrip("+~")] = value
    return out


@dataclass
class Run:
    stage: str
    job: str
    dir: Path
    summary: dict
    options: dict[str, str]
    # one message per damaged file (summary.json, overrides, signs.json, kernels.json): such a file is
    # never read as a missing one; a run whose summary.json is damaged is neither completed nor unfinished
    damaged: list[str] = field(default_factory=list)

    @cached_property
    def signs(self) -> dict:
        return _json(RunDir(self.dir).signs_json, self.damaged) or {}

    @cached_property
    def kernels(self) -> dict:
        return _json(RunDir(self.dir).kernels_json, self.damaged) or {}

    def get(self, key: str):
        """A summary value; None when absent or not a finite number."""
        v = self.summary.get(key)
        return None if isinstance(v, float) and not math.isfinite(v) else v

    @property
    def completed(self) -> bool:
        return self.summary.get(K.STATUS) == "completed"

    @property
    def seed(self):
        return self.summary.get(K.SEED)

    @property
    def epochs(self) -> int:
        return int(self.summary.get(K.EPOCHS) or self.options.get("trainer.max_epochs") or 0)

    @property
    def steps(self) -> int | None:
        s = self.summary.get(K.GLOBAL_STEP)
        return int(s) if s else None

    @property
    def recipe(self) -> str:
        return f"{self.summary.get(K.OPTIMIZER)}_{self.summary.get(K.SCHEDULER)}"

    @property
    def norm(self) -> str:
        return self.options.get(K.NORM, "batch")

    @property
    def scheme(self) -> str:
        return str(self.summary.get(K.SCALING))

    @property
    def binary(self) -> bool:
        return bool(self.summary.get("binary", self.scheme != "fp"))

    def kernel_value(self, key: str):
        """A kernel statistic (a keys.py summary key): summary.json's, else kernels.json's overall
        or null part (the null's top-8 coverage: C(8) of its coverage curve)."""
        v = self.get(key)
        if v is not None:
            return v
        name = key.split("/", 1)[1]
        if not name.startswith("null_"):
            return (self.kernels.get("overall") or {}).get(name)
        null = self.kernels.get("null") or {}
        if name == "null_top8":
            cov = null.get("coverage")
            return cov[7] if isinstance(cov, list) and len(cov) > 7 else cov if isinstance(cov, (int, float)) else None
        return null.get(name[len("null_") :])


def read_study(study_dir: str | Path) -> list[Run]:
    """One Run per run directory <study>/<stage>/<job>/ that has a summary.json. Every file a claim
    reads is read here, so each damaged one is in the run's `damaged` (the report lists it by path)."""
    study_dir = Path(study_dir)
    runs = []
    for stage in STAGES:
        d = study_dir / stage
        if not d.is_dir():
            continue
        for run in sorted(p for p in d.iterdir() if RunDir(p).summary.exists()):
            problems: list[str] = []
            r = Run(stage, run.name, run, _json(RunDir(run).summary, problems) or {}, read_options(run, problems),
                    problems)
            r.signs, r.kernels  # noqa: B018  read now: a damaged one is listed, whatever the claims read later
            runs.append(r)
    return runs


def completed(runs: list[Run], *stages: str) -> list[Run]:
    return [r for r in runs if r.completed and (not stages or r.stage in stages)]


def damaged(runs: list[Run], *stages: str) -> list[Run]:
    """Runs with a damaged file: never counted silently (the report lists them by path)."""
    return [r for r in runs if r.damaged and (not stages or r.stage in stages)]


def unreadable(runs: list[Run], *stages: str) -> list[Run]:
    """Runs whose summary.json is damaged: neither completed nor unfinished."""
    return [r for r in damaged(runs, *stages) if not r.summary]


def find_run(study_dir: Path, path: str | None) -> Path | None:
    """A run directory named in an option, also after the study directory moved."""
    if not path:
        return None
    p = Path(path)
    for candidate in (p, Path(study_dir) / p.parent.name / p.name):
        if RunDir(candidate).summary.exists():
            return candidate
    return None


def trunks(runs: list[Run]) -> dict[tuple[int, object], Run]:
    """{(epochs, seed): trunk}: the completed runs started with rewind=trunk (claim 2's references,
    claim 4's BWNs)."""
    return {(r.epochs, r.seed): r for r in completed(runs, "scaling", "signs") if r.options.get(K.REWIND) == "trunk"}


def stable_share_at(run: Run, share: float) -> float | None:
    """The share of the run's signs stable from `share` of training on (no later flip), read off
    signs.json's stable-share curve; None without one."""
    curve = stable_curve(run)
    if not curve:
        return None
    steps, values = curve
    total = run.steps or steps[-1]
    target = share * total
    best = None
    for s, v in zip(steps, values, strict=True):
        if s <= target + 1e-9:
            best = v
    return best


def stable_curve(run: Run) -> tuple[list[float], list[float]] | None:
    """signs.json's stable-share curve over all binarized weights as (steps, shares), in the one shape
    the sign instrument writes (qbn.signs.step_timing under signs.json["steps"]["overall"]:
    {"steps": [...], "all": [...], ...}); None when the run has none."""
    curve = ((run.signs.get(K.STEP_TIMING) or {}).get("overall") or {}).get(K.STABLE_SHARE)
    if not curve or not curve.get("steps") or not curve.get("all"):
        return None
    return [float(s) for s in curve["steps"]], [float(v) for v in curve["all"]]
