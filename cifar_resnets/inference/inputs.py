"""Read what users hand to cifar-predict, without ever running code hidden in a file.

A folder, an image file, a ``.npy`` array (``allow_pickle=False``) or a CIFAR pickle (the restricted
unpickler of ``cifar_files``). Images are judged by content, and a folder entry that is not predicted is
listed as skipped with its reason.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cifar_resnets.data.cifar_files import load_cifar_pickle
from cifar_resnets.data.images import read_image, recognised_format
from cifar_resnets.errors import DataError, InputError
from cifar_resnets.inference.predictions import PROB_PREFIX
from cifar_resnets.inference.preprocess import Preprocess


@dataclass
class PredictionInput:
    """Images to predict, their ids, optional labels, and the entries skipped on the way.

    ``images``: uint8 [N, 3, H, W] of an array input; ``views``: for a folder, uint8 [N, 3, S, S] per
    checkpoint preprocessing. Exactly one of the two is set.
    """

    ids: list[str]
    images: torch.Tensor | None = None
    views: dict[Preprocess, torch.Tensor] = field(default_factory=dict)
    labels: np.ndarray | None = None  # int64 [N] class indices
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
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


def scan_folder(
    folder: Path, recursive: bool = False
) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """(id, file) of every file under ``folder`` to decode, and (id, reason) of the entries left out."""
    files: list[tuple[str, Path]] = []
    skipped: list[tuple[str, str]] = []

    def walk(directory: Path) -> None:
        try:
            entries = sorted(directory.iterdir())
        except OSError as err:
            if directory == folder:
                raise InputError(f"input folder {folder} cannot be read ({err.strerror or err})") from None
            skipped.append(
                (directory.relative_to(folder).as_posix(), f"an unreadable folder ({err.strerror})")
            )
            return
        for entry in entries:
            ident = entry.relative_to(folder).as_posix()
            if entry.is_symlink() and entry.is_dir():
                skipped.append((ident, "a link to a folder (not followed)"))
            elif entry.is_dir():
                if recursive:
                    before = len(files) + len(skipped)
                    walk(entry)
                    if len(files) + len(skipped) == before:
                        skipped.append((ident, "an empty folder"))
                else:
                    skipped.append((ident, "a subfolder (pass --recursive to read subfolders)"))
            elif entry.is_file():
                files.append((ident, entry))
            elif entry.is_symlink():
                skipped.append((ident, "a broken link"))
            else:
                skipped.append((ident, "not a regular file"))

    walk(folder)
    return sorted(files), skipped


def read_image_folder(
    folder: str | Path, preprocesses: Sequence[Preprocess], recursive: bool = False
) -> PredictionInput:
    """Every image of ``folder`` as the view of each of ``preprocesses``; the rest in ``skipped``."""
    folder = Path(folder)
    files, skipped = scan_folder(folder, recursive)
    entries = len(files) + len(skipped)
    wanted = list(dict.fromkeys(preprocesses))
    ids: list[str] = []
    views: dict[Preprocess, list[torch.Tensor]] = {p: [] for p in wanted}
    for ident, path in files:
        try:
            image = read_image(path, ident)
        except InputError as err:
            skipped.append((ident, err.reason))
            continue
        ids.append(ident)
        for preprocess in wanted:
            views[preprocess].append(preprocess.view(image))
    skipped.sort()
    if not ids:
        reasons = "; ".join(f"{i}: {why}" for i, why in skipped[:3]) or "it is empty"
        raise InputError(f"{folder}: no readable images among {entries} entries ({reasons})")
    return PredictionInput(
        ids, views={p: torch.stack(v) for p, v in views.items()}, skipped=skipped, kind="folder"
    )


def _is_picture(path: Path) -> bool:
    """The file's first bytes carry a picture format's signature (then it is no array or pickle)."""
    try:
        with open(path, "rb") as f:
            return recognised_format(f.read(64)) is not None
    except OSError:
        return False  # the reader of the other kinds says why it cannot be read


def read_image_file(path: Path, preprocesses: Sequence[Preprocess]) -> PredictionInput:
    """One image file as the view of each of ``preprocesses``; an unusable one is refused in one line."""
    image = read_image(path, str(path))
    views = {p: p.view(image)[None] for p in dict.fromkeys(preprocesses)}
    return PredictionInput([path.name], views=views, kind="folder")


def read_input(
    path: str | Path,
    preprocesses: Sequence[Preprocess] = (),
    num_classes: int | None = None,
    recursive: bool = False,
) -> PredictionInput:
    """Read a folder, an image, a ``.npy`` or a CIFAR pickle into a ``PredictionInput``.

    Arrays (uint8 [N, H, W, 3] or [N, 3, H, W]) stay uint8 [N, 3, H, W], ids their row indices, and are
    preprocessed batch by batch when predicted. A folder's ids are paths relative to it, sorted; its
    images have sizes of their own, so each becomes every checkpoint's view as it is read (one decode).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"input {path} does not exist; pass an image, a folder of images, a .npy or a CIFAR pickle"
        )
    if path.is_dir():
        return read_image_folder(path, preprocesses, recursive)
    if _is_picture(path):
        return read_image_file(path, preprocesses)
    if path.suffix.lower() == ".npy":
        images = read_npy_images(path)
        return PredictionInput([str(i) for i in range(images.shape[0])], images=images, kind="npy")
    try:
        images_np, labels = load_cifar_pickle(path, num_classes=num_classes)
    except DataError as err:
        raise InputError(str(err)) from None
    ids = [str(i) for i in range(images_np.shape[0])]
    return PredictionInput(ids, images=torch.from_numpy(images_np), labels=labels, kind="pickle")


def view_batches(data: PredictionInput, preprocess: Preprocess, batch_size: int) -> Iterator[torch.Tensor]:
    """The uint8 views of a folder input for one checkpoint, ``batch_size`` at a time."""
    views = data.views[preprocess]
    for start in range(0, views.shape[0], batch_size):
        yield views[start : start + batch_size]


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
        except DataError as err:
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


def read_prediction_csv(path: str | Path) -> tuple[list[str], list[str], list[str] | None, np.ndarray | None]:
    """(ids, labels, classes or None, probs or None) of a CSV written by ``cifar-predict``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"CSV {path} does not exist")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[:2] != ["id", "label"]:
            raise InputError(f"{path}: expected a header starting with id,label, got {header}")
        rows = list(reader)
    prob_cols = [h for h in header[2:] if h.startswith(PROB_PREFIX)]
    if any(len(r) != len(header) for r in rows):
        raise InputError(f"{path}: rows with a number of fields different from the header's {len(header)}")
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: repeated ids")
    labels = [r[1] for r in rows]
    if not prob_cols:
        return ids, labels, None, None
    start = header.index(prob_cols[0])
    try:
        probs = np.array([[float(v) for v in r[start : start + len(prob_cols)]] for r in rows])
    except ValueError as err:
        raise InputError(f"{path}: probability columns hold non-numbers ({err})") from None
    return ids, labels, [c[len(PROB_PREFIX) :] for c in prob_cols], probs
