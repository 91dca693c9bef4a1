"""One image, one answer: every consumer of a checkpoint feeds its net the same pixels.

The consumers: cifar-predict on a folder of image files, cifar-eval's split path, the datamodule's
evaluation loaders (the CPU DataLoader and the GPU-resident loader, run on CPU tensors here), the app's
prediction path (decode the upload, ``Preprocess.view``, ``views_probs``: what ``streamlit_app.predict``
runs) and cifar-reproduce's confusion matrix. Their probabilities must agree to float rounding.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from train_helpers import tiny_overrides, trained_run

from cifar_resnets.config.compose import compose_train
from cifar_resnets.data.cifar_files import load_cifar_pickle
from cifar_resnets.data.images import decode_image
from cifar_resnets.data.synthetic import write_synthetic_cifar, write_synthetic_imagenet
from cifar_resnets.data.transforms import eval_view
from cifar_resnets.inference.checkpoint import LoadedModel, load_model
from cifar_resnets.inference.evaluate import checkpoint_confusion_matrix, split_probs
from cifar_resnets.inference.methods import predict
from cifar_resnets.inference.predict import views_probs
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.training.train import train

TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}  # float32 rounding of different batch sizes and memory layouts


def datamodule_probs(loaded: LoadedModel, **overrides) -> np.ndarray:
    """Probabilities over the checkpoint's own datamodule's test loader (built from its stored config)."""
    data = dict(loaded.config["data"], **overrides)
    dm = instantiate(data, augment=loaded.config.get("augment"), _convert_="all")
    dm.setup("test")
    with torch.no_grad():
        return torch.cat([torch.softmax(loaded.net(x).float(), 1) for x, _ in dm.test_dataloader()]).numpy()


def app_probs(loaded: LoadedModel, files: list[Path]) -> np.ndarray:
    preprocess = Preprocess.for_model(loaded)
    views = [preprocess.view(decode_image(f.read_bytes(), f.name)) for f in files]
    return views_probs(loaded, torch.stack(views), device="cpu").numpy()


def write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    folder.mkdir()
    paths = [folder / f"{i:04d}.png" for i in range(len(images))]
    for image, path in zip(images, paths, strict=True):
        Image.fromarray(image.transpose(1, 2, 0)).save(path)
    return paths


def assert_one_answer(ckpt: Path, test_batch: Path, tmp_path: Path, loaders: tuple[str, ...]) -> None:
    loaded = load_model(ckpt)
    images, labels = load_cifar_pickle(test_batch)
    files = write_pngs(images, tmp_path / "pngs")
    split, split_labels = split_probs(loaded, "test", device="cpu")
    assert np.array_equal(split_labels, labels)
    folder = predict(tmp_path / "pngs", [ckpt], "plain", device="cpu")
    assert folder.ids == [f.name for f in files]
    np.testing.assert_allclose(folder.probs, split.numpy(), **TOLERANCE)
    for loader in loaders:
        np.testing.assert_allclose(datamodule_probs(loaded, loader=loader), split.numpy(), **TOLERANCE)
    np.testing.assert_allclose(app_probs(loaded, files[:8]), split.numpy()[:8], **TOLERANCE)
    matrix, classes = checkpoint_confusion_matrix(ckpt, device="cpu")
    n = len(classes)
    expected = np.bincount(labels * n + folder.probs.argmax(1), minlength=n * n).reshape(n, n)
    assert np.array_equal(matrix, expected)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, synthetic_cifar10: Path) -> Path:
    return trained_run(tmp_path_factory, synthetic_cifar10) / "checkpoints" / "last.ckpt"


def test_one_image_one_answer_for_a_cifar_checkpoint(
    ckpt: Path, synthetic_cifar10: Path, tmp_path: Path
) -> None:
    test_batch = synthetic_cifar10 / "cifar-10-batches-py" / "test_batch"
    assert_one_answer(ckpt, test_batch, tmp_path, loaders=("cpu", "gpu"))


def test_an_exif_rotated_jpeg_predicts_as_the_upright_image(
    ckpt: Path, synthetic_cifar10: Path, tmp_path
) -> None:
    images, _ = load_cifar_pickle(synthetic_cifar10 / "cifar-10-batches-py" / "test_batch")
    folder = tmp_path / "photos"
    folder.mkdir()
    upright = Image.fromarray(images[0].transpose(1, 2, 0)).resize((48, 40), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the camera stored the image sideways
    upright.transpose(Image.Transpose.ROTATE_90).save(
        folder / "sideways.jpg", quality=95, exif=exif.tobytes()
    )
    with Image.open(folder / "sideways.jpg") as stored:  # the JPEG's own pixels, turned by hand
        assert stored.size == (40, 48)
        stored.convert("RGB").transpose(Image.Transpose.ROTATE_270).save(folder / "upright.png")
    result = predict(folder, [ckpt], "plain", device="cpu")
    assert result.ids == ["sideways.jpg", "upright.png"]
    np.testing.assert_allclose(result.probs[0], result.probs[1], **TOLERANCE)
    loaded = load_model(ckpt)
    np.testing.assert_allclose(app_probs(loaded, [folder / "sideways.jpg"])[0], result.probs[1], **TOLERANCE)


@pytest.mark.slow
def test_one_image_one_answer_for_a_224_pixel_cifar_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_synthetic_cifar(root, "cifar10", num_train=96, num_test=24, seed=1)
    overrides = {"model.depth": 8, "data.image_size": 224, "data.val_size": 16, "data.num_train": 64,
                 "data.batch_size": 32, "data.eval_batch_size": 24, "logger": "none",
                 "callbacks.lr_monitor": None}  # fmt: skip
    run = tmp_path / "run"
    train(compose_train(tiny_overrides(root, **overrides), output_dir=run))
    ckpt = run / "checkpoints" / "last.ckpt"
    loaded = load_model(ckpt)
    assert loaded.image_size == 224 and loaded.resize_size is None
    test_batch = root / "cifar-10-batches-py" / "test_batch"
    assert_one_answer(ckpt, test_batch, tmp_path, loaders=("cpu", "gpu"))
    # An image of another size is first brought to CIFAR's 32x32, then resized as training did.
    images, _ = load_cifar_pickle(test_batch)
    photo = Image.fromarray(images[0].transpose(1, 2, 0)).resize((80, 64), Image.Resampling.BICUBIC)
    photo.save(tmp_path / "photo.png")
    shrunk = eval_view(torch.from_numpy(np.asarray(photo)).permute(2, 0, 1), 32)
    Image.fromarray(shrunk.permute(1, 2, 0).numpy()).save(tmp_path / "shrunk.png")
    np.testing.assert_allclose(
        app_probs(loaded, [tmp_path / "photo.png"]), app_probs(loaded, [tmp_path / "shrunk.png"]), **TOLERANCE
    )


@pytest.mark.slow
def test_one_image_one_answer_for_an_imagenet_subset_checkpoint(tmp_path: Path) -> None:
    root = write_synthetic_imagenet(tmp_path / "imagenet", classes=3, per_class=4, val_per_class=3)
    overrides = {"data": "imagenet_subset", "data.root": root, "data.classes": 3, "data.image_size": 32,
                 "data.resize_size": 40, "data.batch_size": 6, "data.eval_batch_size": 4,
                 "data.num_workers": 0, "model": "resnet18", "trainer.accelerator": "cpu",
                 "trainer.max_epochs": 1, "callbacks.progress_bar": None, "logger": "none",
                 "callbacks.lr_monitor": None}  # fmt: skip
    run = tmp_path / "run"
    train(compose_train([f"{k}={'null' if v is None else v}" for k, v in overrides.items()], output_dir=run))
    ckpt = run / "checkpoints" / "last.ckpt"
    loaded = load_model(ckpt)
    assert (loaded.image_size, loaded.resize_size) == (32, 40)
    split, labels = split_probs(loaded, "test", device="cpu")
    np.testing.assert_allclose(datamodule_probs(loaded), split.numpy(), **TOLERANCE)
    files = sorted((root / "val").glob("*/*"))  # the split's order: class folders, then file names
    assert len(files) == len(labels) == 9
    folder = tmp_path / "uploads"
    folder.mkdir()
    for i, path in enumerate(files):  # new names, none with the image's own extension
        shutil.copy(path, folder / f"{i:02d}.img")
    result = predict(folder, [ckpt], "plain", device="cpu")
    assert result.ids == [f"{i:02d}.img" for i in range(9)] and not result.summary["skipped"]
    np.testing.assert_allclose(result.probs, split.numpy(), **TOLERANCE)
    np.testing.assert_allclose(app_probs(loaded, files), split.numpy(), **TOLERANCE)
    matrix, _ = checkpoint_confusion_matrix(ckpt, device="cpu")
    assert np.array_equal(matrix.sum(1), np.bincount(labels, minlength=3))
