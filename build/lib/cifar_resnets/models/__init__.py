"""Model zoo: plain ``nn.Module`` classifiers (no Lightning, no Hydra).

Every constructor takes ``num_classes`` as a keyword, so a model is built as
``hydra.utils.instantiate(model_cfg_without_reserved_keys, num_classes=N)``; the available
names are the files of ``conf/model/``.
"""

from cifar_resnets.models.attention import (
    CBAM,
    AttentionResidualBlock,
    AttentionResNet,
    ChannelAttention,
    SpatialAttention,
)
from cifar_resnets.models.cifar_resnet import BasicBlock, CifarResNet, ZeroPadShortcut
from cifar_resnets.models.torchvision_nets import TorchvisionResNet, WeightsDownloadError, resnet18, resnet50
from cifar_resnets.models.transfer import WeightsMismatchError, load_backbone_state, read_weights_file

__all__ = [
    "CBAM",
    "AttentionResNet",
    "AttentionResidualBlock",
    "BasicBlock",
    "ChannelAttention",
    "CifarResNet",
    "SpatialAttention",
    "TorchvisionResNet",
    "WeightsDownloadError",
    "WeightsMismatchError",
    "ZeroPadShortcut",
    "load_backbone_state",
    "read_weights_file",
    "resnet18",
    "resnet50",
]
