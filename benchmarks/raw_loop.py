"""Lightning's share of a cifar-train step: the Trainer against the same step in a plain loop.

Both run from one composed config (cifar-bench's, with the GPU-resident loader and any ``--override``):
the same net, compiled as ``build_module`` compiles it, the same loader, optimizer, schedule and
precision, and on one CUDA GPU the same recorded training step (``CapturedTrainStep``). The plain
loop leaves out Lightning's loop (closure, hooks, callbacks, logging) and the module's training
metrics, so ``1 - trainer / raw`` in images/s is what the Trainer costs. ``RawLoop`` is also what
``host_step_time.py`` times with the GPU's share taken out.

    python benchmarks/raw_loop.py --data-root DIR [--model resnet20 resnet56] [--batch-size 128 512]
        [--steps 200] [--override KEY=VALUE ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from cifar_resnets.bench.data import prepare_data
from cifar_resnets.bench.device import (
    device_name,
    peak_memory_mib,
    reset_peak_memory,
    sync,
    training_device,
)
from cifar_resnets.bench.results import Result, check_json_target, format_table, write_json
from cifar_resnets.bench.train_config import (
    bench_overrides,
    checked_config,
    default_warmup,
    describe_run,
    measured_config,
    model_config_names,
)
from cifar_resnets.bench.train_path import train_path
from cifar_resnets.cli.common import user_errors
from cifar_resnets.errors import ConfigError
from cifar_resnets.training.step_graph import Recorder

# The plain loop reads its batches from the GPU-resident loader (on the CPU: from CPU tensors), so the
# Trainer it is compared with does too.
RAW_SETTINGS = ["data.loader=gpu"]
PLAIN_PRECISIONS = ("32-true", "32", "bf16-mixed")  # float16 would need a GradScaler, which this loop lacks


def plain_precision(cfg: Any) -> str:
    """The config's Lightning precision, refused unless this loop runs it as the Trainer would."""
    from cifar_resnets.training.build import resolve_precision

    precision = str(resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    if precision not in PLAIN_PRECISIONS:
        raise ConfigError(f"trainer.precision={precision}: the raw loop runs {' or '.join(PLAIN_PRECISIONS)}")
    return precision


def forward_backward(
    module: Any, autocast_dtype: torch.dtype | None
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor]]:
    """One step's forward, loss and backward, as a plain loop writes it around the suite's module
    (its forward and its ``loss``).

    Autocast without its weight-cast cache, which CUDA graph capture cannot use
    (https://pytorch.org/docs/stable/notes/cuda.html#usage-with-torch-cuda-amp).
    """

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
        dtype = autocast_dtype or torch.float32
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32, cache_enabled=False):
            logits = module(x)
        loss = module.loss(logits, y)
        loss.backward()
        return (loss.detach(),)

    return step


@dataclass
class RawLoop:
    """One composed config's training steps in a plain loop: what the Trainer is measured against."""

    module: torch.nn.Module  # the ClassifierModule, used as a plain nn.Module (forward and loss)
    loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]
    graph: Any  # the CapturedTrainStep running ``step``, or None for eager steps
    mark_step_begin: bool  # the net records its own CUDA graphs (torch.compile "reduce-overhead")
    precision: str

    def steps(self, total: int) -> Iterator[int]:
        """Yields each step's index just before running it, so callers can read clocks in between."""
        k = 0
        while k < total:
            self.loader.set_epoch(k // len(self.loader))
            for x, y in self.loader:
                yield k
                if self.graph is not None:
                    self.graph(x, y)
                else:
                    if self.mark_step_begin:
                        torch.compiler.cudagraph_mark_step_begin()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step(x, y)
                self.optimizer.step()
                self.scheduler.step()
                k += 1
                if k >= total:
                    return


def build_raw_loop(cfg: Any, total_steps: int, recorder: Recorder | None = None) -> RawLoop:
    """A ``RawLoop`` from a composed ``train`` config; ``recorder`` replaces CUDA graph recording (and
    asks for a recorded step where the config has none)."""
    from hydra.utils import instantiate

    from cifar_resnets.data.gpu_loader import GPUBatchLoader
    from cifar_resnets.training.build import (
        CUDA_GRAPH_MODES,
        build_datamodule,
        build_module,
        build_optimizer_factory,
        compile_mode,
        cudnn_benchmark,
        uses_step_graph,
    )
    from cifar_resnets.training.module import AUTOCAST_DTYPES, parameter_groups
    from cifar_resnets.training.step_graph import CapturedTrainStep, record_cuda_graph

    precision = plain_precision(cfg)
    L.seed_everything(cfg.seed)
    torch.compiler.reset()
    torch.backends.cudnn.benchmark = cudnn_benchmark(cfg)  # as build_trainer sets it for the Trainer
    device = training_device()
    dm = build_datamodule(cfg)
    images, labels = dm.train_arrays()
    loader = GPUBatchLoader(
        images, labels, dm.batch_size, train=True, mean=dm.mean, std=dm.std, seed=dm.seed,
        augment=dm.augment, device=device, num_classes=dm.num_classes, image_size=dm.image_size,
    )  # fmt: skip
    module = build_module(cfg, dm.num_classes).to(device).train()  # its net, compiled as for cifar-train
    optimizer = build_optimizer_factory(cfg)(parameter_groups(module.net, cfg.module.weight_decay_bn_bias))
    scheduler = instantiate(cfg.schedule)(optimizer, total_steps=total_steps, steps_per_epoch=len(loader))
    step = forward_backward(module, AUTOCAST_DTYPES.get(precision))
    graph = None
    if recorder is not None or uses_step_graph(cfg):
        graph = CapturedTrainStep(step, module.net.parameters, recorder=recorder or record_cuda_graph)
    mark = compile_mode(cfg) in CUDA_GRAPH_MODES
    return RawLoop(module, loader, optimizer, scheduler, step, graph, mark, precision)


def raw_path(
    root: Path,
    model: str,
    batch_size: int,
    steps: int,
    warmup: int,
    workdir: Path,
    extra: Iterable[str] = (),
) -> Result:
    """``steps`` timed steps of ``RawLoop`` after ``warmup`` untimed ones (``extra``: cifar-train
    overrides, ``RAW_SETTINGS`` first)."""
    total = warmup + steps
    cfg = measured_config(
        root, model, batch_size, total, [*RAW_SETTINGS, *extra], workdir / f"raw_{model}_{batch_size}"
    )
    loop = build_raw_loop(cfg, total)
    reset_peak_memory()
    t0 = 0.0
    for k in loop.steps(total):
        if k == warmup:
            sync()
            t0 = time.perf_counter()
    sync()
    seconds = time.perf_counter() - t0
    return Result(
        model, batch_size, "raw", steps * batch_size / seconds, steps, seconds, peak_memory_mib(),
        loop.precision, describe_run(cfg, "gpu", loop.graph) + " (no Lightning)",
    )  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["resnet20"], help="model config names (conf/model)")
    p.add_argument("--batch-size", nargs="+", type=int, default=[128])
    p.add_argument("--steps", type=int, default=200, help="timed steps of each loop")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: as cifar-bench's)")
    p.add_argument("--data-root", default=None, help="holds cifar-10-batches-py (default: synthetic)")
    p.add_argument("--synthetic-train", type=int, default=50_000, help="synthetic training images")
    p.add_argument("--override", action="append", default=[], help="cifar-train override for both loops")
    p.add_argument("--json", type=Path, default=None, help="write the results here, after each measurement")
    args = p.parse_args(argv)
    if args.steps < 1 or min(args.batch_size) < 1 or (args.warmup is not None and args.warmup < 0):
        p.error("--steps and --batch-size must be >= 1, --warmup >= 0")
    unknown = [m for m in args.model if m not in model_config_names()]
    if unknown:
        p.error(f"--model: unknown {unknown}; choose from {', '.join(model_config_names())}")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    check_json_target(args.json)
    report: dict[str, Any] = {"device": device_name(), "torch": torch.__version__, "results": [], "share": []}
    extra = [*RAW_SETTINGS, *args.override]
    with tempfile.TemporaryDirectory(prefix="raw-loop-") as tmp:
        workdir = Path(tmp)
        root, report["data"] = prepare_data(args.data_root, args.synthetic_train, workdir)
        base = bench_overrides(root, args.model[0], args.batch_size[0], 1)
        cfg = checked_config(extra, base, workdir / "override_check")
        plain_precision(cfg)  # before the Trainer's measurement, not after it
        warmup = default_warmup(cfg) if args.warmup is None else args.warmup
        print(f"raw loop vs cifar-train on {report['device']}; data: {report['data']}", flush=True)
        results: list[Result] = []
        for model in args.model:
            for bs in args.batch_size:
                trainer = train_path(root, model, bs, args.steps, warmup, workdir, extra)
                raw = raw_path(root, model, bs, args.steps, warmup, workdir, args.override)
                share = 1 - trainer.images_per_second / raw.images_per_second
                results += [trainer, raw]
                report["results"] += [asdict(trainer), asdict(raw)]
                report["share"].append({"model": model, "batch_size": bs, "lightning_share": round(share, 4)})
                print(
                    f"{model} bs{bs}: cifar-train {trainer.images_per_second:,.0f}, raw loop "
                    f"{raw.images_per_second:,.0f} images/s; Lightning's share {100 * share:.1f} %",
                    flush=True,
                )
                write_json(args.json, report)
    report["table"] = format_table(results)
    print(report["table"])
    write_json(args.json, report)
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with user_errors("raw_loop.py"):
        return measure(args)


if __name__ == "__main__":
    main()
