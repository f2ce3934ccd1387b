"""Latent weight and scale statistics per binary layer, per epoch (the study's full-precision
weight norms): L2 norm, mean |W|, the share inside the clipped STE's range (|W| <= 1), and
alpha's mean/min/max for schemes that have one (xnor, learnable, lq)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from ..binary import binary_layers

STATS = ("l2", "mean_abs", "clip_share")
ALPHA_STATS = ("alpha_mean", "alpha_min", "alpha_max")


@torch.no_grad()
def weight_stats(net: nn.Module) -> dict[str, dict[str, float]]:
    """{layer: {stat: value}} for every binary layer of `net`, read back in one host sync."""
    names, rows = [], []
    nan = torch.tensor(float("nan"))
    for name, layer in binary_layers(net).items():
        w = layer.weight.detach().float()
        # a stored alpha (learnable, lq) is read, never recomputed: lq's alpha() updates it in training
        stored = getattr(layer.scaling, "alpha", None)
        alpha = stored if isinstance(stored, torch.Tensor) else layer.alpha()
        a = alpha.detach().float().flatten() if alpha is not None else None
        row = [w.norm(), w.abs().mean(), (w.abs() <= 1).float().mean()]
        row += [a.mean(), a.min(), a.max()] if a is not None else [nan.to(w.device)] * 3
        names.append(name)
        rows.append(torch.stack(row))
    if not rows:
        return {}
    values = torch.stack(rows).cpu().tolist()
    out = {}
    for name, v in zip(names, values, strict=False):
        out[name] = dict(zip(STATS, v[:3], strict=False))
        if v[3] == v[3]:  # not NaN: the scheme has an alpha
            out[name].update(zip(ALPHA_STATS, v[3:], strict=False))
    return out


class WeightStats(pl.Callback):
    """Logs `weights/<stat>/<layer>` at every `every_n_epochs`-th epoch end, plus overall clip share."""

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = max(int(every_n_epochs), 1)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        stats = weight_stats(pl_module.net)
        if not stats:
            return
        sizes = {n: m.weight.numel() for n, m in binary_layers(pl_module.net).items()}
        total = sum(sizes.values())
        pl_module.log("weights/clip_share", sum(stats[n]["clip_share"] * sizes[n] for n in stats) / total,
                      on_step=False, on_epoch=True)
        for name, values in stats.items():
            for stat, value in values.items():
                pl_module.log(f"weights/{stat}/{name}", value, on_step=False, on_epoch=True)
