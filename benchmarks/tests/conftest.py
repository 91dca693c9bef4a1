"""Fixtures of the benchmarks' tests; the instruments in benchmarks/ import as top-level modules, as
they do when run as scripts (``python benchmarks/raw_loop.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cifar_resnets.data.synthetic import write_synthetic_cifar

REPO = Path(__file__).resolve().parents[2]
# benchmarks/: the instruments; tests/: the suite's helpers for composing tiny configs and running CLIs.
for folder in (REPO / "benchmarks", REPO / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def synthetic_cifar10(tmp_path_factory) -> Path:
    """Root dir holding cifar-10-batches-py: 512 train / 256 test easy-to-learn images."""
    root = tmp_path_factory.mktemp("synthetic_cifar10")
    write_synthetic_cifar(root, "cifar10", num_train=512, num_test=256, seed=0)
    return root
