"""The files of a run folder, written in one place.

Every run folder holds the resolved ``config.yaml``, ``checkpoints/`` (``last.ckpt`` and the newest
epoch file), its loggers' files (TensorBoard event files, the CSV logger's ``metrics.csv``),
``metrics.json`` (the final metrics, or the status and error of a
run that did not complete, with ``error.txt`` holding its traceback) and ``training_history.png``.
Files are written by the first process only, through a temporary file renamed into place, so a crash
never leaves a half-written one and a sweep's reader sees either the old or the new version.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import OmegaConf

from cifar_resnets.reporting.plots import write_training_history

log = logging.getLogger(__name__)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file so a crash never leaves a half-written file."""
    _write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunFolder:
    """One run's folder (``paths.output_dir``) and the files ``train`` writes into it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

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
        write_json(self.path / "metrics.json", record)
        _write_text(self.path / "error.txt", "".join(traceback.format_exception(err)))
        log.error("run %s: %s", status, message)

    def write_training_history(self) -> None:
        """``training_history.png``: the curves without TensorBoard, from the run's logged scalars."""
        write_training_history(self.path)
