"""The dataset group: one schema per layout of its YAML files (a schema fixes the order of a
config's keys, and the saved configs keep theirs): the in-memory datasets (MNIST, Fashion-MNIST,
CIFAR-10/100), digits, synthetic, and ImageFolder trees (image_folder, imagenet). The ranges are
written once, below, and shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional  # noqa: UP035  OmegaConf reads these annotations

from omegaconf import MISSING

from .fields import num


def _batch() -> Any:
    return num(ge=1)


def _subset() -> Any:
    return num(ge=1, null=True)        # the first N images (after the seeded split); null: all


def _workers() -> Any:
    return num(ge=0, null=True)        # null: automatic


def _val_size() -> Any:
    return num(ge=0)                   # images (an int) or a share of the training set (a float)


def _classes() -> Any:
    return num(ge=1, null=True)        # null: what the data says (an image folder's class folders)


def _image_size() -> Any:
    return num(ge=1)


@dataclass
class InMemorySchema:
    """mnist, fashion_mnist, cifar10, cifar100."""

    _target_: str = MISSING
    name: str = MISSING
    data_dir: str = MISSING
    batch_size: int = _batch()
    eval_batch_size: int = _batch()
    train_subset: Optional[int] = _subset()  # noqa: UP045
    test_subset: Optional[int] = _subset()  # noqa: UP045
    split_seed: int = MISSING
    seed: int = MISSING
    num_workers: Optional[int] = _workers()  # noqa: UP045
    download: bool = MISSING
    val_size: Any = _val_size()
    augment: Dict[str, Any] = MISSING  # noqa: UP006
    mean: List[float] = MISSING  # noqa: UP006
    std: List[float] = MISSING  # noqa: UP006
    in_channels: int = MISSING
    num_classes: Optional[int] = _classes()  # noqa: UP045
    image_size: int = _image_size()


@dataclass
class DigitsSchema:
    """scikit-learn's digits."""

    _target_: str = MISSING
    name: str = MISSING
    data_dir: str = MISSING
    eval_batch_size: int = _batch()
    train_subset: Optional[int] = _subset()  # noqa: UP045
    test_subset: Optional[int] = _subset()  # noqa: UP045
    split_seed: int = MISSING
    seed: int = MISSING
    num_workers: Optional[int] = _workers()  # noqa: UP045
    download: bool = MISSING
    batch_size: int = _batch()
    val_size: Any = _val_size()
    augment: Dict[str, Any] = MISSING  # noqa: UP006
    mean: List[float] = MISSING  # noqa: UP006
    std: List[float] = MISSING  # noqa: UP006
    in_channels: int = MISSING
    num_classes: Optional[int] = _classes()  # noqa: UP045
    image_size: int = _image_size()


@dataclass
class SyntheticSchema:
    """Random class-shifted images (tests)."""

    _target_: str = MISSING
    name: str = MISSING
    data_dir: str = MISSING
    eval_batch_size: int = _batch()
    train_subset: Optional[int] = _subset()  # noqa: UP045
    test_subset: Optional[int] = _subset()  # noqa: UP045
    split_seed: int = MISSING
    seed: int = MISSING
    num_workers: Optional[int] = _workers()  # noqa: UP045
    download: bool = MISSING
    batch_size: int = _batch()
    val_size: Any = _val_size()
    num_train: int = num(ge=1)
    num_test: int = num(ge=1)
    augment: Dict[str, Any] = MISSING  # noqa: UP006
    mean: List[float] = MISSING  # noqa: UP006
    std: List[float] = MISSING  # noqa: UP006
    in_channels: int = MISSING
    num_classes: Optional[int] = _classes()  # noqa: UP045
    image_size: int = _image_size()


@dataclass
class ImageFolderSchema:
    """image_folder, imagenet: <data_dir>/<split>/<class>/<image>."""

    _target_: str = MISSING
    name: str = MISSING
    data_dir: str = MISSING
    batch_size: int = _batch()
    eval_batch_size: int = _batch()
    val_size: Any = _val_size()
    train_subset: Optional[int] = _subset()  # noqa: UP045
    test_subset: Optional[int] = _subset()  # noqa: UP045
    split_seed: int = MISSING
    seed: int = MISSING
    num_workers: Optional[int] = _workers()  # noqa: UP045
    image_size: int = _image_size()
    resize: Optional[int] = num(ge=1, null=True)  # noqa: UP045
    augment: Dict[str, Any] = MISSING  # noqa: UP006
    train_split: str = MISSING
    test_split: str = MISSING
    mean: List[float] = MISSING  # noqa: UP006
    std: List[float] = MISSING  # noqa: UP006
    in_channels: int = MISSING
    num_classes: Optional[int] = _classes()  # noqa: UP045
