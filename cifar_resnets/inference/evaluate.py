"""``cifar-eval``: the test-set report of one checkpoint.

Examples::

    cifar-eval ckpt=outputs/runs/DATE/TIME_resnet20_cifar10/checkpoints/last.ckpt
    cifar-eval ckpt=RUN/checkpoints/last.ckpt tta=flip_translate data.root=/data/cifar
    cifar-eval --ckpt RUN/checkpoints/last.ckpt --split val --tta flip

Arguments may be given as ``key=value`` (``ckpt``, ``data.root``, ``tta``, ``split``, ``batch_size``,
``device``, ``out_dir``) or as the equivalent ``--key value`` options. The checkpoint's own dataset is
rebuilt from the run config stored inside it (``data.root`` overrides where its files are). Accuracy
and a per-class precision/recall/F1 table are printed and written into the run folder (the folder
above ``checkpoints/``) as ``eval_<split>[_<tta>].md`` and ``.json``, with the confusion matrix as
``eval_<split>[_<tta>]_confusion.png``; nothing else in the folder is touched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate

from cifar_resnets.errors import UserError
from cifar_resnets.inference.checkpoint import CheckpointError, LoadedModel, load_model
from cifar_resnets.inference.predict import (
    TTA_MODES,
    classification_report,
    pick_device,
    plot_confusion_matrix,
    predict_loader_probs,
    predict_probs,
    report_markdown,
)

SPLITS = ("test", "val")


class EvalError(UserError, ValueError):
    """The requested split cannot be built for this checkpoint."""


def run_folder(ckpt: Path) -> Path:
    """The run folder of ``RUN/checkpoints/x.ckpt`` (else the checkpoint's own folder)."""
    ckpt = Path(ckpt).resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def eval_datamodule(loaded: LoadedModel, data_root: str | None = None, split: str = "val"):
    """The checkpoint's datamodule, rebuilt from its stored run config (``data_root`` overrides).

    The validation split is rebuilt exactly as in training (same ``val_size`` and ``split_seed``).
    For the test split the training-side sizes do not matter, so they are dropped: evaluating on a
    copy of the data with fewer training images then still works.
    """
    data_cfg = dict(loaded.config.get("data") or {})
    if "_target_" not in data_cfg:
        raise CheckpointError(f"{loaded.path}: the stored run config has no data section to rebuild")
    if data_root is not None:
        data_cfg["root"] = str(data_root)
    if split == "test" and "val_size" in data_cfg:
        data_cfg.update(val_size=0, num_train=None)
    augment = loaded.config.get("augment") or {}
    return instantiate(data_cfg, augment=augment, _convert_="all")


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
        raise EvalError(f"split={split!r} is not supported; choose one of {list(SPLITS)}")
    device = pick_device(device) if isinstance(device, str) else device
    dm = eval_datamodule(loaded, data_root, split)
    arrays = getattr(dm, f"{split}_arrays", None)
    if arrays is None:  # datamodules without in-memory uint8 arrays (the ImageNet subset)
        if split == "val":
            raise EvalError(
                f"{loaded.data_name}: this dataset has no validation split apart from its test split "
                "(the ImageNet val folder is the test set); use split=test"
            )
        dm.setup("test")
        probs, labels = predict_loader_probs(loaded.net, dm.test_dataloader(), tta, device)
        return probs, labels.numpy()
    images, labels = arrays()
    if images.shape[0] == 0:
        raise EvalError(
            f"{loaded.path}: its run had no validation split (data.val_size=0); "
            "retrain with data.val_size>0 or evaluate split=test"
        )
    return predict_probs(loaded, images, tta=tta, batch_size=batch_size, device=device), labels.numpy()


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
        raise EvalError(f"tta={tta!r} is not supported; choose one of {list(TTA_MODES)}")
    if split not in SPLITS:
        raise EvalError(f"split={split!r} is not supported; choose one of {list(SPLITS)}")
    loaded = load_model(ckpt)
    start = time.perf_counter()
    probs, labels = split_probs(loaded, split, data_root, tta, batch_size, device)
    seconds = time.perf_counter() - start
    report = classification_report(labels, probs.argmax(1), loaded.classes)
    out = Path(out_dir) if out_dir is not None else run_folder(loaded.path)
    out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(split, tta)
    title = f"{loaded.model_name} on {loaded.data_name} {split} split" + (
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
    paths = {
        "markdown": out / f"{stem}.md",
        "json": out / f"{stem}.json",
        "confusion_png": out / f"{stem}_confusion.png",
    }
    plot_confusion_matrix(report["confusion_matrix"], loaded.classes, paths["confusion_png"], title)
    report["files"] = {k: str(v) for k, v in paths.items()}
    _write_text(paths["markdown"], markdown)
    _write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    report["markdown"] = markdown
    return report


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
