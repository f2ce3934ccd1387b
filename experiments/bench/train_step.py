"""Benchmark (not a test): the fastest training step, by measurement. FP and BWN steps of resnet20
and resnet18 in every setting: memory format (NCHW, channels_last), torch.compile (eager, default,
max-autotune) and thread count, all interleaved in one run (each round steps every model under every
thread count once, in a shuffled order, so drift and neighbours' load fall on all alike).

Prints, per model, one row per setting: median ms per step of FP and BWN, BWN/FP within the setting,
and each over the eager NCHW FP step at the machine's thread count (the reference, 1.00).
Measure on an idle machine; compiling takes minutes on 2 cores (max-autotune the longest).

    python experiments/bench/train_step.py [--models resnet20 resnet18] [--compile eager default max-autotune]
        [--layouts nchw channels_last] [--threads 1 2] [--batch 128] [--rounds 12]
"""

from __future__ import annotations

import argparse
import random
import statistics

import torch
from step_time import _Stepper, make  # this script's folder is on sys.path

LAYOUTS = ("nchw", "channels_last")
COMPILE = ("eager", "default", "max-autotune")


def stepper(name: str, binary: bool, layout: str, mode: str, x: torch.Tensor, y: torch.Tensor) -> _Stepper:
    """A model with its Adam, in `layout`, compiled with `mode` (eager: not compiled)."""
    net = make(name, binary, x.shape[1], x.shape[-1])
    if layout == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if mode != "eager":
        net.compile(mode=mode)
    return _Stepper(net, x, y)


def measure(name: str, layouts, modes, threads, batch: int, rounds: int, shape: tuple[int, int]) -> dict:
    """{(layout, mode, threads, kind): median seconds per step}, every stepper and thread count interleaved."""
    in_ch, size = shape
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, in_ch, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g)
    steppers = {(layout, mode, kind): stepper(name, kind == "BWN", layout, mode, x, y)
                for layout in layouts for mode in modes for kind in ("FP", "BWN")}
    for t in threads:  # warm-up under every thread count: compiled CPU code is specialised to it
        torch.set_num_threads(t)
        for s in steppers.values():  # compilation, oneDNN primitives, Adam state
            s.step(), s.step()
    times: dict[tuple, list[float]] = {(*k[:2], t, k[2]): [] for k in steppers for t in threads}
    jobs = [(k, t) for k in steppers for t in threads]
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(jobs)
        for (layout, mode, kind), t in jobs:
            torch.set_num_threads(t)
            times[(layout, mode, t, kind)].append(steppers[(layout, mode, kind)].step())
    return {k: statistics.median(v) for k, v in times.items()}


def table(name: str, med: dict, layouts, modes, threads, reference_threads: int) -> str:
    ref = med.get(("nchw", "eager", reference_threads, "FP"))
    lines = [f"{name}: reference eager NCHW FP, {reference_threads} threads"
             + (f" = {1e3 * ref:.1f} ms/step" if ref else " (not measured: ratios to it left out)"),
             "| layout | compile | threads | FP ms | BWN ms | BWN/FP | FP/ref | BWN/ref |",
             "|---|---|---|---|---|---|---|---|"]
    for layout in layouts:
        for mode in modes:
            for t in threads:
                fp, bwn = med[(layout, mode, t, "FP")], med[(layout, mode, t, "BWN")]
                rel = f"{fp / ref:.3f} | {bwn / ref:.3f}" if ref else "- | -"
                lines.append(f"| {layout} | {mode} | {t} | {1e3 * fp:.1f} | {1e3 * bwn:.1f} | {bwn / fp:.3f} | {rel} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet18"], choices=["resnet20", "resnet18"])
    p.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    p.add_argument("--compile", nargs="+", default=list(COMPILE), choices=COMPILE, dest="modes")
    p.add_argument("--threads", nargs="+", type=int, default=sorted({1, torch.get_num_threads()}))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=12, help="interleaved steps per model and thread count")
    p.add_argument("--shape", type=int, nargs=2, default=[1, 28], metavar=("CHANNELS", "SIZE"),
                   help="input channels and size (default: Fashion-MNIST's 1 x 28 x 28)")
    a = p.parse_args()
    # the reference is the eager NCHW FP step at the machine's thread count, or at the largest count
    # measured when that one is not (--threads 1 on a 2-core machine)
    reference_threads = torch.get_num_threads() if torch.get_num_threads() in a.threads else max(a.threads)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads by default; batch {a.batch}, "
          f"input {a.shape[0]}x{a.shape[1]}x{a.shape[1]}, {a.rounds} rounds")
    for name in a.models:
        med = measure(name, a.layouts, a.modes, a.threads, a.batch, a.rounds, tuple(a.shape))
        torch.set_num_threads(reference_threads)
        print(table(name, med, a.layouts, a.modes, a.threads, reference_threads), flush=True)


if __name__ == "__main__":
    main()
