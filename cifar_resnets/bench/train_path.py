"""The ``cifar-train`` path: a real cifar-train fit, timed from inside.

The Trainer, datamodule and module are the ones ``training/build.py`` makes for cifar-train; only a
timing callback is added, so what is measured is what users run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import torch

from cifar_resnets.bench.device import peak_memory_mib, reset_peak_memory, sync
from cifar_resnets.bench.results import Result
from cifar_resnets.bench.train_config import describe_run, measured_config
from cifar_resnets.errors import ConfigError


class StepTimer(L.Callback):
    """Times optimizer steps ``warmup`` .. the last one, with a device sync at both ends.

    The clock stops when the last step's batch ends, as a plain loop's would after its last step: the
    end-of-fit work that follows (the epoch's closing logs, ``on_train_end`` hooks) happens once per run,
    and inside a few hundred timed steps it would count as a per-step cost. A fit that ends on
    ``max_epochs`` instead stops the clock at ``on_train_end``.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None and trainer.global_step == self.warmup:
            sync()
            self.start, self.steps = time.perf_counter(), -trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None and self.end is None and trainer.global_step == trainer.max_steps:
            self._stop(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.start is not None and self.end is None:
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        sync()
        self.end = time.perf_counter()
        self.steps += trainer.global_step


def train_path(
    root: Path,
    model: str,
    batch_size: int,
    steps: int,
    warmup: int,
    workdir: Path,
    extra: Iterable[str] = (),
) -> Result:
    """``steps`` timed steps of cifar-train after ``warmup`` untimed ones (``extra``: cifar-train
    overrides on top)."""
    from cifar_resnets.training.build import build_datamodule, build_module, build_trainer

    cfg = measured_config(
        root, model, batch_size, warmup + steps, extra, workdir / f"train_{model}_{batch_size}"
    )
    L.seed_everything(cfg.seed)
    torch.compiler.reset()  # a fresh compilation per measurement; cuDNN autotuning: build_trainer sets it
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    timer = StepTimer(warmup)
    trainer = build_trainer(cfg)
    trainer.callbacks.append(timer)
    reset_peak_memory()
    trainer.fit(module, datamodule=datamodule)
    if timer.start is None or timer.end is None or timer.steps <= 0:
        raise ConfigError(f"cifar-train: the run ended before the {warmup} warm-up steps were over")
    seconds = timer.end - timer.start
    notes = describe_run(cfg, "gpu" if datamodule.use_gpu_loader else "cpu", module.step_graph)
    return Result(
        model, batch_size, "cifar-train", timer.steps * batch_size / seconds, timer.steps, seconds,
        peak_memory_mib(), str(trainer.precision), notes,
    )  # fmt: skip
