"""Benchmark (not a test): kernel ids + 512-bin histograms + QBN codebook and mapping for every
binary 3x3 conv of ResNet-18 (32x32 input stem), against one training step of the same BWN at
batch 128 on 32x32 input, measured in the same run on CPU. Target: ratio <= 0.1.

    .venv/bin/python experiments/bench/kernels_qbn.py [--bits 5] [--repeats 3] [--threads 1]

On a loaded machine (more runnable processes than cores) OpenMP's thread hand-offs make the many
small ops of the kernel pass slow with 2 threads; --threads 1 measures both sides single-threaded.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from qbn.binary import BinaryPolicy, binarize
from qbn.kernels import histogram, kernel_ids, map_to_codebook, select_codebook
from qbn.kernels.quantize import quantizable_layers
from qbn.models import resnet18


def kernel_pass(layers: dict, bits: int) -> int:
    """Ids, histograms (per layer and overall), codebooks and the mapping for every layer."""
    total = torch.zeros(512, dtype=torch.long)
    mapped = 0
    for layer in layers.values():
        w = layer.weight.detach()
        hist = histogram(kernel_ids(w >= 0))
        total += hist
        mapped += map_to_codebook(w, select_codebook(hist, bits)).numel()
    return mapped


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bits", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = binarize(resnet18(num_classes=10, in_channels=3, image_size=32, stem="small"), BinaryPolicy())
    layers = quantizable_layers(net)
    kernels = sum(m.weight.shape[0] * m.weight.shape[1] for m in layers.values())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    step()                       # warm-up
    kernel_pass(layers, args.bits)
    t_step = best_of(step, args.repeats)
    t_kernels = best_of(lambda: kernel_pass(layers, args.bits), args.repeats)
    print(f"resnet18 (32x32 stem), CPU, {torch.get_num_threads()} threads: "
          f"{len(layers)} binary 3x3 layers, {kernels} kernels")
    print(f"one training step (batch {args.batch}, 32x32): {t_step:.3f} s")
    print(f"kernel ids + histograms + QBN n={args.bits} codebooks and mapping: {t_kernels:.3f} s")
    print(f"ratio kernels / step = {t_kernels / t_step:.4f} (target <= 0.1)")


if __name__ == "__main__":
    main()
