"""``cifar-predict``: labels for new images, with the prediction methods of seed 001.

Examples::

    cifar-predict --ckpt RUN/checkpoints/last.ckpt --input test_batch --method plain --out preds.csv
    cifar-predict --ckpt RUN/checkpoints/last.ckpt --input images/ --method adaptive --out preds.csv --probs
    cifar-predict --ckpt A.ckpt --ckpt B.ckpt --input x.npy --method ensemble --out preds.csv
    cifar-predict --method ensemble --csv a.csv b.csv c.csv --out preds.csv

Inputs (``cifar_resnets.inference.inputs``): a CIFAR-format pickle, a ``.npy`` uint8 array, or a folder of
images. Output: a CSV ``id,label`` (class names; id = row index, or file name for a folder), plus one
``prob_<class>`` column per class with ``--probs``.

Methods (``p`` = softmax probabilities of one image, ``p_c`` that of class c):

- ``plain``: argmax of the single view.
- ``tta``: argmax of ``p`` averaged over test-time views (``--tta``, default ``flip_translate``:
  the image and its mirror, each also shifted one pixel in four directions; ``flip``: two views).
- ``class_specialized``: per-class confidence thresholds ``t_c`` for the hard classes. The hard
  classes are the ``--hard-classes`` ones (names, or a count N = the N classes with the lowest F1 of
  ``plain`` on the checkpoint's validation split; default 30% of the classes: 3 for CIFAR-10, e.g.
  bird/cat/dog). Every other class has ``t_c = 0``. **Rule:** the label is the most probable class
  whose probability reaches its threshold (``p_c >= t_c``); so an image whose top class is a hard class
  with too little confidence goes to its next most probable class that passes. Thresholds are
  picked from {0, 0.05, ..., 0.95} by coordinate ascent (two passes over the hard classes, each
  threshold set to the value that maximises validation accuracy, ties keep the lower value), starting
  from 0 = plain; validation accuracy therefore never falls below plain's.
- ``adaptive``: the ``class_specialized`` rule applied to the ``tta`` probabilities, with its own
  thresholds tuned on the validation split's TTA probabilities (same hard classes). A confident TTA
  prediction stands; a hard-class prediction whose averaged confidence is below its threshold goes
  to the next most probable class that passes. Validation accuracy is never below ``tta``'s.
- ``ensemble``: several ``--ckpt``: probabilities averaged over the checkpoints (each with its own
  preprocessing, optional ``--tta``), then argmax. Several ``--csv``: when every CSV has the same
  ``prob_*`` columns, their probabilities are averaged; otherwise a majority vote over the labels,
  ties broken in favour of the tied label chosen by the earliest CSV on the command line.

Accuracy is reported whenever labels are known (a CIFAR pickle with labels, or ``--labels`` FILE:
``.csv`` ``id,label``, ``.npy`` integers, or a CIFAR pickle), and for the tuned methods also on the
validation split they were tuned on (next to ``plain`` there), so it shows whether a method helps.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifar_resnets.errors import UserError
from cifar_resnets.inference.checkpoint import LoadedModel, load_model
from cifar_resnets.inference.evaluate import split_probs
from cifar_resnets.inference.inputs import (
    InputError,
    PredictionInput,
    read_input,
    read_label_csv,
    read_labels,
)
from cifar_resnets.inference.predict import TTA_MODES, classification_report, predict_probs

METHODS = ("plain", "tta", "class_specialized", "adaptive", "ensemble")
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(20))
PROB_PREFIX = "prob_"


class PredictError(UserError, ValueError):
    """A method/argument combination that cannot work; the message says what to change."""


@dataclass
class Prediction:
    """What a method produced: labels as class indices and names, probabilities when it has them."""

    ids: list[str]
    labels: list[str]
    classes: list[str]
    probs: np.ndarray | None = None  # [N, C]
    summary: dict[str, Any] = field(default_factory=dict)


# ----- the methods' decision rules (pure functions on arrays) -----
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
            raise PredictError(
                f"--hard-classes: unknown classes {unknown}; the checkpoint has {list(classes)}"
            )
        return [list(classes).index(n) for n in names]
    count = int(spec) if spec else max(1, math.ceil(0.3 * c))
    if not 1 <= count < c:
        raise PredictError(f"--hard-classes={count}: need between 1 and {c - 1} classes")
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


def majority_vote(votes: Sequence[Sequence[str]]) -> list[str]:
    """Per item, the most frequent label over the voters; ties go to the earliest voter's choice."""
    result = []
    for item_votes in zip(*votes, strict=True):
        counts = Counter(item_votes)
        top = max(counts.values())
        result.append(next(v for v in item_votes if counts[v] == top))
    return result


# ----- CSV files -----
def write_predictions(prediction: Prediction, out: str | Path, probs: bool = False) -> Path:
    """Write ``id,label`` (+ ``prob_<class>`` columns) to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if probs and prediction.probs is None:
        raise PredictError("--probs: this method (majority vote) has no probabilities to write")
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["id", "label"] + ([PROB_PREFIX + c for c in prediction.classes] if probs else [])
        writer.writerow(header)
        for i, (ident, label) in enumerate(zip(prediction.ids, prediction.labels, strict=True)):
            row = [ident, label]
            if probs:
                row += [f"{v:.6f}" for v in prediction.probs[i]]
            writer.writerow(row)
    return out


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


def ensemble_csvs(paths: Sequence[str | Path]) -> Prediction:
    """Probability averaging when every CSV has the same prob columns, else majority vote."""
    if len(paths) < 2:
        raise PredictError("--csv: give at least two CSV files to ensemble")
    tables = [read_prediction_csv(p) for p in paths]
    ids = tables[0][0]
    for path, table in zip(paths[1:], tables[1:], strict=True):
        if sorted(table[0]) != sorted(ids):
            raise PredictError(f"{path} predicts other ids than {paths[0]}; ensemble CSVs of the same input")
    # Align every table to the first one's id order.
    aligned = []
    for table_ids, labels, classes, probs in tables:
        order = {ident: i for i, ident in enumerate(table_ids)}
        idx = [order[i] for i in ids]
        aligned.append(([labels[i] for i in idx], classes, None if probs is None else probs[idx]))
    first_classes = aligned[0][1]
    if first_classes and all(c == first_classes for _, c, _ in aligned):
        probs = np.mean([p for _, _, p in aligned], axis=0)
        labels = [first_classes[i] for i in probs.argmax(axis=1)]
        return Prediction(ids, labels, first_classes, probs, {"rule": "probability average"})
    labels = majority_vote([labels for labels, _, _ in aligned])
    classes = first_classes or sorted({lab for labels, _, _ in aligned for lab in labels})
    return Prediction(ids, labels, classes, None, {"rule": "majority vote (ties: earliest CSV)"})


# ----- methods over checkpoints -----
def _validation(loaded: LoadedModel, data_root: str | None, tta: str, batch_size: int, device: str):
    try:
        return split_probs(loaded, "val", data_root, tta, batch_size, device)
    except ValueError as err:
        raise PredictError(f"tuning needs the checkpoint's validation split: {err}") from None


def _accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(preds) == np.asarray(labels)).mean())


def _same_classes(models: Sequence[LoadedModel]) -> list[str]:
    classes = models[0].classes
    for m in models[1:]:
        if m.classes != classes:
            raise PredictError(
                f"{m.path} predicts other classes than {models[0].path}; ensemble checkpoints of one dataset"
            )
    return classes


def predict(
    input_path: str | Path,
    ckpts: Sequence[str | Path],
    method: str = "plain",
    tta: str | None = None,
    labels_path: str | Path | None = None,
    data_root: str | None = None,
    hard_classes: str | None = None,
    batch_size: int = 500,
    device: str = "auto",
) -> Prediction:
    """Run one method over one input (see the module docstring); accuracy in ``summary`` when labelled."""
    if method not in METHODS:
        raise PredictError(f"--method {method!r} is not supported; choose one of {list(METHODS)}")
    if not ckpts:
        raise PredictError("give --ckpt (or, for --method ensemble, --csv files)")
    if len(ckpts) > 1 and method != "ensemble":
        raise PredictError(f"several --ckpt need --method ensemble, not {method}")
    if tta is not None and tta not in TTA_MODES:
        raise PredictError(f"--tta {tta!r} is not supported; choose one of {list(TTA_MODES)}")
    if method in ("plain", "class_specialized") and tta not in (None, "none"):
        raise PredictError(f"--method {method} uses one view; use --method tta or adaptive for --tta")
    view_tta = tta or ("flip_translate" if method in ("tta", "adaptive") else "none")
    models = [load_model(p) for p in ckpts]
    classes = _same_classes(models)
    inputs: dict[tuple[int, int], PredictionInput] = {}

    def input_for(m: LoadedModel) -> PredictionInput:
        key = (m.image_size, m.resize_size)
        if key not in inputs:
            inputs[key] = read_input(input_path, m.image_size, m.resize_size, num_classes=m.num_classes)
        return inputs[key]

    first = input_for(models[0])
    summary: dict[str, Any] = {"method": method, "images": len(first), "skipped": first.skipped}

    def probs_of(m: LoadedModel, views: str) -> np.ndarray:
        data = input_for(m)
        return predict_probs(m, data.images, views, batch_size, device).numpy()

    model = models[0]
    if method == "ensemble":
        probs = np.mean([probs_of(m, view_tta) for m in models], axis=0)
        preds = probs.argmax(axis=1)
        summary["checkpoints"] = [str(m.path) for m in models]
    elif method in ("plain", "tta"):
        probs = probs_of(model, view_tta)
        preds = probs.argmax(axis=1)
    else:
        val_plain, val_labels = _validation(model, data_root, "none", batch_size, device)
        val_plain = val_plain.numpy()
        hard = pick_hard_classes(val_plain, val_labels, classes, hard_classes)
        thresholds = tune_thresholds(val_plain, val_labels, hard)
        val_acc = {"plain": _accuracy(val_plain.argmax(1), val_labels)}
        val_acc["class_specialized"] = _accuracy(apply_thresholds(val_plain, thresholds), val_labels)
        if method == "class_specialized":
            probs = probs_of(model, "none")
        else:  # adaptive: the same rule on TTA-averaged probabilities, thresholds re-tuned on them
            val_tta = _validation(model, data_root, view_tta, batch_size, device)[0].numpy()
            thresholds = tune_thresholds(val_tta, val_labels, hard)
            val_acc["tta"] = _accuracy(val_tta.argmax(1), val_labels)
            val_acc["adaptive"] = _accuracy(apply_thresholds(val_tta, thresholds), val_labels)
            probs = probs_of(model, view_tta)
        preds = apply_thresholds(probs, thresholds)
        summary.update(
            thresholds={classes[c]: float(thresholds[c]) for c in hard},
            validation_images=len(val_labels),
            validation_accuracy=val_acc,
        )
    summary["tta"] = view_tta
    labels = first.labels
    if labels_path is not None:
        labels = read_labels(labels_path, first.ids, classes)
    if labels is not None:
        summary["accuracy"] = _accuracy(preds, labels)
        summary["per_class_f1"] = {
            r["class"]: r["f1"] for r in classification_report(labels, preds, classes)["per_class"]
        }
    return Prediction(first.ids, [classes[i] for i in preds], classes, probs, summary)


def predict_csvs(csvs: Sequence[str | Path], labels_path: str | Path | None = None) -> Prediction:
    """``ensemble`` over CSV files, with accuracy when a labels file is given (names or indices)."""
    prediction = ensemble_csvs(csvs)
    if labels_path is not None:
        path = Path(labels_path)
        if path.suffix.lower() != ".csv":
            raise PredictError("--labels for a CSV ensemble must be a CSV id,label")
        by_id = read_label_csv(path)
        missing = [i for i in prediction.ids if i not in by_id]
        if missing:
            raise InputError(f"{path}: no label for {len(missing)} ids, e.g. {missing[:3]}")
        # Indices can be named only when the CSVs' prob_* columns give the class order.
        classes = prediction.classes if prediction.probs is not None else []
        truth = [_label_name(by_id[i], classes, path) for i in prediction.ids]
        prediction.summary["accuracy"] = _accuracy(np.array(prediction.labels), np.array(truth))
    prediction.summary.update(method="ensemble", csvs=[str(c) for c in csvs], images=len(prediction.ids))
    return prediction


def _label_name(label: str, classes: list[str], source: Path) -> str:
    if label.isdigit() and label not in classes:
        if int(label) >= len(classes):
            raise InputError(
                f"{source}: label {label} is a class index, but the CSVs have no prob_* columns naming "
                "the classes in order; give class names as labels"
            )
        return classes[int(label)]
    return label
