"""Step flip ratio after every optimizer step, per binary layer and overall (docs/study.md).

f_t = share of binarized weights whose sign after optimizer step t differs from before it. The
epoch flip ratio (logged as `signs/flip_ratio` and `signs/flip_ratio/<layer>`) is the mean of
f_t over the epoch's steps, which is sum_t flips_t / (steps * n): flip counts are accumulated
on the device (one comparison and one sum per layer per step, no host sync) and read back once
per epoch. The previous signs are kept as bool tensors (1 byte per weight).

With `last_flip` on, each binarized weight's last-flip step (the last optimizer step after which
its sign differed from before it; 0 = never) is kept on the device as an int32 tensor per layer,
updated from the same comparison (where(flipped, step, last): O(weights), no host sync), and
written as <run_dir>/signs/last_flip_step.pt at each epoch end and when training ends; the sign
analysis (signs.json, summary.json) reads it for E_q as a share of training.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from ..binary import binary_layers
from ..rundir import RunDir
from ..signs import last_flip_path, save_last_flip, update_last_flip


class SignFlipTracker(pl.Callback):
    """Logs the epoch flip ratio overall and per layer (and, if `per_step`, f_t every step)."""

    writes = (RunDir.SIGNS,)   # signs/last_flip_step.pt (last_flip=true)

    def __init__(self, per_layer: bool = True, per_step: bool = False, last_flip: bool = True,
                 run_dir: str | None = None):
        self.per_layer, self.per_step = per_layer, per_step
        self.last_flip = bool(last_flip)
        self.run_dir = run_dir
        self._last: list[torch.Tensor] = []               # last-flip step per weight (int32, on device)
        self._names: list[str] = []
        self._layers: list[nn.Module] = []
        self._sizes: torch.Tensor | None = None         # weights per layer (int64, on device)
        self._prev: list[torch.Tensor] = []               # signs before the next step (bool)
        self._counts: torch.Tensor | None = None        # flips per layer this epoch (int64, on device)
        self._steps = 0
        self._epoch = -1                                  # the epoch the counts belong to
        self._last_global_step = -1
        self._loaded: dict | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(per_layer=self.per_layer, per_step=self.per_step)

    # ---- the measurement (plain model in, tensors out: unit-testable without a Trainer) ----

    def start(self, net: nn.Module) -> None:
        """Remember the current signs of every binary layer of `net` as the 'before' state."""
        layers = binary_layers(net)
        self._names, self._layers = list(layers), list(layers.values())  # cached: no module walk per step
        self._prev = [layer.signs().clone() for layer in layers.values()]
        device = self._prev[0].device if self._prev else torch.device("cpu")
        self._sizes = torch.tensor([p.numel() for p in self._prev], dtype=torch.long, device=device)
        if self._counts is None or self._counts.numel() != len(self._names):
            self._counts = torch.zeros(len(self._names), dtype=torch.long, device=device)
        self._counts = self._counts.to(device)
        if self.last_flip:
            self._last = [torch.zeros(p.shape, dtype=torch.int32, device=p.device) for p in self._prev]

    def reset(self, epoch: int) -> None:
        """Start accumulating a new epoch."""
        if self._counts is not None:
            self._counts.zero_()
        self._steps, self._epoch = 0, epoch

    def after_step(self, net: nn.Module | None = None, step: int | None = None) -> torch.Tensor:
        """Count sign flips of the layers seen by `start` since the previous call (and, given the
        optimizer `step`, record it as the last-flip step of each weight that flipped); returns
        the per-layer counts (device tensor)."""
        flips = []
        for i, layer in enumerate(self._layers):
            now = layer.signs()
            flipped = now != self._prev[i]
            flips.append(flipped.sum())
            if step is not None and self._last:
                update_last_flip(self._last[i], flipped, step)
            self._prev[i] = now
        step = torch.stack(flips) if flips else torch.zeros(0, dtype=torch.long)
        self._counts += step
        self._steps += 1
        return step

    def epoch_ratios(self) -> tuple[float, dict[str, float]]:
        """(overall, per layer) mean step flip ratio over this epoch's steps: one host sync."""
        if not self._steps or not self._names:
            return float("nan"), {}
        counts = self._counts.cpu().double()
        sizes = self._sizes.cpu().double()
        overall = counts.sum().item() / (sizes.sum().item() * self._steps)
        per_layer = (counts / (sizes * self._steps)).tolist()
        return overall, dict(zip(self._names, per_layer, strict=False))

    def last_flip_steps(self) -> dict[str, torch.Tensor]:
        """Each layer's last-flip steps (int32, on the device, shaped like its weight)."""
        return dict(zip(self._names, self._last, strict=True)) if self._last else {}

    def write_last_flip(self, trainer: pl.Trainer) -> None:
        """signs/last_flip_step.pt with the steps trained so far (rank zero; one copy to the host)."""
        if self.run_dir is not None and self._last and trainer.is_global_zero:
            save_last_flip(last_flip_path(self.run_dir), self.last_flip_steps(), trainer.global_step)

    # ---- Lightning hooks -----------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start(pl_module.net)
        self._last_global_step = trainer.global_step
        if self._loaded and self._loaded.get("epoch") == trainer.current_epoch and \
                len(self._loaded.get("counts", [])) == len(self._names):  # resumed mid-epoch
            self._counts = torch.tensor(self._loaded["counts"], dtype=torch.long, device=self._counts.device)
            self._steps, self._epoch = int(self._loaded["steps"]), int(self._loaded["epoch"])
        saved = (self._loaded or {}).get("last_flip") or {}
        if self._last and list(saved) == self._names and \
                all(tuple(saved[n].shape) == tuple(t.shape) for n, t in zip(self._names, self._last, strict=True)):
            self._last = [saved[n].to(device=t.device, dtype=torch.int32) for n, t in zip(self._names, self._last,
                                                                                          strict=True)]
        self._loaded = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch != trainer.current_epoch:
            self.reset(trainer.current_epoch)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self._last_global_step:
            return  # no optimizer step on this batch (gradient accumulation, skipped step)
        self._last_global_step = trainer.global_step
        step = self.after_step(pl_module.net, trainer.global_step)
        if self.per_step and self._names:
            ratio = step.sum().double() / self._sizes.sum().double()
            pl_module.log("signs/flip_ratio_step", ratio.float(), on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write_last_flip(trainer)
        overall, per_layer = self.epoch_ratios()
        if not per_layer:
            return
        pl_module.log("signs/flip_ratio", overall, on_step=False, on_epoch=True)
        if self.per_layer:
            for name, value in per_layer.items():
                pl_module.log(f"signs/flip_ratio/{name}", value, on_step=False, on_epoch=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write_last_flip(trainer)  # a run stopped mid-epoch keeps its steps too

    # ---- resume ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        counts = [] if self._counts is None else self._counts.cpu().tolist()
        state = {"epoch": self._epoch, "steps": self._steps, "counts": counts, "names": list(self._names)}
        if self._last:
            state["last_flip"] = {n: t.detach().cpu() for n, t in zip(self._names, self._last, strict=True)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict)
        self._epoch = int(state_dict.get("epoch", -1))
