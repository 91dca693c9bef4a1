"""Read and validate the standard CIFAR-10/100 pickle files, and split them as a run config says.

Unpickling runs whatever the file names, so every file goes through ``SafeUnpickler`` (numpy arrays only),
and what is read is validated so a damaged or foreign file ends in one ``DataError``, not a crash
deep inside training. ``cifar_splits`` lets cifar-eval rebuild a checkpoint's split without Lightning.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifar_resnets.errors import ConfigError, DataError

__all__ = [
    "CIFARArrays",
    "CIFARSplits",
    "CIFAR_SPECS",
    "check_class_ids",
    "cifar_splits",
    "safe_load_pickle",
    "load_cifar_pickle",
    "read_cifar_batch",
    "read_class_names",
    "load_cifar",
    "ensure_cifar",
]

IMAGE_SHAPE = (3, 32, 32)
IMAGE_BYTES = 3 * 32 * 32
# Numpy pickles reconstruct arrays through these callables (pickle protocols 2-5, numpy 1.x and 2.x); a
# CIFAR file needs nothing else. `_codecs.encode` is how protocol-2 pickles written by Python 3 store bytes.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
# A mutated header may ask `_reconstruct` for an absurd shape; refuse it instead of allocating it.
_MAX_ELEMENTS = 1 << 31


@dataclass(frozen=True)
class CIFARSpec:
    """Layout of one official CIFAR download."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    title: str
    url: str
    md5: str

    @property
    def all_files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


CIFAR_SPECS: dict[str, CIFARSpec] = {
    "cifar10": CIFARSpec(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        num_classes=10,
        title="CIFAR-10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": CIFARSpec(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        num_classes=100,
        title="CIFAR-100",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}


@dataclass(frozen=True)
class CIFARArrays:
    """One CIFAR dataset in memory: uint8 images [N, 3, 32, 32] and int64 labels [N]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


def _guarded_reconstruct(real, path: Path):
    def reconstruct(subtype, shape, dtype):
        if subtype is not np.ndarray:
            raise DataError(f"{path}: refuses to build an array of type {subtype!r}")
        if int(np.prod(shape, dtype=np.float64)) > _MAX_ELEMENTS:
            raise DataError(
                f"{path} is malformed (array header asks for shape {shape}, larger than any CIFAR file); "
                f"{_fix_hint(path)}"
            )
        return real(subtype, shape, dtype)

    return reconstruct


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy array reconstruction globals a CIFAR file needs; its
    refusals name ``path``, the file it reads."""

    def __init__(self, file: io.BytesIO, path: Path, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(
                f"{self.path}: refuses to load {module}.{name}: CIFAR files contain only arrays and lists; "
                "this file is not a CIFAR batch"
            )
        obj = super().find_class(module, name)
        return _guarded_reconstruct(obj, self.path) if name == "_reconstruct" else obj


def _fix_hint(path: Path) -> str:
    return (
        f"delete {path.parent} and rerun with data.download=true, or regenerate it "
        "(e.g. python -m cifar_resnets.data.synthetic or cifar10_from_jpeg.py)"
    )


def safe_load_pickle(path: str | Path) -> object:
    """Unpickle `path` with `SafeUnpickler` (bytes keys, as the Python 2 era files need).

    The file is read whole first: a corrupted length field then cannot make the unpickler request
    gigabytes from the file object. Any failure becomes one `DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CIFAR file {path.resolve()} does not exist; {_fix_hint(path)}")
    data = path.read_bytes()
    try:
        return SafeUnpickler(io.BytesIO(data), path, encoding="bytes").load()
    except DataError:
        raise  # the unpickler's own refusal, naming the file
    except Exception as err:  # noqa: BLE001 - any failure of a damaged pickle means "not a CIFAR file"
        truncated = isinstance(err, EOFError) or "truncated" in str(err)
        kind = "truncated" if truncated else "not a readable CIFAR pickle"
        raise DataError(f"{path} is {kind} ({type(err).__name__}: {err}); {_fix_hint(path)}") from None


def _as_images(path: Path, data: object) -> np.ndarray:
    if not isinstance(data, np.ndarray):
        raise DataError(
            f"{path}: b'data' is {type(data).__name__}, expected a uint8 array; {_fix_hint(path)}"
        )
    if data.dtype != np.uint8:
        raise DataError(f"{path}: b'data' has dtype {data.dtype}, expected uint8; {_fix_hint(path)}")
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise DataError(
            f"{path}: b'data' has shape {tuple(data.shape)}, expected [N, {IMAGE_BYTES}]; {_fix_hint(path)}"
        )
    return np.ascontiguousarray(data).reshape(-1, *IMAGE_SHAPE)


def _as_labels(path: Path, labels: object, count: int, num_classes: int | None) -> np.ndarray:
    if isinstance(labels, np.ndarray) and labels.dtype.kind not in "iu":
        raise DataError(f"{path}: labels have dtype {labels.dtype}, expected integers; {_fix_hint(path)}")
    if not isinstance(labels, (list, np.ndarray)) or (
        isinstance(labels, list) and not all(type(v) is int for v in labels)
    ):
        raise DataError(f"{path}: labels are not a list of integers; {_fix_hint(path)}")
    out = np.asarray(labels, dtype=np.int64).reshape(-1)
    if out.shape[0] != count:
        raise DataError(f"{path}: {out.shape[0]} labels for {count} images; {_fix_hint(path)}")
    if out.size and (out.min() < 0 or (num_classes is not None and out.max() >= num_classes)):
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise DataError(f"{path}: labels range {out.min()}..{out.max()}, expected {bound}; {_fix_hint(path)}")
    return out


def read_cifar_batch(path: str | Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file -> (uint8 images [N, 3, 32, 32], int64 labels [N]), validated."""
    path = Path(path)
    batch = safe_load_pickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected keys b'data' and {label_key!r}, found {keys}; {_fix_hint(path)}")
    images = _as_images(path, batch[b"data"])
    return images, _as_labels(path, batch[label_key], images.shape[0], num_classes)


def load_cifar_pickle(
    path: str | Path, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a single CIFAR-format batch file given by a user (e.g. images to predict).

    Returns (uint8 images [N, 3, 32, 32], int64 labels [N] or None when the file has none); labels
    are read from b"labels" or b"fine_labels".
    """
    path = Path(path)
    batch = safe_load_pickle(path)
    if not isinstance(batch, dict) or b"data" not in batch:
        raise DataError(f"{path}: not a CIFAR batch (no b'data' key); {_fix_hint(path)}")
    images = _as_images(path, batch[b"data"])
    for key in (b"labels", b"fine_labels"):
        if key in batch:
            return images, _as_labels(path, batch[key], images.shape[0], num_classes)
    return images, None


def read_class_names(folder: str | Path, name: str) -> list[str]:
    """Class names from the meta file (`batches.meta` / `meta`), validated against the class count."""
    spec = _spec(name)
    path = Path(folder) / spec.meta_file
    meta = safe_load_pickle(path)
    names = meta.get(spec.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != spec.num_classes:
        raise DataError(
            f"{path}: expected {spec.num_classes} class names under {spec.names_key!r}; {_fix_hint(path)}"
        )
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    except UnicodeDecodeError:
        raise DataError(f"{path}: class names are not UTF-8; {_fix_hint(path)}") from None


def _spec(name: str) -> CIFARSpec:
    if name not in CIFAR_SPECS:
        raise DataError(f"unknown CIFAR dataset {name!r}; choose one of {sorted(CIFAR_SPECS)}")
    return CIFAR_SPECS[name]


def missing_cifar(root: str | Path, name: str) -> str | None:
    """Why the files of dataset ``name`` are not all under ``root`` (one line that says what to do), or
    None when they are. Only looks at file names: the config checks call it before any work."""
    spec = _spec(name)
    folder = Path(root).expanduser() / spec.folder
    missing = [f for f in spec.all_files if not (folder / f).is_file()]
    if not missing:
        return None
    if not folder.is_dir():
        return (
            f"{spec.title} not found: {folder.resolve()} does not exist; set data.root=<folder holding "
            f"{spec.folder}> or data.download=true"
        )
    return (
        f"{spec.title} in {folder.resolve()} is incomplete (missing {', '.join(missing)}); "
        f"{_fix_hint(folder / missing[0])}"
    )


def ensure_cifar(root: str | Path, name: str, download: bool = False) -> Path:
    """Return the dataset folder under `root`, downloading it first when missing and `download` is set.

    Files already present are not MD5-checked (they may be a local or regenerated copy); they are
    validated when read instead.
    """
    spec = _spec(name)
    root = Path(root).expanduser()
    problem = missing_cifar(root, name)
    if problem is None:
        return root / spec.folder
    if download:
        # torchvision's downloader checks the official MD5 of the archive before extracting it.
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(spec.url, download_root=str(root), md5=spec.md5)
        except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad MD5 a RuntimeError
            reason = str(getattr(err, "reason", err)).strip().splitlines()[0]
            raise DataError(
                f"could not download {spec.title} from {spec.url} ({reason}); check the internet "
                f"connection, or put {spec.folder} under a folder and set data.root=<that folder> "
                "(or CIFAR_DATA)"
            ) from err
        return root / spec.folder
    raise DataError(problem)


def load_cifar(root: str | Path, name: str = "cifar10", download: bool = False) -> CIFARArrays:
    """Read a whole CIFAR-10/100 dataset (train + test + class names) from `root`."""
    folder = ensure_cifar(root, name, download)
    classes = read_class_names(folder, name)
    train_images, train_labels = read_split(folder, name, "train")
    test_images, test_labels = read_split(folder, name, "test")
    return CIFARArrays(train_images, train_labels, test_images, test_labels, classes)


def read_split(folder: str | Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The official ``train`` or ``test`` split of dataset ``name`` from its ``folder`` (e.g.
    ``cifar-10-batches-py``), validated: (uint8 images [N, 3, 32, 32], int64 labels [N])."""
    spec = _spec(name)
    files = {"train": spec.train_files, "test": spec.test_files}[split]
    parts = [read_cifar_batch(Path(folder) / f, spec.label_key, spec.num_classes) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True)
class CIFARSplits:
    """A run's splits: (uint8 images [N, 3, 32, 32], int64 labels [N]) each, and the class names."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: list[str]


def check_class_ids(classes, available: int, name: str) -> list[int] | None:
    """Validate `data.classes` (null, or distinct class indices of the dataset, at least two)."""
    if classes is None:
        return None
    if isinstance(classes, (str, int)) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in classes
    ):
        raise ConfigError(
            f"data.classes must be a list of class indices such as [5,6,7,8,9], got {classes!r}"
        )
    ids = list(classes)
    if len(ids) < 2 or len(set(ids)) != len(ids) or not all(0 <= c < available for c in ids):
        raise ConfigError(
            f"data.classes={ids} must hold at least two distinct indices in 0..{available - 1} for {name}"
        )
    return ids


def _select_classes(
    images: np.ndarray, labels: np.ndarray, class_ids: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the images of `class_ids` (in file order) and relabel them 0..k-1 in the order given."""
    lookup = np.full(int(max(labels.max(), max(class_ids))) + 1, -1, dtype=np.int64)
    lookup[class_ids] = np.arange(len(class_ids))
    new = lookup[labels]
    keep = new >= 0
    return images[keep], new[keep].astype(labels.dtype)


def cifar_splits(
    root: str | Path,
    name: str = "cifar10",
    classes: list[int] | None = None,
    val_size: int = 5000,
    num_train: int | None = None,
    split_seed: int = 0,
    download: bool = False,
) -> CIFARSplits:
    """The splits of ``data.*``: ``val_size`` training images held out by a permutation seeded with
    ``split_seed`` (both splits keep file order), then the first ``num_train`` of the rest's permuted
    order; ``classes`` keeps those classes, relabelled 0..k-1 in the given order, in every split."""
    class_ids = check_class_ids(classes, _spec(name).num_classes, name)
    arrays = load_cifar(root, name, download=download)
    train_images, train_labels = arrays.train_images, arrays.train_labels
    test_images, test_labels = arrays.test_images, arrays.test_labels
    names = list(arrays.classes)
    if class_ids is not None:
        train_images, train_labels = _select_classes(train_images, train_labels, class_ids)
        test_images, test_labels = _select_classes(test_images, test_labels, class_ids)
        names = [names[c] for c in class_ids]
    n = train_images.shape[0]
    if val_size >= n:
        raise ConfigError(
            f"data.val_size={val_size} leaves no training images ({n} available); lower it or use 0"
        )
    order = np.random.default_rng(split_seed).permutation(n)
    val_idx, train_idx = np.sort(order[:val_size]), np.sort(order[val_size:])
    if num_train is not None:
        if num_train > train_idx.size:
            raise ConfigError(
                f"data.num_train={num_train} but only {train_idx.size} training images remain after "
                f"the {val_size}-image validation split; lower data.num_train or data.val_size"
            )
        train_idx = np.sort(order[val_size:][:num_train])
    return CIFARSplits(
        train=(np.ascontiguousarray(train_images[train_idx]), train_labels[train_idx]),
        val=(np.ascontiguousarray(train_images[val_idx]), train_labels[val_idx]),
        test=(np.ascontiguousarray(test_images), test_labels),
        classes=names,
    )
