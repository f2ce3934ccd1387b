"""The plan's cost before anything runs: `python -m qbn.study plan scale=cpu [--runs]` prints the
planned runs per stage and group with their estimated CPU time, from the scale's cost model
(`cost:` in conf/study/scale/<name>.yaml, measured: CPU seconds per epoch and per run, packing).
Nothing is trained and no directory is made."""

from __future__ import annotations

import re
from collections import defaultdict

from omegaconf import DictConfig

from .plan import Job, plan


def cpu_seconds(job: Job, cost: DictConfig) -> float:
    """One run's CPU seconds: start-up and test, its epochs (at its relative cost), its packing."""
    return (
        float(cost.run_s)
        + job.epochs * job.epoch_cost * float(cost.epoch_s)
        + (float(cost.pack_s) if job.export else 0.0)
    )


def group_of(job: Job) -> str:
    """A run's group in the listing: its name without the seed."""
    return re.sub(r"(^|-)s\d+(?=-|$)", "", job.name).strip("-")


def plan_report(cfg: DictConfig, runs: bool = False) -> str:
    """The planned runs (per stage, per group, or every run), epochs and estimated CPU time."""
    stages = plan(cfg)
    cost = cfg.scale.cost
    unit = cost.get("unit", "CPU")
    lines = [
        f"scale={cfg.scale.name}: cost model {float(cost.epoch_s):g} {unit} s per epoch, "
        f"{float(cost.run_s):g} per run, {float(cost.pack_s):g} per packing (conf/study/scale/{cfg.scale.name}.yaml)",
        "",
    ]
    total_runs = total_epochs = total_s = 0.0
    for stage in cfg.stages:
        jobs = stages[stage]
        seconds = sum(cpu_seconds(j, cost) for j in jobs)
        epochs = sum(j.epochs for j in jobs)
        total_runs, total_epochs, total_s = total_runs + len(jobs), total_epochs + epochs, total_s + seconds
        lines.append(f"{stage}: {len(jobs)} runs, {epochs} epochs, {seconds:,.0f} {unit} s")
        groups: dict[str, list[Job]] = defaultdict(list)
        for j in jobs:
            groups[group_of(j)].append(j)
        for name, js in groups.items():
            if runs:
                lines += [f"  {j.key}: {j.epochs} epochs, {cpu_seconds(j, cost):,.0f} {unit} s" for j in js]
            else:
                seconds = sum(cpu_seconds(j, cost) for j in js)
                lines.append(f"  {name}: {len(js)} runs x {js[0].epochs} epochs, {seconds:,.0f} {unit} s")
    jobs = int(cfg.jobs)
    lines += [
        "",
        f"total: {total_runs:.0f} runs, {total_epochs:.0f} epochs, {total_s:,.0f} {unit} s "
        f"= {total_s / 3600:.1f} {unit} h; "
        f"{total_s / 3600 / max(1, jobs):.1f} h with jobs={jobs} "
        "(runs side by side slowing each other down not counted)",
    ]
    return "\n".join(lines)
