"""Learning-rate schedules: milestones in steps, epochs or fractions, and both warm-ups."""

from __future__ import annotations

import pytest
import torch
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import ConfigError
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer
from cifar_resnets.training.schedules import cosine, multistep, onecycle, planned_steps


def _lrs(factory, steps: int = 100, **kwargs) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    scheduler = factory(optimizer, total_steps=steps, steps_per_epoch=10, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "unit,milestones", [("step", [50, 75]), ("epoch", [5, 7.5]), ("fraction", [0.5, 0.75])]
)
def test_multistep_units_agree(unit: str, milestones: list[float]) -> None:
    lrs = _lrs(multistep, milestones=milestones, unit=unit)
    assert (
        lrs[49] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.01) and lrs[75] == pytest.approx(0.001)
    )


def test_constant_warmup_then_he_et_al_milestones_stay_global() -> None:
    lrs = _lrs(multistep, milestones=[50, 75], unit="step", warmup_steps=10, warmup_mode="constant")
    assert lrs[0] == lrs[9] == pytest.approx(0.01)
    assert lrs[10] == lrs[49] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.01) and lrs[75] == pytest.approx(0.001)


def test_linear_warmup_ramps_then_cosine_ends_at_eta_min() -> None:
    lrs = _lrs(cosine, warmup_steps=10, eta_min=0.0)
    assert lrs[0] == pytest.approx(0.01) and lrs[0] < lrs[5] < lrs[10]
    assert lrs[10] == pytest.approx(0.1) and lrs[-1] < 1e-3


def test_onecycle_peaks_at_the_optimizer_lr() -> None:
    lrs = _lrs(onecycle, pct_start=0.2)
    assert max(lrs) == pytest.approx(0.1, rel=1e-3) and lrs.index(max(lrs)) in (19, 20)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"milestones": [80, 120], "unit": "step"},
        {"milestones": [0.75, 0.5], "unit": "fraction"},
        {"milestones": [1.5], "unit": "fraction"},
        {"milestones": [10], "unit": "week"},
        {"milestones": [10], "unit": "step", "warmup_mode": "exponential", "warmup_steps": 5},
    ],
)
def test_impossible_schedules_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        _lrs(multistep, **kwargs)


@pytest.mark.parametrize(
    "max_steps,max_epochs,total",
    [(-1, 3, 12), (10, -1, 10), (10, 3, 10), (100, 2, 8), (-1, -1, None)],
)
def test_planned_steps_is_whichever_limit_comes_first(max_steps: int, max_epochs: int, total) -> None:
    assert planned_steps(max_steps, max_epochs, steps_per_epoch=4) == total


def test_the_schedule_ends_with_the_run_when_the_epoch_limit_comes_first(synthetic_cifar10, tmp_path) -> None:
    """max_steps=100 with 2 epochs of 4 steps: the one-cycle schedule spans the 8 steps the run takes."""
    overrides = {
        "model.depth": 8,
        "data.num_train": 128,
        "data.val_size": 0,
        "data.batch_size": 32,
        "trainer.max_epochs": 2,
        "trainer.max_steps": 100,
        "schedule": "onecycle",
        "logger": "none",
        "callbacks.lr_monitor": None,
        "callbacks.checkpoint": None,
        "test_after_fit": False,
    }
    cfg = compose_train(tiny_overrides(synthetic_cifar10, **overrides), output_dir=tmp_path)
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg)
    trainer.fit(build_module(cfg, datamodule.num_classes), datamodule=datamodule)
    assert trainer.global_step == 8
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 8
