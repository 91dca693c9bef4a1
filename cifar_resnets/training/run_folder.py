"""The files of a run folder, written in one place.

Files are written by the first process only, through a temporary file renamed into place, so a crash
never leaves a half-written one. A folder holding a run is the user's result: a failed continuation is
recorded under ``attempts/`` and never over the run's files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import OmegaConf

from cifar_resnets.errors import CheckpointError, RunError
from cifar_resnets.reporting.plots import write_training_history
from cifar_resnets.reporting.runs import ATTEMPTS, read_metrics, run_status
from cifar_resnets.training.run_lock import holds_run

log = logging.getLogger(__name__)

# The causes of a failed write that the user can act on (free space, permissions, the path itself).
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a file stands where a folder must be",
    errno.EEXIST: "a file stands where a folder must be",
    errno.EISDIR: "a folder stands where a file must be",
}


@dataclass
class ExistingRun:
    """What a folder already holds: the status in its ``metrics.json`` (None without one), its counts."""

    status: str | None
    epochs: int | None
    steps: int | None
    metrics: dict[str, Any]
    last_step: int | None  # global step of checkpoints/last.ckpt, None without one

    def describe(self) -> str:
        if self.status == "completed":
            return f"a completed run ({_count(self.epochs, 'epoch')}, {_count(self.steps, 'step')})"
        where = f"checkpoints/last.ckpt at step {self.last_step}" if self.last_step is not None else None
        if self.status is not None:
            text = f"{'an' if self.status[0] in 'aeiou' else 'a'} {self.status} run"
            return f"{text} ({where})" if where else text
        return f"an unfinished run ({where or 'no checkpoint yet'})"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file so a crash never leaves a half-written file."""
    _write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _count(n: int | None, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%fZ")


def _checkpoint_step(path: Path) -> int | None:
    from cifar_resnets.inference.checkpoint import read_checkpoint

    try:
        return int(read_checkpoint(path).get("global_step", 0))
    except (CheckpointError, TypeError, ValueError):
        return None


class RunFolder:
    """One run's folder (``paths.output_dir``) and the files ``train`` writes into it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Where failure records go: the folder itself, or attempts/<time>/ once it holds a run.
        self.failures = self.path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def writes(self) -> bool:
        """Only the first process of a distributed run writes the folder's files."""
        return rank_zero_only.rank == 0

    def existing_run(self) -> ExistingRun | None:
        """The run this folder already holds (``run_lock.holds_run``), or None."""
        if not self.path.is_dir() or not holds_run(self.path):
            return None
        metrics = read_metrics(self.path) or {}
        last_step = _checkpoint_step(self.last_checkpoint) if self.last_checkpoint.is_file() else None

        def count(key: str) -> int | None:
            value = metrics.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return ExistingRun(
            status=run_status(metrics),
            epochs=count("epochs"),
            steps=count("steps"),
            metrics=metrics,
            last_step=last_step,
        )

    def record_attempts_aside(self) -> None:
        """From now on, failure records go to ``attempts/<UTC time>/``, beside the run's own files."""
        self.failures = self.path / ATTEMPTS / _utc_stamp()

    def write_config(self, config: dict[str, Any]) -> None:
        if self.writes:
            self.path.mkdir(parents=True, exist_ok=True)
            _write_text(self.path / "config.yaml", OmegaConf.to_yaml(config))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        if self.writes:
            write_json(self.path / "metrics.json", metrics)
            log.info("metrics: %s", json.dumps(metrics, sort_keys=True))

    def record_failure(
        self, status: str, err: BaseException, trainer: L.Trainer | None = None, **extra: Any
    ) -> None:
        """``metrics.json`` with the status and the error, plus ``error.txt`` with the traceback (a sweep
        reads both to show which job failed and why: Hydra's launchers re-raise only the first failure,
        https://github.com/facebookresearch/hydra/issues/3215)."""
        if not self.writes:
            return
        text = str(err).strip()
        message = text.splitlines()[0] if text else type(err).__name__
        record: dict[str, Any] = {"status": status, "error": f"{type(err).__name__}: {message}", **extra}
        if trainer is not None:
            record.update(epochs=trainer.current_epoch, steps=trainer.global_step)
        # An interruption saved the run's newest state: the run's own record says so (ckpt_path=auto and
        # cifar-reproduce continue from it). Other failures of a continuation go beside the run.
        where = self.path if status == "interrupted" else self.failures
        try:
            where.mkdir(parents=True, exist_ok=True)
            write_json(where / "metrics.json", record)
            _write_text(where / "error.txt", "".join(traceback.format_exception(err)))
        except OSError as write_err:  # a full disk cannot take the record either: the error line says why
            log.error("could not record the failure in %s: %s", where, write_err)
        if status != "refused":  # a refusal is the command's own one-line error
            log.error("run %s: %s", status, message)

    def write_error(self, err: BaseException) -> RunError | None:
        """``err`` as one line naming the path and the cause, when it is a failure to write, else None.

        With no space left it names the last good checkpoint, which the atomic writes kept whole.
        """
        found: BaseException | None = err
        while found is not None and not (isinstance(found, OSError) and found.errno in WRITE_ERRNOS):
            found = found.__cause__ or found.__context__
        if found is None:
            return None
        assert isinstance(found, OSError)
        path = found.filename or self.path
        message = f"cannot write {path}: {WRITE_ERRNOS[found.errno]}"
        if found.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = self.last_checkpoint
            step = _checkpoint_step(kept) if kept.is_file() else None
            message += (
                f"; the last good checkpoint is {kept} (step {step}): free some space and continue with "
                "ckpt_path=auto"
                if step is not None
                else "; no checkpoint was saved: free some space and run again"
            )
        else:
            message += "; choose a writable folder (hydra.run.dir=...)"
        return RunError(message)

    def write_training_history(self) -> None:
        """``training_history.png``: the curves without TensorBoard, from the run's logged scalars."""
        write_training_history(self.path)
