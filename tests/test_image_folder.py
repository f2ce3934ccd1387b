"""A user's own ImageFolder tree: classes from the folders, resize following image_size, loader
workers from the CPUs this process may use, unreadable images skipped and named, empty or
mismatched class folders one clear message; and a run on a generated tree of small PNGs."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from qbn.config import CONFIG_DIR
from qbn.data import FashionMNISTDataModule, ImageFolderDataModule
from qbn.data.base import default_num_workers
from qbn.data.shapes import CLASSES, write_shapes_tree
from qbn.errors import DatasetMissingError
from qbn.testing.runs import compose_cfg, tiny
from qbn.train import train


@pytest.fixture
def tree(tmp_path):
    return write_shapes_tree(tmp_path / "shapes", train_per_class=6, val_per_class=2, size=16)


def test_classes_inferred_and_resize_follows_image_size(tree):
    dm = ImageFolderDataModule(name="image_folder", data_dir=str(tree), image_size=16, num_workers=0, val_size=3)
    assert dm.num_classes == len(CLASSES) == 3 and dm.resize == int(16 * 256 / 224)
    dm.setup()
    assert len(dm.train_set) == 15 and len(dm.val_set) == 3 and len(dm.test_set) == 6
    assert ImageFolderDataModule(name="f", data_dir=str(tree), image_size=16, resize=20).resize == 20


def test_unreadable_image_is_skipped_and_named(tree, caplog):
    bad = tree / "train" / "circle" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tree / "train" / "square" / "0000.png").write_bytes((tree / "train" / "square" / "0000.png").read_bytes()[:60])
    dm = ImageFolderDataModule(name="image_folder", data_dir=str(tree), image_size=16, num_workers=0, val_size=0,
                               batch_size=64)
    dm.setup()
    with caplog.at_level(logging.WARNING, logger="qbn.data"):
        x, y = next(iter(dm.train_dataloader()))
    assert len(x) == len(y) == 3 * 6 + 1 - 2  # 19 files, two unreadable
    named = [r.getMessage() for r in caplog.records if "skipped unreadable image" in r.getMessage()]
    assert any(str(bad) in m for m in named) and any("0000.png" in m for m in named)


def test_empty_class_folder_is_one_clear_message(tree):
    (tree / "train" / "star").mkdir()
    (tree / "val" / "star").mkdir()
    dm = ImageFolderDataModule(name="image_folder", data_dir=str(tree), image_size=16, num_workers=0)
    with pytest.raises(DatasetMissingError, match=r"class folder .*star holds no images"):
        dm.setup()


def test_train_and_val_with_other_classes_is_one_clear_message(tree):
    (tree / "val" / "triangle").rename(tree / "val" / "triangles")
    with pytest.raises(DatasetMissingError, match="different class folders .*triangle, triangles"):
        ImageFolderDataModule(name="image_folder", data_dir=str(tree), image_size=16)


def test_num_workers_default_is_the_cpus_this_process_may_use_at_most_8(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    assert default_num_workers() == 8
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3})
    assert default_num_workers() == 1
    assert ImageFolderDataModule(name="f", data_dir=".", num_classes=2).num_workers == 1  # null in the config
    for path in (CONFIG_DIR / "dataset").glob("*.yaml"):  # automatic by default in every data module
        assert OmegaConf.load(path).num_workers is None, path.name
    assert FashionMNISTDataModule(name="fashion_mnist").num_workers == 0  # in memory: no decode work for a worker


def test_train_on_a_folder_with_only_data_dir_and_image_size(tree, tmp_path):
    run = tmp_path / "run"
    summary = train(compose_cfg(run, tiny("dataset=image_folder", f"dataset.data_dir={tree}", "dataset.image_size=16",
                                          "dataset.num_workers=0", "dataset.batch_size=8", "dataset.val_size=3")))
    assert summary["status"] == "completed" and summary["dataset"] == "image_folder"
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert saved.dataset.num_classes == 3  # what the folder said, so export and kernels rebuild the model
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["net.fc.weight"].shape[0] == 3
