"""Wide Residual Networks (Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016).

WRN-d-k: three groups of (d - 4) / 6 pre-activation units at 16k/32k/64k channels, ``dropout`` between
the two convs. Parameter counts, 10 classes (the paper's Table 4 in brackets): WRN-16-4 2,748,890 (2.7M),
WRN-16-8 10,961,370 (11.0M), WRN-28-10 36,479,194 (36.5M), WRN-40-4 8,949,210 (8.9M).
"""

from __future__ import annotations

import torch
from torch import nn

from cifar_resnets.errors import ConfigError
from cifar_resnets.models.preact_resnet import PreActNet

__all__ = ["WideBasicBlock", "WideResNet"]


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3, plus the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        same_shape = stride == 1 and in_channels == out_channels
        self.shortcut = (
            None if same_shape else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.dropout(self.relu(self.bn2(self.conv1(pre))))
        return self.conv2(out) + skip


class WideResNet(PreActNet):
    """WRN-``depth``-``widen``: depth 6N+4, widening factor k, optional dropout inside each unit."""

    def __init__(self, depth: int = 28, widen: int = 10, dropout: float = 0.0, num_classes: int = 10) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"depth must be 6N+4 with N >= 1 (e.g. 16, 28, 40), got {depth!r}")
        if not isinstance(widen, int) or widen < 1:
            raise ConfigError(f"widen must be a positive integer (the paper's k: 4, 8, 10), got {widen!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1) (the paper uses 0.3), got {dropout!r}")
        n = (depth - 4) // 6

        def unit(in_channels: int, width: int, stride: int) -> nn.Module:
            return WideBasicBlock(in_channels, width, stride, dropout)

        self._build(16, (16 * widen, 32 * widen, 64 * widen), n, unit, lambda width: width, num_classes)
