"""Host time per training step with the GPU's share taken out: cifar-train's Trainer against the raw loop.

A launch-bound step keeps the GPU busy only while the host queues steps at least as fast as the GPU
runs them. Here the recorded step's replay does nothing (the eager warm-up steps and the recording
still run the real step once each), so what is timed per step is host work only: the loader, the
optimizer and the schedule, and inside the Trainer also Lightning's loop, the module hooks and the
callbacks. Both paths are built from the same composed ``train`` config (cifar-bench's, with the
GPU-resident loader, no compilation, TensorBoard logging into a temporary folder, no checkpoint files
or progress bar). Runs on the CPU; on a GPU the loader's and the optimizer's kernels are launched as
usual (the timings then include the launches), and the number to compare with is the GPU's step time.

Prints the median and 90th-percentile host time per step of each path and the Trainer's extra per
step (difference of medians). Repeated runs on a busy machine spread: compare changes with several
runs each (docs/speed.md has measured spreads).

    python benchmarks/host_step_time.py [--model resnet20] [--batch-size 8] [--steps 1000] [--json F]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from raw_loop import build_raw_loop

from cifar_resnets.bench.data import prepare_data
from cifar_resnets.bench.device import device_name
from cifar_resnets.bench.results import check_json_target, write_json
from cifar_resnets.bench.train_config import bench_overrides, model_config_names
from cifar_resnets.cli.common import user_errors
from cifar_resnets.config.compose import compose_train
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer
from cifar_resnets.training.step_graph import CapturedTrainStep

SKIPPED_STEPS = 10  # warm-up and recording (the real step runs there), not timed
SYNTHETIC_MAX = 20_000  # synthetic training images at most (written to a temporary folder)


class _NoKernels:
    """A recorded step that replays nothing: every later step costs only its host work."""

    def replay(self) -> None:
        pass


def record_nothing(step_fn, x: torch.Tensor, y: torch.Tensor, stream: Any):
    return _NoKernels(), step_fn(x, y)


class _StepClock(L.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())


def _intervals(starts: list[float]) -> list[float]:
    """Seconds from each step's start to the next one's, after the untimed first steps."""
    kept = starts[SKIPPED_STEPS:]
    return [b - a for a, b in zip(kept, kept[1:], strict=False)]


def trainer_steps(cfg: Any) -> list[float]:
    """cifar-train's Trainer, module and datamodule, with the recorded step replaying nothing."""
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    module.step_graph_factory = functools.partial(CapturedTrainStep, recorder=record_nothing)
    clock = _StepClock()
    trainer = build_trainer(cfg)
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    return _intervals(clock.starts)


def raw_steps(cfg: Any, steps: int) -> list[float]:
    """The raw loop (``raw_loop.py``) with the same no-op replay."""
    loop = build_raw_loop(cfg, steps, recorder=record_nothing)
    return _intervals([time.perf_counter() for _ in loop.steps(steps)])


def _summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_us": round(1e6 * statistics.median(ordered), 1),
        "p90_us": round(1e6 * ordered[int(0.9 * (len(ordered) - 1))], 1),
        "steps": len(ordered),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", help="model config name (conf/model)")
    p.add_argument("--batch-size", type=int, default=8, help="small: on the CPU the loader's work is real")
    p.add_argument("--steps", type=int, default=1000, help="steps per path (the first 10 are not timed)")
    p.add_argument("--log-every", type=int, default=50, help="trainer.log_every_n_steps")
    p.add_argument("--data-root", default=None, help="holds cifar-10-batches-py (default: synthetic)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.steps <= SKIPPED_STEPS + 1 or args.batch_size < 1 or args.log_every < 1:
        p.error(f"need --steps > {SKIPPED_STEPS + 1}, --batch-size >= 1 and --log-every >= 1")
    models = model_config_names()
    if args.model not in models:
        p.error(f"--model {args.model} is not one of {', '.join(models)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with user_errors("host_step_time.py"):
        return measure(args)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    check_json_target(args.json)
    # Synthetic data for one epoch where small enough; otherwise epoch ends fall among the timed steps
    # (a few in a thousand: the median and 90th percentile do not see them).
    images = min(args.batch_size * (args.steps + 1), SYNTHETIC_MAX)
    with tempfile.TemporaryDirectory(prefix="host-step-time-") as tmp:
        workdir = Path(tmp)
        root, data_note = prepare_data(args.data_root, images, workdir)
        overrides = [
            *bench_overrides(root, args.model, args.batch_size, args.steps),
            # GPU-resident batches, no compilation; the no-op recorded step is attached by hand.
            "data.loader=gpu",
            "model.compile=false",
            "module.cuda_graph=false",
            f"trainer.log_every_n_steps={args.log_every}",
        ]
        raw = raw_steps(compose_train(overrides, workdir / "raw"), args.steps)
        trainer = trainer_steps(compose_train(overrides, workdir / "suite"))
    report = {
        "device": device_name(),
        "model": args.model,
        "batch_size": args.batch_size,
        "data": data_note,
        "raw": _summary(raw),
        "trainer": _summary(trainer),
    }
    report["trainer_extra_us"] = round(report["trainer"]["median_us"] - report["raw"]["median_us"], 1)
    print(f"host time per step, {args.model} at batch {args.batch_size}, replay stubbed; {report['device']}")
    for path in ("raw", "trainer"):
        row = report[path]
        median, p90, n = row["median_us"], row["p90_us"], row["steps"]
        print(f"  {path:7s}: median {median:8.1f} us  p90 {p90:8.1f} us  ({n} steps)")
    print(f"  the Trainer adds {report['trainer_extra_us']:.1f} us per step (difference of medians)")
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
