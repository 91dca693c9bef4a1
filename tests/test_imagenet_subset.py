"""ImageNetSubsetDataModule on a small generated tree of images of mixed sizes and modes."""

from __future__ import annotations

import logging

import pytest
import torch

from cifar_resnets.config.resources import conf_dir
from cifar_resnets.data.imagenet_subset import ImageNetSubsetDataModule
from cifar_resnets.data.synthetic import write_synthetic_imagenet
from cifar_resnets.errors import DataError


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_synthetic_imagenet(tmp_path_factory.mktemp("imagenet"), classes=3, per_class=6, corrupt=1)


def test_loads_mixed_modes_and_skips_corrupt_file(tree, caplog):
    dm = ImageNetSubsetDataModule(str(tree), classes=2, image_size=32, resize_size=40, batch_size=4,
                                  eval_batch_size=3, num_workers=0)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert dm.num_classes == 2 and len(dm.classes) == 2 and dm.image_size == 32
    assert len(dm.skipped["train"]) == 1 and "corrupt" in dm.skipped["train"][0].name
    assert "skipped 1 unreadable file" in caplog.text
    assert dm.steps_per_epoch == 12 // 4
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    xv, yv = next(iter(dm.test_dataloader()))
    assert xv.shape == (3, 3, 32, 32) and set(yv.tolist()) <= {0, 1}


def test_class_list_per_class_and_mixup(tree):
    wnids = sorted(p.name for p in (tree / "train").iterdir())
    dm = ImageNetSubsetDataModule(str(tree), classes=[wnids[2], wnids[1]], per_class=3, image_size=16,
                                  resize_size=20, batch_size=6, num_workers=0,
                                  augment={"mixup_alpha": 1.0, "mixup_prob": 1.0})  # fmt: skip
    dm.setup("fit")
    assert dm.classes == [wnids[2], wnids[1]] and len(dm._samples["train"]) == 6
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (6, 3, 16, 16) and y.shape == (6, 2)
    torch.testing.assert_close(y.sum(1), torch.ones(6))


def test_damaged_pixels_fall_back_to_next_image(tree, tmp_path):
    from cifar_resnets.data.imagenet_subset import ImageListDataset

    good = next((tree / "train").rglob("*_0000.JPEG"))
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(good.read_bytes()[:200])  # header intact, pixel data cut
    ds = ImageListDataset([(broken, 0), (good, 1)], transform=lambda im: im.size)
    assert ds[0] == (ds[1][0], 1)


def test_missing_root_and_bad_classes(tree, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageNetSubsetDataModule(str(tmp_path / "absent")).setup("fit")
    with pytest.raises(DataError, match="holds 3 classes"):
        ImageNetSubsetDataModule(str(tree), classes=5)
    with pytest.raises(DataError, match="not found"):
        ImageNetSubsetDataModule(str(tree), classes=["n99999999"])
    (tmp_path / "only_train" / "train" / "n1").mkdir(parents=True)
    with pytest.raises(DataError, match="val"):
        ImageNetSubsetDataModule(str(tmp_path / "only_train"), classes=1).setup("fit")


def test_config_instantiates(tree):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(conf_dir() / "data" / "imagenet_subset.yaml")
    cfg.root, cfg.seed, cfg.classes, cfg.num_workers = str(tree), 0, 3, 0
    dm = instantiate(cfg, augment=None)
    dm.setup("fit")
    assert dm.num_classes == 3
