"""``cifar-bench --time-to-accuracy``: a whole recipe trained to its test accuracy, per path.

Images/s alone cannot show that a faster path still trains the same net; this runs the one-cycle
recipe (``conf/experiment/onecycle_resnet20.yaml``) through cifar-train's own ``train()`` and reports
wall time and test accuracy, so ``fast`` against ``eager`` shows what CUDA graphs change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from cifar_resnets.bench.device import peak_memory_mib, reset_peak_memory
from cifar_resnets.bench.path_config import path_overrides
from cifar_resnets.config.compose import compose_train

TRAINER_PATHS = ("suite", "fast", "eager")


def time_to_accuracy(
    root: Path,
    model: str,
    epochs: int,
    paths: Iterable[str],
    compile_flag: str,
    extra: list[str],
    workdir: Path,
) -> list[dict[str, Any]]:
    """One row per Trainer path asked for (``seed`` and ``raw`` have no test pass and are skipped)."""
    from cifar_resnets.training.train import train

    rows = []
    for path in paths:
        if path not in TRAINER_PATHS:
            continue
        overrides = [
            "experiment=onecycle_resnet20",
            *([] if model == "resnet20" else [f"model={model}"]),
            f"data.root={root}",
            f"trainer.max_epochs={epochs}",
            "callbacks.progress_bar=null",
            *path_overrides(path, compile_flag),
            *extra,
        ]
        cfg = compose_train(overrides, workdir / f"tta_{path}_{model}")
        torch._dynamo.reset()
        reset_peak_memory()
        start = time.perf_counter()
        metrics = train(cfg)
        wall = time.perf_counter() - start
        row = {
            "path": path,
            "model": model,
            "epochs": metrics["epochs"],
            "test_acc": metrics.get("test/acc"),
            "wall_seconds": round(wall, 1),
            "fit_seconds": metrics["fit_seconds"],
            "train_seconds": metrics["train_seconds"],
            "train_images_per_second": metrics["train_images_per_second"],
            "precision": metrics["precision"],
            "peak_memory_mib": peak_memory_mib(),
        }
        print(f"time-to-accuracy {path}: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows
