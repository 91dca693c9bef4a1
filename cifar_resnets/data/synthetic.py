"""Write synthetic datasets in the exact official formats, for tests and demos without real data.

With ``easy=True`` each CIFAR class is a distinct colour and pattern, so a tiny net learns it in an epoch
or two: a quick, real signal that training works. The ImageNet subset mixes sizes, modes and optionally
corrupt files. CLI: ``python -m cifar_resnets.data.synthetic OUT --name cifar10 --train 512 --test 256``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from cifar_resnets.data.cifar_files import CIFAR_SPECS

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _class_names(name: str) -> list[str]:
    return CIFAR10_CLASSES if name == "cifar10" else [f"class_{i:03d}" for i in range(100)]


def _prototypes(num_classes: int) -> np.ndarray:
    """One float [3, 32, 32] prototype per class: a distinct flat colour plus a class-specific pattern.

    Colours lie on a grid in RGB space (well separated even for 100 classes); the pattern (which quadrant
    is brighter) varies with the class index so neighbouring colours still differ in structure.
    """
    levels = int(np.ceil(num_classes ** (1 / 3)))
    grid = np.linspace(40, 215, levels)
    protos = np.empty((num_classes, 3, 32, 32), np.float32)
    for k in range(num_classes):
        r, g, b = k % levels, (k // levels) % levels, (k // levels**2) % levels
        protos[k] = np.array([grid[r], grid[g], grid[b]], np.float32)[:, None, None]
        quad = k % 4
        ys, xs = (slice(0, 16), slice(16, 32)), (slice(0, 16), slice(16, 32))
        protos[k][:, ys[quad // 2], xs[quad % 2]] += 35.0
    return protos


def synthetic_arrays(
    num: int, num_classes: int, rng: np.random.Generator, easy: bool = True
) -> tuple[np.ndarray, list[int]]:
    """`num` images as uint8 [num, 3072] (CHW row order, as in the official files) and their labels."""
    labels = (np.arange(num) % num_classes)[rng.permutation(num)]
    if easy:
        images = _prototypes(num_classes)[labels] + rng.normal(0, 12, (num, 3, 32, 32)).astype(np.float32)
    else:
        images = rng.uniform(0, 256, (num, 3, 32, 32))
    data = np.clip(images, 0, 255).astype(np.uint8).reshape(num, -1)
    return data, [int(v) for v in labels]


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are protocol 2 pickles


def write_synthetic_cifar(
    root: str | Path,
    name: str = "cifar10",
    num_train: int = 512,
    num_test: int = 256,
    seed: int = 0,
    easy: bool = True,
) -> Path:
    """Write `root/cifar-10-batches-py` or `root/cifar-100-python` and return that folder."""
    if name not in CIFAR_SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(CIFAR_SPECS)}")
    spec = CIFAR_SPECS[name]
    folder = Path(root) / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train, train_labels = synthetic_arrays(num_train, spec.num_classes, rng, easy)
    test, test_labels = synthetic_arrays(num_test, spec.num_classes, rng, easy)
    names = _class_names(name)
    if name == "cifar10":
        per = -(-num_train // len(spec.train_files))
        for i, fname in enumerate(spec.train_files):
            sl = slice(i * per, (i + 1) * per)
            _dump(folder / fname, _cifar10_batch(train[sl], train_labels[sl], f"training batch {i + 1} of 5"))
        _dump(folder / "test_batch", _cifar10_batch(test, test_labels, "testing batch 1 of 1"))
        _dump(
            folder / spec.meta_file,
            {b"num_cases_per_batch": per, b"label_names": [n.encode() for n in names], b"num_vis": 3072},
        )
    else:
        coarse = [f"superclass_{i:02d}" for i in range(20)]
        _dump(folder / "train", _cifar100_batch(train, train_labels, b"training"))
        _dump(folder / "test", _cifar100_batch(test, test_labels, b"testing"))
        _dump(
            folder / spec.meta_file,
            {
                b"fine_label_names": [n.encode() for n in names],
                b"coarse_label_names": [c.encode() for c in coarse],
            },
        )
    return folder


def _cifar10_batch(data: np.ndarray, labels: list[int], title: str) -> dict:
    return {
        b"batch_label": title.encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"synthetic_{i:05d}.png".encode() for i in range(len(labels))],
    }


def _cifar100_batch(data: np.ndarray, labels: list[int], title: bytes) -> dict:
    return {
        b"filenames": [f"synthetic_{i:05d}.png".encode() for i in range(len(labels))],
        b"batch_label": title,
        b"fine_labels": labels,
        b"coarse_labels": [v // 5 for v in labels],
        b"data": data,
    }


# Modes cycled through by the ImageNet-subset writer, with the format that can store each.
_IMAGE_MODES = [("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG")]


def write_synthetic_imagenet(
    root: str | Path,
    classes: int = 3,
    per_class: int = 6,
    val_per_class: int = 2,
    seed: int = 0,
    corrupt: int = 1,
    min_size: int = 40,
    max_size: int = 96,
) -> Path:
    """Write `root/{train,val}/<wnid>/*` with images of varied sizes and modes; return `root`.

    `corrupt` files (bytes that are not an image, with a `.JPEG` name) are added to the first train
    class, so readers can be tested on skipping them.
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    wnids = [f"n{1440764 + 1000 * k:08d}" for k in range(classes)]
    colours = rng.integers(30, 226, (classes, 3))
    for split, count in (("train", per_class), ("val", val_per_class)):
        for k, wnid in enumerate(wnids):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                h, w = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
                pixels = np.clip(colours[k] + rng.normal(0, 15, (h, w, 3)), 0, 255).astype(np.uint8)
                mode, fmt = _IMAGE_MODES[(i + k) % len(_IMAGE_MODES)]
                image = Image.fromarray(pixels).convert(mode)
                suffix = ".JPEG" if fmt == "JPEG" else ".png"
                image.save(folder / f"{wnid}_{split}_{i:04d}{suffix}", format=fmt)
    for j in range(corrupt):
        (root / "train" / wnids[0] / f"{wnids[0]}_corrupt_{j:02d}.JPEG").write_bytes(
            b"this is not an image" * 8
        )
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic CIFAR dataset in the official format.")
    parser.add_argument("out", type=Path, help="root folder (the dataset folder is created inside it)")
    parser.add_argument("--name", choices=sorted(CIFAR_SPECS), default="cifar10")
    parser.add_argument("--train", type=int, default=5000, help="number of training images")
    parser.add_argument("--test", type=int, default=1000, help="number of test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard", action="store_true", help="random noise images instead of easy classes")
    args = parser.parse_args(argv)
    folder = write_synthetic_cifar(args.out, args.name, args.train, args.test, args.seed, easy=not args.hard)
    print(f"wrote {args.train} train and {args.test} test images to {folder}")


if __name__ == "__main__":
    main()
