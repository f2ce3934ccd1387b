"""A user's own ImageFolder tree, as the README's one line trains it: 3 classes of small RGB PNGs
(qbn.data.shapes: colored circles, squares, triangles; 651 training and 150 validation images).

Prints (1) the wall time and test accuracy of
    python -m qbn.train dataset=image_folder dataset.data_dir=DIR dataset.image_size=S
with every other option at its default, and (2) the ratio of one epoch's wall time with the
earlier defaults (8 loader workers whatever the machine, eval resize 256) to one epoch with
today's (workers = the CPUs this process may use, resize following image_size), measured in this
run, interleaved (old, new, old, new) so that shared load cancels.

    python experiments/bench/image_folder.py [--size 32] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qbn.data.shapes import write_shapes_tree


def train(data_dir: Path, size: int, run_dir: Path, *extra: str) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "qbn.train", "dataset=image_folder", f"dataset.data_dir={data_dir}",
           f"dataset.image_size={size}", f"hydra.run.dir={run_dir}", *extra]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, WANDB_MODE="offline"))
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return wall, json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="old/new epoch pairs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_shapes_tree(tmp / "shapes", train_per_class=217, val_per_class=50, size=args.size)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"tree: {data} (3 classes, 651 train + 150 val PNGs, {args.size}x{args.size}); CPUs usable: {cpus}")

        wall, s = train(data, args.size, tmp / "default")
        print(f"defaults ({s['epochs']} epochs, {s['model']} {s['scaling']}): {wall:.0f} s wall, "
              f"test accuracy {100 * s['test/acc']:.1f} %  [python -m qbn.train dataset=image_folder "
              f"dataset.data_dir=DIR dataset.image_size={args.size}]")

        one_epoch = ["trainer.max_epochs=1", "report=false", "callbacks.kernel_stats.figures=false"]
        old, new = [], []
        for i in range(args.repeats):
            old.append(train(data, args.size, tmp / f"old{i}", *one_epoch,
                             "dataset.num_workers=8", "dataset.resize=256")[0])
            new.append(train(data, args.size, tmp / f"new{i}", *one_epoch)[0])
        print(f"one epoch: earlier defaults (8 workers, resize 256) {min(old):.1f} s, today's {min(new):.1f} s; "
              f"ratio {min(old) / min(new):.2f}x (best of {args.repeats}, interleaved)")


if __name__ == "__main__":
    main()
