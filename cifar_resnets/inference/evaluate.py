"""``cifar-eval``: the test-set report of one checkpoint, and the confusion matrices of cifar-reproduce.

The split is rebuilt from the run config inside the checkpoint with the datamodule's own function
(``cifar_files.cifar_splits``), so the validation split is exactly the one held out in training. Reports
go into the run folder, each file written in one step; nothing else there is touched.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cifar_resnets.data.cifar_files import cifar_splits
from cifar_resnets.data.imagenet_files import ImageListDataset, read_split
from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.checkpoint import LoadedModel, load_model
from cifar_resnets.inference.options import SPLITS, TTA_MODES
from cifar_resnets.inference.outputs import check_output_folder, make_folder, write_atomic, write_text
from cifar_resnets.inference.predict import predict_probs, views_probs
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.inference.pretrained import report_folder
from cifar_resnets.inference.report import classification_report, report_markdown
from cifar_resnets.reporting.plots import plot_confusion_matrix


def run_folder(ckpt: Path) -> Path:
    """The run folder of ``RUN/checkpoints/x.ckpt`` (else the checkpoint's own folder)."""
    ckpt = Path(ckpt).resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def cifar_split(
    loaded: LoadedModel, split: str, data_root: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, 3, 32, 32], int64 labels [N]) of a CIFAR checkpoint's ``test`` or ``val`` split.

    The validation split is rebuilt exactly as in training (same ``val_size`` and ``split_seed``). For
    the test split the training-side sizes do not matter and are left out, so evaluating on a copy of
    the data with fewer training images still works.
    """
    data = loaded.config.get("data") or {}
    test = split == "test"
    splits = cifar_splits(
        data_root if data_root is not None else data.get("root", "data"),
        data.get("name", "cifar10"),
        data.get("classes"),
        0 if test else int(data.get("val_size", 5000)),
        None,  # the validation split does not depend on how many training images the run kept
        int(data.get("split_seed", 0)),
        bool(data.get("download", False)),
    )
    images, labels = splits.test if test else splits.val
    if images.shape[0] == 0:
        raise ConfigError(
            f"{loaded.path}: its run had no validation split (data.val_size=0); "
            "retrain with data.val_size>0 or evaluate split=test"
        )
    return images, labels


def _imagenet_split_probs(
    loaded: LoadedModel, data_root: str | None, tta: str, batch_size: int, device: str | torch.device
) -> tuple[torch.Tensor, np.ndarray]:
    data = loaded.config.get("data") or {}
    root = data_root if data_root is not None else data.get("root", "data/imagenet")
    samples, _ = read_split(root, "val", loaded.classes)
    loader = DataLoader(
        ImageListDataset(samples, Preprocess.for_model(loaded).view),
        batch_size=batch_size,
        num_workers=int(data.get("num_workers", 0)),
    )
    labels: list[torch.Tensor] = []

    def views():
        for batch, y in loader:
            labels.append(y)
            yield batch

    probs = views_probs(loaded, views(), tta, device)
    return probs, torch.cat(labels).numpy()


def split_probs(
    loaded: LoadedModel,
    split: str = "test",
    data_root: str | None = None,
    tta: str = "none",
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> tuple[torch.Tensor, np.ndarray]:
    """(softmax probabilities [N, C], int64 labels [N]) of the checkpoint's ``test`` or ``val`` split."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not supported; choose one of {list(SPLITS)}")
    if loaded.dataset == "cifar":
        images, labels = cifar_split(loaded, split, data_root)
        return predict_probs(loaded, images, tta, batch_size, device), labels
    if loaded.dataset == "imagenet_subset":
        if split == "val":
            raise ConfigError(
                f"{loaded.data_name}: this dataset has no validation split apart from its test split "
                "(the ImageNet val folder is the test set); use split=test"
            )
        return _imagenet_split_probs(loaded, data_root, tta, batch_size, device)
    raise ConfigError(f"{loaded.path}: its dataset {loaded.dataset!r} has no split cifar-eval can read")


def checkpoint_confusion_matrix(
    ckpt: str | Path, split: str = "test", data_root: str | None = None, device: str = "auto"
) -> tuple[np.ndarray, list[str]]:
    """(confusion matrix [C, C], rows true and columns predicted; class names) of a checkpoint's split."""
    loaded = load_model(ckpt)
    probs, labels = split_probs(loaded, split, data_root, device=device)
    report = classification_report(labels, probs.argmax(1), loaded.classes)
    return np.asarray(report["confusion_matrix"], dtype=np.int64), loaded.classes


def output_stem(split: str, tta: str) -> str:
    return f"eval_{split}" + ("" if tta == "none" else f"_{tta}")


def evaluate(
    ckpt: str | Path,
    data_root: str | None = None,
    split: str = "test",
    tta: str = "none",
    batch_size: int = 500,
    device: str = "auto",
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate one checkpoint; write ``eval_*.md/.json/_confusion.png``; return the report dict."""
    if tta not in TTA_MODES:
        raise ConfigError(f"tta={tta!r} is not supported; choose one of {list(TTA_MODES)}")
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not supported; choose one of {list(SPLITS)}")
    stem = output_stem(split, tta)
    paths = {"markdown": f"{stem}.md", "json": f"{stem}.json", "confusion_png": f"{stem}_confusion.png"}
    loaded = load_model(ckpt)  # first: a published net has no run folder, its reports go elsewhere
    out = Path(out_dir) if out_dir is not None else report_folder(loaded) or run_folder(Path(ckpt))
    check_output_folder(out, paths.values(), [ckpt], "--out-dir")
    start = time.perf_counter()
    probs, labels = split_probs(loaded, split, data_root, tta, batch_size, device)
    seconds = time.perf_counter() - start
    report = classification_report(labels, probs.argmax(1), loaded.classes)
    make_folder(out, "--out-dir")
    published = loaded.config.get("pretrained")
    title = f"{published['name'] if published else loaded.model_name} on {loaded.data_name} {split} split" + (
        "" if tta == "none" else f", TTA {tta}"
    )
    report.update(
        checkpoint=str(loaded.path),
        model=loaded.model_name,
        data=loaded.data_name,
        split=split,
        tta=tta,
        seconds=round(seconds, 2),
        images_per_second=round(report["num_images"] / max(seconds, 1e-9), 1),
    )
    markdown = report_markdown(report, title)
    if published and split == "test":
        report["published"] = published
        markdown += (
            f"\nPublished: {published['published_accuracy']:.2f}% on the original {split} set "
            f"({published['project']}, {published['published_where']}; {published['license']})\n"
        )
    files = {key: out / name for key, name in paths.items()}
    confusion = report["confusion_matrix"]
    write_atomic(
        files["confusion_png"], lambda tmp: plot_confusion_matrix(confusion, loaded.classes, tmp, title)
    )
    report["files"] = {k: str(v) for k, v in files.items()}
    write_text(files["markdown"], markdown)
    write_text(files["json"], json.dumps(report, indent=2) + "\n")
    report["markdown"] = markdown
    return report
