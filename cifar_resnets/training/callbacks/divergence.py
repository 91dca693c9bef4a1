"""Stop a run whose loss turns NaN/Inf, and never write a checkpoint with broken weights.

Lightning's ``EarlyStopping(check_finite=True)`` only looks at a monitored epoch metric, and
``detect_anomaly`` synchronises every step; here the finiteness test stays on the device and is read
once every ``trainer.log_every_n_steps`` steps, at epoch end and before every checkpoint save.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from cifar_resnets.errors import ConfigError, RunError
from cifar_resnets.training.callbacks.checkpointing import existing_last_checkpoint


def _current_lr(trainer: L.Trainer) -> float | None:
    if not trainer.optimizers:
        return None
    return float(trainer.optimizers[0].param_groups[0]["lr"])


class DivergenceGuard(L.Callback):
    """Raise a ``RunError`` (exit status 1, where it happened in ``details``) once the loss is NaN/Inf,
    and never save non-finite weights.

    Args:
        check_every_n_steps: how often the recorded losses are read on the host (one sync each);
            ``None`` uses ``trainer.log_every_n_steps``. Checks also run at every epoch end and before
            every checkpoint save, so a checkpoint never holds weights from after the divergence.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise ConfigError(f"check_every_n_steps={check_every_n_steps} must be >= 1 (or null)")
        self.check_every_n_steps = check_every_n_steps
        # The losses since the last check, one slot per step, and each slot's (step, epoch, batch, lr) on
        # the host: recording a step costs one device copy; the host reads them at each check.
        self._losses: torch.Tensor | None = None
        self._slots: list[tuple[int, int, int | None, float | None]] = []
        self._step_lr: float | None = None

    def _every(self, trainer: L.Trainer) -> int:
        return self.check_every_n_steps or max(int(trainer.log_every_n_steps or 1), 1)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Per-step schedulers have already moved on by on_train_batch_end: remember the lr this step uses.
        self._step_lr = _current_lr(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        every = self._every(trainer)
        if self._losses is None or self._losses.device != loss.device or self._losses.numel() < every:
            self.check(trainer)  # the buffer is replaced: read what it holds first
            self._losses = torch.zeros(every, dtype=torch.float32, device=loss.device)
        # global_step: the optimizer step this loss belongs to, counted from 1
        self._losses[len(self._slots)].copy_(loss.detach())
        self._slots.append((trainer.global_step, trainer.current_epoch, batch_idx, self._step_lr))
        if len(self._slots) >= every:
            self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # Runs before the file is written: raising here leaves the previous checkpoint in place.
        self.check(trainer)
        tensors = [t for t in pl_module.state_dict().values() if t.is_floating_point()]
        finite = not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
        if trainer.strategy.reduce_boolean_decision(not finite, all=False):
            self._raise(trainer, "the weights are not finite", trainer.global_step)

    def check(self, trainer: L.Trainer) -> None:
        """Read the recorded losses (one host sync); raise ``RunError`` if one was NaN/Inf."""
        slots, self._slots = self._slots, []
        first_bad, bad_loss = None, None
        if slots and self._losses is not None:
            losses = self._losses[: len(slots)].tolist()
            first_bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
            bad_loss = None if first_bad is None else losses[first_bad]
        # Every rank decides together, so no rank is left waiting in a collective when another stops.
        if not trainer.strategy.reduce_boolean_decision(first_bad is not None, all=False):
            return
        if first_bad is None:
            self._raise(trainer, "the loss is not finite on another rank", trainer.global_step)
        step, epoch, batch, lr = slots[first_bad]
        self._raise(trainer, f"the loss is {bad_loss}", step, (epoch, batch, lr))

    def _raise(
        self,
        trainer: L.Trainer,
        what: str,
        step: int,
        where: tuple[int, int | None, float | None] | None = None,
    ) -> None:
        epoch, batch, lr = where or (trainer.current_epoch, None, _current_lr(trainer))
        last = existing_last_checkpoint(trainer)
        place = f"step {step} (epoch {epoch}" + (f", batch {batch}" if batch is not None else "") + ")"
        lr_text = "?" if lr is None or math.isnan(lr) else f"{lr:g}"
        kept = f"the last good checkpoint is kept: {last}" if last else "no checkpoint was written before"
        raise RunError(
            f"training diverged: {what} at {place} with lr {lr_text}; {kept}; "
            "lower optim.lr or set trainer.gradient_clip_val",
            exit_code=1,
            step=step,
            epoch=epoch,
            lr=lr,
            last_checkpoint=last,
        )
