"""Ensembles of prediction CSVs: probability averaging when every CSV has the same ``prob_*`` columns,
else a majority vote over the labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.inputs import read_prediction_csv
from cifar_resnets.inference.predictions import Prediction


def majority_vote(votes: Sequence[Sequence[str]]) -> list[str]:
    """Per item, the most frequent label over the voters; ties go to the earliest voter's choice."""
    result = []
    for item_votes in zip(*votes, strict=True):
        counts = Counter(item_votes)
        top = max(counts.values())
        result.append(next(v for v in item_votes if counts[v] == top))
    return result


def ensemble_csvs(paths: Sequence[str | Path]) -> Prediction:
    """Probability averaging when every CSV has the same prob columns, else majority vote."""
    if len(paths) < 2:
        raise ConfigError("--csv: give at least two CSV files to ensemble")
    tables = [read_prediction_csv(p) for p in paths]
    ids = tables[0][0]
    for path, table in zip(paths[1:], tables[1:], strict=True):
        if sorted(table[0]) != sorted(ids):
            raise ConfigError(f"{path} predicts other ids than {paths[0]}; ensemble CSVs of the same input")
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
