"""Progress of a study: a line per stage (`scaling: 15/30 done, 15 to run, about 2 h 10 min left`)
and the study's estimate of the time left, from the seconds per epoch its runs took (this
invocation's runs, else the completed runs' summary.json, else the scale's first guess)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from ..rundir import RunDir
from .plan import Job


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m} min" if m < 90 else f"{m // 60} h {m % 60:02d} min"


class Progress:
    """Counts and time estimates over a plan; `state(job)` says where a job stands (done, new, ...)."""

    def __init__(
        self,
        cfg: DictConfig,
        study_dir: Path,
        plan: dict[str, list[Job]],
        jobs: dict[str, Job],
        state: Callable[[Job], str],
        timings: list[tuple[int, float]],
    ):
        self.cfg, self.dir, self.plan, self.jobs, self.state, self.timings = cfg, study_dir, plan, jobs, state, timings

    def seconds_per_epoch(self) -> tuple[float, str]:
        """Wall seconds per epoch of a run, process start included: from the runs this invocation
        trained, else from the completed runs' summary.json (training only), else the scale's guess."""
        if self.timings:
            return sum(t for _, t in self.timings) / max(
                1, sum(e for e, _ in self.timings)
            ), "measured on this invocation's runs"
        wall = epochs = 0.0
        for job in self.jobs.values():
            s = RunDir(self.dir / job.key).read_summary_or_none() or {}  # a damaged one: job_state names it
            if s.get("status") == "completed" and s.get("wall_s") and s.get("epochs"):
                wall += s["wall_s"]
                epochs += job.epochs
        if epochs:
            return wall / epochs, "measured on the completed runs' training"
        return float(self.cfg.scale.seconds_per_epoch), "the scale's first guess"

    def left(self, jobs: list[Job]) -> float:
        spe, _ = self.seconds_per_epoch()
        return sum(max(1, j.epochs) for j in jobs) * spe / max(1, self.cfg.jobs)

    def stage_line(self, stage: str) -> str:
        jobs = self.plan[stage]
        states = [self.state(j) for j in jobs]
        done = states.count("done")
        todo = [j for j, st in zip(jobs, states, strict=True) if st != "done"]
        extra = [f"{states.count(k)} {k}" for k in ("interrupted", "failed", "unpacked") if states.count(k)]
        left = self.left(todo)
        return (
            f"{stage}: {done}/{len(jobs)} done, {len(todo)} to run"
            + (f" ({', '.join(extra)})" if extra else "")
            + (f", about {_duration(left)} left" if todo else "")
        )

    def total_line(self) -> str:
        todo = [j for s in self.cfg.stages for j in self.plan[s] if self.state(j) != "done"]
        spe, source = self.seconds_per_epoch()
        total = sum(len(self.plan[s]) for s in self.cfg.stages)
        return (
            f"study {self.dir}: {total - len(todo)}/{total} runs done; about {_duration(self.left(todo))} left "
            f"at {spe:.0f} s per epoch ({source}), {self.cfg.jobs} at a time"
        )
