"""``cifar-bench``: training images/s on this device, the seed projects' way against the suite's.

Examples::

    cifar-bench --model resnet20 resnet56 --batch-size 128 512 --paths seed,suite,eager,raw --data-root data
    cifar-bench --model resnet20 --data-root data --time-to-accuracy --epochs 30 --paths fast,eager
    cifar-bench --model resnet56 --batch-size 128 --paths suite,raw --override trainer.benchmark=true

The paths are described in ``cifar_resnets/bench/__init__.py``. Results are printed as a Markdown table
and, with ``--json``, written after every measurement, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cifar_resnets.bench.data import prepare_data
from cifar_resnets.bench.device import device_name
from cifar_resnets.bench.path_config import bench_overrides, default_warmup, model_config_names
from cifar_resnets.bench.raw_loop import raw_path
from cifar_resnets.bench.results import PATHS, BenchError, Result, check_json_target, format_table
from cifar_resnets.bench.seed_loop import seed_path
from cifar_resnets.bench.table6 import time_to_table
from cifar_resnets.bench.time_to_accuracy import time_to_accuracy
from cifar_resnets.bench.trainer_paths import trainer_path
from cifar_resnets.cli.common import user_errors
from cifar_resnets.config.compose import compose_train


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cifar-bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["resnet20"], help="model config names (conf/model)")
    p.add_argument("--batch-size", nargs="+", type=int, default=[128, 512])
    p.add_argument("--paths", default="seed,suite,fast", help=f"comma-separated, from {','.join(PATHS)}")
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps per measurement")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps first (default: 20 for seed, else past graph recording and the first log)",
    )
    p.add_argument(
        "--data-root", default=None, help="folder holding cifar-10-batches-py (default: synthetic)"
    )
    p.add_argument("--synthetic-train", type=int, default=50_000, help="synthetic training images")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="seed-style workers")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto", help="fast/raw paths")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    p.add_argument(
        "--time-to-accuracy",
        action="store_true",
        help="instead of images/s: train the one-cycle recipe on each suite/fast/eager path, then test",
    )
    p.add_argument("--epochs", type=int, default=30, help="epochs of --time-to-accuracy")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra cifar-train override for every path but seed (e.g. trainer.benchmark=true); repeatable",
    )
    args = p.parse_args(argv)
    args.path_list = [s.strip() for s in args.paths.split(",") if s.strip()]
    bad = [s for s in args.path_list if s not in PATHS]
    if bad or not args.path_list:
        p.error(f"--paths: unknown {bad}; choose from {','.join(PATHS)}")
    if args.steps < 1 or min(args.batch_size) < 1 or args.epochs < 1:
        p.error("--steps, --batch-size and --epochs must be >= 1")
    model_names = model_config_names()
    unknown = [m for m in args.model if m not in model_names]
    if unknown:
        p.error(f"--model: unknown {unknown}; choose from {', '.join(model_names)}")
    return args


def checked_config(extra: list[str], base: list[str], workdir: Path) -> Any:
    """The config with the ``--override`` values, composed and checked as cifar-train checks its own
    (``check_config``) once before any measurement, so that a typo costs no run."""
    from cifar_resnets.config.checks import ConfigError, check_config

    try:
        cfg = compose_train([*base, *extra], workdir / "override_check")
    except Exception as err:  # noqa: BLE001 - Hydra and OmegaConf raise several kinds; all mean the same
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchError(f"--override {' '.join(extra)}: {first_line}") from None
    try:
        check_config(cfg)
    except ConfigError as err:
        raise BenchError(f"{err} (with --override {' '.join(extra)})" if extra else str(err)) from None
    return cfg


def measure(
    args: argparse.Namespace,
    root: Path,
    workdir: Path,
    model: str,
    batch_size: int,
    path: str,
    log_every: int,
) -> Result:
    """One path, one model, one batch size."""
    graphs = torch.cuda.is_available() and args.compile != "off"
    warmup = args.warmup if args.warmup is not None else default_warmup(path, graphs, log_every)
    if path == "seed":
        return seed_path(root, model, batch_size, args.steps, warmup, args.workers)
    if path == "raw":
        return raw_path(root, model, batch_size, args.steps, warmup, args.compile, workdir, args.override)
    return trainer_path(
        root, model, batch_size, args.steps, warmup, path, args.compile, workdir, args.override
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_json_target(args.json)
    report: dict[str, Any] = {
        "device": device_name(),
        "torch": torch.__version__,
        "results": [],
    }

    def save() -> None:
        if args.json:
            try:
                args.json.write_text(json.dumps(report, indent=1) + "\n")
            except OSError as err:  # checked writable up front; a full disk can still refuse it
                raise BenchError(
                    f"--json {args.json}: {err.strerror} (the results are printed above)"
                ) from None

    with tempfile.TemporaryDirectory(prefix="cifar-bench-") as tmp:
        workdir = Path(tmp)
        root, data_note = prepare_data(args.data_root, args.synthetic_train, workdir)
        report["data"] = data_note
        base = checked_config(
            args.override, bench_overrides(root, args.model[0], args.batch_size[0], 1), workdir
        )
        log_every = int(base.trainer.log_every_n_steps or 0)
        print(f"cifar-bench on {report['device']}, torch {torch.__version__}; data: {data_note}", flush=True)
        results: list[Result] = []
        for model in [] if args.time_to_accuracy else args.model:
            for bs in args.batch_size:
                for path in args.path_list:
                    start = time.perf_counter()
                    r = measure(args, root, workdir, model, bs, path, log_every)
                    results.append(r)
                    report["results"].append(asdict(r))
                    print(
                        f"{model} bs{bs} {path}: {r.images_per_second:,.0f} images/s "
                        f"({time.perf_counter() - start:.1f} s incl. setup and warm-up)",
                        flush=True,
                    )
                    save()
        if results:
            report["table"] = format_table(results)
            report["time_to_table"] = time_to_table(results)
            save()
        if args.time_to_accuracy:
            report["time_to_accuracy"] = time_to_accuracy(
                root, args.model[0], args.epochs, args.path_list, args.compile, args.override, workdir
            )
            save()
    print_report(report)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"\nDevice: {report['device']} (torch {report['torch']}); data: {report['data']}")
    if report.get("table"):
        print(report["table"])
    for path, t in report.get("time_to_table", {}).items():
        print(
            f"He et al. Table 6 extrapolated ({path} path): {t['minutes']} min for 9 runs x 64k steps x "
            f"batch 128 = {t['formula']}"
        )
    for row in report.get("time_to_accuracy", []):
        acc = row["test_acc"]
        print(
            f"Time to accuracy ({row['path']}, {row['model']}, {row['epochs']} epochs): test acc "
            f"{acc:.4f}, wall {row['wall_seconds']} s (training {row['train_seconds']} s)"
            if acc is not None
            else f"Time to accuracy ({row['path']}): {row}"
        )
    ttas = report.get("time_to_accuracy", [])
    if len(ttas) == 2 and all(r["test_acc"] is not None for r in ttas):
        delta = 100 * (ttas[1]["test_acc"] - ttas[0]["test_acc"])
        print(f"Accuracy {ttas[1]['path']} - {ttas[0]['path']}: {delta:+.2f} points")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors("cifar-bench"):
        run(args)


if __name__ == "__main__":
    main()
