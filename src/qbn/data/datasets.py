"""One LightningDataModule per dataset family, all loading through torchvision's own code."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torchvision

from ..errors import DatasetMissingError
from .base import ArrayDataModule

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _missing(name: str, where: Path, ways: list[str]) -> DatasetMissingError:
    lines = "\n".join(f"  {i}. {w}" for i, w in enumerate(ways, 1))
    return DatasetMissingError(f"dataset '{name}' not found under {where}. Any of these fixes it:\n{lines}")


class _MNISTFamily(ArrayDataModule):
    tv_class = torchvision.datasets.MNIST
    folder = "MNIST"
    debian_dir: Path | None = None
    debian_package: str | None = None

    def _raw_dir(self) -> Path:
        return self.data_dir / self.folder / "raw"

    def _copy_from_debian(self) -> None:
        """Unpack the Debian package's .gz IDX files, the four torchvision reads and no more."""
        raw = self._raw_dir()
        raw.mkdir(parents=True, exist_ok=True)
        for gz in sorted(self.debian_dir.glob("*-ubyte.gz")):
            target = raw / gz.name[:-3]
            if not target.exists():
                # a temporary name of this process's own: runs of a study start side by side and may
                # unpack the same files at once; each renames its complete copy over the target
                tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
                with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(tmp, target)

    def _dataset(self, train: bool):
        try:
            return self.tv_class(str(self.data_dir), train=train, download=False)
        except RuntimeError:
            pass
        if self.debian_dir is not None and (self.debian_dir / "train-images-idx3-ubyte.gz").exists():
            self._copy_from_debian()
            return self.tv_class(str(self.data_dir), train=train, download=False)
        if self.download:
            try:
                return self.tv_class(str(self.data_dir), train=train, download=True)
            except Exception as e:  # no network, mirror down: say so in the message below
                reason = f" (download failed: {type(e).__name__})"
        else:
            reason = ""
        ways = [f"put the four IDX files (train-images-idx3-ubyte, ...) in {self._raw_dir()}",
                f"set dataset.data_dir=DIR to a folder holding {self.folder}/raw/, or export QBN_DATA_DIR=DIR"]
        if self.debian_package:
            ways.append(f"install Debian's package: sudo apt-get install {self.debian_package}")
        ways.append(f"let torchvision download it: dataset.download=true (needs the network){reason}")
        raise _missing(self.name, self.data_dir, ways)

    def load_arrays(self):
        train, test = self._dataset(True), self._dataset(False)
        return train.data.unsqueeze(1), train.targets.long(), test.data.unsqueeze(1), test.targets.long()


class MNISTDataModule(_MNISTFamily):
    tv_class = torchvision.datasets.MNIST
    folder = "MNIST"


class FashionMNISTDataModule(_MNISTFamily):
    tv_class = torchvision.datasets.FashionMNIST
    folder = "FashionMNIST"
    debian_dir = DEBIAN_FASHION_MNIST
    debian_package = "dataset-fashion-mnist"


class _PresenceChecked:
    """torchvision checks the official md5 sums; files in the same format that differ (a subset,
    a test fixture) are accepted as long as every file is there. Loading is torchvision's."""

    def _check_integrity(self) -> bool:
        return all((Path(self.root) / self.base_folder / f).exists() for f, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not path.exists():
            raise RuntimeError(f"{path} is missing")
        md5, self.meta = self.meta["md5"], {**self.meta, "md5": None}
        try:
            super()._load_meta()  # check_integrity(path, None) only checks that the file exists
        finally:
            self.meta = {**self.meta, "md5": md5}


class _CIFAR10Files(_PresenceChecked, torchvision.datasets.CIFAR10):
    pass


class _CIFAR100Files(_PresenceChecked, torchvision.datasets.CIFAR100):
    pass


class CIFAR10DataModule(ArrayDataModule):
    tv_class = _CIFAR10Files

    def _dataset(self, train: bool):
        try:
            return self.tv_class(str(self.data_dir), train=train, download=self.download)
        except Exception as e:
            folder = self.data_dir / self.tv_class.base_folder
            raise _missing(self.name, self.data_dir, [
                f"unpack the python version of the dataset ({self.tv_class.filename}) "
                f"so that {folder} holds its batch files",
                "set dataset.data_dir=DIR or export QBN_DATA_DIR=DIR to where it is",
                "let torchvision download it: dataset.download=true "
                f"(needs the network; last error: {type(e).__name__})",
            ]) from None

    def load_arrays(self):
        tr, te = self._dataset(True), self._dataset(False)
        to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return to_nchw(tr.data), torch.tensor(tr.targets), to_nchw(te.data), torch.tensor(te.targets)


class CIFAR100DataModule(CIFAR10DataModule):
    tv_class = _CIFAR100Files


class DigitsDataModule(ArrayDataModule):
    """scikit-learn's bundled 8x8 digits (1,797 images, 0..16 grey levels). It has no official
    test split, so a fixed 20 % (independent of the run's seed) is held out as test."""

    def load_arrays(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy((d.images * 16).clip(0, 255).astype(np.uint8)).unsqueeze(1)
        y = torch.from_numpy(d.target).long()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(12345))
        n_test = len(x) // 5
        te, tr = order[:n_test], order[n_test:]
        return x[tr], y[tr], x[te], y[te]


class SyntheticDataModule(ArrayDataModule):
    """Random images whose class shifts their mean: learnable in a few steps. Tests only."""

    def __init__(self, *args, num_train: int = 256, num_test: int = 128, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_train, self.num_test = num_train, num_test

    def load_arrays(self):
        g = torch.Generator().manual_seed(1234)

        def make(n):
            y = torch.randint(0, self.num_classes, (n,), generator=g)
            base = torch.rand(n, self.in_channels, self.image_size, self.image_size, generator=g) * 128
            shift = (y.float() / max(self.num_classes - 1, 1) * 127)[:, None, None, None]
            return (base + shift).clamp(0, 255).to(torch.uint8), y

        return (*make(self.num_train), *make(self.num_test))
