"""Inference shared by cifar-eval, cifar-predict and the reproduction tables.

One place turns uint8 images into the normalized tensors a checkpoint was trained on (its own
mean/std and input size), runs the net in batches with optional test-time augmentation (TTA), and
scores predictions (accuracy, per-class precision/recall/F1 via torchmetrics, confusion matrix).
Every function takes and returns plain tensors/arrays so other tools can call them directly::

    loaded = load_model("outputs/runs/.../checkpoints/last.ckpt")
    probs = predict_probs(loaded, images_uint8, tta="flip")        # [N, C] softmax probabilities
    report = classification_report(labels, probs.argmax(1), loaded.classes)
    plot_confusion_matrix(report["confusion_matrix"], loaded.classes, "cm.png")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)
from torchvision.transforms.v2 import functional as TF

from cifar_resnets.errors import UserError
from cifar_resnets.inference.checkpoint import LoadedModel

# none: one view. flip: the image and its mirror. flip_translate: those two, each also shifted by
# one pixel up, down, left and right (edge pixels replicated): 10 views. Softmax outputs are averaged.
TTA_MODES = ("none", "flip", "flip_translate")
_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


class InferenceError(UserError, ValueError):
    """A request the inference helpers cannot serve (unknown TTA mode, wrong image layout)."""


def check_tta(tta: str) -> str:
    if tta not in TTA_MODES:
        raise InferenceError(f"tta={tta!r} is not supported; choose one of {list(TTA_MODES)}")
    return tta


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InferenceError(f"device={device!r} asked for a GPU but none is available; use device=cpu")
    return torch.device(device)


def fit_to_model(images: torch.Tensor, image_size: int, resize_size: int | None = None) -> torch.Tensor:
    """Bring uint8 images [N, 3, H, W] (or one [3, H, W]) to the model's input size, as training did.

    CIFAR-style checkpoints (``resize_size == image_size``) see the whole image resized to
    ``image_size``²; ImageNet-style ones get the evaluation transform: shorter side to
    ``resize_size``, then the centre ``image_size``² crop. Images already at the size are untouched.
    """
    resize_size = resize_size or image_size
    if tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    if resize_size == image_size:
        return TF.resize(images, [image_size, image_size], antialias=True)
    return TF.center_crop(TF.resize(images, resize_size, antialias=True), [image_size, image_size])


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float32 normalized with the checkpoint's per-channel statistics."""
    x = images.to(torch.float32).div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    # Replicate-pad one pixel, then crop back: the content moves by (dy, dx) without wrapping round.
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def tta_views(x: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The views of a normalized batch that ``tta`` averages over (see ``TTA_MODES``)."""
    check_tta(tta)
    if tta == "none":
        return [x]
    bases = [x, torch.flip(x, dims=[-1])]
    if tta == "flip":
        return bases
    return [v for base in bases for v in (base, *(_shift(base, dy, dx) for dy, dx in _SHIFTS))]


@torch.inference_mode()
def forward_probs(net: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities of one normalized batch, averaged over the TTA views (on x's device)."""
    views = tta_views(x, tta)
    probs = torch.zeros((), device=x.device)
    for view in views:
        probs = probs + torch.softmax(net(view).float(), dim=1)
    return probs / len(views)


def _as_uint8_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(images) if isinstance(images, np.ndarray) else images
    if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[1] != 3:
        raise InferenceError(
            f"expected uint8 images [N, 3, H, W], got {tuple(tensor.shape)} {tensor.dtype}; "
            "cifar_resnets.inference.inputs reads user files into this layout"
        )
    return tensor


def predict_probs(
    model: LoadedModel,
    images: np.ndarray | torch.Tensor,
    tta: str = "none",
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """Softmax probabilities [N, num_classes] (float32, CPU) of uint8 images [N, 3, H, W].

    Images are brought to the checkpoint's input size and normalized with its mean/std batch by
    batch, so memory stays bounded by ``batch_size`` whatever N is.
    """
    check_tta(tta)
    if batch_size < 1:
        raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
    device = pick_device(device) if isinstance(device, str) else device
    images = _as_uint8_nchw(images)
    net = model.net.to(device).eval()
    out = torch.empty((images.shape[0], model.num_classes), dtype=torch.float32)
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start : start + batch_size].to(device)
        x = normalize(fit_to_model(chunk, model.image_size, model.resize_size), model.mean, model.std)
        out[start : start + chunk.shape[0]] = forward_probs(net, x, tta).cpu()
    return out


def predict_loader_probs(
    net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], tta: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, labels) over a loader of already normalized batches (ImageNet-subset datamodules)."""
    net = net.to(device).eval()
    probs, labels = [], []
    for x, y in batches:
        probs.append(forward_probs(net, x.to(device), tta).cpu())
        labels.append(torch.as_tensor(y).cpu())
    return torch.cat(probs), torch.cat(labels).long()


def classification_report(
    labels: np.ndarray | torch.Tensor, preds: np.ndarray | torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (torchmetrics).

    ``confusion_matrix[i][j]`` counts images of true class i predicted as j. A class never predicted
    has precision 0 (torchmetrics' zero_division default), one with no images recall 0.
    """
    y = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    p = torch.as_tensor(np.asarray(preds)).long().reshape(-1)
    if y.shape != p.shape or y.numel() == 0:
        raise InferenceError(f"need as many predictions as labels (> 0), got {p.numel()} and {y.numel()}")
    c = len(classes)
    kw = {"num_classes": c, "validate_args": True}
    per_class = {
        name: fn(p, y, average="none", **kw).tolist()
        for name, fn in (
            ("precision", multiclass_precision),
            ("recall", multiclass_recall),
            ("f1", multiclass_f1_score),
        )
    }
    matrix = multiclass_confusion_matrix(p, y, **kw)
    macro = {name: float(np.mean(values)) for name, values in per_class.items()}
    return {
        "num_images": int(y.numel()),
        "accuracy": float(multiclass_accuracy(p, y, average="micro", **kw)),
        "macro": macro,
        "per_class": [
            {
                "class": str(classes[i]),
                "precision": per_class["precision"][i],
                "recall": per_class["recall"][i],
                "f1": per_class["f1"][i],
                "support": int(matrix[i].sum()),
            }
            for i in range(c)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def report_markdown(report: dict[str, Any], title: str) -> str:
    """The per-class table of seed 001 (percentages), with accuracy and macro averages."""
    lines = [
        f"# {title}",
        "",
        f"Accuracy: **{100 * report['accuracy']:.2f}%** on {report['num_images']} images",
        "",
        "| Class | Precision | Recall | F1-Score | Support |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in report["per_class"]:
        lines.append(
            f"| {row['class']} | {100 * row['precision']:.1f}% | {100 * row['recall']:.1f}% "
            f"| {100 * row['f1']:.1f}% | {row['support']} |"
        )
    macro = report["macro"]
    lines.append(
        f"| **macro average** | {100 * macro['precision']:.1f}% | {100 * macro['recall']:.1f}% "
        f"| {100 * macro['f1']:.1f}% | {report['num_images']} |"
    )
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]] | np.ndarray, classes: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Write the confusion matrix as a PNG: colours are row-normalized (recall), cells show counts.

    Counts are printed only up to 20 classes and tick labels up to 40, so CIFAR-100 stays legible.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed: the figure goes straight to a file
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = min(max(5.0, 0.55 * n + 2), 24.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 40:
        ax.set_xticks(range(n), [str(c) for c in classes], rotation=45, ha="right")
        ax.set_yticks(range(n), [str(c) for c in classes])
    if n <= 20:
        for i in range(n):
            for j in range(n):
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
