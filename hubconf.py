"""torch.hub entry points: ``torch.hub.load("<owner>/cifar_resnets", "cifar10_resnet20", pretrained=True)``.

Each entry returns a bare ``nn.Module`` in eval mode. ``pretrained=True`` loads published weights through
the torch hub cache (``cifar_resnets.models.pretrained``): He et al. 2016's CIFAR-10 ResNets from
akamaster/pytorch_resnet_cifar10 (option-A shortcuts, inputs normalised with mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225)), or ``source="chenyaofo"`` (option-B shortcuts, CIFAR-10 and CIFAR-100,
normalised with each dataset's mean and std, see ``PretrainedNet.mean``/``std``). The net's input is
that normalised float batch; ``cifar_resnets.inference.load_model("pretrained:...")`` does the
preprocessing for you. The pre-activation ResNets and Wide ResNets come without weights.
"""

from __future__ import annotations

from torch import nn

from cifar_resnets.models.build import build_net
from cifar_resnets.models.preact_resnet import PreActResNet
from cifar_resnets.models.pretrained import pretrained_net
from cifar_resnets.models.wide_resnet import WideResNet

dependencies = ["torch"]


def _cifar_resnet(dataset: str, depth: int, pretrained: bool, source: str | None) -> nn.Module:
    source = source or ("akamaster" if dataset == "cifar10" else "chenyaofo")
    net_name = f"resnet{depth}" if source == "akamaster" else f"{dataset}_resnet{depth}"
    release = pretrained_net(f"pretrained:{source}/{net_name}")
    config = release.model_config()
    if pretrained:
        config["weights"] = release.name
    return build_net(config, release.num_classes).eval()


def cifar10_resnet20(pretrained: bool = False, source: str | None = None) -> nn.Module:
    """He et al. 2016 ResNet-20 for CIFAR-10 (akamaster's weights by default, or source="chenyaofo")."""
    return _cifar_resnet("cifar10", 20, pretrained, source)


def cifar10_resnet32(pretrained: bool = False, source: str | None = None) -> nn.Module:
    """He et al. 2016 ResNet-32 for CIFAR-10."""
    return _cifar_resnet("cifar10", 32, pretrained, source)


def cifar10_resnet44(pretrained: bool = False, source: str | None = None) -> nn.Module:
    """He et al. 2016 ResNet-44 for CIFAR-10."""
    return _cifar_resnet("cifar10", 44, pretrained, source)


def cifar10_resnet56(pretrained: bool = False, source: str | None = None) -> nn.Module:
    """He et al. 2016 ResNet-56 for CIFAR-10."""
    return _cifar_resnet("cifar10", 56, pretrained, source)


def cifar10_resnet110(pretrained: bool = False) -> nn.Module:
    """He et al. 2016 ResNet-110 for CIFAR-10 (akamaster's weights)."""
    return _cifar_resnet("cifar10", 110, pretrained, "akamaster")


def cifar10_resnet1202(pretrained: bool = False) -> nn.Module:
    """He et al. 2016 ResNet-1202 for CIFAR-10 (akamaster's weights)."""
    return _cifar_resnet("cifar10", 1202, pretrained, "akamaster")


def cifar100_resnet20(pretrained: bool = False) -> nn.Module:
    """ResNet-20 for CIFAR-100 (chenyaofo's weights, option-B shortcuts)."""
    return _cifar_resnet("cifar100", 20, pretrained, "chenyaofo")


def cifar100_resnet32(pretrained: bool = False) -> nn.Module:
    """ResNet-32 for CIFAR-100 (chenyaofo's weights, option-B shortcuts)."""
    return _cifar_resnet("cifar100", 32, pretrained, "chenyaofo")


def cifar100_resnet44(pretrained: bool = False) -> nn.Module:
    """ResNet-44 for CIFAR-100 (chenyaofo's weights, option-B shortcuts)."""
    return _cifar_resnet("cifar100", 44, pretrained, "chenyaofo")


def cifar100_resnet56(pretrained: bool = False) -> nn.Module:
    """ResNet-56 for CIFAR-100 (chenyaofo's weights, option-B shortcuts)."""
    return _cifar_resnet("cifar100", 56, pretrained, "chenyaofo")


def preact_resnet164(num_classes: int = 10) -> nn.Module:
    """Pre-activation ResNet-164 (He et al., ECCV 2016), untrained."""
    return PreActResNet(depth=164, unit="bottleneck", num_classes=num_classes)


def preact_resnet1001(num_classes: int = 10) -> nn.Module:
    """Pre-activation ResNet-1001 (He et al., ECCV 2016), untrained."""
    return PreActResNet(depth=1001, unit="bottleneck", num_classes=num_classes)


def wide_resnet28_10(num_classes: int = 10, dropout: float = 0.3) -> nn.Module:
    """WRN-28-10 (Zagoruyko and Komodakis, BMVC 2016), untrained."""
    return WideResNet(depth=28, widen=10, dropout=dropout, num_classes=num_classes)
