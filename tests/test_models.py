"""Model zoo behaviour: shapes, paper param counts, shortcuts, attention, weights loading, freezing."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from cifar_resnets.config.resources import conf_dir
from cifar_resnets.errors import CheckpointError, DataError, UserError
from cifar_resnets.models import (
    CBAM,
    AttentionResNet,
    BasicBlock,
    CifarResNet,
    ZeroPadShortcut,
    resnet18,
    resnet50,
)

CONF_DIR = conf_dir() / "model"
RESERVED = ("name", "compile", "compile_mode", "channels_last")
MODEL_NAMES = [
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
    "plain20", "plain32", "plain44", "plain56", "plain110",
    "attention_resnet", "resnet18", "resnet50",
    "preact_resnet110", "preact_resnet164", "preact_resnet1001",
    "wrn16_4", "wrn16_8", "wrn28_10", "wrn40_4",
]  # fmt: skip
# He et al. 2016, table 6 (option A, 10 classes): exact counts and the paper's rounded figure.
PAPER_PARAMS = {
    20: (269_722, 0.27),
    32: (464_154, 0.46),
    44: (658_586, 0.66),
    56: (853_018, 0.85),
    110: (1_727_962, 1.7),
    1202: (19_421_274, 19.4),
}
# Exact counts (10 classes) and the figures the papers print: He et al., "Identity Mappings in Deep
# Residual Networks" (ECCV 2016), Table 4; Zagoruyko and Komodakis, "Wide Residual Networks" (BMVC 2016),
# Table 4 (WRN-16-4, which Table 4 does not list: the exact count rounded). The ECCV paper's 10.2M for
# ResNet-1001 counts the conv and linear weights (10,178,480); its BN affines add 0.15M.
FAMILY_PARAMS = {
    "preact_resnet110": (1_730_522, 1.7, False),
    "preact_resnet164": (1_703_258, 1.7, False),
    "preact_resnet1001": (10_327_706, 10.2, True),
    "wrn16_4": (2_748_890, 2.7, False),
    "wrn16_8": (10_961_370, 11.0, False),
    "wrn28_10": (36_479_194, 36.5, False),
    "wrn40_4": (8_949_210, 8.9, False),
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_from_yaml(name: str, num_classes: int) -> nn.Module:
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    kwargs = {k: v for k, v in cfg.items() if k not in RESERVED}
    return instantiate(OmegaConf.create(kwargs), num_classes=num_classes)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- configs and shapes


def test_every_model_has_a_config():
    assert sorted(p.stem for p in CONF_DIR.glob("*.yaml")) == sorted(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_builds_and_outputs_logits(name):
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    assert all(k in cfg for k in RESERVED), "reserved keys must be in every model yaml"
    assert "num_classes" not in cfg and cfg.name == name
    net = build_from_yaml(name, num_classes=7).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("builder", [resnet18, resnet50])
@pytest.mark.parametrize("head", ["linear", "mlp256"])
def test_torchvision_imagenet_stem_at_64px(builder, head):
    net = builder(num_classes=5, stem="imagenet", head=head).eval()
    assert isinstance(net.maxpool, nn.MaxPool2d) and net.conv1.kernel_size == (7, 7)
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_cifar_stem_keeps_resolution():
    net = resnet18(num_classes=10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    feats = net.backbone(torch.randn(1, 3, 32, 32))
    assert feats.shape == (1, 512, 4, 4)  # 32 -> 32 (stem) -> 4 after three stride-2 stages


def test_mlp256_head_is_linear_relu_dropout_linear():
    net = resnet18(num_classes=10, head="mlp256", head_dropout=0.5)
    layers = list(net.fc)
    assert isinstance(layers[0], nn.Linear) and (layers[0].in_features, layers[0].out_features) == (512, 256)
    assert isinstance(layers[1], nn.ReLU) and layers[2].p == 0.5
    assert (layers[3].in_features, layers[3].out_features) == (256, 10)


def test_backbone_holds_everything_but_the_head():
    net = resnet18(num_classes=10)
    backbone_ids = {id(p) for p in net.backbone.parameters()}
    head_ids = {id(p) for p in net.fc.parameters()}
    assert backbone_ids.isdisjoint(head_ids)
    assert backbone_ids | head_ids == {id(p) for p in net.parameters()}


# ---------------------------------------------------------------- CIFAR ResNet


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_paper_parameter_counts_option_a(depth):
    exact, paper_millions = PAPER_PARAMS[depth]
    for residual in (True, False):  # plain nets of the paper have the same count as option-A ResNets
        count = n_params(CifarResNet(depth=depth, num_classes=10, residual=residual))
        assert count == exact
    digits = 2 if paper_millions < 1 else 1
    assert round(exact / 1e6, digits) == paper_millions


@pytest.mark.parametrize("name", sorted(FAMILY_PARAMS))
def test_preact_and_wide_resnets_have_their_papers_parameter_counts(name):
    exact, paper_millions, weights_only = FAMILY_PARAMS[name]
    net = build_from_yaml(name, num_classes=10)
    assert n_params(net) == exact
    counted = exact
    if weights_only:
        counted = sum(m.weight.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert round(counted / 1e6, 1) == paper_millions


def test_option_b_adds_projection_params_option_a_has_none():
    a, b = CifarResNet(20, shortcut="A"), CifarResNet(20, shortcut="B")
    shortcuts_a = [blk.shortcut for blk in a.modules() if isinstance(blk, BasicBlock)]
    assert sum(isinstance(s, ZeroPadShortcut) for s in shortcuts_a) == 2  # the two stage transitions
    assert sum(n_params(s) for s in shortcuts_a) == 0
    # two 1x1 projections with BN: 16*32 + 2*32 and 32*64 + 2*64
    assert n_params(b) - n_params(a) == (16 * 32 + 64) + (32 * 64 + 128) == 2752


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and torch.count_nonzero(y[:, 16:]) == 0


def _zero_residual_branch(block: BasicBlock) -> None:
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()


def test_residual_block_with_zero_branch_is_identity_plain_is_not():
    x = torch.rand(2, 16, 8, 8)  # post-ReLU activations are non-negative
    res = BasicBlock(16, 16, residual=True).eval()
    plain = BasicBlock(16, 16, residual=False).eval()
    assert plain.shortcut is None
    _zero_residual_branch(res)
    _zero_residual_branch(plain)
    assert torch.equal(res(x), x)
    assert torch.count_nonzero(plain(x)) == 0


def test_zero_init_residual_starts_the_net_as_its_shortcuts_and_is_refused_for_a_plain_net():
    """Each block then passes its input on (through the shortcut and the ReLU), so ResNet-56's first
    logits are as small as a shallow net's: He et al.'s init starts it above chance (a loss of 3.2)."""
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32)
    net = CifarResNet(56, shortcut="B", zero_init_residual=True).eval()
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    h = torch.rand(2, 16, 8, 8)
    assert torch.equal(blocks[0](h), h)
    labels = torch.randint(0, 10, (64,))
    zero_init = nn.functional.cross_entropy(net.train()(x), labels)
    torch.manual_seed(0)
    he_init_only = nn.functional.cross_entropy(CifarResNet(56, shortcut="B").train()(x), labels)
    assert zero_init < 2.6 < he_init_only  # chance is ln(10) = 2.30
    with pytest.raises(UserError, match="zero_init_residual=true needs a residual net"):
        CifarResNet(20, residual=False, zero_init_residual=True)


def test_plain_net_has_no_shortcuts():
    net = CifarResNet(32, residual=False)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 15 and all(b.shortcut is None for b in blocks)
    assert not any(isinstance(m, ZeroPadShortcut) for m in net.modules())


@pytest.mark.parametrize("depth", [0, 8 - 6, 19, 21, 100, "20"])
def test_bad_depth_raises(depth):
    with pytest.raises(ValueError, match=r"6n\+2.*20, 32, 44, 56, 110"):
        CifarResNet(depth=depth)


def test_any_valid_depth_builds():
    net = CifarResNet(depth=8, num_classes=3).eval()  # n = 1
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_unknown_shortcut_and_attention_raise_with_valid_values():
    with pytest.raises(ValueError, match="valid: A, B"):
        CifarResNet(20, shortcut="C")
    with pytest.raises(ValueError, match="cbam"):
        CifarResNet(20, attention="se")


def test_init_is_kaiming_fan_out_and_unit_bn():
    net = CifarResNet(20)
    conv = net.layer3[0].conv2  # 64 -> 64, fan_out = 64 * 9
    expected_std = (2.0 / (64 * 9)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.05
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)


def test_forward_traces_without_python_control_flow():
    # symbolic tracing fails on data-dependent branches, .item() and similar host syncs
    for net in (CifarResNet(20, attention="cbam"), CifarResNet(20, residual=False), AttentionResNet()):
        gm = torch.fx.symbolic_trace(net.eval())
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(gm(x), net(x))


# ---------------------------------------------------------------- attention


def test_cbam_sits_in_the_residual_path():
    net = CifarResNet(20, attention="cbam").eval()
    cbams = [m for m in net.modules() if isinstance(m, CBAM)]
    assert len(cbams) == 9
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
        cbams[4].spatial.conv.weight.add_(1.0)
        after_spatial = net(x)
        cbams[4].channel.mlp[2].weight.mul_(-3.0)
        after_channel = net(x)
    assert not torch.allclose(before, after_spatial)
    assert not torch.allclose(after_spatial, after_channel)


def test_cbam_preserves_shape_and_gates_in_unit_interval():
    x = torch.rand(2, 24, 6, 6) + 0.1
    y = CBAM(24, reduction=8)(x)
    assert y.shape == x.shape
    assert torch.all(y >= 0) and torch.all(y <= x)  # both gates are sigmoids in (0, 1)


def test_attention_resnet_has_the_recipes_module_tree_and_size():
    net = AttentionResNet(num_classes=10)
    assert abs(n_params(net) - 4_913_705) / 4_913_705 < 0.02
    assert n_params(net) == 4_903_785  # the count documented in the class docstring
    top = [name for name, _ in net.named_children()]
    assert top == [
        "conv1", "bn1", "relu", "layer1", "layer2", "layer3", "layer4",
        "extra_conv", "extra_bn", "avgpool", "dropout", "fc",
    ]  # fmt: skip
    assert net.conv1.out_channels == 31 and net.extra_conv.in_channels == 248 and net.dropout.p == 0.3
    assert all(len(getattr(net, f"layer{i}")) == 2 for i in range(1, 5))


# ---------------------------------------------------------------- weights loading


def _backbone_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in sa.items() if not k.startswith("fc."))


def _trained_like(net: nn.Module) -> nn.Module:
    """Give the net distinct non-init values, BN buffers included."""
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t))
    return net


@pytest.mark.parametrize("fmt", ["state_dict", "lightning_ckpt"])
def test_weights_path_round_trip(tmp_path, fmt):
    src = _trained_like(resnet18(num_classes=10, head="mlp256"))
    path = tmp_path / "w.pt"
    if fmt == "state_dict":
        torch.save(src.state_dict(), path)
    else:  # what a compiled net inside ClassifierModule saves, plus non-net entries
        sd = {f"net._orig_mod.{k}": v for k, v in src.state_dict().items()}
        sd["criterion.weight"] = torch.ones(3)
        torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, path)
    dst = resnet18(num_classes=4, weights_path=str(path))  # other head: fc is skipped
    assert _backbone_equal(src, dst)
    assert dst.fc.out_features == 4


def test_mismatched_weights_file_names_the_layers(tmp_path):
    sd = resnet18(num_classes=10).state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    del sd["layer4.1.bn2.running_var"]
    sd["layer5.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="3 mismatched layers") as info:
        resnet18(num_classes=10, weights_path=path)
    msg = str(info.value)
    assert "layer1.0.conv1.weight" in msg and "layer4.1.bn2.running_var" in msg and "layer5.weight" in msg
    assert "\n" not in msg


def test_resnet18_file_does_not_fit_resnet50(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(resnet18(num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointError, match="mismatched layers"):
        resnet50(num_classes=10, weights_path=path)


def test_imagenet_stem_weights_into_cifar_stem_skip_conv1_only(tmp_path):
    src = _trained_like(resnet18(num_classes=1000, stem="imagenet"))
    path = tmp_path / "imagenet.pth"
    torch.save(src.state_dict(), path)
    with pytest.warns(UserWarning, match="conv1"):
        dst = resnet18(num_classes=10, stem="cifar", weights_path=path)
    sd_src, sd_dst = src.state_dict(), dst.state_dict()
    assert torch.equal(sd_src["bn1.weight"], sd_dst["bn1.weight"])
    assert torch.equal(sd_src["layer3.1.conv2.weight"], sd_dst["layer3.1.conv2.weight"])


def test_weights_file_errors(tmp_path):
    with pytest.raises(UserError, match="weights_path"):
        resnet18(num_classes=10, weights_path=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        resnet18(num_classes=10, weights_path=junk)
    with pytest.raises(ValueError, match="not both"):
        resnet18(num_classes=10, weights="IMAGENET1K_V1", weights_path=junk)


def test_unknown_weights_name_lists_valid_ones():
    with pytest.raises(ValueError, match="IMAGENET1K_V1, IMAGENET1K_V2"):
        resnet50(num_classes=10, weights="IMAGENET22K")
    with pytest.raises(ValueError, match="unknown stem"):
        resnet18(num_classes=10, stem="tiny")
    with pytest.raises(ValueError, match="unknown freeze"):
        resnet18(num_classes=10, freeze="all")
    with pytest.raises(ValueError, match="unknown head"):
        resnet18(num_classes=10, head="mlp512")


def test_download_failure_suggests_weights_path(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(DataError, match="weights_path"):
        resnet18(num_classes=10, weights="IMAGENET1K_V1")


def test_named_weights_load_through_hub(monkeypatch):
    src = _trained_like(resnet50(num_classes=1000, stem="imagenet"))
    seen = {}

    def fake_hub(url, **kwargs):
        seen.update(url=url, **kwargs)
        return src.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_hub)
    dst = resnet50(num_classes=10, stem="imagenet", weights="ResNet50_Weights.IMAGENET1K_V2")
    assert "resnet50" in seen["url"] and seen["weights_only"] is True and seen["map_location"] == "cpu"
    assert _backbone_equal(src, dst)


# ---------------------------------------------------------------- freezing


def test_freeze_backbone_keeps_backbone_and_bn_stats_bit_identical():
    net = resnet18(num_classes=10, freeze="backbone", head="mlp256")
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("fc.") for n in trainable)
    before = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    net.train()
    assert not net.bn1.training and not net.layer2[0].bn1.training and net.fc.training
    for _ in range(3):
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = net.state_dict()
    for k, v in before.items():
        if k.startswith("fc."):
            continue
        assert torch.equal(v, after[k]), f"{k} changed although frozen"
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("fc."))


def test_unfrozen_bn_trains_again():
    net = resnet18(num_classes=10, freeze="backbone")
    for p in net.layer4.parameters():  # what BackboneFinetuning does when it unfreezes
        p.requires_grad_(True)
    net.train()
    assert net.layer4[0].bn1.training and not net.layer1[0].bn1.training
    net.eval()
    assert not net.layer4[0].bn1.training and not net.fc.training
