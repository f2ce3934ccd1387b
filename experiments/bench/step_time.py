"""Benchmark (not a test): training-step cost of qbn's BWN and of its Lightning loop, CPU.

1. BWN / FP: one training step (forward, backward, Adam step) of the binary-weight model over
   the same backbone in full precision, same batch. Each round runs one step of every model in a
   shuffled order, so drift and neighbours' load fall on all of them alike; the ratio of median
   step times is printed. Target: <= 1.05. Beside it: the BWN with per-layer binarization
   (`binary.grouped=false`), and a second FP model whose ratio to the first is the noise floor.
2. Lightning / plain: throughput of `qbn`'s LightningModule under a Lightning Trainer (metrics,
   logging, the seeded on-device augmentation) against a plain PyTorch loop doing the same work
   on the same model and data. Target: >= 0.95 of the plain loop's throughput.

    python experiments/bench/step_time.py [--rounds 24] [--blocks 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from qbn.binary import BinaryPolicy, binarize
from qbn.config import CONFIG_DIR
from qbn.data.augment import random_crop_flip, step_generator
from qbn.models import resnet18, resnet20
from qbn.module import BWNModule, to_unit_float


def make(name: str, binary: bool, in_ch: int, size: int, grouped: bool = True):
    torch.manual_seed(0)
    net = (resnet20 if name == "resnet20" else resnet18)(num_classes=10, in_channels=in_ch, image_size=size)
    return binarize(net, BinaryPolicy(grouped=grouped)) if binary else net


class _Stepper:
    """One model with its own Adam; `step()` times `steps` training steps (mean per step)."""

    def __init__(self, model, x, y, steps: int = 1):
        self.model, self.x, self.y, self.steps = model.train(), x, y, steps
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
        self.times: list[float] = []

    def step(self) -> float:
        self.sync()
        t = time.perf_counter()
        for _ in range(self.steps):
            F.cross_entropy(self.model(self.x), self.y).backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        self.sync()
        return (time.perf_counter() - t) / self.steps


def interleaved_ratios(name: str, batch: int, rounds: int, size: int = 32, in_ch: int = 3,
                       device: str = "cpu", steps: int = 1) -> dict[str, float]:
    """Median step time of FP, BWN, BWN per-layer and a second FP model (the noise floor), each over
    FP's; every round steps each model once in a shuffled order, so drift falls on all alike."""
    x = torch.randn(batch, in_ch, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    kinds = {"FP": (False, True), "BWN": (True, True), "BWN per-layer": (True, False), "FP twin": (False, True)}
    steppers = {k: _Stepper(make(name, binary, in_ch, size, grouped).to(device), x, y, steps)
                for k, (binary, grouped) in kinds.items()}
    for s in steppers.values():  # warm-up: allocator, oneDNN primitives, Adam state
        s.step(), s.step()
    order = list(steppers.values())
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)
        for s in order:
            s.times.append(s.step())
    median = {k: statistics.median(s.times) for k, s in steppers.items()}
    return {"FP ms": 1e3 * median["FP"], "BWN ms": 1e3 * median["BWN"],
            **{k: median[k] / median["FP"] for k in ("BWN", "BWN per-layer", "FP twin")}}


def bwn_over_fp(name: str, size: int, in_ch: int, batch: int, rounds: int) -> float:
    r = interleaved_ratios(name, batch, rounds, size, in_ch)
    print(f"{name} {in_ch}x{size}x{size} batch {batch}, {rounds} rounds: FP {r['FP ms']:.1f} ms/step, "
          f"BWN {r['BWN ms']:.1f} ms/step, BWN/FP = {r['BWN']:.3f} (target <= 1.05); "
          f"per-layer binarization {r['BWN per-layer']:.3f}; noise floor FP twin/FP {r['FP twin']:.3f}")
    return r["BWN"]


class _Clock(pl.Callback):
    def on_train_epoch_start(self, trainer, module):
        self.t = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.elapsed = time.perf_counter() - self.t


def group_config(group: str, option: str) -> dict:
    """A config group's option as the plain dict BWNModule takes (its defaults from conf/, once)."""
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml"))


def lightning_vs_plain(batch: int, steps: int, blocks: int) -> None:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randint(0, 256, (batch * steps, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.randint(0, 10, (batch * steps,), generator=g))
    augment = {"crop_padding": 2, "flip": True}

    def lightning_run() -> float:
        module = BWNModule(make("resnet20", True, 1, 28), 10, [0.286], [0.353], group_config("optimizer", "adam"),
                           group_config("scheduler", "constant"), augment=augment)
        clock = _Clock()
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=pl.loggers.CSVLogger("/tmp/qbn_bench"),
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[clock], log_every_n_steps=20, limit_val_batches=0)
        trainer.fit(module, DataLoader(data, batch_size=batch))
        return clock.elapsed

    def plain_run() -> float:
        net = make("resnet20", True, 1, 28)
        mean, std = torch.tensor([0.286]).view(1, -1, 1, 1), torch.tensor([0.353]).view(1, -1, 1, 1)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        t = time.perf_counter()
        for i, (x, y) in enumerate(DataLoader(data, batch_size=batch)):
            x = random_crop_flip(to_unit_float(x), 2, True, step_generator(0, 0, i, x.device))
            loss = F.cross_entropy(net((x - mean) / std), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t

    t_pl, t_plain = [], []
    for _ in range(blocks):
        t_plain.append(plain_run())
        t_pl.append(lightning_run())
    ratio = statistics.median(t_plain) / statistics.median(t_pl)
    print(f"resnet20 BWN 1x28x28 batch {batch}, {steps} steps: plain {statistics.median(t_plain):.2f} s, "
          f"Lightning {statistics.median(t_pl):.2f} s; Lightning throughput / plain = {ratio:.3f} (target >= 0.95)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=24,
                   help="interleaved steps per model (resnet18: a quarter, at least 5)")
    p.add_argument("--blocks", type=int, default=5, help="Lightning and plain runs, alternated")
    p.add_argument("--steps", type=int, default=40, help="training steps in each Lightning or plain run")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--only", choices=["resnet20", "resnet18", "lightning"], nargs="*", help="run only these parts")
    a = p.parse_args()
    parts = a.only or ["resnet20", "resnet18", "lightning"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if "resnet20" in parts:
        bwn_over_fp("resnet20", 32, 3, a.batch, a.rounds)
    if "resnet18" in parts:
        bwn_over_fp("resnet18", 32, 3, a.batch, max(a.rounds // 4, 5))
    if "lightning" in parts:
        lightning_vs_plain(a.batch, a.steps, max(a.blocks - 2, 3))


if __name__ == "__main__":
    main()
