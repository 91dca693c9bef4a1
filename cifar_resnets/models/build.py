"""A net from its ``model`` config, without Hydra: the one place that decides which nets may be built.

A checkpoint's config is data from whoever wrote the file, so only a public constructor of
``cifar_resnets.models`` may be named, with its own arguments and no nested ``_target_``: reading a
checkpoint can never import or call anything else. Training builds through here too.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from cifar_resnets.errors import ConfigError

MODELS_PACKAGE = "cifar_resnets.models"
# Keys of a model config that steer training, not the net's constructor.
TRAINING_MODEL_KEYS = ("name", "compile", "compile_mode", "channels_last")
# Where a constructor reads pretrained weights from; a checkpoint's own weights replace them.
PRETRAINED_KEYS = ("weights", "weights_path")


def _plain(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    # An OmegaConf node (training passes the composed config) becomes plain containers; omegaconf is
    # only looked up, never imported, so that loading a checkpoint stays free of Hydra.
    omegaconf = sys.modules.get("omegaconf")
    if omegaconf is not None and isinstance(model_cfg, omegaconf.DictConfig):
        return omegaconf.OmegaConf.to_container(model_cfg, resolve=True)
    if not isinstance(model_cfg, Mapping):
        raise ConfigError(f"a model config must be a mapping with a _target_, got {type(model_cfg).__name__}")
    return dict(model_cfg)


def _inside_models(module_name: str) -> bool:
    return module_name == MODELS_PACKAGE or module_name.startswith(MODELS_PACKAGE + ".")


def model_constructor(target: Any) -> Callable[..., nn.Module]:
    """The class or function ``target`` names, if it is a public one defined in ``cifar_resnets.models``."""
    text = str(target)
    module_name, _, attr = text.rpartition(".")
    refused = ConfigError(
        f"model._target_={text!r} is not a net of this suite; only classes and functions of "
        f"{MODELS_PACKAGE} can be built"
    )
    if not isinstance(target, str) or not _inside_models(module_name) or attr.startswith("_"):
        raise refused
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise refused from None
    constructor = getattr(module, attr, None)
    if not callable(constructor) or not _inside_models(getattr(constructor, "__module__", "")):
        raise refused
    return constructor


def _nested_target(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(k in ("_target_", "_partial_", "_args_") or _nested_target(v) for k, v in value.items())
    return isinstance(value, (list, tuple)) and any(_nested_target(v) for v in value)


def build_net(model_cfg: Mapping[str, Any], num_classes: int, pretrained: bool = True) -> nn.Module:
    """The bare ``nn.Module`` a ``model`` config describes, for ``num_classes`` classes.

    ``pretrained=False`` leaves out the weights the config would load first (``weights``,
    ``weights_path``): a checkpoint being read brings its own, and the file named at training time may
    be gone (or need a download).
    """
    kwargs = {k: v for k, v in _plain(model_cfg).items() if k not in TRAINING_MODEL_KEYS}
    constructor = model_constructor(kwargs.pop("_target_", None))
    for key, value in kwargs.items():
        if _nested_target(value):
            raise ConfigError(f"model.{key} holds an object to build; model configs take plain values")
    if not pretrained:
        kwargs.update({k: None for k in PRETRAINED_KEYS if k in kwargs})
    name = f"{constructor.__module__}.{constructor.__name__}"
    try:
        inspect.signature(constructor).bind(**kwargs, num_classes=num_classes)
    except TypeError as err:
        raise ConfigError(f"model config does not fit {name}: {err}") from None
    net = constructor(**kwargs, num_classes=num_classes)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model._target_={name} built a {type(net).__name__}, not a torch module")
    return net


def model_fingerprint(model_cfg: Mapping[str, Any]) -> str:
    """A short hash of what a net is built from (its constructor and arguments, not the training-only
    or pretrained-weights keys), stored beside the weights when they are saved.

    The residual and the plain net of one depth have weights of the same names and shapes: only this
    tells that a stored config was edited to describe another net than the one that wrote the weights.
    """
    built_from = {
        k: v for k, v in _plain(model_cfg).items() if k not in TRAINING_MODEL_KEYS + PRETRAINED_KEYS
    }
    return hashlib.sha256(json.dumps(built_from, sort_keys=True, default=str).encode()).hexdigest()[:16]
