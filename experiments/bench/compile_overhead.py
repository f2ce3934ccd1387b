"""Benchmark (not a test): does `compile=true` pay for a whole run? The step benchmark
(train_step.py) measures a compiled step once warm; a run also pays for compiling (the training
and the evaluation graphs, and the epoch's last partial batch once more). This times whole
`python -m qbn.train` runs of one setting, eager and compiled, the compiled one with an empty
inductor cache (a first run on a machine) and again with the cache it left (every later run of the
same model), and prints each run's wall time (summary.json's wall_s) and its ratio to the eager run.

Default: a study-sized run (scale=cpu's settings: 10,000 Fashion-MNIST training images, one
epoch, one thread as the study runs it). Runs one after another; measure on an idle machine.

    python experiments/bench/compile_overhead.py [--epochs 1] [--threads 1] [-- extra qbn.train overrides]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STUDY_RUN = ["dataset=fashion_mnist", "dataset.train_subset=10000", "callbacks.progress=null",
             "trainer.enable_model_summary=false", "report=false", "callbacks.kernel_stats.figures=false"]


def run(overrides: list[str], run_dir: Path, cache: Path, threads: int) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "qbn.train", *overrides, f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("extra", nargs="*", help="more qbn.train overrides (after --)")
    a = p.parse_args()
    base = [*STUDY_RUN, f"trainer.max_epochs={a.epochs}", *a.extra]
    print(f"qbn.train {' '.join(base)}; {a.threads} thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        for label, compile_, cache in [("eager", "false", "unused"), ("compiled, empty cache", "true", "cache"),
                                       ("compiled, warm cache", "true", "cache"), ("eager again", "false", "unused")]:
            s = run([*base, f"compile={compile_}"], tmp / label.replace(" ", "_").replace(",", ""), tmp / cache,
                    a.threads)
            rows.append((label, s["wall_s"], s.get("global_step"), s.get("test/acc")))
            print(f"  {label}: {s['wall_s']:.1f} s", flush=True)
    eager = (rows[0][1] + rows[3][1]) / 2  # both eager runs, before and after: drift falls on both
    print("| run | wall s | over eager | steps | test acc |\n|---|---|---|---|---|")
    for label, wall, steps, acc in rows:
        print(f"| {label} | {wall:.1f} | {wall / eager:.2f} | {steps} | {acc:.4f} |")


if __name__ == "__main__":
    main()
