"""The ``raw`` path: the ``fast`` settings in the suite's own plain loop, without Lightning.

Same module, loader, optimizer, schedule, precision, compilation and recorded step as the Trainer's
``fast`` path, so the difference between the two is what the Trainer's loop costs. ``RawLoop`` is also
what ``benchmarks/host_step_time.py`` times with the GPU's share taken out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from cifar_resnets.bench.device import peak_memory_mib, reset_peak_memory, sync, training_device
from cifar_resnets.bench.path_config import describe_path, path_config
from cifar_resnets.bench.results import Result
from cifar_resnets.training.step_graph import Recorder


@dataclass
class RawLoop:
    """One composed config's training steps in a plain loop: what the Trainer is measured against."""

    module: Any
    loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    runner: Any  # the CapturedTrainStep, or None for eager steps
    precision: str

    def steps(self, total: int) -> Iterator[int]:
        """Yields each step's index just before running it, so callers can read clocks in between."""
        k = 0
        while k < total:
            self.loader.set_epoch(k // len(self.loader))
            for x, y in self.loader:
                yield k
                if self.runner is not None:
                    self.runner(x, y)
                else:
                    self.module.mark_step_begin()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.module.train_forward_backward(x, y)
                self.optimizer.step()
                self.scheduler.step()
                k += 1
                if k >= total:
                    return


def build_raw_loop(cfg: Any, total_steps: int, recorder: Recorder | None = None) -> RawLoop:
    """A ``RawLoop`` from a composed ``train`` config; ``recorder`` replaces CUDA graph recording."""
    from hydra.utils import instantiate

    from cifar_resnets.data.gpu_loader import GPUBatchLoader
    from cifar_resnets.training.build import (
        build_datamodule,
        build_module,
        cudnn_benchmark,
        resolve_precision,
        uses_step_graph,
    )
    from cifar_resnets.training.module import AUTOCAST_DTYPES, parameter_groups
    from cifar_resnets.training.step_graph import CapturedTrainStep, record_cuda_graph

    L.seed_everything(cfg.seed)
    torch._dynamo.reset()
    torch.backends.cudnn.benchmark = cudnn_benchmark(cfg)  # as build_trainer sets it for the Trainer
    device = training_device()
    dm = build_datamodule(cfg)
    images, labels = dm.train_arrays()
    loader = GPUBatchLoader(
        images, labels, cfg.data.batch_size, train=True, mean=dm.mean, std=dm.std, seed=cfg.seed,
        augment=dm.augment, device=device, num_classes=dm.num_classes,
    )  # fmt: skip
    module = build_module(cfg, dm.num_classes).to(device).train()
    precision = str(resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    module.autocast_dtype = AUTOCAST_DTYPES.get(precision)
    opt = module.optimizer_factory(parameter_groups(module.net, cfg.module.weight_decay_bn_bias))
    sched = instantiate(cfg.schedule)(opt, total_steps=total_steps, steps_per_epoch=len(loader))
    runner = None
    if recorder is not None or uses_step_graph(cfg):
        runner = CapturedTrainStep(
            module.train_forward_backward, module.net.parameters, recorder=recorder or record_cuda_graph
        )
    return RawLoop(module, loader, opt, sched, runner, precision)


def raw_path(
    root: Path,
    model: str,
    batch_size: int,
    steps: int,
    warmup: int,
    compile_flag: str,
    workdir: Path,
    extra: Iterable[str] = (),
) -> Result:
    """``RawLoop`` on the ``raw`` path's config (``extra``: cifar-train overrides on top)."""
    cfg = path_config(root, model, batch_size, warmup + steps, "raw", compile_flag, extra, workdir)
    loop = build_raw_loop(cfg, warmup + steps)
    reset_peak_memory()
    t0 = 0.0
    for k in loop.steps(warmup + steps):
        if k == warmup:
            sync()
            t0 = time.perf_counter()
    sync()
    seconds = time.perf_counter() - t0
    return Result(
        model, batch_size, "raw", steps * batch_size / seconds, steps, seconds, peak_memory_mib(),
        loop.precision, describe_path(cfg, "gpu", loop.runner) + " (no Lightning)",
    )  # fmt: skip
