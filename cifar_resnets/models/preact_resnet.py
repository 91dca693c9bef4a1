"""Pre-activation ResNets for CIFAR (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016).

``basic`` units give pre-act ResNet-110, ``bottleneck`` units ResNet-164 and ResNet-1001. Projection
shortcuts share the first BN-ReLU as in the paper's code (KaimingHe/resnet-1k-layers). Parameter counts,
10 classes: 1,730,522 (110), 1,703,258 (164), 10,327,706 (1001); the paper's 10.2M for ResNet-1001
counts the conv and linear weights only (10,178,480).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from cifar_resnets.errors import ConfigError
from cifar_resnets.models.init import he_init

__all__ = ["PreActBasicBlock", "PreActBottleneck", "PreActNet", "PreActResNet", "UNITS"]

UNITS = ("basic", "bottleneck")


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        # A projection reads the pre-activated input (the shared BN-ReLU), an identity the raw input.
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + skip


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (with the stride), BN-ReLU-conv1x1 to 4x width, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + skip


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PreActNet(nn.Module):
    """What the pre-activation ResNets and the Wide ResNets share: a 3x3 stem, three stages of units
    (stride 2 at the first unit of stages 2 and 3), then BN-ReLU, global pooling and a linear classifier."""

    def _build(
        self,
        stem: int,
        stage_widths: Sequence[int],
        units_per_stage: int,
        make_unit: Callable[[int, int, int], nn.Module],
        unit_out: Callable[[int], int],
        num_classes: int,
    ) -> None:
        """``make_unit(in_channels, width, stride)``; ``unit_out(width)``: the channels a unit outputs."""
        self.conv1 = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        channels = stem
        stages = []
        for i, width in enumerate(stage_widths):
            units = []
            for j in range(units_per_stage):
                units.append(make_unit(channels, width, 2 if (i > 0 and j == 0) else 1))
                channels = unit_out(width)
            stages.append(nn.Sequential(*units))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = torch.flatten(self.avgpool(self.relu(self.bn(x))), 1)
        return self.fc(x)


class PreActResNet(PreActNet):
    """Pre-activation CIFAR ResNet: 3x3 stem, three stages (stride 2 at stages 2 and 3), BN-ReLU, pool, fc.

    Args:
        depth: 6n+2 for ``basic`` units (110), 9n+2 for ``bottleneck`` units (164, 1001).
        unit: ``basic`` or ``bottleneck``.
        num_classes: classifier outputs.
        widths: the units' inner widths per stage (a bottleneck outputs 4x this).
    """

    def __init__(
        self,
        depth: int = 164,
        unit: str = "bottleneck",
        num_classes: int = 10,
        widths: tuple[int, ...] | list[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if unit not in UNITS:
            raise ConfigError(f"unknown unit {unit!r}; valid: {', '.join(UNITS)}")
        block = PreActBasicBlock if unit == "basic" else PreActBottleneck
        layers_per_unit = 2 if unit == "basic" else 3
        per_stage = 3 * layers_per_unit
        if not isinstance(depth, int) or depth < per_stage + 2 or (depth - 2) % per_stage != 0:
            raise ConfigError(
                f"depth must be {per_stage}n+2 for {unit} units (e.g. "
                f"{'20, 56, 110' if unit == 'basic' else '164, 1001'}), got {depth!r}"
            )
        widths = tuple(widths)
        if len(widths) != 3:
            raise ConfigError(f"widths must give the inner widths of the 3 stages, got {widths}")
        n = (depth - 2) // per_stage
        self._build(widths[0], widths, n, block, lambda width: width * block.expansion, num_classes)
