"""Shared fixtures: synthetic CIFAR-10/100 files in the official formats, and a real CIFAR-10 subset."""

from __future__ import annotations

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
    tool = SHARED_DIR / "tools" / "cifar10_from_jpeg.py"
    archive = SHARED_DIR / "data" / "cifar10-jpeg.tar.gz"
    if not tool.is_file() or not archive.is_file():
        pytest.skip(f"real CIFAR-10 unavailable: {tool} or {archive} is missing")
    root = tmp_path_factory.mktemp("real_cifar10")
    subprocess.run(
        [sys.executable, str(tool), str(root), "--train-limit", "10000", "--archive", str(archive)],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture(scope="session")
def cifar10_root(request: pytest.FixtureRequest) -> Path:
    """The real CIFAR-10 copy when it is available, else the synthetic files: for tests that need files
    in the real format but not real learning, so that they run everywhere."""
    try:
        return request.getfixturevalue("real_cifar10")
    except pytest.skip.Exception:
        return request.getfixturevalue("synthetic_cifar10")
