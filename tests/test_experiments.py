"""Every experiment config runs end to end, shrunk to a few seconds of CPU work."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.config.resources import conf_dir
from cifar_resnets.training.train import train

EXPERIMENTS = sorted(
    p.relative_to(conf_dir() / "experiment").with_suffix("").as_posix()
    for p in (conf_dir() / "experiment").rglob("*.yaml")
)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_tiny(
    name: str, synthetic_cifar10: Path, synthetic_cifar100: Path, tmp_path: Path
) -> None:
    cfg = compose_train([f"experiment={name}"])
    if cfg.data.name not in ("cifar10", "cifar100"):
        pytest.skip(f"{name} trains on {cfg.data.name}; covered by its own test")
    root = synthetic_cifar10 if cfg.data.name == "cifar10" else synthetic_cifar100
    # One training step and one small eval batch: the 5-11M-parameter nets cost seconds, not minutes.
    extra: dict[str, object] = {"data.eval_batch_size": 64, "trainer.limit_val_batches": 1}
    extra.update({"trainer.limit_train_batches": 1, "trainer.limit_test_batches": 1})
    if cfg.model.get("weights"):
        extra["model.weights"] = None  # torchvision weights need internet; the net is the same without
    if cfg.data.get("image_size", 32) > 32:
        extra["data.image_size"] = 32  # an upsampled input costs minutes on a CPU; the resize has own tests
    if cfg.schedule.get("milestones") and cfg.schedule.get("unit") != "fraction":
        # Step/epoch milestones (He et al.'s 32k/48k) lie beyond a one-epoch run: same shape, as fractions.
        extra.update({"schedule.unit": "fraction", "schedule.milestones": "[0.5,0.75]"})
    cfg = compose_train([f"experiment={name}", *tiny_overrides(root, **extra)], output_dir=tmp_path)
    metrics = train(cfg)
    assert metrics["epochs"] >= 1 and 0.0 <= metrics["test/acc"] <= 1.0


def test_resnet_family_tables_carry_their_papers_numbers() -> None:
    """The published errors as the papers print them (each table's source says which table or figure)."""
    from cifar_resnets.reproduce.spec import load_table

    preact = load_table("preact2016")
    assert [r.published for r in preact.rows] == [6.37, None, 5.46, 24.33, 4.92, 22.71]
    wrn = load_table("wide_resnets")
    assert {r.name: r.published for r in wrn.rows}["wrn28_10_c10"] == 4.00
    assert [r.published for r in wrn.rows][-4:] == [4.00, 19.25, 3.89, 18.85]
    he = load_table("he2016_table6")
    assert he.row("resnet1202").published == 7.93
    assert "Only ResNet-110 was run 5 times" in he.source and "45k or all 50k" in he.source
    for table in (preact, wrn, he):
        assert all(r.images_per_second for r in table.rows)  # every row has a GPU-hour estimate
