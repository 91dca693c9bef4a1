"""Refuse impossible configs in the first second, before any data is read or folder created.

``check_config`` raises ``ConfigError`` (a ``ValueError``) with one line that names the key and
says what to change. ``CheckConfigCallback`` runs it as a Hydra callback at ``on_run_start``,
i.e. before Hydra creates the run folder, so a typo leaves nothing behind on disk.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.config.milestones import ScheduleConfigError, milestone_steps
from cifar_resnets.data.cifar_files import CIFAR_SPECS, IMAGE_BYTES
from cifar_resnets.errors import ConfigError

# Training-set sizes of the datasets whose size is known without reading them.
KNOWN_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000}
# What trainer.profiler may name: Lightning's profilers by their Trainer strings (xla needs a TPU).
LIGHTNING_PROFILERS = ("simple", "advanced", "pytorch")


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default)


def _positive(cfg: DictConfig, key: str) -> None:
    value = _get(cfg, key)
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        raise ConfigError(f"{key}={value} must be a positive number")


def _check_optim(cfg: DictConfig) -> None:
    _positive(cfg, "optim.lr")
    wd = _get(cfg, "optim.weight_decay", 0.0)
    if wd is not None and wd < 0:
        raise ConfigError(f"optim.weight_decay={wd} must be >= 0")
    smoothing = _get(cfg, "module.label_smoothing", 0.0)
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"module.label_smoothing={smoothing} must be in [0, 1)")


def _train_images_on_disk(cfg: DictConfig) -> int | None:
    """An upper bound on the training images in ``data.root``, from file sizes alone (nothing is read).

    Every image takes 3072 bytes of pixels in the pickles, so a smaller copy (a subset, synthetic
    files) is caught here too; the exact count is checked when the data is loaded.
    """
    spec = CIFAR_SPECS.get(str(_get(cfg, "data.name")))
    root = _get(cfg, "data.root")
    if spec is None or root is None or _get(cfg, "data.classes") is not None:
        return None
    files = [Path(str(root)) / spec.folder / name for name in spec.train_files]
    try:
        return sum(f.stat().st_size for f in files) // IMAGE_BYTES
    except OSError:  # missing files: the data layer says where and how to get them
        return None


def _steps_per_epoch(cfg: DictConfig) -> int | None:
    available = KNOWN_TRAIN_SIZES.get(str(_get(cfg, "data.name")))
    if available is None:
        return None
    on_disk = _train_images_on_disk(cfg)
    if on_disk is not None:
        available = min(available, on_disk)
    train_size = available - (_get(cfg, "data.val_size") or 0)
    num_train = _get(cfg, "data.num_train")
    if num_train is not None:
        if num_train > train_size:
            raise ConfigError(
                f"data.num_train={num_train} is larger than the {train_size} training images left after "
                f"data.val_size={_get(cfg, 'data.val_size')}; lower it or set data.num_train=null"
            )
        train_size = num_train
    world = _get(cfg, "trainer.devices")
    world = world if isinstance(world, int) and world > 0 else 1
    return max(train_size // (_get(cfg, "data.batch_size") * world), 0)


def _check_data(cfg: DictConfig) -> int | None:
    _positive(cfg, "data.batch_size")
    _positive(cfg, "data.eval_batch_size")
    val_size = _get(cfg, "data.val_size")
    available = KNOWN_TRAIN_SIZES.get(str(_get(cfg, "data.name")))
    on_disk = _train_images_on_disk(cfg) if available is not None else None
    if on_disk is not None and on_disk < available:
        available = on_disk
    if val_size is not None and available is not None and not 0 <= val_size < available:
        where = f"the at most {available} images in {_get(cfg, 'data.root')}" if available == on_disk else ""
        raise ConfigError(
            f"data.val_size={val_size} must be between 0 and {available - 1}"
            + (f" ({where})" if where else "")
        )
    num_train = _get(cfg, "data.num_train")
    if num_train is not None and num_train <= 0:
        raise ConfigError(f"data.num_train={num_train} must be positive (or null for all images)")
    steps = _steps_per_epoch(cfg)
    if steps == 0:
        raise ConfigError(
            f"data.batch_size={_get(cfg, 'data.batch_size')} is larger than the training set; "
            "lower it or raise data.num_train"
        )
    return steps


CHOICES = {
    "module.cuda_graph": (True, False, "auto"),
    "model.compile": (True, False, "auto"),
}


def _check_model(cfg: DictConfig) -> None:
    for key, choices in CHOICES.items():
        value = _get(cfg, key, "auto")
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of true, false, auto")
    target = str(_get(cfg, "model._target_", ""))
    depth = _get(cfg, "model.depth")
    if target.endswith("CifarResNet") and depth is not None and (depth < 8 or (depth - 2) % 6):
        raise ConfigError(
            f"model.depth={depth} is not 6n+2 (n >= 1): use 20, 32, 44, 56, 110 or another 6n+2"
        )


def _check_schedule(cfg: DictConfig, steps_per_epoch: int | None) -> None:
    max_steps = _get(cfg, "trainer.max_steps", -1) or -1
    max_epochs = _get(cfg, "trainer.max_epochs", -1) or -1
    if max_steps <= 0 and max_epochs <= 0:
        raise ConfigError("set trainer.max_epochs or trainer.max_steps to a positive number")
    milestones = _get(cfg, "schedule.milestones")
    if not milestones or steps_per_epoch is None:
        return
    total = max_steps if max_steps > 0 else steps_per_epoch * max_epochs
    try:
        milestone_steps(
            list(milestones),
            _get(cfg, "schedule.unit", "fraction"),
            total_steps=total,
            steps_per_epoch=steps_per_epoch,
        )
    except ScheduleConfigError as err:
        raise ConfigError(str(err)) from None


def _check_trainer(cfg: DictConfig) -> None:
    clip = _get(cfg, "trainer.gradient_clip_val")
    if clip is not None and clip <= 0:
        raise ConfigError(f"trainer.gradient_clip_val={clip} must be positive (or null for no clipping)")
    benchmark = _get(cfg, "trainer.benchmark")
    if benchmark is not None and not isinstance(benchmark, bool):
        raise ConfigError(f"trainer.benchmark={benchmark!r} must be true, false or null (cuDNN autotuning)")
    profiler = _get(cfg, "trainer.profiler")
    if profiler is not None and profiler not in LIGHTNING_PROFILERS:
        raise ConfigError(
            f"trainer.profiler={profiler!r} is not one of {', '.join(LIGHTNING_PROFILERS)} (or null for none)"
        )
    accelerator = str(_get(cfg, "trainer.accelerator", "auto"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch  # only here: importing it takes seconds, and CPU/auto runs need no GPU count

    if not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer.accelerator=cpu"
        )
    devices = _get(cfg, "trainer.devices")
    if isinstance(devices, int) and devices > torch.cuda.device_count():
        raise ConfigError(
            f"trainer.devices={devices} but only {torch.cuda.device_count()} CUDA GPUs are visible; "
            "lower trainer.devices"
        )


def _check_output(cfg: DictConfig, key: str = "hydra.run.dir") -> None:
    out = _get(cfg, key) if HydraConfig.initialized() else None
    if out is None:
        return
    parent = Path(str(out)).absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create the run folder {out}: {parent} is not writable; set {key}")


def check_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first impossible setting found."""
    _check_optim(cfg)
    steps = _check_data(cfg)
    _check_model(cfg)
    _check_schedule(cfg, steps)
    _check_trainer(cfg)
    _positive(cfg, "logger.tensorboard.flush_secs")


class CheckConfigCallback(Callback):
    """Runs ``check_config`` before Hydra creates any folder (single runs and sweeps alike)."""

    def _check(
        self, config: DictConfig, output_key: str = "hydra.run.dir", swept: tuple[str, ...] = ()
    ) -> None:
        HydraConfig.instance().set_config(config)
        try:
            check_config(config)
        except ConfigError as err:
            # The base config of a sweep lacks the swept values; a mistake they may fix is left to
            # each job's own check (which records it in the job's folder).
            if not any(f"{key}=" in str(err) for key in swept):
                print(f"cifar-train: error: {err}", file=sys.stderr)
                sys.exit(2)
        try:
            _check_output(config, output_key)
        except ConfigError as err:
            print(f"cifar-train: error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The sweep's own overrides are checked per job by train(); this catches shared mistakes.
        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        swept = tuple(o.key_or_group for o in overrides if o.is_sweep_override())
        self._check(config, "hydra.sweep.dir", swept)
