"""Callbacks that keep long runs safe: stop on divergence, checkpoint on SIGTERM.

``DivergenceGuard`` stops a run whose loss turns NaN/Inf and makes sure no checkpoint with broken
weights is ever written. Lightning's ``EarlyStopping(check_finite=True)`` only looks at a
monitored epoch metric, and ``detect_anomaly`` synchronises every step; here the finiteness test
stays on the device and is read once every ``trainer.log_every_n_steps`` steps, at epoch end and
before every checkpoint save.

``SigtermCheckpoint`` saves ``last.ckpt`` when SIGTERM arrives (what SLURM and most schedulers send
before they stop a job) so the same command with ``ckpt_path=auto`` continues exactly where it
stopped. Lightning itself catches SIGTERM (``trainer.received_sigterm``) and leaves the loops with
``SIGTERMException`` at the next batch boundary; this callback saves at that moment.

On SLURM with submitit, submitit owns requeueing (PITFALLS C9, option a): it requeues on its own
signal (SIGUSR2) and reruns the job, Lightning's auto-requeue is switched off in ``build_trainer``,
and the rerun resumes from ``last.ckpt`` because the sweep is launched with ``ckpt_path=auto`` and a
fixed ``hydra.sweep.dir`` (PITFALLS C10).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cifar_resnets.errors import ConfigError, UserError

log = logging.getLogger(__name__)

# Exit status of cifar-train after SIGTERM: checkpoint saved, run not finished (128 + SIGTERM, what a
# shell reports for a terminated process, so scripts and schedulers do not take the run as complete).
EXIT_INTERRUPTED = 143


class TrainingDiverged(UserError, RuntimeError):
    """The training loss became NaN or Inf; the message names step, epoch and learning rate.

    The run failed rather than its input being refused, hence exit status 1.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        step: int | None = None,
        epoch: int | None = None,
        lr: float | None = None,
        last_checkpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.step, self.epoch, self.lr, self.last_checkpoint = step, epoch, lr, last_checkpoint

    def __reduce__(self):  # picklable with its fields (joblib sends job failures between processes)
        return (type(self), (str(self), self.step, self.epoch, self.lr, self.last_checkpoint))

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "lr": self.lr,
            "last_checkpoint": self.last_checkpoint,
        }


class TrainingInterrupted(SystemExit):
    """SIGTERM stopped the run after saving ``last.ckpt``; exits with ``EXIT_INTERRUPTED``.

    A ``SystemExit``, so a Hydra sweep stops too instead of starting its next job on a machine that
    is being taken away.
    """

    def __init__(self, checkpoint: str | None = None) -> None:
        super().__init__(EXIT_INTERRUPTED)
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        saved = f"saved {self.checkpoint}" if self.checkpoint else "no checkpoint saved"
        return f"stopped by SIGTERM ({saved}); run the same command with ckpt_path=auto to resume"


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where ``last.ckpt`` lives: the folder of the first ModelCheckpoint, else ``<run>/checkpoints``."""
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return (
                Path(callback.dirpath)
                / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
            )
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def existing_last_checkpoint(trainer: L.Trainer) -> str | None:
    path = last_checkpoint_path(trainer)
    return str(path) if path.is_file() else None


def _current_lr(trainer: L.Trainer) -> float | None:
    if not trainer.optimizers:
        return None
    return float(trainer.optimizers[0].param_groups[0]["lr"])


class DivergenceGuard(L.Callback):
    """Raise ``TrainingDiverged`` once the loss is NaN/Inf, and never save non-finite weights.

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
        """Read the recorded losses (one host sync); raise ``TrainingDiverged`` if one was NaN/Inf."""
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
        raise TrainingDiverged(
            f"training diverged: {what} at {place} with lr {lr_text}; {kept}; "
            "lower optim.lr or set trainer.gradient_clip_val",
            step=step,
            epoch=epoch,
            lr=lr,
            last_checkpoint=last,
        )


class SigtermCheckpoint(L.Callback):
    """On SIGTERM, save ``last.ckpt`` at the batch boundary where Lightning stops, then let it stop.

    The save is skipped when the signal arrives during validation (the checkpoint would hold a
    half-finished validation pass): the latest regular checkpoint is resumed instead.
    """

    def __init__(self) -> None:
        self.saved_path: str | None = None
        self.interrupted = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.interrupted = True
        if trainer.state.fn != TrainerFn.FITTING:
            self.saved_path = existing_last_checkpoint(trainer)  # fit had finished: last.ckpt is complete
            return
        if trainer.validating or trainer.sanity_checking:
            self.saved_path = existing_last_checkpoint(trainer)
            log.warning("SIGTERM during validation: resume from the latest checkpoint %s", self.saved_path)
            return
        path = last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        self.saved_path = str(path)
        log.warning(
            "SIGTERM: saved %s at step %d (epoch %d); rerun the same command with ckpt_path=auto to resume",
            path,
            trainer.global_step,
            trainer.current_epoch,
        )


class MidEpochCheckpoint(ModelCheckpoint):
    """Refreshes ``last.ckpt`` every ``every_n_train_steps`` optimizer steps, inside epochs only.

    Epoch-end saves are the main ``ModelCheckpoint``'s. Lightning's ``on_train_end`` fallback (write
    ``last.ckpt`` if this callback never saved) is switched off: it would overwrite the epoch-end
    ``last.ckpt`` after training ends, when an EMA callback has already put the averaged weights into
    the model, and a resume from that file would not match an uninterrupted run.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 1000) -> None:
        super().__init__(
            dirpath=dirpath,
            save_last=True,
            save_top_k=0,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass
