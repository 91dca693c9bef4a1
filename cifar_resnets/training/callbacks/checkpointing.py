"""Checkpoints that let a stopped run continue where it stopped: on SIGTERM, and inside long epochs.

``SigtermCheckpoint`` saves ``last.ckpt`` when a scheduler sends SIGTERM; ``MidEpochCheckpoint`` every N
steps. With submitit, Lightning's auto-requeue is off: both requeue, on different signals, so a job
could be requeued twice or by neither (https://github.com/Lightning-AI/pytorch-lightning/issues/14610);
sweeps use a fixed ``hydra.sweep.dir`` so a requeued job finds its folder
(https://github.com/Lightning-AI/pytorch-lightning/issues/13773).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

# Exit status of cifar-train after SIGTERM: checkpoint saved, run not finished (128 + SIGTERM, what a
# shell reports for a terminated process, so scripts and schedulers do not take the run as complete).
EXIT_INTERRUPTED = 143


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
