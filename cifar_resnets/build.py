"""Config -> objects: the one place that knows how the Hydra config maps onto the pieces.

The CLIs (train, evaluate, predict, the app) all build through here, so a checkpoint's stored
config rebuilds exactly the net that wrote it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cifar_resnets.checkpoint_io import AtomicCheckpointIO
from cifar_resnets.module import ClassifierModule

# Keys of a model config that steer training, not the net's constructor.
TRAINING_MODEL_KEYS = ("name", "compile", "compile_mode", "channels_last")


def _container(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config of a run, without Hydra's own node (present when composed in tests)."""
    return {
        str(key): OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }


def build_net(model_cfg: DictConfig | dict[str, Any], num_classes: int) -> nn.Module:
    """The bare ``nn.Module`` described by a ``model`` config."""
    kwargs = {k: v for k, v in _container(model_cfg).items() if k not in TRAINING_MODEL_KEYS}
    return instantiate(kwargs, num_classes=num_classes, _convert_="all")


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    return instantiate(cfg.data, augment=_container(cfg.augment), _convert_="all")


def build_module(cfg: DictConfig, num_classes: int) -> ClassifierModule:
    net = build_net(cfg.model, num_classes)
    if cfg.model.get("compile", False):
        # In place, so state-dict keys keep their names (PITFALLS A2); only the net is compiled,
        # logging stays eager (A1).
        net.compile(mode=cfg.model.get("compile_mode", "default"))
    return ClassifierModule(
        net,
        num_classes=num_classes,
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.schedule) if cfg.get("schedule") else None,
        label_smoothing=cfg.module.label_smoothing,
        weight_decay_bn_bias=cfg.module.weight_decay_bn_bias,
        channels_last=cfg.model.get("channels_last", False) and _uses_cuda(cfg.trainer.accelerator),
        config=run_config(cfg),
    )


def _uses_cuda(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(precision: str | int, accelerator: str) -> str | int:
    """``auto`` means bf16 mixed precision where the GPU has bf16, full precision elsewhere."""
    if precision != "auto":
        return precision
    if _uses_cuda(accelerator) and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(node, _convert_="all") for node in group.values() if node is not None]


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    return _instantiate_all(cfg.get("callbacks"))


def build_loggers(cfg: DictConfig) -> list[Any]:
    return _instantiate_all(cfg.get("logger"))


def _plugins() -> list[Any]:
    # Checkpoints written to a temp file in their own folder, then renamed (PITFALLS D7).
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect() and not TorchElasticEnvironment.detect():
        # One requeue owner (PITFALLS C9): submitit requeues; the rerun resumes with ckpt_path=auto.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    callbacks = build_callbacks(cfg)
    loggers = build_loggers(cfg)
    kwargs: dict[str, Any] = {
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
        "callbacks": callbacks,
        "logger": loggers or False,
        "default_root_dir": cfg.paths.output_dir,
        "enable_progress_bar": any(isinstance(c, L.pytorch.callbacks.ProgressBar) for c in callbacks),
        "plugins": _plugins(),
    }
    if cfg.model.get("compile", False):
        # A compiled submodule under inference_mode fails in eval (PITFALLS A4).
        kwargs["inference_mode"] = False
    kwargs.update(overrides)
    return instantiate(cfg.trainer, **kwargs, _convert_="all")
