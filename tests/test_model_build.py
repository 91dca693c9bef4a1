"""build_net: a net from its model config without Hydra, and only the suite's own nets."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from cifar_resnets.config.resources import conf_dir
from cifar_resnets.errors import ConfigError
from cifar_resnets.models import CifarResNet
from cifar_resnets.models.build import build_net


def test_builds_every_model_config_from_plain_dicts_and_omegaconf() -> None:
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        net = build_net(cfg, num_classes=7)
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 7), path.name
    plain = {"_target_": "cifar_resnets.models.cifar_resnet.CifarResNet", "name": "r8", "depth": 8}
    assert isinstance(build_net(plain, 3), CifarResNet)
    reexported = dict(plain, _target_="cifar_resnets.models.CifarResNet")  # the package's own name for it
    assert isinstance(build_net(reexported, 3), CifarResNet)


@pytest.mark.parametrize(
    "target",
    [
        "os.system",
        "pathlib.Path.touch",
        "cifar_resnets.modelsx.Net",
        "cifar_resnets.models.transfer.Path",  # imported into a models module, defined elsewhere
        "cifar_resnets.models.torchvision_nets._build",  # private
        "cifar_resnets.models.no_such_module.Net",
        "cifar_resnets.models.cifar_resnet.NoSuchNet",
        None,
    ],
)
def test_refuses_anything_but_the_suite_nets(target) -> None:
    with pytest.raises(ConfigError, match="is not a net of this suite"):
        build_net({"_target_": target}, 10)


def test_refuses_nested_objects_and_unknown_arguments(tmp_path) -> None:
    marker = tmp_path / "marker"
    nested = {"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}
    cfg = {"_target_": "cifar_resnets.models.cifar_resnet.CifarResNet", "depth": nested}
    with pytest.raises(ConfigError, match="model.depth holds an object to build"):
        build_net(cfg, 10)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="unexpected keyword argument 'colour'"):
        build_net({"_target_": "cifar_resnets.models.cifar_resnet.CifarResNet", "colour": "red"}, 10)


def test_pretrained_false_leaves_out_the_weights_to_load_first(tmp_path) -> None:
    cfg = {"_target_": "cifar_resnets.models.cifar_resnet.CifarResNet", "depth": 8,
           "weights_path": str(tmp_path / "gone.pt")}  # fmt: skip
    with pytest.raises(ConfigError, match="does not exist"):
        build_net(cfg, 10)
    assert isinstance(build_net(cfg, 10, pretrained=False), CifarResNet)
