"""Grouped against per-layer binarization on any device (not a test).

1. Values and gradients of a resnet20 BWN, every scaling x STE, grouped (`binary.grouped=true`)
   against per-layer: equal bit for bit? (tests/test_grouped.py checks the same on the CPU.)
2. On a GPU only: step time of FP, BWN, BWN per-layer and a second FP model (the noise floor),
   interleaved in a shuffled order each round; ratios of medians.

    python experiments/bench/grouped_device.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from step_time import interleaved_ratios  # this script's folder is on sys.path

from qbn.testing.runs import grouped_and_per_layer

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def equality() -> None:
    torch.use_deterministic_algorithms(True, warn_only=True)
    x = torch.randn(16, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (16,), device=DEVICE)
    for scaling in ("none", "xnor", "learnable", "lq"):
        for ste in ("clipped", "identity"):
            outs, grads = [], []
            for net in grouped_and_per_layer(scaling, ste, image_size=32):
                net.to(DEVICE).zero_grad()
                out = net(x)
                F.cross_entropy(out, y).backward()
                outs.append(out.detach())
                grads.append([p.grad for p in net.parameters()])
            diff = max((a - b).abs().max().item() for a, b in zip(*grads, strict=True))
            same = all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
            print(f"{scaling:9s} {ste:8s} outputs equal {torch.equal(*outs)}, "
                  f"gradients equal {same} (max diff {diff:.1e})")
    torch.use_deterministic_algorithms(False)


def step_times(name: str, batch: int, rounds: int, steps: int) -> None:
    r = interleaved_ratios(name, batch, rounds, device="cuda", steps=steps)
    print(f"{name} batch {batch}: FP {r['FP ms']:.2f} ms/step, BWN {r['BWN ms']:.2f} ms/step, BWN/FP {r['BWN']:.3f}; "
          f"per-layer {r['BWN per-layer']:.3f}; noise floor FP twin/FP {r['FP twin']:.3f}")


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
