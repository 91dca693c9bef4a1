"""The ImageNet-subset tree without Lightning: its classes, its image files and a dataset over them.

Files are judged by content with the one decoder (``data/images.py``): a non-image is left out when the
split is scanned and a damaged one is replaced by the next readable image, so an epoch never crashes
halfway. cifar-eval reads a checkpoint's test split through these without building a datamodule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from cifar_resnets.data.images import check_image, read_image
from cifar_resnets.errors import DataError, InputError

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def split_dir(root: str | Path, split: str) -> Path:
    """``root/<split>``, or ``DataError`` saying what the tree should look like."""
    path = Path(root).expanduser() / split
    if not path.is_dir():
        raise DataError(
            f"ImageNet subset split {path.resolve()} does not exist; set data.root to a folder holding "
            "train/<wnid>/ and val/<wnid>/"
        )
    return path


def pick_classes(root: str | Path, requested: int | Sequence[str]) -> list[str]:
    """The wnids of ``data.classes``: the first N class folders of ``train/`` (sorted), or the named ones."""
    train = split_dir(root, "train")
    available = sorted(p.name for p in train.iterdir() if p.is_dir())
    if isinstance(requested, int):
        if not 1 <= requested <= len(available):
            raise DataError(f"data.classes={requested} but {train} holds {len(available)} classes")
        return available[:requested]
    missing = [c for c in requested if c not in available]
    if missing:
        raise DataError(f"classes {missing} not found under {train.resolve()}")
    return [str(c) for c in requested]


def scan_split(
    folder: Path, wnids: Sequence[str], per_class: int | None = None
) -> tuple[list[tuple[Path, int]], list[Path]]:
    """(path, class index) of the accepted images of ``wnids`` under ``folder``, and the refused paths."""
    samples, bad = [], []
    for label, wnid in enumerate(wnids):
        class_dir = folder / wnid
        if not class_dir.is_dir():
            raise DataError(f"class folder {class_dir.resolve()} does not exist; check data.classes")
        kept = 0
        for path in sorted(p for p in class_dir.iterdir() if p.is_file()):
            if per_class is not None and kept >= per_class:
                break
            try:
                check_image(path)
            except InputError:
                bad.append(path)
                continue
            samples.append((path, label))
            kept += 1
    return samples, bad


def read_split(
    root: str | Path, split: str, wnids: Sequence[str], per_class: int | None = None
) -> tuple[list[tuple[Path, int]], list[Path]]:
    """``scan_split`` of ``root/<split>``, with one warning about refused files; at least one image."""
    samples, bad = scan_split(split_dir(root, split), wnids, per_class)
    if not samples:
        raise DataError(f"no readable images in {(Path(root) / split).resolve()}")
    if bad:
        shown = ", ".join(str(p) for p in bad[:3])
        log.warning("%s: skipped %d unreadable file(s), e.g. %s", split, len(bad), shown)
    return samples, bad


class ImageListDataset(Dataset):
    """(path, label) list -> (transform(RGB image), label); damaged files fall back to the next image."""

    def __init__(self, samples: list[tuple[Path, int]], transform: Callable[[Any], Any]):
        self.samples, self.transform = samples, transform
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        for k in range(len(self.samples)):
            path, label = self.samples[(i + k) % len(self.samples)]
            try:
                image = read_image(path)
            except InputError as err:
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping %s", err)
                continue
            return self.transform(image), label
        raise DataError("no image of this split could be decoded")
