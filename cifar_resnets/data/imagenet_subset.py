"""ImageNetSubsetDataModule: a few ImageNet classes from an ImageFolder-style tree.

Layout: `root/train/<wnid>/*` and `root/val/<wnid>/*`. Reading the tree (class folders, the header
check of every file, the dataset that decodes them with the one image decoder) is
`cifar_resnets.data.imagenet_files`, which cifar-eval uses too; this module adds the loaders and their
transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from cifar_resnets.data.imagenet_files import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageListDataset,
    pick_classes,
    read_split,
    split_dir,
)
from cifar_resnets.data.transforms import AugmentSpec, MixCollate, eval_transform, imagenet_train_transform
from cifar_resnets.errors import ConfigError, DataError

__all__ = ["ImageListDataset", "ImageNetSubsetDataModule"]


class ImageNetSubsetDataModule(L.LightningDataModule):
    """A subset of ImageNet classes with the standard ResNet transforms (contract: see common data API)."""

    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(
        self,
        root: str = "data/imagenet",
        classes: int | Sequence[str] = 10,
        per_class: int | None = None,
        image_size: int = 224,
        resize_size: int = 256,
        batch_size: int = 64,
        eval_batch_size: int = 100,
        num_workers: int = 2,
        augment: dict[str, Any] | AugmentSpec | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if per_class is not None and per_class < 1:
            raise ConfigError(f"data.per_class must be >= 1 or null, got {per_class}")
        if image_size < 1 or resize_size < image_size:
            raise ConfigError(
                f"need 1 <= data.image_size <= data.resize_size, got {image_size}, {resize_size}"
            )
        self.root = Path(root).expanduser()
        self.requested = classes if isinstance(classes, int) else [str(c) for c in classes]
        self.per_class, self.image_size, self.resize_size = per_class, int(image_size), int(resize_size)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.num_workers, self.seed = int(num_workers), int(seed)
        self.augment = AugmentSpec.from_config(augment)
        self.classes: list[str] = pick_classes(self.root, self.requested) if self.root.is_dir() else []
        self.num_classes = (
            len(self.classes) if self.classes else (classes if isinstance(classes, int) else len(classes))
        )
        self.skipped: dict[str, list[Path]] = {}
        self._samples: dict[str, list[tuple[Path, int]]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._samples:
            return
        if not self.root.is_dir():
            raise DataError(
                f"ImageNet subset root {self.root.resolve()} does not exist; "
                "set data.root=<folder with train/ val/>"
            )
        split_dir(self.root, "val")  # fail on a missing split before the (slower) scan
        self.classes = pick_classes(self.root, self.requested)
        self.num_classes = len(self.classes)
        for split, cap in (("train", self.per_class), ("val", None)):
            self._samples[split], self.skipped[split] = read_split(self.root, split, self.classes, cap)

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch per rank (drop_last)."""
        self.setup()
        world = self.trainer.world_size if self.trainer is not None else 1
        return max(1, -(-len(self._samples["train"]) // world) // self.batch_size)

    def _loader(self, split: str, train: bool) -> DataLoader:
        self.setup()
        transform = (
            imagenet_train_transform(self.augment, self.mean, self.std, self.image_size)
            if train
            else eval_transform(self.mean, self.std, self.image_size, self.resize_size)
        )
        return DataLoader(
            ImageListDataset(self._samples[split], transform),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train and len(self._samples[split]) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=MixCollate(self.augment, self.num_classes) if train and self.augment.mixes else None,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """The ImageNet val split doubles as the test set (the official test labels are not public)."""
        return self._loader("val", train=False)
