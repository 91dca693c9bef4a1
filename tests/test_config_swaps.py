"""A recipe with its optimizer or schedule swapped runs, with the swapped-in option's own values.

An experiment selects its optimizer and schedule by option (``optim: cbam_sgd``, ``schedule: he2016``)
and sets none of their keys itself: a key it set for its own option would stay merged into whichever
option the user picks (``momentum`` into Adam, ``unit`` into cosine) and fail when built. Each case
composes through Hydra's compose API, runs the config checks and builds the optimizer and scheduler
as training does (on a stand-in parameter, so no net is built): no training.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from train_helpers import tiny_overrides

from cifar_resnets.config.checks import check_config
from cifar_resnets.config.compose import compose_train
from cifar_resnets.config.resources import conf_dir
from cifar_resnets.errors import ConfigError
from cifar_resnets.training.schedules import planned_steps

EXPERIMENTS = sorted(
    p.relative_to(conf_dir() / "experiment").with_suffix("").as_posix()
    for p in (conf_dir() / "experiment").rglob("*.yaml")
)
OPTIMS = sorted(p.stem for p in (conf_dir() / "optim").glob("*.yaml"))
SCHEDULES = sorted(p.stem for p in (conf_dir() / "schedule").glob("*.yaml"))
KNOWN_TRAIN_IMAGES = 50_000  # CIFAR-10/100's training split


def _option(group: str, option: str) -> dict:
    return OmegaConf.to_container(compose_train([f"{group}={option}"])[group], resolve=True)


OPTION_VALUES = {
    **{("optim", o): _option("optim", o) for o in OPTIMS},
    **{("schedule", s): _option("schedule", s) for s in SCHEDULES},
}


def _build(cfg) -> None:
    """The optimizer and scheduler of ``cfg``, as ``ClassifierModule.configure_optimizers`` builds them,
    stepped once."""
    data = cfg.data
    images = data.num_train or KNOWN_TRAIN_IMAGES - data.val_size
    steps_per_epoch = images // data.batch_size
    total = planned_steps(cfg.trainer.max_steps, cfg.trainer.max_epochs, steps_per_epoch)
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = instantiate(cfg.optim)([weight])
    scheduler = instantiate(cfg.schedule)(optimizer, total_steps=total, steps_per_epoch=steps_per_epoch)
    optimizer.step()
    scheduler.step()


def _check_and_build(cfg, case: str) -> None:
    try:
        check_config(cfg)
    except ConfigError as err:
        # The one combination that cannot work: step or epoch milestones beyond a shorter recipe's end.
        assert "schedule.milestones" in str(err) and "end of the run" in str(err), f"{case}: {err}"
        return
    _build(cfg)


def _compose_swap(experiment: str, overrides: list[str]):
    # A missing data folder: the checks judge values only (data files are checked when a run starts).
    cfg = compose_train([f"experiment={experiment}", *overrides, "data.root=/nonexistent"])
    for group in ("optim", "schedule"):
        option = cfg.hydra.runtime.choices[group]
        assert OmegaConf.to_container(cfg[group], resolve=True) == OPTION_VALUES[group, option], (
            f"experiment={experiment} {' '.join(overrides)}: {group} is not {group}={option}'s own values"
        )
    return cfg


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_optim_and_schedule_option_swaps_into_every_experiment(experiment: str) -> None:
    """Each option of each group in place of the experiment's own (the other group kept). Composing
    takes a tenth of a second, so this swaps the option's composed values in; that equals composing
    with the option because no experiment sets a key of either group (the test below), and the slow
    test composes each swap."""
    base = compose_train([f"experiment={experiment}", "data.root=/nonexistent"])
    for group, options in (("optim", OPTIMS), ("schedule", SCHEDULES)):
        for option in options:
            cfg = base.copy()
            with open_dict(cfg):
                cfg[group] = OPTION_VALUES[group, option]
            _check_and_build(cfg, f"experiment={experiment} {group}={option}")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_option_swaps_into_every_experiment_through_compose(experiment: str) -> None:
    """Each optim option and each schedule option composed into the experiment as a user types it (the
    two groups hold no key of each other, so one group at a time covers every pair)."""
    for group, options in (("optim", OPTIMS), ("schedule", SCHEDULES)):
        for option in options:
            overrides = [f"{group}={option}"]
            _check_and_build(_compose_swap(experiment, overrides), f"{experiment} {' '.join(overrides)}")


def test_an_experiment_sets_no_key_of_the_options_it_selects() -> None:
    """What keeps the swaps working: the option files hold the values, the experiment only names them."""
    for experiment in EXPERIMENTS:
        text = OmegaConf.load(conf_dir() / "experiment" / f"{experiment}.yaml")
        assert "optim" not in text and "schedule" not in text, experiment


@pytest.mark.slow
def test_the_he2016_recipe_sweeps_over_optimizers_and_schedules(
    synthetic_cifar10: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """``cifar-train -m experiment=he2016/resnet20 optim=sgd,adam,rmsprop schedule=multistep,cosine,constant``
    runs all nine jobs (shrunk to a few CPU steps each)."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from cifar_resnets.cli.train import main

    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=he2016/resnet20",
        "optim=sgd,adam,rmsprop",
        "schedule=multistep,cosine,constant",
        *tiny_overrides(synthetic_cifar10, **{"trainer.max_steps": 2, "trainer.limit_val_batches": 1}),
        "trainer.limit_test_batches=1",
        f"hydra.sweep.dir={sweep}",
    ]
    GlobalHydra.instance().clear()
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["cifar-train", *args])
    main()
    GlobalHydra.instance().clear()
    finished = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert len(finished) == 9, finished
    for metrics in sweep.glob("*/metrics.json"):
        assert '"completed"' in metrics.read_text(), metrics
