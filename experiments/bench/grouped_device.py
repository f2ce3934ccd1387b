"""Grouped against per-layer binarization on any device (not a test).

1. Values and gradients of a resnet20 BWN, every scaling x STE, grouped (`binary.grouped=true`)
   against per-layer: equal bit for bit? (tests/test_grouped.py checks the same on the CPU.)
2. On a GPU only: step time of FP, BWN, BWN per-layer and a second FP model (the noise floor),
   interleaved in a shuffled order each round; ratios of medians.

    python experiments/bench/grouped_device.py
"""

from __future__ import annotations

import copy
import random
import statistics
import time

import torch
import torch.nn.functional as F

from qbn.binary import BinaryPolicy, binarize
from qbn.models import resnet18, resnet20

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pair(scaling: str, ste: str):
    torch.manual_seed(0)
    net = resnet20(num_classes=10, in_channels=3, image_size=32)
    for p in net.parameters():  # latent weights past +-1, so clipping matters
        p.data.mul_(torch.empty_like(p).uniform_(0.5, 8.0))
    twin = copy.deepcopy(net)
    grouped = binarize(net, BinaryPolicy(scaling=scaling, ste=ste, grouped=True)).to(DEVICE)
    per_layer = binarize(twin, BinaryPolicy(scaling=scaling, ste=ste, grouped=False)).to(DEVICE)
    return grouped, per_layer


def equality() -> None:
    torch.use_deterministic_algorithms(True, warn_only=True)
    x = torch.randn(16, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (16,), device=DEVICE)
    for scaling in ("none", "xnor", "learnable", "lq"):
        for ste in ("clipped", "identity"):
            outs, grads = [], []
            for net in _pair(scaling, ste):
                net.zero_grad()
                out = net(x)
                F.cross_entropy(out, y).backward()
                outs.append(out.detach())
                grads.append([p.grad for p in net.parameters()])
            diff = max((a - b).abs().max().item() for a, b in zip(*grads, strict=True))
            same = all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
            print(f"{scaling:9s} {ste:8s} outputs equal {torch.equal(*outs)}, gradients equal {same} (max diff {diff:.1e})")
    torch.use_deterministic_algorithms(False)


def _make(name: str, kind: str):
    torch.manual_seed(0)
    net = (resnet20 if name == "resnet20" else resnet18)(num_classes=10, in_channels=3, image_size=32)
    if kind.startswith("BWN"):
        binarize(net, BinaryPolicy(grouped=kind == "BWN"))
    return net.to(DEVICE)


def step_times(name: str, batch: int, rounds: int, steps: int) -> None:
    x = torch.randn(batch, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (batch,), device=DEVICE)
    models = {k: _make(name, k) for k in ("FP", "BWN", "BWN per-layer", "FP twin")}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}

    def run(k: str) -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            F.cross_entropy(models[k](x), y).backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / steps

    for k in models:
        run(k)
    times: dict[str, list[float]] = {k: [] for k in models}
    order = list(models)
    for _ in range(rounds):
        random.Random(len(times["FP"])).shuffle(order)
        for k in order:
            times[k].append(run(k))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name} batch {batch}: FP {med['FP'] * 1e3:.2f} ms/step, BWN {med['BWN'] * 1e3:.2f} ms/step, "
          f"BWN/FP {med['BWN'] / med['FP']:.3f}; per-layer {med['BWN per-layer'] / med['FP']:.3f}; "
          f"noise floor FP twin/FP {med['FP twin'] / med['FP']:.3f}")


def main() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    print(DEVICE, torch.cuda.get_device_name() if DEVICE.type == "cuda" else "", f"torch {torch.__version__}")
    equality()
    if DEVICE.type == "cuda":
        step_times("resnet20", 128, 15, 10)
        step_times("resnet18", 128, 15, 5)
        step_times("resnet18", 512, 10, 3)


if __name__ == "__main__":
    main()
