"""Time to accuracy with and without the recorded training step: the same recipe, trained twice.

Images/s alone cannot show that a faster step still trains the same net. This runs the one-cycle
recipe (``conf/experiment/onecycle_resnet20.yaml``) through cifar-train's own ``train()`` with each
training step replayed as one CUDA graph (``module.cuda_graph=auto``) and with eager steps
(``module.cuda_graph=false``), and reports wall time and test accuracy of both. Both runs leave the
net uncompiled (``model.compile=false``, overridable), so the recorded step is the only difference:
inductor's kernels round differently from eager ones, which alone moves a run about as much as
another random seed. On the CPU both runs are eager (nothing is recorded there).

    python benchmarks/time_to_accuracy.py --data-root DIR [--model resnet20] [--epochs 30]
        [--override KEY=VALUE ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cifar_resnets.bench.data import prepare_data
from cifar_resnets.bench.device import device_name, peak_memory_mib, reset_peak_memory
from cifar_resnets.bench.results import check_json_target, write_json
from cifar_resnets.bench.train_config import checked_config, model_config_names
from cifar_resnets.cli.common import user_errors

VARIANTS = {"cuda_graph": ["module.cuda_graph=auto"], "eager": ["module.cuda_graph=false"]}
BASE = ["experiment=onecycle_resnet20", "model.compile=false", "callbacks.progress_bar=null"]


def recipe_overrides(root: Path, model: str, epochs: int, extra: list[str]) -> list[str]:
    return [*BASE, f"model={model}", f"data.root={root}", f"trainer.max_epochs={epochs}", *extra]


def train_variant(name: str, overrides: list[str], workdir: Path) -> dict[str, Any]:
    """One ``train()`` run of the recipe with the variant's settings; its row of the report."""
    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.training.train import train

    cfg = compose_train([*overrides, *VARIANTS[name]], workdir / name)
    torch.compiler.reset()
    reset_peak_memory()
    start = time.perf_counter()
    metrics = train(cfg)
    return {
        "variant": name,
        "model": cfg.model.name,
        "epochs": metrics["epochs"],
        "test_acc": metrics.get("test/acc"),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "fit_seconds": metrics["fit_seconds"],
        "train_seconds": metrics["train_seconds"],
        "train_images_per_second": metrics["train_images_per_second"],
        "precision": metrics["precision"],
        "peak_memory_mib": peak_memory_mib(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", help="model config name (conf/model)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--data-root", default=None, help="holds cifar-10-batches-py (default: synthetic)")
    p.add_argument("--synthetic-train", type=int, default=50_000, help="synthetic training images")
    p.add_argument("--override", action="append", default=[], help="cifar-train override for both runs")
    p.add_argument("--json", type=Path, default=None, help="write the rows here, after each run")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    if args.model not in model_config_names():
        p.error(f"--model {args.model} is not one of {', '.join(model_config_names())}")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    check_json_target(args.json)
    report: dict[str, Any] = {"device": device_name(), "torch": torch.__version__, "time_to_accuracy": []}
    with tempfile.TemporaryDirectory(prefix="time-to-accuracy-") as tmp:
        workdir = Path(tmp)
        root, report["data"] = prepare_data(args.data_root, args.synthetic_train, workdir)
        overrides = recipe_overrides(root, args.model, args.epochs, args.override)
        checked_config(args.override, recipe_overrides(root, args.model, args.epochs, []), workdir / "check")
        for name in VARIANTS:
            row = train_variant(name, overrides, workdir)
            print(f"time to accuracy, {name}: {json.dumps(row)}", flush=True)
            report["time_to_accuracy"].append(row)
            write_json(args.json, report)
    graphed, eager = report["time_to_accuracy"]
    if graphed["test_acc"] is not None and eager["test_acc"] is not None:
        report["accuracy_difference_points"] = round(100 * (graphed["test_acc"] - eager["test_acc"]), 2)
        print(f"test accuracy cuda_graph - eager: {report['accuracy_difference_points']:+.2f} points")
        write_json(args.json, report)
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with user_errors("time_to_accuracy.py"):
        return measure(args)


if __name__ == "__main__":
    main()
