"""Training throughput per epoch, timed at epoch boundaries only.

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
