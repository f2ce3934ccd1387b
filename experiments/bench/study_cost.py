"""Measurement (not a test): what a study scale costs, from real qbn.train runs at that scale.

    .venv/bin/python experiments/bench/study_cost.py [--scale cpu] [--out /tmp/study_cost]

Runs three real, single-threaded (OMP_NUM_THREADS=1) qbn.train processes with the scale's
settings: 1 epoch, 2 epochs, and a 1-epoch QBN fine-tuning of the 2-epoch run followed by
packing and evaluating the file (what a qbn-stage run does). It reads each process's CPU time
(user + system, from the operating system), not its wall time, so other people's load on a
shared machine barely changes the figures: per epoch = cpu(2 epochs) - cpu(1 epoch), per run
(start, test, analysis) = cpu(1 epoch) - per epoch. Then it sums the scale's plan (every run's
epochs) and prints the predicted wall time with `jobs` single-threaded runs side by side on as
many idle cores. The load average is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from qbn.config import CONFIG_DIR
from qbn.schema import compose_config
from qbn.study.plan import plan
from qbn.study.plan_cost import cpu_seconds


def cpu_of(command: list[str], log: Path) -> float:
    """CPU seconds (user + sys) the command's process tree used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=env).returncode
    if code:
        sys.exit(f"{' '.join(command)} failed (exit {code}); see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu")
    ap.add_argument("--out", default="/tmp/study_cost")
    args = ap.parse_args()
    cfg = compose_config(CONFIG_DIR / "study", "study", [f"scale={args.scale}"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = [sys.executable, "-m", "qbn.train", *cfg.scale.train, *cfg.recipes.adam_cosine]
    load = os.getloadavg()[0]
    t0 = time.time()
    cpu = {}
    for epochs in (1, 2):
        cpu[epochs] = cpu_of([*train, f"trainer.max_epochs={epochs}", f"hydra.run.dir={out / f'e{epochs}'}",
                              "overwrite=true"], out / f"e{epochs}.log")
        print(f"{epochs} epoch run: {cpu[epochs]:.1f} CPU s", flush=True)
    q = cfg.scale.qbn
    entry = q.grid[0]
    qbn = cpu_of([*train, f"qbn.bits={entry.bits[0]}", f"qbn.from_ckpt={out / 'e2'}",
                  f"trainer.max_epochs={entry.epochs}", f"optimizer.lr={q.lr}", f"hydra.run.dir={out / 'qbn'}",
                  "overwrite=true"], out / "qbn.log")
    dataset_overrides = [o for o in cfg.scale.train if o.startswith("dataset")]
    pack = cpu_of([sys.executable, "-m", "qbn.study.pack", str(out / "qbn"), *dataset_overrides],
                  out / "pack.log")   # what the study runs after each QBN run: pack, then evaluate the file
    print(f"QBN run: {qbn:.1f} CPU s, packing and evaluating it: {pack:.1f} CPU s", flush=True)
    per_epoch, per_run = cpu[2] - cpu[1], cpu[1] - (cpu[2] - cpu[1])
    qbn_run = qbn + pack
    print(f"per epoch {per_epoch:.1f} CPU s, per run {per_run:.1f} CPU s, "
          f"a QBN run with packing and evaluation {qbn_run:.1f} CPU s")
    print(f"the scale's cost model (cost: in conf/study/scale/{args.scale}.yaml): "
          f"epoch_s {per_epoch:.1f}, run_s {per_run:.1f}, pack_s {pack:.1f}")
    measured = OmegaConf.merge(cfg.scale.cost, {"epoch_s": per_epoch, "run_s": per_run, "pack_s": pack})
    total = 0.0
    for stage, jobs in plan(cfg).items():
        cost = sum(cpu_seconds(j, measured) for j in jobs)
        total += cost
        print(f"  {stage}: {len(jobs)} runs, {sum(j.epochs for j in jobs)} epochs, {cost / 3600:.2f} CPU hours")
    print(f"scale={args.scale}: {total / 3600:.2f} CPU hours -> {total / cfg.jobs / 3600:.2f} h "
          f"with {cfg.jobs} runs side by side on {cfg.jobs} idle cores "
          f"(measured with load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"in {(time.time() - t0) / 60:.0f} min)")


if __name__ == "__main__":
    main()
