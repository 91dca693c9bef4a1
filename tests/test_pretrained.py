"""Published CIFAR ResNets by name: exact key mapping, hub cache, offline errors, every tool, fine-tuning."""

from __future__ import annotations

import ast
import csv
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from train_helpers import REPO, run_cli, tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import ConfigError
from cifar_resnets.export.exporter import export_checkpoint
from cifar_resnets.inference.checkpoint import load_model
from cifar_resnets.inference.evaluate import evaluate
from cifar_resnets.inference.predict import predict_probs
from cifar_resnets.models import pretrained_names
from cifar_resnets.models.build import build_net
from cifar_resnets.models.pretrained import CLASS_NAMES, pretrained_net
from cifar_resnets.reproduce.plan import smoke_overrides
from cifar_resnets.training.train import train

AKAMASTER_20 = "pretrained:akamaster/resnet20"


def _akamaster_logits(state: dict[str, torch.Tensor], x: torch.Tensor, depth: int) -> torch.Tensor:
    """akamaster's ResNet forward, after its resnet.py: option A pads new channels on both sides."""
    s = {k.removeprefix("module."): v for k, v in state.items()}

    def bn(h: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(
            h, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"], s[f"{name}.bias"]
        )

    h = F.relu(bn(F.conv2d(x, s["conv1.weight"], padding=1), "bn1"))
    for stage in (1, 2, 3):
        for block in range((depth - 2) // 6):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(h, s[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, s[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            planes = out.shape[1]
            short = F.pad(h[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)) if stride > 1 else h
            h = F.relu(out + short)
    return F.linear(F.avg_pool2d(h, h.shape[3]).flatten(1), s["linear.weight"], s["linear.bias"])


class _ChenyaofoBlock(nn.Module):
    """chenyaofo's BasicBlock layout: conv1/bn1/conv2/bn2 and a ``downsample`` projection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ChenyaofoResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, stages = 16, []
        for i, width in enumerate((16, 32, 64)):
            stages.append(
                nn.Sequential(
                    *[
                        _ChenyaofoBlock(cin if j == 0 else width, width, 2 if i and not j else 1)
                        for j in range(n)
                    ]
                )
            )
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():  # trained-looking BatchNorms, so a wrong mapping cannot hide
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_names_cover_both_releases_with_hash_named_files() -> None:
    names = pretrained_names()
    assert names[0] == AKAMASTER_20 and names[-1] == "pretrained:chenyaofo/cifar100_resnet56"
    assert len(names) == 14
    for name in names:
        release = pretrained_net(name)
        assert release.url.startswith(f"https://github.com/{release.project}/")
        assert release.license in ("BSD-2-Clause", "BSD-3-Clause") and 60 < release.published_accuracy < 95
        assert len(release.file_name.rsplit("-", 1)[1].split(".")[0]) == 8  # torch.hub's hash prefix
    with pytest.raises(ConfigError, match="choose one of pretrained:akamaster/resnet20"):
        load_model("pretrained:akamaster/resnet21")


@pytest.mark.parametrize("depth", [20, 56])
def test_akamaster_mapping_gives_the_source_models_logits(pretrained_hub: Path, depth: int) -> None:
    loaded = load_model(f"pretrained:akamaster/resnet{depth}")
    assert (loaded.mean, loaded.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert loaded.classes[0] == "airplane" and loaded.config["model"]["shortcut"] == "A"
    file = next((pretrained_hub / "hub" / "checkpoints").glob(f"resnet{depth}-*.th"))
    state = torch.load(file, map_location="cpu", weights_only=True)["state_dict"]
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = loaded.net(x), _akamaster_logits(state, x, depth)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_chenyaofo_mapping_gives_the_source_models_logits(pretrained_hub: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _ChenyaofoResNet(20, 100).eval()
    release = pretrained_net("pretrained:chenyaofo/cifar100_resnet20")
    torch.save(source.state_dict(), pretrained_hub / "hub" / "checkpoints" / release.file_name)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        theirs = source(x)
        by_name = load_model(release.name)
        torch.testing.assert_close(by_name.net(x), theirs, rtol=1e-4, atol=1e-4)
        local = tmp_path / release.file_name  # a local copy of the release file works as well
        shutil.copy(pretrained_hub / "hub" / "checkpoints" / release.file_name, local)
        torch.testing.assert_close(load_model(local).net(x), theirs, rtol=1e-4, atol=1e-4)
    assert by_name.num_classes == 100 and by_name.classes[:2] == ["apple", "aquarium_fish"]
    assert by_name.mean == (0.5070, 0.4865, 0.4409) and by_name.config["model"]["shortcut"] == "B"


def test_offline_and_missing_says_the_url_and_where_to_put_it(pretrained_hub: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "cifar_resnets.cli.evaluate", ["ckpt=pretrained:akamaster/resnet32"], tmp_path, check=False
    )
    release = pretrained_net("pretrained:akamaster/resnet32")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert (
        release.url in lines[0]
        and str(pretrained_hub / "hub" / "checkpoints" / release.file_name) in lines[0]
    )
    assert not list((pretrained_hub / "hub" / "checkpoints").glob("resnet32*"))


def test_eval_predict_and_export_agree_and_eval_shows_the_published_figure(
    pretrained_hub: Path, small_real_cifar10: Path, tmp_path: Path
) -> None:
    report = evaluate(AKAMASTER_20, str(small_real_cifar10), device="cpu", out_dir=tmp_path / "eval")
    assert report["accuracy"] > 0.7 and report["num_images"] == 1000
    assert report["published"]["published_accuracy"] == 91.73
    assert "Published: 91.73% on the original test set" in report["markdown"]
    assert "pretrained:akamaster/resnet20 on cifar10 test split" in report["markdown"]

    loaded = load_model(AKAMASTER_20)
    images = torch.randint(
        0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    np.save(tmp_path / "images.npy", images.numpy())
    ours = predict_probs(loaded, images, device="cpu").numpy()

    export = export_checkpoint(AKAMASTER_20, tmp_path / "bundle", onnx=False)
    assert export.card["trained_by"]["url"] == pretrained_net(AKAMASTER_20).url
    bundled = predict_probs(load_model(tmp_path / "bundle"), images, device="cpu").numpy()
    np.testing.assert_allclose(bundled, ours, atol=1e-6)

    out = tmp_path / "preds.csv"
    args = ["--ckpt", AKAMASTER_20, "--input", str(tmp_path / "images.npy"), "--out", str(out), "--probs"]
    run_cli("cifar_resnets.cli.predict", [*args, "--device", "cpu"], tmp_path)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    predicted = np.array([[float(r[f"prob_{c}"]) for c in loaded.classes] for r in rows])
    np.testing.assert_allclose(predicted, ours, atol=1e-5)


def test_fine_tuning_starts_from_the_published_accuracy(
    pretrained_hub: Path, small_real_cifar10: Path, tmp_path: Path
) -> None:
    # One step at a tiny learning rate: the test accuracy is the published net's, far above chance (10%).
    extra = {"model.weights": AKAMASTER_20, "trainer.max_steps": 1, "optim.lr": 1e-4}
    cfg = compose_train(["model=resnet20", *tiny_overrides(small_real_cifar10, **extra)], tmp_path / "run")
    metrics = train(cfg)
    assert metrics["steps"] == 1 and metrics["test/acc"] > 0.6
    # The checkpoint rebuilds without the name: its own weights replace the published ones.
    assert (
        load_model(tmp_path / "run" / "checkpoints" / "last.ckpt").config["model"]["weights"] == AKAMASTER_20
    )


def test_fine_tuning_refuses_weights_of_another_depth(pretrained_hub: Path, small_real_cifar10: Path) -> None:
    cfg = compose_train(
        ["model=resnet32", f"model.weights={AKAMASTER_20}", *tiny_overrides(small_real_cifar10)]
    )

    with pytest.raises(ConfigError, match="is a ResNet-20 with option-A shortcuts; use model=resnet20"):
        build_net(cfg.model, 10)


def test_torch_hub_loads_this_repository(pretrained_hub: Path) -> None:
    net = torch.hub.load(str(REPO), "cifar10_resnet20", source="local", pretrained=True, trust_repo=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), load_model(AKAMASTER_20).net(x))
    untrained = torch.hub.load(str(REPO), "preact_resnet164", source="local", trust_repo=True)
    assert sum(p.numel() for p in untrained.parameters()) == 1_703_258


@pytest.mark.slow
@pytest.mark.parametrize(("depth", "accuracy"), [(20, 0.8103), (56, 0.8320)])
def test_akamaster_scores_its_measured_accuracy_on_the_jpeg_copy(
    pretrained_hub: Path, real_cifar10: Path, tmp_path: Path, depth: int, accuracy: float
) -> None:
    """The figure akamaster's own code gives on the JPEG copy's 10,000 test images (shared data README)."""
    report = evaluate(
        f"pretrained:akamaster/resnet{depth}", str(real_cifar10), device="cpu", out_dir=tmp_path
    )
    assert round(report["accuracy"], 4) == accuracy


def _readme_section(first: str, last: str) -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index(f"## {first}\n") : text.index("\n## ", text.index(f"## {last}\n"))]


def test_readme_lists_every_published_figure() -> None:
    section = _readme_section("Pretrained nets", "Pretrained nets")
    for name in pretrained_names():
        assert f"{pretrained_net(name).published_accuracy:.2f}" in section, name


@pytest.mark.slow
def test_readme_pretrained_and_python_api_commands_run(
    pretrained_hub: Path, synthetic_cifar10: Path, tmp_path: Path
) -> None:
    """The README's Pretrained nets and Python API blocks, as written, in a folder like the README's (the
    test data as ``data``, photos), shrunk to a few CPU steps where they train; chenyaofo's file, which is
    not available offline, is one written in its layout."""
    torch.manual_seed(0)
    chenyaofo = pretrained_net("pretrained:chenyaofo/cifar100_resnet56")
    torch.save(
        _ChenyaofoResNet(56, 100).state_dict(), pretrained_hub / "hub" / "checkpoints" / chenyaofo.file_name
    )
    (tmp_path / "data").symlink_to(synthetic_cifar10)
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("cat.jpg", (64, 48)), ("ship.png", (32, 32))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
            tmp_path / "photos" / name
        )
    text = _readme_section("Pretrained nets", "Python API")
    commands = [
        ln.split(" #", 1)[0].strip()
        for ln in re.findall(r"```sh\n(.*?)```", text, flags=re.S)[0].splitlines()
    ]
    modules = {
        "cifar-eval": "evaluate",
        "cifar-predict": "predict",
        "cifar-export": "export",
        "cifar-train": "train",
    }
    for command in commands:
        program, *args = shlex.split(command)
        if program == "cifar-train":  # the suite's smoke overrides, but with the offline weights kept
            shrink = smoke_overrides(compose_train(args)) + [
                "paths.data_dir=data",
                "hydra.run.dir=outputs/runs/ft",
            ]
            args += [a for a in shrink if a != "model.weights=null"]
        run_cli(f"cifar_resnets.cli.{modules[program]}", args, tmp_path)
    assert (
        "Published: 91.73%" in (tmp_path / "outputs/pretrained/akamaster-resnet20/eval_test.md").read_text()
    )
    assert (tmp_path / "exports/akamaster_resnet56/model.safetensors").is_file()
    assert (tmp_path / "outputs/runs/ft/checkpoints/last.ckpt").is_file()
    python = re.findall(r"```python\n(.*?)```", _readme_section("Python API", "Python API"), flags=re.S)[0]
    proc = subprocess.run(
        [sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    top = ast.literal_eval(proc.stdout)  # the printed list of (class, probability) lists
    assert len(top) == 2 and len(top[0]) == 5 and top[0][0][0] in CLASS_NAMES["cifar10"]
