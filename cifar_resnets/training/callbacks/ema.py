"""Exponential moving average of the weights without per-step host syncs or Python loops.

Lightning's ``EMAWeightAveraging`` loops over parameters in Python and syncs host and GPU on every update,
a large share of a launch-bound CIFAR step; here one ``torch._foreach_lerp_`` updates every tensor. It
also keeps the averaging horizon with ``update_every_n_steps`` and never swaps in the untrained weights
before the first update (https://github.com/Lightning-AI/pytorch-lightning/issues/21724). The checkpoint
layout stays Lightning's, and updates are in place so recorded CUDA graphs stay valid.
"""

from __future__ import annotations

import itertools
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging

from cifar_resnets.errors import ConfigError


class FastEMA(WeightAveraging):
    """EMA of parameters and buffers, updated every ``update_every_n_steps`` optimizer steps.

    Args:
        decay: per-step decay (the CBAM attention-ResNet recipe: 0.999); an update after N steps uses
            ``decay**N``.
        update_every_n_steps: optimizer steps between updates (1 = every step, as Lightning's callback).
        update_starting_at_step: first zero-based step that updates (None = step 0); the first update
            copies the weights, later ones average.
        device: where the averaged copy lives (None = the module's device).
        use_buffers: also average buffers (BatchNorm statistics), as ``EMAWeightAveraging`` does.
    """

    def __init__(
        self,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        device: torch.device | str | int | None = None,
        use_buffers: bool = True,
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"callbacks.ema.decay must be in [0, 1], got {decay}")
        if int(update_every_n_steps) < 1:
            raise ConfigError(f"callbacks.ema.update_every_n_steps must be >= 1, got {update_every_n_steps}")
        if update_starting_at_step is not None and update_starting_at_step < 0:
            raise ConfigError(
                f"callbacks.ema.update_starting_at_step must be >= 0 or null, got {update_starting_at_step}"
            )
        super().__init__(device=device, use_buffers=use_buffers)
        self.decay = float(decay)
        self.update_every_n_steps = int(update_every_n_steps)
        self.update_starting_at_step = update_starting_at_step
        self._host_n_averaged = 0  # mirrors AveragedModel.n_averaged without reading the device
        self._swapped = False
        self._pairs: tuple[list[torch.Tensor], ...] | None = None

    # ----- when -----
    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None:
            return False
        start = self.update_starting_at_step or 0
        return step_idx >= start and (step_idx - start) % self.update_every_n_steps == 0

    # ----- the update -----
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            self._host_n_averaged = 0
            self._pairs = None

    def _tensor_pairs(self, pl_module: L.LightningModule) -> tuple[list[torch.Tensor], ...]:
        """(averaged float, current float, averaged other, current other), paired by position."""
        if self._pairs is None:
            assert self._average_model is not None
            averaged = self._average_model.module
            if self._use_buffers:
                avg_tensors = itertools.chain(averaged.parameters(), averaged.buffers())
                cur_tensors = itertools.chain(pl_module.parameters(), pl_module.buffers())
            else:
                avg_tensors, cur_tensors = averaged.parameters(), pl_module.parameters()
            avg_f, cur_f, avg_o, cur_o = [], [], [], []
            for a, c in zip(avg_tensors, cur_tensors, strict=True):
                a, c = a.detach(), c.detach()
                if a.is_floating_point():
                    avg_f.append(a)
                    cur_f.append(c)
                else:  # e.g. BatchNorm's num_batches_tracked: a count, not something to average
                    avg_o.append(a)
                    cur_o.append(c)
            self._pairs = (avg_f, cur_f, avg_o, cur_o)
        return self._pairs

    @torch.no_grad()
    def update_average(self, pl_module: L.LightningModule) -> None:
        """One EMA update from the module's current weights (no host-device sync)."""
        assert self._average_model is not None
        avg_f, cur_f, avg_o, cur_o = self._tensor_pairs(pl_module)
        if self._host_n_averaged == 0:
            torch._foreach_copy_(avg_f, cur_f)
        else:
            torch._foreach_lerp_(avg_f, cur_f, 1.0 - self.decay**self.update_every_n_steps)
        if avg_o:
            torch._foreach_copy_(avg_o, cur_o)
        self._average_model.n_averaged.add_(1)
        self._host_n_averaged += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step_idx = trainer.global_step - 1
        if trainer.global_step > self._latest_update_step and self.should_update(step_idx=step_idx):
            self.update_average(pl_module)
            self._latest_update_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Updates are per step only."""

    # ----- validation and the end of training: only once the average holds something -----
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None and self._host_n_averaged > 0:
            self._swap_models(pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None and self._host_n_averaged > 0:
            self._copy_average_to_current(pl_module)

    # ----- checkpoints: Lightning's layout; the host count is re-read once on load -----
    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        if self._average_model is not None:
            self._host_n_averaged = int(self._average_model.n_averaged)
