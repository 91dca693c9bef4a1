"""Scores of predictions: accuracy, per-class precision/recall/F1 (torchmetrics), confusion matrix, and
the Markdown table cifar-eval prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from cifar_resnets.errors import InputError


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
        raise InputError(f"need as many predictions as labels (> 0), got {p.numel()} and {y.numel()}")
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
    """The per-class table of the CBAM attention-ResNet recipe (percentages), with accuracy and macro
    averages."""
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
