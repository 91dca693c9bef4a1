"""What a prediction method produced, and its CSV file: ``id,label`` plus ``prob_<class>`` columns."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.outputs import make_folder, write_atomic

PROB_PREFIX = "prob_"


@dataclass
class Prediction:
    """Labels (class names) per id, the class order, probabilities when the method has them, and a
    summary of the run (method, images, skipped entries, accuracy when labels are known, ...)."""

    ids: list[str]
    labels: list[str]
    classes: list[str]
    probs: np.ndarray | None = None  # [N, C]
    summary: dict[str, Any] = field(default_factory=dict)


def write_predictions(prediction: Prediction, out: str | Path, probs: bool = False) -> Path:
    """Write ``id,label`` (+ ``prob_<class>`` columns) to ``out`` in one step: the predictions only."""
    out = Path(out)
    if probs and prediction.probs is None:
        raise ConfigError("--probs: this method (majority vote) has no probabilities to write")
    make_folder(out.parent, "--out")

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            header = ["id", "label"] + ([PROB_PREFIX + c for c in prediction.classes] if probs else [])
            writer.writerow(header)
            for i, (ident, label) in enumerate(zip(prediction.ids, prediction.labels, strict=True)):
                row = [ident, label]
                if probs:
                    row += [f"{v:.6f}" for v in prediction.probs[i]]
                writer.writerow(row)

    write_atomic(out, write)
    return out
