"""Data modules on small real data: digits, Fashion-MNIST, and CIFAR / ImageFolder files written
by the test in the real formats (they cannot be downloaded here)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from qbn.data import (
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
)
from qbn.data.augment import random_crop_flip, step_generator
from qbn.errors import DatasetMissingError
from qbn.testing.runs import FASHION_MNIST_AVAILABLE, ROOT


def test_digits_split_is_seeded_and_disjoint():
    a = DigitsDataModule(name="digits", val_size=0.1, split_seed=0)
    a.setup()
    b = DigitsDataModule(name="digits", val_size=0.1, split_seed=0)
    b.setup()
    assert len(a.train_set) + len(a.val_set) + len(a.test_set) == 1797
    assert torch.equal(a.val_set.tensors[0], b.val_set.tensors[0])
    x, y = next(iter(a.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 8, 8) and y.dtype == torch.long


def test_shuffle_depends_only_on_seed_and_epoch():
    dm = DigitsDataModule(name="digits", seed=3, val_size=0.1)
    dm.setup()
    s1, s2 = dm.train_dataloader().sampler, dm.train_dataloader().sampler
    s1.set_epoch(4), s2.set_epoch(4)
    assert list(s1) == list(s2)
    s2.set_epoch(5)
    assert list(s1) != list(s2)


def test_random_crop_flip_matches_loop():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = step_generator(0, 0, 0, torch.device("cpu"))
    out = random_crop_flip(x, padding=1, flip=True, generator=g)
    g = step_generator(0, 0, 0, torch.device("cpu"))
    dy, dx = torch.randint(0, 3, (2,), generator=g), torch.randint(0, 3, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        crop = padded[i, :, dy[i]:dy[i] + 4, dx[i]:dx[i] + 4]
        if flip[i]:
            crop = crop.flip(2)
        assert torch.equal(out[i], crop)


@pytest.mark.skipif(not FASHION_MNIST_AVAILABLE,
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_files():
    dm = FashionMNISTDataModule(name="fashion_mnist", data_dir=str(ROOT / "data"), val_size=5000, train_subset=1000,
                                test_subset=500)
    dm.setup()
    assert len(dm.train_set) == 1000 and len(dm.val_set) == 5000 and len(dm.test_set) == 500
    x, y = dm.train_set.tensors
    assert x.shape[1:] == (1, 28, 28) and int(y.max()) == 9


def test_missing_dataset_message(tmp_path):
    dm = MNISTDataModule(name="mnist", data_dir=str(tmp_path))
    with pytest.raises(DatasetMissingError) as e:
        dm.setup()
    msg = str(e.value)
    assert "MNIST/raw" in msg and "dataset.download=true" in msg and "QBN_DATA_DIR" in msg


def _write_cifar10(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return entry


def test_cifar10_files_in_real_format(tmp_path):
    last = _write_cifar10(tmp_path)
    dm = CIFAR10DataModule(name="cifar10", data_dir=str(tmp_path), val_size=10)
    dm.setup()
    assert len(dm.train_set) == 90 and len(dm.test_set) == 20
    x, y = dm.test_set.tensors
    # torchvision's layout: 3072 = 3 x 32 x 32, channel-major
    assert torch.equal(x[0], torch.from_numpy(last["data"][0].reshape(3, 32, 32)))
    assert y.tolist() == last["labels"]


def test_cifar10_missing(tmp_path):
    with pytest.raises(DatasetMissingError, match="cifar-10-batches-py"):
        CIFAR10DataModule(name="cifar10", data_dir=str(tmp_path)).setup()


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c in ("cat", "dog"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(d / f"{i}.png")
    dm = ImageFolderDataModule(name="image_folder", data_dir=str(tmp_path), val_size=2, num_workers=0, image_size=32,
                               num_classes=2, batch_size=4)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert len(dm.val_set) == 2 and len(dm.test_set) == 4
    bad = ImageFolderDataModule(name="image_folder", data_dir=str(tmp_path), num_classes=5, num_workers=0)
    with pytest.raises(DatasetMissingError, match="num_classes=2"):
        bad.setup()
    with pytest.raises(DatasetMissingError, match="no image folder"):
        ImageFolderDataModule(name="imagenet", data_dir=str(tmp_path / "nope")).prepare_data()


def _unpack_fashion_mnist(data_dir: str) -> None:
    FashionMNISTDataModule(name="fashion_mnist", data_dir=data_dir)._copy_from_debian()


@pytest.mark.skipif(not FashionMNISTDataModule.debian_dir.exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_runs_started_side_by_side_unpack_the_debian_files_once_each_without_a_race(tmp_path):
    """A study starts two runs at once on a fresh data folder: both unpack the Debian package's files
    (a shared temporary name made one run fail with FileNotFoundError); each file ends whole."""
    import gzip
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_unpack_fashion_mnist, args=(str(tmp_path),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    with gzip.open(FashionMNISTDataModule.debian_dir / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == f.read()
