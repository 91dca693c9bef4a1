"""One training run from a composed config: fit, test the final weights, write the run folder.

``cifar-train`` (``cifar_resnets.cli.train``) calls ``train``; so do the tests, ``cifar-bench`` and
``cifar-reproduce --in-process``. Every run folder holds the resolved ``config.yaml``,
``checkpoints/last.ckpt``, TensorBoard event files, ``metrics.json`` and ``training_history.png``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.config.checks import check_config
from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.checkpoint import read_checkpoint
from cifar_resnets.reporting.plots import write_training_history
from cifar_resnets.reproduce.tables import log_hparams
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer, run_config
from cifar_resnets.training.callbacks.reliability import (
    SigtermCheckpoint,
    TrainingDiverged,
    TrainingInterrupted,
)
from cifar_resnets.training.callbacks.throughput import ThroughputLogger

log = logging.getLogger(__name__)


def _resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    # Lightning only warns and starts from scratch when a resume checkpoint is missing (PITFALLS D5).
    if ckpt_path is None:
        return None
    if ckpt_path == "auto":
        # The same command again (after a kill, SIGTERM or requeue) continues this run folder's last.ckpt.
        path = output_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            log.info("ckpt_path=auto: no %s yet, starting from scratch", path)
            return None
    else:
        path = Path(ckpt_path)
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path={ckpt_path} does not exist; use a checkpoints/last.ckpt or ckpt_path=auto"
            )
    # Refuse truncated, foreign or code-carrying files with one line before any training state is built.
    read_checkpoint(path)
    log.info("resuming from %s", path)
    return str(path)


def _record_failure(
    output_dir: Path, trainer: L.Trainer | None, status: str, err: BaseException, **extra: Any
) -> None:
    """metrics.json with the status and the error, plus error.txt with the traceback (sweeps read both)."""
    if rank_zero_only.rank != 0:
        return
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    record: dict[str, Any] = {"status": status, "error": f"{type(err).__name__}: {message}", **extra}
    if trainer is not None:
        record.update(epochs=trainer.current_epoch, steps=trainer.global_step)
    write_json(output_dir / "metrics.json", record)
    (output_dir / "error.txt").write_text("".join(traceback.format_exception(err)))
    log.error("run %s: %s", status, message)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file so a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the final weights; returns (and writes) the run's metrics."""
    output_dir = Path(cfg.paths.output_dir)
    try:
        check_config(cfg)
    except ConfigError as err:
        if output_dir.is_dir():  # a sweep job's folder (Hydra made it): record why the job failed
            _record_failure(output_dir, None, "failed", err)
        raise
    L.seed_everything(cfg.seed, workers=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(run_config(cfg)))

    trainer: L.Trainer | None = None
    try:
        resume = _resume_path(cfg.ckpt_path, output_dir)
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule.num_classes)
        trainer = build_trainer(cfg)

        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        fit_seconds = time.perf_counter() - start

        metrics: dict[str, Any] = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
        }
        if cfg.test_after_fit:
            for results in trainer.test(module, datamodule=datamodule, verbose=False):
                metrics.update({k: float(v) for k, v in results.items()})
    except SIGTERMException as err:
        # Lightning stopped at a batch boundary; SigtermCheckpoint saved last.ckpt there.
        saved = next((c.saved_path for c in trainer.callbacks if isinstance(c, SigtermCheckpoint)), None)
        interrupted = TrainingInterrupted(saved)
        _record_failure(output_dir, trainer, "interrupted", interrupted, checkpoint=saved)
        raise interrupted from err
    except TrainingDiverged as err:
        _record_failure(output_dir, trainer, "diverged", err, **err.as_dict())
        raise
    except Exception as err:
        # Recorded in the run folder, so a sweep shows which job failed and why (PITFALLS C7).
        _record_failure(output_dir, trainer, "failed", err)
        raise
    throughput = next((c for c in trainer.callbacks if isinstance(c, ThroughputLogger)), None)
    metrics.update(
        status="completed",
        model=cfg.model.name,
        data=getattr(datamodule, "name", type(datamodule).__name__),
        seed=cfg.seed,
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        params=sum(p.numel() for p in module.net.parameters()),
        fit_seconds=round(fit_seconds, 2),
        train_seconds=round(throughput.train_seconds, 2) if throughput else round(fit_seconds, 2),
        train_images_per_second=round(throughput.images_per_second, 1) if throughput else None,
        precision=str(trainer.precision),
        device=str(trainer.strategy.root_device),
    )
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", metrics)
        log.info("metrics: %s", json.dumps(metrics, sort_keys=True))
        # The HPARAMS tab of TensorBoard and a curves figure that needs no TensorBoard (seed 001).
        log_hparams(trainer.loggers, run_config(cfg), metrics)
        write_training_history(output_dir)
    return metrics
