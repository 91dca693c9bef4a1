"""CIFAR data options for transfer learning: `image_size` (resize on both loaders) and `classes` (subset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_resnets.data.cifar import CIFARDataModule
from cifar_resnets.data.cifar_files import cifar_splits, load_cifar
from cifar_resnets.data.gpu_loader import GPUBatchLoader, resize
from cifar_resnets.data.transforms import eval_view, normalize
from cifar_resnets.errors import ConfigError

STRONG = {
    "rotation": 15.0,
    "color_jitter": 0.2,
    "hue": 0.1,
    "perspective": 0.2,
    "mixup_alpha": 1.0,
    "mixup_prob": 0.5,
    "cutmix_alpha": 1.0,
    "cutmix_prob": 0.5,
}


def _dm(root: Path, loader: str, **kwargs) -> CIFARDataModule:
    dm = CIFARDataModule(
        "cifar10", str(root), val_size=64, batch_size=32, eval_batch_size=64, loader=loader, **kwargs
    )
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("loader", ["gpu", "cpu"])
@pytest.mark.parametrize("size", [48, 16])
def test_image_size_resizes_train_and_eval_batches(synthetic_cifar10: Path, loader: str, size: int) -> None:
    dm = _dm(synthetic_cifar10, loader, image_size=size, augment=STRONG)
    assert dm.image_size == size
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 3, size, size) and x.dtype == torch.float32
    assert y.shape == (32, 10) and torch.allclose(y.sum(1), torch.ones(32))
    for loader_fn in (dm.val_dataloader, dm.test_dataloader):
        xe, ye = next(iter(loader_fn()))
        assert xe.shape == (64, 3, size, size) and ye.dtype == torch.int64


@pytest.mark.parametrize("size", [64, 224, 16])
def test_both_loaders_feed_eval_images_as_inference_does(synthetic_cifar10: Path, size: int) -> None:
    """The CPU DataLoader, the GPU-resident loader and inference (``eval_view``) resize an evaluation image
    to the same uint8 pixels; only the float arithmetic of the normalisation differs."""
    gpu = next(iter(_dm(synthetic_cifar10, "gpu", image_size=size).test_dataloader()))[0]
    cpu = next(iter(_dm(synthetic_cifar10, "cpu", image_size=size).test_dataloader()))[0]
    dm = _dm(synthetic_cifar10, "cpu", image_size=size)
    test_images = torch.from_numpy(load_cifar(synthetic_cifar10, "cifar10").test_images[:64])
    expected = normalize(eval_view(test_images, size), dm.mean, dm.std)
    torch.testing.assert_close(cpu, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(gpu, expected, rtol=0, atol=1e-5)  # one uint8 step is ~0.016


def test_resize_is_bilinear_and_keeps_native_size() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(2, 3, 4, 4).contiguous()
    assert resize(x, None) is x and resize(x, 4) is x
    up = resize(x, 8)
    assert up.shape == (2, 3, 8, 8)
    # align_corners=False: the mean is preserved for a linear ramp, corners are the input corners
    assert torch.isclose(up.mean(), x.mean()) and up[0, 0, 0, 0] == x[0, 0, 0, 0]


def test_gpu_loader_resize_runs_after_crop_flip() -> None:
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    loader = GPUBatchLoader(images, torch.arange(8) % 2, 4, train=True, mean=(0.5,) * 3, std=(0.25,) * 3,
                            image_size=40, num_classes=2)  # fmt: skip
    x, _ = next(iter(loader))
    assert x.shape == (4, 3, 40, 40) and x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="image_size"):
        GPUBatchLoader(images, torch.zeros(8), 4, train=False, mean=(0,) * 3, std=(1,) * 3, image_size=0)


def test_gpu_loader_at_the_native_size_takes_the_plain_path() -> None:
    """image_size equal to the stored images' size (what the CIFAR datamodule passes) resizes nothing and
    gives the same batches as no image_size: the plain recipe stays a gather and a normalize."""
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    batches = []
    for size in (None, 32):
        loader = GPUBatchLoader(images, torch.arange(8) % 2, 4, train=True, mean=(0.5,) * 3,
                                std=(0.25,) * 3, image_size=size, seed=3)  # fmt: skip
        assert loader.image_size is None
        batches.append(next(iter(loader)))
    torch.testing.assert_close(batches[0], batches[1], rtol=0, atol=0)


def test_classes_subset_relabels_in_given_order(synthetic_cifar10: Path) -> None:
    full = load_cifar(str(synthetic_cifar10), "cifar10")
    dm = CIFARDataModule("cifar10", str(synthetic_cifar10), classes=[7, 2, 9], val_size=20, batch_size=8)
    assert dm.num_classes == 3  # known before setup: the module is built from it
    dm.setup("fit")
    assert dm.classes == [full.classes[7], full.classes[2], full.classes[9]]
    splits = cifar_splits(synthetic_cifar10, "cifar10", classes=[7, 2, 9], val_size=20)
    assert splits.classes == dm.classes
    # the datamodule tests on this split: the same relabelled labels, in the same order
    assert torch.equal(torch.cat([y for _, y in dm.test_dataloader()]), torch.from_numpy(splits.test[1]))
    for split, labels in (("train", full.train_labels), ("test", full.test_labels)):
        images, y = splits.train if split == "train" else splits.test
        if split == "train":
            images, y = np.concatenate([images, splits.val[0]]), np.concatenate([y, splits.val[1]])
        expected = sum(int((labels == c).sum()) for c in (7, 2, 9))
        assert images.shape[0] == expected and set(y.tolist()) == {0, 1, 2}
    # relabelled images are the original class-7 images, in file order
    test_images, test_labels = splits.test
    assert np.array_equal(test_images[test_labels == 0], full.test_images[full.test_labels == 7])


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"classes": [3]}, "at least two"),
        ({"classes": [1, 1]}, "distinct"),
        ({"classes": [0, 10]}, "0..9"),
        ({"classes": 5}, "list of class indices"),
        ({"classes": ["cat", "dog"]}, "list of class indices"),
        ({"image_size": 4}, "image_size"),
        ({"image_size": 32.5}, "image_size"),
    ],
)
def test_bad_subset_and_size_values_fail_clearly(synthetic_cifar10: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        CIFARDataModule("cifar10", str(synthetic_cifar10), **kwargs)


def test_num_train_larger_than_the_subset_says_so(synthetic_cifar10: Path) -> None:
    dm = CIFARDataModule("cifar10", str(synthetic_cifar10), classes=[0, 1], val_size=10, num_train=400)
    with pytest.raises(ConfigError, match="num_train=400"):
        dm.setup("fit")
