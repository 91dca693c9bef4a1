"""Read images that users hand to cifar-predict, without ever running code hidden in a file.

Three kinds of input, picked by what the path is:

- a folder: every image file in it (not recursive, sorted by name); PIL decodes any mode (L, P, RGBA,
  CMYK, 16-bit greyscale, ...) to RGB. Unreadable files are skipped and counted; images larger than
  Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused the same way.
  Ids are the file names.
- a ``.npy`` file: read with ``allow_pickle=False`` (an object array or a pickle is refused); uint8
  [N, H, W, 3] or [N, 3, H, W]. Ids are the row indices.
- anything else: a CIFAR-format batch pickle, read by the restricted unpickler of
  ``cifar_files.load_cifar_pickle`` (only numpy arrays and plain containers; ``b"labels"`` or
  ``b"fine_labels"`` become the labels). Ids are the row indices.

Images come back as uint8 [N, 3, H, W]; folder images are brought to the model's input size on
reading (``inference.fit_to_model``), since files of different sizes cannot be stacked otherwise.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS

from cifar_resnets.data.cifar_files import CIFARFileError, load_cifar_pickle
from cifar_resnets.errors import UserError
from cifar_resnets.inference.predict import fit_to_model

_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class InputError(UserError, ValueError):
    """A prediction input or labels file that cannot be used; the message says what to do."""


@dataclass
class PredictionInput:
    """Images to predict, their ids, optional labels, and the files skipped on the way."""

    images: torch.Tensor  # uint8 [N, 3, H, W]
    ids: list[str]
    labels: np.ndarray | None = None  # int64 [N] class indices
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    kind: str = "pickle"

    def __len__(self) -> int:
        return len(self.ids)


def read_npy_images(path: str | Path) -> torch.Tensor:
    """uint8 images [N, 3, H, W] from a ``.npy`` holding [N, H, W, 3] or [N, 3, H, W] (one image: 3-D)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:  # object arrays and pickles need allow_pickle, which stays off
        raise InputError(
            f"{path}: refused ({err}); save plain uint8 pixel arrays with np.save, not Python objects"
        ) from None
    except (OSError, EOFError) as err:
        raise InputError(f"{path} is not a readable .npy file ({err})") from None
    if not isinstance(array, np.ndarray):  # np.load of an .npz gives an archive
        raise InputError(f"{path} is not a single .npy array; save one array with np.save")
    if array.dtype != np.uint8:
        raise InputError(
            f"{path}: dtype {array.dtype}, expected uint8 pixels 0-255; convert with array.astype(np.uint8)"
        )
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or (array.shape[-1] != 3 and array.shape[1] != 3) or 0 in array.shape:
        raise InputError(
            f"{path}: shape {array.shape}, expected images [N, H, W, 3] or [N, 3, H, W] (uint8, RGB)"
        )
    if array.shape[-1] == 3 and array.shape[1] != 3:
        array = array.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; 16-bit and 32-bit greyscale are rescaled, not clipped at 255."""
    if image.mode in _16BIT_MODES or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode in _16BIT_MODES or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0  # 0..65535 -> 0..255
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # PIL warns when a palette with transparency goes straight to RGB
    return image.convert("RGB")


def read_image(path: Path) -> torch.Tensor:
    """One image file -> uint8 [3, H, W]; raises OSError/ValueError/DecompressionBombError if bad."""
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            rgb = _to_rgb(image)
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_image_folder(
    folder: str | Path, image_size: int, resize_size: int | None = None
) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
    """(uint8 [N, 3, image_size, image_size], file names, skipped (name, reason)) of a folder."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
    images, ids, skipped = [], [], []
    for path in files:
        try:
            image = read_image(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            skipped.append((path.name, f"refused, larger than Pillow's decompression-bomb limit ({err})"))
            continue
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
            skipped.append((path.name, f"unreadable ({type(err).__name__}: {err})"))
            continue
        images.append(fit_to_model(image, image_size, resize_size))
        ids.append(path.name)
    if not images:
        raise InputError(
            f"{folder}: no readable images among {len(files)} image files "
            f"(extensions: {', '.join(sorted(IMG_EXTENSIONS))})"
        )
    return torch.stack(images), ids, skipped


def read_input(
    path: str | Path, image_size: int = 32, resize_size: int | None = None, num_classes: int | None = None
) -> PredictionInput:
    """Read a folder, ``.npy`` or CIFAR pickle (see the module docstring) into a ``PredictionInput``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist; pass a folder of images, a .npy or a CIFAR pickle")
    if path.is_dir():
        images, ids, skipped = read_image_folder(path, image_size, resize_size)
        return PredictionInput(images, ids, skipped=skipped, kind="folder")
    if path.suffix.lower() == ".npy":
        images = read_npy_images(path)
        return PredictionInput(images, [str(i) for i in range(images.shape[0])], kind="npy")
    try:
        images_np, labels = load_cifar_pickle(path, num_classes=num_classes)
    except CIFARFileError as err:
        raise InputError(str(err)) from None
    return PredictionInput(
        torch.from_numpy(images_np), [str(i) for i in range(images_np.shape[0])], labels, kind="pickle"
    )


def read_labels(path: str | Path, ids: list[str], classes: list[str]) -> np.ndarray:
    """Class indices [N] for ``ids`` from a labels file.

    ``.csv`` with columns ``id,label`` (label = class name or index; every id must be present),
    ``.npy`` of integers in id order (allow_pickle=False; arrays only), or a CIFAR pickle's labels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels file {path} does not exist")
    if path.suffix.lower() == ".csv":
        by_id = read_label_csv(path)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise InputError(f"{path}: no label for {len(missing)} ids, e.g. {missing[:3]}")
        return np.array([class_index(by_id[i], classes, path) for i in ids], dtype=np.int64)
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise InputError(f"{path}: refused or unreadable ({err}); save an integer array") from None
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
            raise InputError(f"{path}: labels must be an integer array")
        labels = values.reshape(-1).astype(np.int64)
    else:
        try:
            _, labels = load_cifar_pickle(path, num_classes=len(classes))
        except CIFARFileError as err:
            raise InputError(str(err)) from None
        if labels is None:
            raise InputError(f"{path}: a CIFAR pickle without labels")
    if labels.shape[0] != len(ids):
        raise InputError(f"{path}: {labels.shape[0]} labels for {len(ids)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise InputError(f"{path}: labels outside 0..{len(classes) - 1}")
    return labels


def read_label_csv(path: Path) -> dict[str, str]:
    """``id -> label`` of a CSV with an ``id`` and a ``label`` column."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "id" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise InputError(f"{path}: expected a header with columns id,label, got {reader.fieldnames}")
        return {row["id"]: row["label"] for row in reader}


def class_index(label: str, classes: list[str], source: Path | str) -> int:
    """A class name, or an integer index as text, -> index into ``classes``."""
    if label in classes:
        return classes.index(label)
    if label.strip().lstrip("-").isdigit() and 0 <= int(label) < len(classes):
        return int(label)
    raise InputError(f"{source}: label {label!r} is neither a class name nor an index below {len(classes)}")
