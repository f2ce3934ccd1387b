"""Benchmark (not a test): the training-step cost of each sub-bit method against QBN's topk.

One training step (forward, backward, Adam step) of the same resnet20 BWN (same weights, same
batch) as: the BWN itself (n = 9), QBN topk at n bits, the learned codebook at n bits (its
duplicate re-seeding every --reseed-every steps included), and both with distillation from the
BWN as teacher (its forward under no_grad plus the KL term). Each round steps every model once in
a shuffled order, so drift and neighbours' load fall on all alike; the ratio of median step
times to topk's is printed.

    python experiments/bench/subbit_cost.py [--bits 4] [--rounds 20] [--batch 128] [--size 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import torch
import torch.nn.functional as F

from qbn.binary import BinaryPolicy, binarize
from qbn.kernels.learned import init_patterns, reseed_duplicates
from qbn.kernels.quantize import quantizable_layers, quantize
from qbn.losses import distillation_loss
from qbn.models import resnet20


class _Stepper:
    """One model with its own Adam (learned patterns included); `step()` times one training step."""

    def __init__(self, net, x, y, teacher=None, reseed_every: int = 0, distill=(0.5, 4.0)):
        self.net, self.x, self.y, self.teacher = net.train(), x, y, teacher
        self.reseed_every, self.distill, self.count = reseed_every, distill, 0
        self.opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        self.sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
        self.times: list[float] = []

    def step(self) -> float:
        self.sync()
        t = time.perf_counter()
        logits = self.net(self.x)
        if self.teacher is None:
            loss = F.cross_entropy(logits, self.y)
        else:
            with torch.no_grad():
                soft = self.teacher(self.x)
            loss = distillation_loss(logits, soft, self.y, *self.distill)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.count += 1
        if self.reseed_every and self.count % self.reseed_every == 0:
            reseed_duplicates(quantizable_layers(self.net))
        self.sync()
        return time.perf_counter() - t


def build(bits: int, size: int, device: str) -> dict[str, torch.nn.Module]:
    """The BWN and its topk and learned versions at `bits` (same latent weights)."""
    torch.manual_seed(0)
    bwn = binarize(resnet20(num_classes=10, in_channels=3, image_size=size), BinaryPolicy()).to(device)
    topk, learned = copy.deepcopy(bwn), copy.deepcopy(bwn)
    layers = quantizable_layers(topk)
    quantize(layers, {k: bits for k in layers})
    layers = quantizable_layers(learned)
    init_patterns(layers, {k: bits for k in layers})
    return {"bwn": bwn, "topk": topk, "learned": learned}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--reseed-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    x = torch.randn(a.batch, 3, a.size, a.size, device=a.device)
    y = torch.randint(0, 10, (a.batch,), device=a.device)
    nets = build(a.bits, a.size, a.device)
    teacher = copy.deepcopy(nets["bwn"]).eval().requires_grad_(False)
    steppers = {
        "BWN (n = 9)": _Stepper(nets["bwn"], x, y),
        "topk": _Stepper(nets["topk"], x, y),
        "learned": _Stepper(nets["learned"], x, y, reseed_every=a.reseed_every),
        "topk + distill": _Stepper(copy.deepcopy(nets["topk"]), x, y, teacher=teacher),
        "learned + distill": _Stepper(copy.deepcopy(nets["learned"]), x, y, teacher=teacher,
                                      reseed_every=a.reseed_every),
    }
    for s in steppers.values():   # warm-up: allocator, oneDNN primitives, Adam state
        s.step(), s.step()
    order = list(steppers.values())
    shuffle = random.Random(0).shuffle
    for _ in range(a.rounds):
        shuffle(order)
        for s in order:
            s.times.append(s.step())
    median = {k: statistics.median(s.times) for k, s in steppers.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.device}; resnet20 3x{a.size}x{a.size} "
          f"batch {a.batch}, n = {a.bits}, {a.rounds} rounds, re-seeding every {a.reseed_every} steps")
    print("| method | ms per step | / topk |")
    print("|---|---|---|")
    for k, m in median.items():
        print(f"| {k} | {1e3 * m:.1f} | {m / median['topk']:.3f} |")


if __name__ == "__main__":
    main()
