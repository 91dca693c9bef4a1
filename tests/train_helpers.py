"""Helpers of the training and inference tests: the real training config shrunk to CPU-test size (the way
users' overrides do), the CLIs as subprocesses, one small trained run shared by the inference tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_overrides(data_root: Path, **extra: object) -> list[str]:
    """Overrides that turn any experiment into a few seconds of CPU work on synthetic data."""
    overrides = {
        "data.root": str(data_root),
        "data.val_size": 128,
        "data.num_train": 256,
        "data.batch_size": 64,
        "data.eval_batch_size": 128,
        "data.num_workers": 0,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "trainer.max_epochs": 1,
        "trainer.max_steps": -1,
        "trainer.log_every_n_steps": 1,
        "callbacks.progress_bar": None,
    }
    overrides.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in overrides.items()]


def run_cli(
    module: str,
    args: list[str],
    cwd: Path,
    timeout: float = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` as a user would, from ``cwd``."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


_RUNS: dict[str, Path] = {}


def trained_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A small net trained 3 epochs on the easy synthetic data, once per session (the inference tests)."""
    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.training.train import train

    key = str(data_root)
    if key not in _RUNS:
        run_dir = tmp_path_factory.mktemp("eval_run")
        overrides = tiny_overrides(
            data_root,
            **{
                "model.depth": 8,
                "optim": "adam",
                "optim.lr": 0.01,
                "schedule": "constant",
                "data.batch_size": 32,
                "trainer.max_epochs": 3,
                "logger": "none",
                "callbacks.lr_monitor": None,
            },
        )
        train(compose_train(overrides, output_dir=run_dir))
        _RUNS[key] = run_dir
    return _RUNS[key]


class Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
