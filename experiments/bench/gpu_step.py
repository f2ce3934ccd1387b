"""Benchmark (not a test): BWN over FP training steps on a GPU, one command, one markdown table.

resnet20 and resnet18 (3 x 32 x 32, 10 classes, Adam) at batch 128 and 512, each eager, compiled
(torch.compile's default mode) and CUDA-graphed (mode="reduce-overhead"), in NCHW and, with
--layouts, channels_last. For each (model, batch), every setting's FP and BWN steppers are
interleaved in a shuffled order each round; the table gives median ms per step, BWN/FP within the
setting (target <= 1.10; eager resnet20 at batch 128 measured 1.24 before, launch-bound) and each
over eager FP. TF32 is off, as in qbn's default (allow_tf32=false). On a machine without a GPU it
says so in one line and exits 0.

    python experiments/bench/gpu_step.py [--out gpu_step.md] [--rounds 20] [--steps 10]
        [--layouts nchw channels_last] [--modes eager default reduce-overhead]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from step_time import make  # this script's folder is on sys.path

MODES = ("eager", "default", "reduce-overhead")
LAYOUTS = ("nchw", "channels_last")


class CudaStepper:
    """One model with its Adam on the GPU; step() times `steps` training steps (mean per step).
    Nothing in the step reads a value back to the host, so CUDA graphs replay it whole."""

    def __init__(self, net, x, y, mode: str, steps: int):
        self.net, self.x, self.y, self.steps, self.mode = net.cuda().train(), x, y, steps, mode
        if mode != "eager":
            self.net.compile(mode=mode)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.times: list[float] = []

    def _one(self) -> None:
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: last step's graph outputs may be reused
        F.cross_entropy(self.net(self.x), self.y).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def step(self) -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(self.steps):
            self._one()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / self.steps


def measure(name: str, batch: int, layouts, modes, rounds: int, steps: int) -> dict:
    """{(layout, mode, kind): median seconds per step} for one model and batch size."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).cuda()
    y = torch.randint(0, 10, (batch,), generator=g).cuda()
    steppers = {}
    for layout in layouts:
        xl = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x
        for mode in modes:
            for kind in ("FP", "BWN"):
                net = make(name, kind == "BWN", 3, 32)
                if layout == "channels_last":
                    net = net.to(memory_format=torch.channels_last)
                steppers[(layout, mode, kind)] = CudaStepper(net, xl, y, mode, steps)
    for s in steppers.values():  # warm-up: compilation, graph capture, cuDNN's algorithm choice, Adam state
        for _ in range(3):
            s.step()
    order = list(steppers.items())
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)
        for _, s in order:
            s.times.append(s.step())
    return {k: statistics.median(s.times) for k, s in steppers.items()}


def rows(name: str, batch: int, med: dict, layouts, modes) -> list[str]:
    ref = med[(layouts[0], modes[0], "FP")]
    out = []
    for layout in layouts:
        for mode in modes:
            fp, bwn = med[(layout, mode, "FP")], med[(layout, mode, "BWN")]
            out.append(f"| {name} | {batch} | {layout} | {mode} | {1e3 * fp:.2f} | {1e3 * bwn:.2f} | "
                       f"{bwn / fp:.3f} | {fp / ref:.3f} | {bwn / ref:.3f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet18"], choices=["resnet20", "resnet18"])
    p.add_argument("--batches", nargs="+", type=int, default=[128, 512])
    p.add_argument("--layouts", nargs="+", default=["nchw"], choices=LAYOUTS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=10, help="training steps per timing")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_step: no CUDA GPU on this machine; nothing measured.")
        return 0
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    head = (f"{torch.cuda.get_device_name()}, torch {torch.__version__}, TF32 off, "
            f"{a.rounds} rounds x {a.steps} steps; "
            "ratios of median step times (ref: the first layout's eager FP step)")
    lines = [head, "", "| model | batch | layout | compile | FP ms | BWN ms | BWN/FP | FP/ref | BWN/ref |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in a.models:
        for batch in a.batches:
            lines += rows(name, batch, measure(name, batch, a.layouts, a.modes, a.rounds, a.steps), a.layouts, a.modes)
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out is not None:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
