"""One training run from a composed config: fit, test the final weights, write the run folder.

``cifar-train`` (``cifar_resnets.cli.train``) calls ``train``; so do the tests, ``cifar-bench`` and
``cifar-reproduce --in-process``. What the run folder holds: ``run_folder``; whether a run may start in
it (a new run, a continuation, a completed run with nothing left to do): ``run_start``. Every run
records what produced it (``cifar_resnets.provenance``) in ``metrics.json`` and its loggers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from cifar_resnets.config.checks import check_config, check_data_files
from cifar_resnets.config.compose import run_config
from cifar_resnets.errors import ConfigError, RunError
from cifar_resnets.provenance import provenance, utc_now
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer
from cifar_resnets.training.callbacks.checkpointing import SigtermCheckpoint, TrainingInterrupted
from cifar_resnets.training.callbacks.throughput import ThroughputLogger
from cifar_resnets.training.hparams import log_hparams
from cifar_resnets.training.run_folder import RunFolder
from cifar_resnets.training.run_lock import run_folder_lock
from cifar_resnets.training.run_start import decide_start, finished_message

log = logging.getLogger(__name__)


def train(cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fit, then test the final weights; returns (and writes) the run's metrics.

    ``extra_callbacks`` join the configured ones: objects built in code, such as ``cifar-search``'s
    pruning callback, which holds its Optuna trial.
    """
    folder = RunFolder(cfg.paths.output_dir)
    try:
        check_config(cfg)
        check_data_files(cfg)
    except ConfigError as err:
        if folder.path.is_dir():  # a sweep job's folder (Hydra made it): record why the job failed
            with run_folder_lock(folder.path):
                if folder.existing_run() is not None:
                    folder.record_attempts_aside()
                folder.record_failure("failed", err)
        raise
    # Before any work: a second run into a busy folder stops here, with nothing of the first overwritten.
    with run_folder_lock(folder.path):
        started = utc_now()
        try:
            start = decide_start(cfg, folder)
        except RunError:
            raise  # nothing written: the folder is another run's
        except Exception as err:
            # A refused continuation recorded itself under attempts/; a sweep job's folder (made by Hydra,
            # no run in it) records why the job failed, as a config error does.
            if folder.failures == folder.path and folder.path.is_dir():
                folder.record_failure("failed", err)
            raise
        if start.finished:
            log.warning(finished_message(folder, start.existing))
            return start.existing.metrics
        try:
            L.seed_everything(cfg.seed, workers=True)
            config = run_config(cfg)
            folder.write_config(config)
            metrics, trainer = _fit_and_test(cfg, folder, start.resume, extra_callbacks, started)
            folder.write_metrics(metrics)
            if folder.writes:
                # Hyper-parameters, provenance and final metrics in every logger; the curves as a figure
                # that needs no TensorBoard.
                log_hparams(trainer.loggers, config, metrics, trainer.global_step)
                folder.write_training_history()
        except OSError as err:
            write_error = folder.write_error(err)
            if write_error is None:
                raise
            raise write_error from err
    return metrics


def _fit_and_test(
    cfg: DictConfig,
    folder: RunFolder,
    resume: str | None,
    extra_callbacks: Sequence[L.Callback] = (),
    started: str | None = None,
) -> tuple[dict[str, Any], L.Trainer]:
    trainer: L.Trainer | None = None
    try:
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule.num_classes)
        trainer = build_trainer(cfg, extra_callbacks=extra_callbacks)

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
        folder.record_failure("interrupted", interrupted, trainer, checkpoint=saved)
        raise interrupted from err
    except RunError as err:  # the divergence guard's: the folder's own come before the fit
        folder.record_failure("diverged", err, trainer, **err.details)
        raise
    except Exception as err:
        folder.record_failure("failed", err, trainer)
        write_error = folder.write_error(err)
        if write_error is not None:  # a full disk, a read-only folder...: one line naming the path
            raise write_error from err
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
        channels_last=bool(cfg.model.get("channels_last", False)),
        loader="batched" if getattr(datamodule, "use_gpu_loader", False) else "dataloader",
        device=str(trainer.strategy.root_device),
        threads=torch.get_num_threads(),
        provenance={**provenance(trainer.strategy.root_device, started), "ended": utc_now()},
    )
    return metrics, trainer
