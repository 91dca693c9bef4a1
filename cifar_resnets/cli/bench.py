"""``cifar-bench``: cifar-train's training images/s on this device, against a plain PyTorch loop.

The paths are described in ``cifar_resnets.bench``. With ``--json`` results are written after every
measurement, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cifar_resnets.bench.results import PATHS, Result, check_json_target, format_table, write_json
from cifar_resnets.bench.train_config import REFERENCE_WARMUP, bench_overrides, model_config_names
from cifar_resnets.cli.common import user_errors


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cifar-bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["resnet20"], help="model config names (conf/model)")
    p.add_argument("--batch-size", nargs="+", type=int, default=[128])
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, from {','.join(PATHS)}")
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps per measurement")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"untimed steps first (default: {REFERENCE_WARMUP} for the reference loop; for cifar-train "
        "past compilation, graph recording and the first logging step)",
    )
    p.add_argument(
        "--data-root", default=None, help="folder holding cifar-10-batches-py (default: synthetic)"
    )
    p.add_argument("--synthetic-train", type=int, default=50_000, help="synthetic training images")
    p.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers of the reference"
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here, after each measurement")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        help="cifar-train override for the cifar-train path (e.g. trainer.benchmark=true); repeatable",
    )
    args = p.parse_args(argv)
    args.path_list = [s.strip() for s in args.paths.split(",") if s.strip()]
    bad = [s for s in args.path_list if s not in PATHS]
    if bad or not args.path_list:
        p.error(f"--paths: unknown {bad}; choose from {','.join(PATHS)}")
    if args.steps < 1 or min(args.batch_size) < 1 or (args.warmup is not None and args.warmup < 0):
        p.error("--steps and --batch-size must be >= 1, --warmup >= 0")
    model_names = model_config_names()
    unknown = [m for m in args.model if m not in model_names]
    if unknown:
        p.error(f"--model: unknown {unknown}; choose from {', '.join(model_names)}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    # torch and the training stack load here, after the arguments are parsed: --help answers at once.
    import torch

    from cifar_resnets.bench.data import prepare_data
    from cifar_resnets.bench.device import device_name
    from cifar_resnets.bench.reference_loop import reference_path
    from cifar_resnets.bench.table6 import time_to_table
    from cifar_resnets.bench.train_config import checked_config, default_warmup
    from cifar_resnets.bench.train_path import train_path

    check_json_target(args.json)
    report: dict[str, Any] = {"device": device_name(), "torch": torch.__version__, "results": []}

    with tempfile.TemporaryDirectory(prefix="cifar-bench-") as tmp:
        workdir = Path(tmp)
        root, report["data"] = prepare_data(args.data_root, args.synthetic_train, workdir)
        base = bench_overrides(root, args.model[0], args.batch_size[0], 1)
        cfg = checked_config(args.override, base, workdir / "override_check")
        warmup = {"reference": REFERENCE_WARMUP, "cifar-train": default_warmup(cfg)}
        if args.warmup is not None:
            warmup = dict.fromkeys(warmup, args.warmup)
        print(
            f"cifar-bench on {report['device']}, torch {torch.__version__}; data: {report['data']}",
            flush=True,
        )
        results: list[Result] = []
        for model in args.model:
            for bs in args.batch_size:
                for path in args.path_list:
                    start = time.perf_counter()
                    if path == "reference":
                        r = reference_path(root, model, bs, args.steps, warmup[path], args.workers)
                    else:
                        r = train_path(root, model, bs, args.steps, warmup[path], workdir, args.override)
                    results.append(r)
                    report["results"].append(asdict(r))
                    print(
                        f"{model} bs{bs} {path}: {r.images_per_second:,.0f} images/s "
                        f"({time.perf_counter() - start:.1f} s incl. setup and warm-up)",
                        flush=True,
                    )
                    write_json(args.json, report)
        report["table"] = format_table(results)
        report["table6"] = time_to_table(results)
        write_json(args.json, report)
    print_report(report)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"\nDevice: {report['device']} (torch {report['torch']}); data: {report['data']}")
    print(report["table"])
    for path, t in report["table6"].items():
        print(
            f"He et al. Table 6 estimated ({path}): {t['minutes']} min for 9 runs x 64k steps x batch 128 "
            f"({t['costed']}; compilation and evaluation not included)"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors("cifar-bench"):
        run(args)


if __name__ == "__main__":
    main()
