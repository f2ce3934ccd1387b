"""LightningDataModules, one per dataset family."""

from .base import ArrayDataModule, EpochSeededSampler
from .datasets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    SyntheticDataModule,
)
from .image_folder import ImageFolderDataModule

__all__ = [
    "ArrayDataModule", "CIFAR10DataModule", "CIFAR100DataModule", "DigitsDataModule", "EpochSeededSampler",
    "FashionMNISTDataModule", "ImageFolderDataModule", "MNISTDataModule", "SyntheticDataModule",
]
