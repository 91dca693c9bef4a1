"""Load a checkpoint of this suite safely and rebuild the net that wrote it.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only,
so no code hidden in a checkpoint file can run. The net is rebuilt from the run config stored in
the checkpoint, and its weights must fit exactly.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cifar_resnets.errors import UserError
from cifar_resnets.training.build import build_net


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


@dataclass
class LoadedModel:
    """A net in eval mode plus what is needed to feed it and name its outputs."""

    net: nn.Module
    config: dict[str, Any]
    num_classes: int
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    resize_size: int
    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.config.get("model", {}).get("name", "?"))

    @property
    def data_name(self) -> str:
        return str(self.config.get("data", {}).get("name", "?"))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``, every failure turned into one ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run's checkpoints/last.ckpt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain values (refused, nothing in it was run): "
            f"{str(err).splitlines()[0][:200]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({err}); it may be truncated or corrupt"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def _num_classes(state_dict: dict[str, torch.Tensor], hparams: dict[str, Any]) -> int:
    if "num_classes" in hparams:
        return int(hparams["num_classes"])
    head = [v for k, v in state_dict.items() if k.endswith("fc.weight")]
    if not head:
        raise CheckpointError("cannot tell the number of classes from the checkpoint")
    return int(head[-1].shape[0])


# A checkpoint's config is data from whoever wrote the file: Hydra would import and call any
# ``_target_`` in it, so only the suite's own model builders may be named, and only at the top.
TRUSTED_MODEL_PREFIX = "cifar_resnets.models."


def _check_model_config(path: Path, model_cfg: Any) -> None:
    if not isinstance(model_cfg, dict) or not str(model_cfg.get("_target_", "")).startswith(
        TRUSTED_MODEL_PREFIX
    ):
        target = model_cfg.get("_target_") if isinstance(model_cfg, dict) else model_cfg
        raise CheckpointError(
            f"{path}: its model config names {target!r}, not a model of this suite; refused"
        )

    def nested_targets(node: Any) -> bool:
        if isinstance(node, dict):
            return any(k in ("_target_", "_partial_", "_args_") or nested_targets(v) for k, v in node.items())
        return isinstance(node, list) and any(nested_targets(v) for v in node)

    if any(nested_targets(v) for k, v in model_cfg.items() if k != "_target_"):
        raise CheckpointError(
            f"{path}: its model config holds nested objects to build; refused (nothing was run)"
        )


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the checkpoint's net (EMA weights when the run used EMA) in eval mode on the CPU."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    config = hparams.get("config")
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{path} was not written by cifar-train (no run config inside)")
    state = {
        k.removeprefix("net.").replace("_orig_mod.", ""): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }
    num_classes = _num_classes(state, hparams)
    _check_model_config(path, config["model"])
    try:
        net = build_net(config["model"], num_classes)
    except Exception as err:  # an unknown _target_ or argument: a checkpoint from another version/model
        raise CheckpointError(
            f"{path}: cannot rebuild its model {config['model'].get('name')!r}: {err}"
        ) from None
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = str(err).splitlines()[-1].strip()
        raise CheckpointError(
            f"{path}: weights do not fit model {config['model'].get('name')!r}: {detail}"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        bad = [*result.missing_keys, *result.unexpected_keys]
        raise CheckpointError(
            f"{path}: weights do not fit model {config['model'].get('name')!r}: "
            f"{len(bad)} mismatched keys, e.g. {', '.join(bad[:4])}"
        )
    net.eval()
    info = hparams.get("data_info") or {}
    data_cfg = config.get("data", {})
    metrics_file = path.parent.parent / "metrics.json"
    metrics: dict[str, Any] = {}
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, ValueError):
            metrics = {}
    return LoadedModel(
        net=net,
        config=config,
        num_classes=num_classes,
        classes=list(info.get("classes") or [str(i) for i in range(num_classes)]),
        mean=tuple(info.get("mean", (0.5, 0.5, 0.5))),
        std=tuple(info.get("std", (0.25, 0.25, 0.25))),
        image_size=int(info.get("image_size", data_cfg.get("image_size", 32))),
        resize_size=int(info.get("resize_size", data_cfg.get("resize_size", 32))),
        path=path,
        metrics=metrics,
    )
