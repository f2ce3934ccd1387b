"""ImageNet and any ImageFolder tree (root/train/<class>/*.jpg, root/val/<class>/*.jpg).

Images are decoded and augmented in worker processes with torchvision transforms (the standard
RandomResizedCrop + flip for training, resize + center crop for evaluation) and reach the model
as floats in [0, 1]; the model normalises. The number of classes comes from the class folders
when the config does not give it. An image that cannot be decoded is skipped: the log names it
(once per loader process) and its batch is one image smaller; an empty class folder stops the
run at set-up with its name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset, default_collate
from torchvision import datasets, transforms

from ..errors import DatasetMissingError
from .base import EpochSeededSampler, default_num_workers

log = logging.getLogger("qbn.data")
_named: set[str] = set()  # unreadable images already named by this process


class SkippingImageFolder(datasets.ImageFolder):
    """torchvision's ImageFolder, giving None for an image that cannot be decoded (skip_unreadable drops it)."""

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            sample = self.loader(path)
        except (OSError, SyntaxError, ValueError) as e:  # PIL: unidentified, truncated or broken files
            if path not in _named:
                _named.add(path)
                log.warning("skipped unreadable image %s (%s); replace or delete it",
                            path, str(e).splitlines()[0][:120])
            return None
        return (self.transform(sample) if self.transform else sample), target


def skip_unreadable(batch: list):
    """Collate the images that could be decoded."""
    return default_collate([b for b in batch if b is not None])


class ImageFolderDataModule(pl.LightningDataModule):
    def __init__(self, name: str, data_dir: str, batch_size: int = 256, eval_batch_size: int = 256,
                 val_size: float | int = 10000, train_subset: int | None = None, test_subset: int | None = None,
                 split_seed: int = 0, seed: int = 0, num_workers: int | None = None, image_size: int = 224,
                 resize: int | None = None, train_split: str = "train", test_split: str = "val",
                 in_channels: int = 3, num_classes: int | None = None, **_):
        super().__init__()
        self.name, self.root = name, Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.train_subset, self.test_subset = val_size, train_subset, test_subset
        self.split_seed, self.seed = split_seed, seed
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.image_size, self.resize = image_size, resize or int(image_size * 256 / 224)
        self.train_split, self.test_split = train_split, test_split
        self.in_channels = in_channels
        self.num_classes = num_classes if num_classes is not None else len(self.classes())
        self.augment: dict = {}  # augmentation happens in the workers' transforms

    def classes(self) -> list[str]:
        """The class folders, the same in the train and test splits (else one clear error)."""
        train, test = (datasets.folder.find_classes(str(self._folder(s)))[0]
                       for s in (self.train_split, self.test_split))
        if train != test:
            only = sorted(set(train) ^ set(test))
            raise DatasetMissingError(
                f"dataset '{self.name}': {self.root / self.train_split} and {self.root / self.test_split} "
                f"have different class folders ({len(train)} and {len(test)}; "
                f"not in both: {', '.join(only[:5])}): give both splits the same classes")
        return train

    def _image_folder(self, split: str, transform) -> SkippingImageFolder:
        folder = self._folder(split)
        try:
            return SkippingImageFolder(str(folder), transform=transform)
        except FileNotFoundError as e:  # torchvision: a class folder without a single image file
            image_exts = datasets.folder.IMG_EXTENSIONS
            empty = [d for d in sorted(folder.iterdir()) if d.is_dir() and not any(
                datasets.folder.has_file_allowed_extension(f.name, image_exts) for f in d.rglob("*"))]
            where = empty[0] if empty else folder
            raise DatasetMissingError(
                f"dataset '{self.name}': class folder {where} holds no images ({str(e).split('. ')[0][:80]}); add "
                f"images ({', '.join(datasets.folder.IMG_EXTENSIONS[:4])}, ...) or remove the folder") from None

    def _folder(self, split: str) -> Path:
        path = self.root / split
        if not path.is_dir() or not any(path.iterdir()):
            raise DatasetMissingError(
                f"dataset '{self.name}': no image folder at {path}. Lay it out as "
                f"{self.root}/{self.train_split}/<class>/<image> and {self.root}/{self.test_split}/<class>/<image>, "
                "then set dataset.data_dir to its root "
                "(for ImageNet, the train and val folders with class sub-folders)")
        return path

    def prepare_data(self) -> None:
        self._folder(self.train_split), self._folder(self.test_split)

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        s = self.image_size
        train_tf = transforms.Compose([transforms.RandomResizedCrop(s), transforms.RandomHorizontalFlip(),
                                       transforms.ToTensor()])
        eval_tf = transforms.Compose([transforms.Resize(self.resize), transforms.CenterCrop(s), transforms.ToTensor()])
        train_dir = self._folder(self.train_split)
        full_train = self._image_folder(self.train_split, train_tf)
        full_val = self._image_folder(self.train_split, eval_tf)
        if len(full_train.classes) != self.num_classes:
            raise DatasetMissingError(
                f"dataset '{self.name}': {train_dir} has {len(full_train.classes)} classes but the config says "
                f"num_classes={self.num_classes}; set dataset.num_classes={len(full_train.classes)}")
        order = torch.randperm(len(full_train), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        if isinstance(self.val_size, float):
            n_val = int(self.val_size * len(order))
        else:
            n_val = min(int(self.val_size), len(order) // 2)
        train_idx = order[n_val:][: self.train_subset or None]
        self.train_set = Subset(full_train, train_idx)
        self.val_set = Subset(full_val, order[:n_val])
        test = self._image_folder(self.test_split, eval_tf)
        self.test_set = Subset(test, range(min(len(test), self.test_subset or len(test))))

    def _loader(self, ds, bs, sampler=None):
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=self.num_workers, collate_fn=skip_unreadable,
                          pin_memory=torch.cuda.is_available(), persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        return self._loader(self.train_set, self.batch_size, EpochSeededSampler(len(self.train_set), self.seed))

    def val_dataloader(self):
        return self._loader(self.val_set, self.eval_batch_size)

    def test_dataloader(self):
        return self._loader(self.test_set, self.eval_batch_size)
