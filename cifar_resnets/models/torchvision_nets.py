"""ResNet-18 / ResNet-50 from torchvision with a CIFAR or ImageNet stem, transfer weights, freezing and heads.

Subclassing torchvision's ``ResNet`` keeps its state-dict keys, so torchvision weights load without
renaming. Only the backbone is loaded (the head's size depends on ``num_classes``); with
``stem="cifar"`` a 7x7 ImageNet ``conv1`` cannot fill the 3x3 stem and is skipped with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from cifar_resnets.errors import ConfigError, DataError
from cifar_resnets.models.transfer import (
    FreezableBackbone,
    check_freeze,
    load_backbone_state,
    read_weights_file,
)

__all__ = [
    "TorchvisionResNet",
    "load_backbone_state",
    "read_weights_file",
    "resnet18",
    "resnet50",
]

STEMS = ("cifar", "imagenet")
HEADS = ("linear", "mlp256")


class TorchvisionResNet(FreezableBackbone, ResNet):
    """torchvision ResNet with a selectable stem, head and backbone freezing.

    Attributes:
        fc: the head (``nn.Linear`` or the ``head="mlp256"`` MLP ``nn.Sequential``).
        backbone: everything but the head (a fresh ``nn.Sequential`` view over the same modules,
            for Lightning's ``BackboneFinetuning``).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int,
        stem: str = "cifar",
        head: str = "linear",
        head_dropout: float = 0.0,
    ) -> None:
        _check_choice("stem", stem, STEMS)
        _check_choice("head", head, HEADS)
        super().__init__(block, layers, num_classes=num_classes)
        self.stem = stem
        if stem == "cifar":
            # 32x32 inputs: a 3x3 stride-1 stem and no max-pool keep the 32x32 map for layer1
            # (the ImageNet stem would shrink it to 8x8 before the first block).
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.maxpool = nn.Identity()
        features = self.fc.in_features
        if head == "mlp256":
            # The Keras optimizer grid's head: GAP (self.avgpool) -> Dense(256, relu) -> Dense(classes).
            # That grid has no dropout; head_dropout (default 0) is kept as a slot so checkpoints of
            # both settings share key names (fc.0.*, fc.3.*).
            self.fc = nn.Sequential(
                nn.Linear(features, 256),
                nn.ReLU(inplace=True),
                nn.Dropout(head_dropout),
                nn.Linear(256, num_classes),
            )

    @property
    def backbone(self) -> nn.Sequential:
        """All modules except the head, in forward order (shares the modules, holds no copies)."""
        return nn.Sequential(
            self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4
        )


def resnet18(
    num_classes: int,
    stem: str = "cifar",
    weights: str | None = None,
    weights_path: str | Path | None = None,
    freeze: str | None = "none",
    head: str = "linear",
    head_dropout: float = 0.0,
) -> TorchvisionResNet:
    """ResNet-18 (basic blocks 2-2-2-2, 11.2M params) for ``num_classes`` classes; see module docstring."""
    return _build(
        BasicBlock,
        [2, 2, 2, 2],
        ResNet18_Weights,
        num_classes,
        stem,
        weights,
        weights_path,
        freeze,
        head,
        head_dropout,
    )


def resnet50(
    num_classes: int,
    stem: str = "cifar",
    weights: str | None = None,
    weights_path: str | Path | None = None,
    freeze: str | None = "none",
    head: str = "linear",
    head_dropout: float = 0.0,
) -> TorchvisionResNet:
    """ResNet-50 (bottlenecks 3-4-6-3, 23.5M backbone params) for ``num_classes`` classes."""
    return _build(
        Bottleneck,
        [3, 4, 6, 3],
        ResNet50_Weights,
        num_classes,
        stem,
        weights,
        weights_path,
        freeze,
        head,
        head_dropout,
    )


def _build(
    block, layers, weights_enum, num_classes, stem, weights, weights_path, freeze, head, head_dropout
) -> TorchvisionResNet:
    """Shared body of the builders: validate choices, build, load weights, freeze."""
    freeze = check_freeze(freeze)
    if weights is not None and weights_path is not None:
        raise ConfigError("give either weights (a torchvision name) or weights_path (a local file), not both")
    net = TorchvisionResNet(block, layers, num_classes, stem=stem, head=head, head_dropout=head_dropout)
    if weights is not None:
        _load_backbone(net, _download(weights_enum, weights), source=f"torchvision {weights}")
    elif weights_path is not None:
        _load_backbone(net, read_weights_file(weights_path), source=str(weights_path))
    if freeze == "backbone":
        net.freeze_backbone()
    return net


def _check_choice(key: str, value: object, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {key} {value!r}; valid: {', '.join(valid)}")


def _resolve_weights(weights_enum, name: str):
    """Map a name such as ``IMAGENET1K_V2`` / ``ResNet50_Weights.IMAGENET1K_V2`` / ``DEFAULT`` to the enum."""
    key = str(name).split(".")[-1]
    if key not in weights_enum.__members__:
        valid = ", ".join([w.name for w in weights_enum] + ["DEFAULT"])
        raise ConfigError(f"unknown weights {name!r} for {weights_enum.__name__}; valid: {valid}")
    return weights_enum[key]


def _download(weights_enum, name: str) -> dict[str, torch.Tensor]:
    """Fetch torchvision weights (or reuse the torch hub cache); offline failures get a clear error."""
    w = _resolve_weights(weights_enum, name)
    try:
        return torch.hub.load_state_dict_from_url(
            w.url, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except Exception as err:  # URLError, HTTPError, OSError, hash mismatch: all mean "no usable file"
        raise DataError(
            f"could not download torchvision weights {weights_enum.__name__}.{w.name} from {w.url} ({err}); "
            "download the file on a machine with internet and pass it as weights_path=FILE"
        ) from err


def _load_backbone(net: TorchvisionResNet, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_backbone_state``, except that a 7x7 ImageNet stem conv is left out of a 3x3 CIFAR stem."""
    skip = []
    conv1 = state.get("conv1.weight")
    if net.stem == "cifar" and conv1 is not None and conv1.shape[-1] == 7:
        warnings.warn(
            f"{source}: the 7x7 ImageNet stem conv does not fit the 3x3 CIFAR stem; conv1 keeps its "
            "random init (use stem=imagenet to load it)",
            stacklevel=3,
        )
        skip.append("conv1.weight")
    load_backbone_state(net, state, source=source, skip=skip)
