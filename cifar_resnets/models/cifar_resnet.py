"""He et al. 2016 CIFAR ResNets (6n+2 layers) and their plain counterparts.

``residual=False`` removes every shortcut, giving the "plain" nets of the paper's degradation study. The
forward has no data-dependent control flow, so it runs under ``torch.compile`` and CUDA graphs.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cifar_resnets.errors import ConfigError
from cifar_resnets.models.attention import CBAM
from cifar_resnets.models.init import he_init
from cifar_resnets.models.pretrained import release_state
from cifar_resnets.models.transfer import (
    FreezableBackbone,
    check_freeze,
    load_backbone_state,
    read_weights_file,
)

__all__ = ["BasicBlock", "CifarResNet", "ZeroPadShortcut", "SHORTCUTS", "ATTENTIONS"]

SHORTCUTS = ("A", "B")
ATTENTIONS = (None, "cbam")


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: identity with stride-s subsampling and zero-padded extra channels (no params)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ConfigError(
                f"shortcut 'A' can only add channels ({in_channels} -> {out_channels}); use shortcut 'B'"
            )
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            # Pad the channel dim (the third pair from the end in F.pad's last-dim-first order).
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return x


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers; optional CBAM after the second BN; shortcut added before the last ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        residual: bool = True,
        shortcut: str = "A",
        attention: str | None = None,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.attention: nn.Module = CBAM(out_channels) if attention == "cbam" else nn.Identity()
        same_shape = stride == 1 and in_channels == out_channels
        if not residual:
            self.shortcut: nn.Module | None = None
        elif same_shape:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        if self.shortcut is not None:  # fixed at construction, not data-dependent
            out = out + self.shortcut(x)
        return self.relu(out)


class CifarResNet(FreezableBackbone):
    """CIFAR ResNet of He et al. 2016, section 4.2: depth = 6n + 2.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110, ...); n basic blocks per stage.
        num_classes: classifier outputs.
        residual: False builds the plain net of the same depth (no shortcuts at all).
        shortcut: "A" = parameter-free zero-padding identity (the paper's CIFAR choice),
            "B" = 1x1 conv + BN projection where the shape changes (identity elsewhere).
        attention: None, or "cbam" to add CBAM to each block (after the second BN, before the addition).
        widths: channels of the three stages.
        weights: a published net (``pretrained:akamaster/resnet20``); all its weights load, the head too
            where its class count fits.
        weights_path: a state dict or suite ``.ckpt`` of the same architecture; its backbone loads.
        freeze: "none", or "backbone" to train only ``fc`` (backbone BatchNorms stay in eval mode).
        zero_init_residual: start each residual branch at zero (Goyal et al. 2017), so a deep ResNet
            trains from its first steps, where He et al.'s init makes its first logits large.

    Parameter counts, 10 classes, option A (the paper's Table 6 rounds them): 269,722 (20), 464,154 (32),
    658,586 (44), 853,018 (56), 1,727,962 (110); option B 272,474 (20) to 1,730,714 (110).
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        residual: bool = True,
        shortcut: str = "A",
        attention: str | None = None,
        widths: tuple[int, ...] | list[int] = (16, 32, 64),
        weights: str | None = None,
        weights_path: str | Path | None = None,
        freeze: str | None = "none",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        freeze = check_freeze(freeze)
        if zero_init_residual and not residual:
            raise ConfigError(
                "model.zero_init_residual=true needs a residual net: a plain net's blocks would start by "
                "outputting zeros; set model.zero_init_residual=false"
            )
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ConfigError(f"depth must be 6n+2 with n >= 1 (e.g. 20, 32, 44, 56, 110), got {depth!r}")
        if shortcut not in SHORTCUTS:
            raise ConfigError(f"unknown shortcut {shortcut!r}; valid: {', '.join(SHORTCUTS)}")
        if attention not in ATTENTIONS:
            raise ConfigError(f"unknown attention {attention!r}; valid: null (off), cbam")
        widths = tuple(widths)
        if len(widths) != 3:
            raise ConfigError(f"widths must give the channels of the 3 stages, got {widths}")
        self.depth = depth
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        channels = widths[0]
        stages = []
        for i, width in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(channels, width, stride, residual, shortcut, attention))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        he_init(self)
        if zero_init_residual:
            for block in self.modules():
                if isinstance(block, BasicBlock):
                    nn.init.zeros_(block.bn2.weight)
        if weights is not None:
            self._load_release(str(weights), residual, shortcut, attention, widths)
        if weights_path is not None:
            load_backbone_state(self, read_weights_file(weights_path), source=str(weights_path))
        if freeze == "backbone":
            self.freeze_backbone()

    def _load_release(
        self, weights: str, residual: bool, shortcut: str, attention: str | None, widths: tuple[int, ...]
    ) -> None:
        release, state = release_state(weights)
        wanted = (release.depth, True, release.shortcut, None, (16, 32, 64))
        if (self.depth, residual, shortcut, attention, widths) != wanted:
            raise ConfigError(
                f"model.weights={weights} is a ResNet-{release.depth} with option-{release.shortcut} "
                f"shortcuts; use model=resnet{release.depth} model.shortcut={release.shortcut} "
                "(residual, no attention, default widths)"
            )
        head_fits = state["fc.weight"].shape == self.fc.weight.shape
        load_backbone_state(self, state, source=weights)
        if head_fits:
            with torch.no_grad():
                self.fc.weight.copy_(state["fc.weight"])
                self.fc.bias.copy_(state["fc.bias"])

    @property
    def backbone(self) -> nn.Sequential:
        """All modules except the head, in forward order (shares the modules, holds no copies)."""
        return nn.Sequential(self.conv1, self.bn1, self.relu, self.layer1, self.layer2, self.layer3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
