"""The progress bar of ``cifar-train``: Lightning's, plus the training loss, images/s and the time left."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from cifar_resnets.training.schedules import planned_steps


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
        per_epoch = getattr(trainer.datamodule, "steps_per_epoch", None)
        total = planned_steps(trainer.max_steps, trainer.max_epochs, per_epoch)
        if total:
            metrics["left"] = _format_seconds(elapsed / steps * max(total - trainer.global_step, 0))
        return metrics


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
