"""``cifar-predict``'s prediction methods, those of the CBAM attention-ResNet recipe.

docs/predict.md describes each method's rule. The thresholds of ``class_specialized`` and ``adaptive`` are
tuned by coordinate ascent on the validation split starting from all zeros (``plain``, resp. ``tta``), so
their validation accuracy never falls below the untuned method's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cifar_resnets.errors import ConfigError, InputError, UserError
from cifar_resnets.inference.checkpoint import LoadedModel, load_model
from cifar_resnets.inference.ensembles import ensemble_csvs
from cifar_resnets.inference.evaluate import split_probs
from cifar_resnets.inference.inputs import (
    PredictionInput,
    read_input,
    read_label_csv,
    read_labels,
    view_batches,
)
from cifar_resnets.inference.options import check_method
from cifar_resnets.inference.predict import predict_probs, views_probs
from cifar_resnets.inference.predictions import Prediction
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.inference.report import classification_report
from cifar_resnets.inference.thresholds import apply_thresholds, pick_hard_classes, tune_thresholds


def _validation(loaded: LoadedModel, data_root: str | None, tta: str, batch_size: int, device: str):
    try:
        return split_probs(loaded, "val", data_root, tta, batch_size, device)
    except UserError as err:
        raise ConfigError(f"tuning needs the checkpoint's validation split: {err}") from None


def _accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(preds) == np.asarray(labels)).mean())


def _same_classes(models: Sequence[LoadedModel]) -> list[str]:
    classes = models[0].classes
    for m in models[1:]:
        if m.classes != classes:
            raise ConfigError(
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
    recursive: bool = False,
) -> Prediction:
    """Run one method over one input (rules: docs/predict.md); accuracy in ``summary`` when labelled."""
    check_method(method, ckpts, tta, input_path=input_path)
    view_tta = tta or ("flip_translate" if method in ("tta", "adaptive") else "none")
    models = [load_model(p) for p in ckpts]
    classes = _same_classes(models)
    data: PredictionInput = read_input(
        input_path, [Preprocess.for_model(m) for m in models], models[0].num_classes, recursive
    )
    summary: dict[str, Any] = {"method": method, "images": len(data), "skipped": data.skipped}

    def probs_of(m: LoadedModel, views: str) -> np.ndarray:
        if data.images is not None:
            return predict_probs(m, data.images, views, batch_size, device).numpy()
        batches = view_batches(data, Preprocess.for_model(m), batch_size)
        return views_probs(m, batches, views, device).numpy()

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
    labels = data.labels
    if labels_path is not None:
        labels = read_labels(labels_path, data.ids, classes)
    if labels is not None:
        summary["accuracy"] = _accuracy(preds, labels)
        summary["per_class_f1"] = {
            r["class"]: r["f1"] for r in classification_report(labels, preds, classes)["per_class"]
        }
    return Prediction(data.ids, [classes[i] for i in preds], classes, probs, summary)


def predict_csvs(csvs: Sequence[str | Path], labels_path: str | Path | None = None) -> Prediction:
    """``ensemble`` over CSV files, with accuracy when a labels file is given (names or indices)."""
    prediction = ensemble_csvs(csvs)
    if labels_path is not None:
        path = Path(labels_path)
        if path.suffix.lower() != ".csv":
            raise ConfigError("--labels for a CSV ensemble must be a CSV id,label")
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
