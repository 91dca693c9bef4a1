"""Callbacks for what Lightning's own do not cover cheaply.

``ThroughputLogger`` exists because ``lightning.pytorch.callbacks.ThroughputMonitor``
synchronises the GPU after every batch to time it, which costs small CIFAR nets a large share
of their speed; here the clock is read (after one synchronisation) only at epoch boundaries
and around validation.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ThroughputLogger(L.Callback):
    """Logs ``train/images_per_second`` per epoch, with validation time excluded.

    ``train_seconds`` and ``train_images`` accumulate over the run (and survive resume through
    the callback state) so the CLI can report the run's training throughput.
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.train_images = 0
        self._epoch_start: float | None = None
        self._epoch_seconds = 0.0
        self._epoch_images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module.device)
        self._epoch_start = time.perf_counter()
        self._epoch_seconds, self._epoch_images = 0.0, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._epoch_images += batch[0].shape[0]

    def _pause(self, device: torch.device) -> None:
        if self._epoch_start is not None:
            _sync(device)
            self._epoch_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training:
            self._pause(pl_module.device)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training and self._epoch_images:
            self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause(pl_module.device)
        self.train_seconds += self._epoch_seconds
        self.train_images += self._epoch_images
        if self._epoch_seconds > 0:
            pl_module.log("train/images_per_second", self._epoch_images / self._epoch_seconds)

    @property
    def images_per_second(self) -> float:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "train_images": self.train_images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = state_dict["train_seconds"]
        self.train_images = state_dict["train_images"]


class TrainProgressBar(TQDMProgressBar):
    """Lightning's progress bar plus the training loss, images/s and the time left for the whole run.

    The loss shown is the mean of the last logging window (``train/loss_step``), read from the GPU once
    per window, on the step that logs it, where the logger reads it anyway: reading it on other steps,
    or logging it with ``prog_bar=True`` (which Lightning converts to a Python number after every batch),
    would make those steps wait for the GPU. Images/s and the time left come from the host clock and
    the step counter.
    """

    def __init__(self, refresh_rate: int = 20, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._start: float | None = None
        self._start_step = 0
        self._loss: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._start, self._start_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        every = trainer.log_every_n_steps
        if every and trainer.global_step % every == 0:  # this step wrote a new window mean
            loss = trainer.callback_metrics.get("train/loss_step")
            self._loss = None if loss is None else float(loss)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        steps = trainer.global_step - self._start_step
        if self._start is None or steps <= 0 or not trainer.training:
            return metrics
        if self._loss is not None:
            metrics["loss"] = f"{self._loss:.3g}"
        elapsed = time.perf_counter() - self._start
        batch_size = getattr(trainer.datamodule, "batch_size", None)
        if batch_size:
            metrics["img/s"] = f"{steps * batch_size / elapsed:,.0f}"
        total = _total_steps(trainer)
        if total:
            metrics["left"] = _format_seconds(elapsed / steps * max(total - trainer.global_step, 0))
        return metrics


def _total_steps(trainer: L.Trainer) -> int | None:
    if trainer.max_steps and trainer.max_steps > 0:
        return trainer.max_steps
    per_epoch = getattr(trainer.datamodule, "steps_per_epoch", None)
    if per_epoch and trainer.max_epochs and trainer.max_epochs > 0:
        return per_epoch * trainer.max_epochs
    return None


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
