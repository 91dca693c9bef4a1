"""Shared fixtures: synthetic CIFAR-10/100 files in the official formats, and a real CIFAR-10 subset."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_resnets.data.synthetic import write_synthetic_cifar

SHARED_DIR = Path(os.environ.get("CIFAR_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="session")
def synthetic_cifar10(tmp_path_factory) -> Path:
    """Root dir holding cifar-10-batches-py: 512 train / 256 test easy-to-learn images."""
    root = tmp_path_factory.mktemp("synthetic_cifar10")
    write_synthetic_cifar(root, "cifar10", num_train=512, num_test=256, seed=0)
    return root


@pytest.fixture(scope="session")
def synthetic_cifar100(tmp_path_factory) -> Path:
    """Root dir holding cifar-100-python: 512 train / 256 test easy-to-learn images."""
    root = tmp_path_factory.mktemp("synthetic_cifar100")
    write_synthetic_cifar(root, "cifar100", num_train=512, num_test=256, seed=0)
    return root


@pytest.fixture(scope="session")
def real_cifar10(tmp_path_factory) -> Path:
    """Root dir holding a real CIFAR-10 copy (10,000 train, all 10,000 test) made from the JPEG archive.

    Skips when the tool or the archive is absent (CIFAR_SHARED_DIR: the folder holding tools/ and data/).
    """
    return _real_cifar10_copy(tmp_path_factory.mktemp("real_cifar10"), "--train-limit", "10000")


@pytest.fixture(scope="session")
def cifar10_root(request: pytest.FixtureRequest) -> Path:
    """The small real CIFAR-10 copy when it is available, else the synthetic files: for tests that need
    files in the real format but not real learning, so that they run everywhere."""
    try:
        return request.getfixturevalue("small_real_cifar10")
    except pytest.skip.Exception:
        return request.getfixturevalue("synthetic_cifar10")


def _real_cifar10_copy(root: Path, *limits: str) -> Path:
    tool = SHARED_DIR / "tools" / "cifar10_from_jpeg.py"
    archive = SHARED_DIR / "data" / "cifar10-jpeg.tar.gz"
    if not tool.is_file() or not archive.is_file():
        pytest.skip(f"real CIFAR-10 unavailable: {tool} or {archive} is missing")
    subprocess.run(
        [sys.executable, str(tool), str(root), *limits, "--archive", str(archive)],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture(scope="session")
def small_real_cifar10(tmp_path_factory) -> Path:
    """A real CIFAR-10 copy of 1,000 train and 1,000 test images: real learning curves for tests that
    train several tiny runs, at a tenth of the full test split's evaluation time."""
    root = tmp_path_factory.mktemp("small_real_cifar10")
    return _real_cifar10_copy(root, "--train-limit", "1000", "--test-limit", "1000")


@pytest.fixture(scope="session")
def tiny_real_run(tmp_path_factory, small_real_cifar10: Path) -> Path:
    """A depth-8 ResNet trained 2 epochs of 256 real images, once per session: the checkpoint that the
    export, bundle and tracking tests read (it logs to every logger, so each can be read back)."""
    from train_helpers import tiny_overrides

    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.training.train import train

    run_dir = tmp_path_factory.mktemp("tiny_real_run")
    # Every logger when MLflow is installed (the tracking extra), else the CSV one (no extra needed).
    mlflow = importlib.util.find_spec("mlflow") is not None
    loggers = {"logger": "many", "logger.mlflow.tracking_uri": f"sqlite:///{run_dir}/mlflow.db"}
    overrides = tiny_overrides(
        small_real_cifar10,
        **{
            "model.depth": 8,
            "optim": "adam",
            "optim.lr": 0.01,
            "schedule": "constant",
            "data.batch_size": 64,
            "trainer.max_epochs": 2,
            **(loggers if mlflow else {"logger": "csv"}),
        },
    )
    train(compose_train(overrides, output_dir=run_dir))
    return run_dir


@pytest.fixture(scope="session")
def tiny_synthetic_ckpt(tmp_path_factory, synthetic_cifar10: Path) -> Path:
    """``last.ckpt`` of a depth-8 ResNet trained one epoch of 256 synthetic images, no logger, once per
    session: the checkpoint that the tests of refused outputs and inputs read (seconds on a CPU)."""
    from train_helpers import tiny_overrides

    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.training.train import train

    run_dir = tmp_path_factory.mktemp("tiny_synthetic_run")
    overrides = tiny_overrides(
        synthetic_cifar10, **{"model.depth": 8, "schedule": "constant", "logger": "none"}
    )
    train(compose_train(overrides, output_dir=run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def _file_hashes(*paths: Path) -> dict[str, str]:
    import hashlib

    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture
def file_hashes():
    """``file_hashes(*paths)``: SHA-256 of every file at or below ``paths`` (equal before and after: a
    command changed nothing there)."""
    return _file_hashes


@pytest.fixture
def pretrained_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub cache (TORCH_HOME) holding the offline copies of akamaster's ResNet-20 and ResNet-56
    release files, for this test only; nothing can be downloaded (a proxy that refuses every connection).
    Skips when the copies are absent."""
    source = SHARED_DIR / "data" / "pretrained" / "akamaster"
    files = [source / "resnet20-12fca82f.th", source / "resnet56-4bfd9763.th"]
    if not all(f.is_file() for f in files):
        pytest.skip(f"offline pretrained files missing in {source}")
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    for f in files:
        (home / "hub" / "checkpoints" / f.name).symlink_to(f)
    monkeypatch.setenv("TORCH_HOME", str(home))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return home


def folder_hashes(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (files under the ``skip`` subfolders
    left out): equal before and after a command that must not change a run."""
    hashes = {
        Path(path).relative_to(folder).as_posix(): digest for path, digest in _file_hashes(folder).items()
    }
    return {rel: digest for rel, digest in hashes.items() if not rel.startswith(tuple(f"{s}/" for s in skip))}


@pytest.fixture
def hash_folder():
    """``folder_hashes`` for tests (helpers of conftest reach tests as fixtures)."""
    return folder_hashes
