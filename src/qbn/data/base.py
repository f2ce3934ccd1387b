"""In-memory image datasets as uint8 tensors (N x C x H x W), with a seeded validation split.

Batches leave the loader as uint8 and become floats in [0, 1] in the LightningModule;
normalisation is the model's first layer (qbn.module.Normalize), so checkpoints and packed
files carry it and need no dataset code to predict.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ..errors import ConfigError


def default_num_workers() -> int:
    """Loader processes for data decoded from files, when the config leaves num_workers null: the
    CPUs this process may run on (its affinity: a SLURM allocation or taskset, not the whole
    machine), at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


class EpochSeededSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch): Lightning calls set_epoch, so a run resumed
    from a checkpoint sees the same order as an uninterrupted one."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class ArrayDataModule(pl.LightningDataModule):
    """Base for datasets that fit in memory. Subclasses implement `load_arrays`."""

    def __init__(self, name: str, data_dir: str = "data", batch_size: int = 128, eval_batch_size: int = 512,
                 val_size: float | int = 5000, train_subset: int | None = None, test_subset: int | None = None,
                 split_seed: int = 0, seed: int = 0, num_workers: int | None = None, download: bool = False,
                 augment: dict | None = None, mean=None, std=None, in_channels: int = 3,
                 num_classes: int = 10, image_size: int = 32, **_):
        super().__init__()
        self.name, self.data_dir = name, Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.train_subset, self.test_subset = val_size, train_subset, test_subset
        self.split_seed, self.seed = split_seed, seed
        # null (automatic): none. A batch here is a slice of a uint8 tensor already in memory
        # (augmentation runs in the module), so a worker process would only add start-up and
        # inter-process copies, and take a core from the training threads.
        self.num_workers = 0 if num_workers is None else num_workers
        self.download = download
        self.augment = dict(augment or {})
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self._loaded = False

    def load_arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train_x, train_y, test_x, test_y): uint8 N x C x H x W images and int64 labels."""
        raise NotImplementedError

    def prepare_data(self) -> None:
        self.load_arrays()  # fails early, with the dataset's message, when files are missing

    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        train_x, train_y, test_x, test_y = self.load_arrays()
        g = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(train_x), generator=g)
        n_val = int(self.val_size * len(train_x)) if isinstance(self.val_size, float) else int(self.val_size)
        if not 0 <= n_val < len(train_x):
            raise ConfigError(f"dataset '{self.name}': val_size={self.val_size} leaves no training images "
                              f"(the training set has {len(train_x)}); use a smaller dataset.val_size")
        val_idx, train_idx = order[:n_val], order[n_val:]
        if self.train_subset:
            train_idx = train_idx[: self.train_subset]
        if self.test_subset:
            test_x, test_y = test_x[: self.test_subset], test_y[: self.test_subset]
        self.train_set = TensorDataset(train_x[train_idx], train_y[train_idx])
        self.val_set = TensorDataset(train_x[val_idx], train_y[val_idx]) if n_val else None
        self.test_set = TensorDataset(test_x, test_y)
        self._loaded = True

    def _loader(self, dataset, batch_size: int, sampler=None) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, EpochSeededSampler(len(self.train_set), self.seed))

    def val_dataloader(self):
        return [] if self.val_set is None else self._loader(self.val_set, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size)
