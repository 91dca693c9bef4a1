"""Helpers of the app's tests (test_app.py, test_app_browser.py): the small trained run both use,
copies of it in outputs folders of their own, and images with a known answer."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.data.synthetic import _prototypes
from cifar_resnets.errors import CheckpointError
from cifar_resnets.inference.checkpoint import load_model
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.training.train import train

RUN_NAME = "03-04-05_resnet8_cifar10"

# Three quick epochs of a ResNet-8 with Adam learn the synthetic colour classes.
APP_TRAIN = {
    "model.depth": 8,
    "optim": "adam",
    "optim.lr": 0.01,
    "schedule": "constant",
    "augment": "none",
    "data.num_train": 384,
    "data.batch_size": 32,
    "trainer.max_epochs": 3,
}


def train_app_checkpoint(data_root: Path, outputs: Path) -> Path:
    """Train the tiny app checkpoint into ``outputs/runs/<date>/<time>_<name>``; return the run folder."""
    run_dir = outputs / "runs" / "2026-01-02" / RUN_NAME
    train(compose_train(tiny_overrides(data_root, **APP_TRAIN), output_dir=run_dir))
    return run_dir


_TRAINED: dict[Path, Path] = {}


def trained_app_run(data_root: Path, tmp_path_factory) -> Path:
    """The one app run of this test session, trained on first use and shared by both app test modules."""
    if data_root not in _TRAINED:
        _TRAINED[data_root] = train_app_checkpoint(data_root, tmp_path_factory.mktemp("trained_app"))
    return _TRAINED[data_root]


def copy_run(run_dir: Path, outputs: Path, date: str = "2026-01-02", name: str = RUN_NAME) -> Path:
    """A copy of a run folder at ``outputs/runs/<date>/<name>`` (file times kept); returns it."""
    target = outputs / "runs" / date / name
    shutil.copytree(run_dir, target)
    return target


def reweighted_copy(checkpoint: Path, target: Path, scale: float) -> Path:
    """A copy of a checkpoint with its classifier weights scaled: another model, the same answers."""
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for key, value in stored["state_dict"].items():
        if key.startswith("net.") and key.endswith("fc.weight"):
            stored["state_dict"][key] = value * scale
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stored, target)
    return target


def reweighted_run(run_dir: Path, outputs: Path, date: str, name: str, scale: float) -> Path:
    """A copy of a run whose checkpoints are ``reweighted_copy``s (file times kept)."""
    target = copy_run(run_dir, outputs, date, name)
    for path in (target / "checkpoints").glob("*.ckpt"):
        times = path.stat()
        reweighted_copy(path, path, scale)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    return target


def add_broken_newer_run(outputs: Path, good_run: Path) -> Path:
    """A newer run whose last.ckpt is cut short; returns that checkpoint (newer than every other)."""
    broken = copy_run(good_run, outputs, "2026-01-05", "09-00-00_resnet8_broken")
    for other in (broken / "checkpoints").glob("*.ckpt"):
        if other.name != "last.ckpt":
            other.unlink()
    checkpoint = broken / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    newest = max(p.stat().st_mtime for p in outputs.rglob("*.ckpt"))
    os.utime(checkpoint, (newest + 60, newest + 60))
    return checkpoint


def refusal(path: Path) -> str:
    """What cifar-eval and cifar-predict say about a checkpoint: the app must show the same line."""
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    return str(err.value)


def png_bytes(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def prototype_image(class_index: int, size: int = 64) -> Image.Image:
    """The noise-free synthetic image of one class, enlarged (the app must shrink it back to 32x32)."""
    pixels = np.clip(_prototypes(10)[class_index], 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def recognised_class(checkpoint: Path) -> int:
    """A class whose prototype the trained checkpoint gets right with confidence (the test's answer)."""
    model = load_model(checkpoint)
    pre = Preprocess.for_model(model)
    views = [pre.view(prototype_image(k)) for k in range(10)]
    with torch.no_grad():
        probs = torch.softmax(model.net(pre.batch(views)), dim=1)
    confident = [k for k in range(10) if int(probs[k].argmax()) == k and float(probs[k, k]) > 0.5]
    assert len(confident) >= 5, f"the app's test checkpoint did not learn the synthetic classes: {probs}"
    return confident[0]
