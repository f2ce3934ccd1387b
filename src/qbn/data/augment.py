"""Batch augmentation on the device, seeded per (seed, epoch, step).

Small in-memory datasets (MNIST family, CIFAR, digits) skip per-sample worker transforms: a
random crop with zero padding and a horizontal flip are done on the whole batch, which is
faster on 2 CPU cores and on a GPU, and makes a resumed run draw the same augmentations as an
uninterrupted one (the generator depends on the step, not on global RNG state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def step_generator(seed: int, epoch: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)
    return g


def random_crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded batch back to its size, then optional horizontal flip."""
    n, c, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
        rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x
