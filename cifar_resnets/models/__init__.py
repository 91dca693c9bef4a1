"""Model zoo: plain ``nn.Module`` classifiers (no Lightning, no Hydra).

Every constructor takes ``num_classes`` as a keyword, so ``instantiate(cfg, num_classes=N)`` builds any
of them. Names are imported on first use (PEP 562 ``__getattr__``), so rebuilding a CIFAR ResNet from a
checkpoint does not load torchvision's model zoo, which keeps the app's and cifar-predict's start short.
"""

from __future__ import annotations

from cifar_resnets.lazy import lazy_exports

_SUBMODULE_OF = {
    "CBAM": "attention",
    "AttentionResidualBlock": "attention",
    "AttentionResNet": "attention",
    "ChannelAttention": "attention",
    "SpatialAttention": "attention",
    "BasicBlock": "cifar_resnet",
    "CifarResNet": "cifar_resnet",
    "ZeroPadShortcut": "cifar_resnet",
    "PreActBasicBlock": "preact_resnet",
    "PreActBottleneck": "preact_resnet",
    "PreActResNet": "preact_resnet",
    "TorchvisionResNet": "torchvision_nets",
    "resnet18": "torchvision_nets",
    "resnet50": "torchvision_nets",
    "load_backbone_state": "transfer",
    "read_weights_file": "transfer",
    "WideBasicBlock": "wide_resnet",
    "WideResNet": "wide_resnet",
    "pretrained_names": "pretrained",
}

__all__ = sorted(_SUBMODULE_OF)


__getattr__ = lazy_exports(__name__, _SUBMODULE_OF)
