"""Whether a run may start in its folder, decided before anything is written there.

A run folder is the user's result: a new run into one is refused with the two ways on, and a
continuation is checked whole (``resume.resume_checkpoint``) before it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from cifar_resnets.errors import RunError, UserError
from cifar_resnets.training.resume import resume_checkpoint
from cifar_resnets.training.run_folder import ExistingRun, RunFolder
from cifar_resnets.training.run_lock import first_process

# Lightning's max_epochs when neither limit is set.
LIGHTNING_DEFAULT_MAX_EPOCHS = 1000


@dataclass
class Start:
    """The decision: ``finished`` (nothing to do), else the checkpoint to resume from (None: fresh)."""

    existing: ExistingRun | None
    resume: str | None = None
    finished: bool = False


def limits_reached(run: ExistingRun, max_epochs: int | None, max_steps: int | None) -> bool:
    """True when a completed run's epochs or steps already meet the limits: it would train no further."""
    steps, epochs = run.steps or 0, run.epochs or 0
    if max_steps is not None and max_steps >= 0 and steps >= max_steps:
        return True
    if max_epochs is None and (max_steps is None or max_steps < 0):
        max_epochs = LIGHTNING_DEFAULT_MAX_EPOCHS
    return max_epochs is not None and max_epochs >= 0 and epochs >= max_epochs


def finished_message(folder: RunFolder, run: ExistingRun) -> str:
    return (
        f"run folder {folder.path} holds {run.describe()}: nothing to do, nothing changed; raise "
        "trainer.max_epochs or trainer.max_steps to train it further"
    )


def decide_start(cfg: DictConfig, folder: RunFolder) -> Start:
    """The decision for ``cfg`` in ``folder``; raises a one-line ``UserError`` for a refusal (recorded
    under ``attempts/`` when the folder holds a run and a continuation was asked for)."""
    if not first_process():
        # Another rank of a distributed run: rank 0 decided before it started this one, and may already
        # have written config.yaml.
        return Start(None, resume_checkpoint(cfg.ckpt_path, folder, cfg))
    existing = folder.existing_run()
    if existing is None:
        return Start(None, resume_checkpoint(cfg.ckpt_path, folder, cfg))
    if cfg.ckpt_path is None:
        raise RunError(
            f"run folder {folder.path} already holds {existing.describe()}; continue it with "
            "ckpt_path=auto, or give this run another folder (hydra.run.dir=...)"
        )
    if existing.status == "completed" and limits_reached(
        existing, cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps")
    ):
        return Start(existing, finished=True)
    folder.record_attempts_aside()
    try:
        return Start(existing, resume_checkpoint(cfg.ckpt_path, folder, cfg))
    except UserError as err:
        folder.record_failure("refused", err)
        raise
