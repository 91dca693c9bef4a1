"""Per-class confidence thresholds for the hard classes (cifar-predict's ``class_specialized`` and
``adaptive`` methods): the decision rule, picking the hard classes, and tuning the thresholds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.report import classification_report

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(20))


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Most probable class with ``p_c >= t_c``; argmax where no class passes."""
    probs = np.asarray(probs, dtype=np.float64)
    passing = np.where(probs >= np.asarray(thresholds)[None, :], probs, -np.inf)
    preds = passing.argmax(axis=1)
    none_pass = ~np.isfinite(passing.max(axis=1))
    preds[none_pass] = probs[none_pass].argmax(axis=1)
    return preds


def pick_hard_classes(
    probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], spec: str | None = None
) -> list[int]:
    """Indices of the hard classes: named ones (``"bird,cat,dog"``), or the N lowest by plain F1."""
    c = len(classes)
    if spec and not spec.strip().isdigit():
        names = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise ConfigError(
                f"--hard-classes: unknown classes {unknown}; the checkpoint has {list(classes)}"
            )
        return [list(classes).index(n) for n in names]
    count = int(spec) if spec else max(1, math.ceil(0.3 * c))
    if not 1 <= count < c:
        raise ConfigError(f"--hard-classes={count}: need between 1 and {c - 1} classes")
    f1 = [row["f1"] for row in classification_report(labels, probs.argmax(1), classes)["per_class"]]
    return sorted(np.argsort(f1, kind="stable")[:count].tolist())


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    hard: Sequence[int],
    grid: Sequence[float] = THRESHOLD_GRID,
    rounds: int = 2,
) -> np.ndarray:
    """Per-class thresholds (0 for non-hard classes) maximising accuracy by coordinate ascent."""
    thresholds = np.zeros(probs.shape[1])
    labels = np.asarray(labels)

    def accuracy(t: np.ndarray) -> float:
        return float((apply_thresholds(probs, t) == labels).mean())

    best = accuracy(thresholds)
    for _ in range(rounds):
        for c in hard:
            for value in sorted(grid):  # ascending + strict improvement: ties keep the lower value
                trial = thresholds.copy()
                trial[c] = value
                score = accuracy(trial)
                if score > best:
                    best, thresholds = score, trial
    return thresholds
