"""Every architecture and dataset trains through `train()`; gradual unfreezing works with our module."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.data.synthetic import write_synthetic_imagenet
from cifar_resnets.models.build import build_net
from cifar_resnets.training.build import build_callbacks, build_datamodule, build_module, build_trainer
from cifar_resnets.training.train import train

# One training step on 16 images, one small validation and test batch.
ONE_STEP = {
    "data.val_size": 32,
    "data.num_train": 32,
    "data.batch_size": 16,
    "data.eval_batch_size": 32,
    "trainer.max_steps": 1,
    "trainer.limit_val_batches": 1,
    "trainer.limit_test_batches": 1,
}


def _ckpt_data_info(run_dir: Path) -> dict:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["hyper_parameters"]["data_info"]


@pytest.mark.parametrize(
    "model, extra, image_size",
    [
        ("attention_resnet", {}, 32),
        ("resnet18", {"data.image_size": 16}, 16),  # CIFAR stem, downscaled for speed
        ("resnet18", {"model.stem": "imagenet", "data.image_size": 48, "data.loader": "gpu"}, 48),
        ("resnet50", {"model.freeze": "backbone", "model.head": "mlp256"}, 32),
        ("resnet20", {"model.attention": "cbam"}, 32),
    ],
    ids=["attention_resnet", "resnet18_cifar_stem", "resnet18_imagenet_resized", "resnet50_frozen_mlp256",
         "resnet20_cbam"],
)  # fmt: skip
def test_every_model_trains_a_step(
    synthetic_cifar10: Path, tmp_path: Path, model: str, extra: dict, image_size: int
) -> None:
    cfg = compose_train([f"model={model}", *tiny_overrides(synthetic_cifar10, **ONE_STEP, **extra)], tmp_path)
    metrics = train(cfg)
    assert metrics["steps"] == 1 and 0.0 <= metrics["test/acc"] <= 1.0 and metrics["params"] > 0
    # Tools rebuild the preprocessing from the checkpoint: the resized input size must be in it.
    assert _ckpt_data_info(tmp_path)["image_size"] == image_size


@pytest.mark.parametrize(
    "model, extra",
    [
        pytest.param("preact_resnet110", {}, marks=pytest.mark.slow),
        ("wrn16_4", {"model.dropout": 0.3}),
        pytest.param("preact_resnet164", {}, marks=pytest.mark.slow),
        pytest.param("preact_resnet1001", {"data.batch_size": 4}, marks=pytest.mark.slow),
        pytest.param("wrn16_8", {}, marks=pytest.mark.slow),
        pytest.param("wrn28_10", {"data.batch_size": 8}, marks=pytest.mark.slow),
        pytest.param("wrn40_4", {}, marks=pytest.mark.slow),
    ],
)
def test_preact_and_wide_resnets_train_steps_and_learn(
    synthetic_cifar10: Path, tmp_path: Path, model: str, extra: dict
) -> None:
    """Three CPU steps of each pre-activation and Wide ResNet from its real config, tested after them."""
    steps = {**ONE_STEP, "trainer.max_steps": 3, "data.num_train": 48, **extra}
    cfg = compose_train([f"model={model}", *tiny_overrides(synthetic_cifar10, **steps)], tmp_path)
    metrics = train(cfg)
    assert metrics["steps"] == 3 and 0.0 <= metrics["test/acc"] <= 1.0 and metrics["model"] == model
    assert metrics["params"] == sum(p.numel() for p in build_net(cfg.model, 10).parameters())


def test_imagenet_subset_trains_end_to_end(tmp_path: Path) -> None:
    root = write_synthetic_imagenet(tmp_path / "imagenet", classes=3, per_class=6, val_per_class=2)
    overrides = {
        "data": "imagenet_subset",
        "data.root": root,
        "data.classes": 3,
        "data.image_size": 64,
        "data.resize_size": 72,
        "data.batch_size": 6,
        "data.eval_batch_size": 6,
        "data.num_workers": 0,
        "model": "resnet18",
        "model.stem": "imagenet",
        "augment": "strong",  # photometric transforms and mixup/cutmix on the ImageNet loader too
        "trainer.accelerator": "cpu",
        "trainer.max_epochs": 1,
        "callbacks.progress_bar": "null",
    }
    run = tmp_path / "run"
    metrics = train(compose_train([f"{k}={v}" for k, v in overrides.items()], output_dir=run))
    assert metrics["steps"] == 3 and 0.0 <= metrics["test/acc"] <= 1.0  # 18 readable images / 6
    info = _ckpt_data_info(run)
    assert info["image_size"] == 64 and info["resize_size"] == 72 and len(info["classes"]) == 3


class _OptimizerProbe(L.Callback):
    """Records, at the end of each epoch, the optimizer's groups and a backbone conv and BN weight."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []
        self.start: dict = {}

    def _snapshot(self, trainer: L.Trainer, module: L.LightningModule) -> dict:
        net = module.net
        optimizer = trainer.optimizers[0]
        return {
            "groups": len(optimizer.param_groups),
            "lrs": [g["lr"] for g in optimizer.param_groups],
            "optimized": {id(p) for g in optimizer.param_groups for p in g["params"]},
            "conv": net.layer1[0].conv1.weight.detach().clone(),
            "bn": net.layer1[0].bn1.weight.detach().clone(),
            "conv_id": id(net.layer1[0].conv1.weight),
            "head_ids": {id(p) for p in net.fc.parameters()},
        }

    def on_train_start(self, trainer, module) -> None:
        self.start = self._snapshot(trainer, module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self.epochs.append(self._snapshot(trainer, module))


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
def test_finetune_callback_unfreezes_the_backbone_at_its_epoch(
    synthetic_cifar10: Path, tmp_path: Path, schedule: str
) -> None:
    """``callbacks=finetune``: head (+BN) only first, then the backbone joins as a new, slower param group."""
    extra = {
        **ONE_STEP,
        "trainer.max_steps": -1,
        "trainer.max_epochs": 2,
        "model": "resnet18",
        "model.stem": "imagenet",
        "callbacks": "finetune",
        "callbacks.finetune.unfreeze_backbone_at_epoch": 1,
        "optim.lr": 0.05,
        "schedule": schedule,
    }
    cfg = compose_train(tiny_overrides(synthetic_cifar10, **extra), output_dir=tmp_path)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    probe = _OptimizerProbe()
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), probe])
    trainer.fit(module, datamodule=datamodule)

    start, frozen, unfrozen = probe.start, *probe.epochs
    # configure_optimizers saw the frozen backbone: only requires_grad params (head, BN) are optimized
    assert start["groups"] == 1 and start["head_ids"] <= start["optimized"]
    assert start["conv_id"] not in start["optimized"]
    assert torch.equal(frozen["conv"], start["conv"])  # epoch 0: backbone convs frozen ...
    assert not torch.equal(frozen["bn"], start["bn"])  # ... BatchNorm trains (train_bn: true)
    assert unfrozen["groups"] == 2 and unfrozen["conv_id"] in unfrozen["optimized"]
    # backbone_initial_ratio_lr, kept through the per-step schedule (new group registered with it)
    assert unfrozen["lrs"][1] == pytest.approx(0.1 * unfrozen["lrs"][0])
    assert not torch.equal(unfrozen["conv"], frozen["conv"])  # epoch 1: the backbone learns


def test_finetune_callback_refuses_a_net_without_backbone(synthetic_cifar10: Path, tmp_path: Path) -> None:
    cfg = compose_train(
        tiny_overrides(synthetic_cifar10, **ONE_STEP, callbacks="finetune", model="attention_resnet"),
        output_dir=tmp_path,
    )
    with pytest.raises(Exception, match="backbone"):
        train(cfg)
