"""Experiment loggers, where Lightning's own cost the training loop time or lose a run's history.

Lightning's ``TensorBoardLogger`` flushes and stats after every logging step, right after a GPU sync (ms
each on a network file system); this one leaves flushing to the writer's thread and ``finalize``.
Lightning's ``CSVLogger`` deletes a non-empty run folder's ``metrics.csv``, losing a resumed run's first
part; this one appends.
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from cifar_resnets.errors import ConfigError


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoard logger whose per-logging-step ``save`` writes ``hparams.yaml`` once and
    leaves flushing to the writer's thread.

    Args:
        flush_secs: how often the writer's thread flushes the event file (TensorBoard shows new points
            after at most this delay). ``SummaryWriter``'s default is 120.
        *args, **kwargs: as for ``lightning.pytorch.loggers.TensorBoardLogger``.
    """

    def __init__(self, *args: Any, flush_secs: int = 10, **kwargs: Any) -> None:
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, (int, float)) or flush_secs <= 0:
            raise ConfigError(f"flush_secs={flush_secs} must be > 0 (seconds between event-file flushes)")
        super().__init__(*args, flush_secs=flush_secs, **kwargs)
        self._saved = False

    @rank_zero_only
    def save(self) -> None:
        # The first call writes hparams.yaml (Lightning's save never rewrites an existing one) and flushes
        # what fit start logged; later calls would only flush again.
        if not self._saved:
            super().save()
            self._saved = True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        # Lightning's finalize saves again on success: let that one check hparams.yaml as it would.
        self._saved = False
        super().finalize(status)


class _AppendingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer that continues an existing ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        # Called by the writer's __init__ in place of Lightning's warn-and-delete: adopt the existing
        # header, so rows appended now line up with it (a new key rewrites the file with a wider header).
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class CSVLogger(LightningCSVLogger):
    """Lightning's CSV logger whose ``metrics.csv`` survives a resume into the same folder."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
