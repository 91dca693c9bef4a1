"""ImageNetSubsetDataModule: a few ImageNet classes from an ImageFolder-style tree.

Layout: `root/train/<wnid>/*.JPEG` and `root/val/<wnid>/*.JPEG` (any image format PIL reads).
Unreadable files are found at setup with a cheap header check (`PIL.Image.verify`, no decoding) and
skipped with one warning giving their count and a few paths, so an epoch never crashes halfway. A file
whose header passes but whose pixel data turns out damaged when decoded is replaced by the next readable
image of the split (and logged once), for the same reason. Every image is converted to RGB (L, RGBA,
CMYK, P and the rest).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from cifar_resnets.data.transforms import (
    AugmentSpec,
    MixCollate,
    imagenet_eval_transform,
    imagenet_train_transform,
)
from cifar_resnets.errors import ConfigError, UserError

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetSubsetError(UserError, FileNotFoundError):
    """The ImageNet subset tree is missing, incomplete, or does not hold the requested classes."""


def _is_readable(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files; all mean "skip it"
        return False


def scan_split(
    split_dir: Path, wnids: Sequence[str], per_class: int | None = None
) -> tuple[list[tuple[Path, int]], list[Path]]:
    """List (path, class index) of readable images of `wnids` under `split_dir`, and the bad paths."""
    samples, bad = [], []
    for label, wnid in enumerate(wnids):
        folder = split_dir / wnid
        if not folder.is_dir():
            raise ImageNetSubsetError(f"class folder {folder.resolve()} does not exist; check data.classes")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        kept = 0
        for path in files:
            if per_class is not None and kept >= per_class:
                break
            if _is_readable(path):
                samples.append((path, label))
                kept += 1
            else:
                bad.append(path)
    return samples, bad


class ImageListDataset(Dataset):
    """(path, label) list -> (transformed RGB image, label); damaged files fall back to the next image."""

    def __init__(self, samples: list[tuple[Path, int]], transform):
        self.samples, self.transform = samples, transform
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, path: Path) -> Image.Image:
        with Image.open(path) as im:
            return im.convert("RGB")

    def __getitem__(self, i: int):
        for k in range(len(self.samples)):
            path, label = self.samples[(i + k) % len(self.samples)]
            try:
                image = self._load(path)
            except (OSError, ValueError, SyntaxError) as err:
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping %s, which could not be decoded (%s)", path, err)
                continue
            return self.transform(image), label
        raise ImageNetSubsetError("no image of this split could be decoded")


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
        self.classes: list[str] = self._pick_classes() if self.root.is_dir() else []
        self.num_classes = (
            len(self.classes) if self.classes else (classes if isinstance(classes, int) else len(classes))
        )
        self.skipped: dict[str, list[Path]] = {}
        self._samples: dict[str, list[tuple[Path, int]]] = {}

    def _split_dir(self, split: str) -> Path:
        path = self.root / split
        if not path.is_dir():
            raise ImageNetSubsetError(
                f"ImageNet subset split {path.resolve()} does not exist; set data.root to a folder holding "
                "train/<wnid>/ and val/<wnid>/"
            )
        return path

    def _pick_classes(self) -> list[str]:
        available = sorted(p.name for p in self._split_dir("train").iterdir() if p.is_dir())
        if isinstance(self.requested, int):
            if not 1 <= self.requested <= len(available):
                raise ImageNetSubsetError(
                    f"data.classes={self.requested} but {self.root / 'train'} holds {len(available)} classes"
                )
            return available[: self.requested]
        missing = [c for c in self.requested if c not in available]
        if missing:
            raise ImageNetSubsetError(f"classes {missing} not found under {(self.root / 'train').resolve()}")
        return list(self.requested)

    def setup(self, stage: str | None = None) -> None:
        if self._samples:
            return
        if not self.root.is_dir():
            raise ImageNetSubsetError(
                f"ImageNet subset root {self.root.resolve()} does not exist; "
                "set data.root=<folder with train/ val/>"
            )
        self._split_dir("val")  # fail on a missing split before the (slower) scan
        self.classes = self._pick_classes()
        self.num_classes = len(self.classes)
        for split, cap in (("train", self.per_class), ("val", None)):
            samples, bad = scan_split(self._split_dir(split), self.classes, cap)
            if not samples:
                raise ImageNetSubsetError(f"no readable images in {(self.root / split).resolve()}")
            if bad:
                shown = ", ".join(str(p) for p in bad[:3])
                log.warning("%s: skipped %d unreadable file(s), e.g. %s", split, len(bad), shown)
            self._samples[split], self.skipped[split] = samples, bad

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
            else imagenet_eval_transform(self.mean, self.std, self.image_size, self.resize_size)
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
