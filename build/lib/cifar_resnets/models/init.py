"""Weight initialisation shared by the suite's own nets."""

from __future__ import annotations

from torch import nn


def he_init(net: nn.Module) -> None:
    """He (fan_out, relu) init for convs and unit/zero BN affine, the He et al. 2016 recipe."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
