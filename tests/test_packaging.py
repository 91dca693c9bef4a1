"""The suite as a wheel: built from the checkout, installed into a fresh environment, run from elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib
from train_helpers import REPO

from cifar_resnets.config.resources import conf_dir, experiments_dir
from cifar_resnets.data.cifar_files import load_cifar_pickle


def test_pyproject_lists_every_package_folder() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "cifar_resnets").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found | {"cifar_resnets.conf", "cifar_resnets.experiments"} == listed


def test_editable_install_reads_the_checkouts_configs() -> None:
    assert conf_dir().resolve() == (REPO / "conf").resolve()
    assert experiments_dir().resolve() == (REPO / "experiments").resolve()


def _fresh_environment(root: Path) -> Path:
    """A new virtual environment that sees this one's dependencies but not its install of the suite.

    The dependencies come in through a path entry, which (unlike this environment's site-packages
    folder) runs no ``.pth`` hooks: the editable install's import hook never reaches the new one.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    site.mkdir(parents=True, exist_ok=True)
    ours = [entry for entry in sys.path if entry.endswith("site-packages")]
    (site / "dependencies.pth").write_text("\n".join(ours) + "\n")
    return root / "bin"


@pytest.mark.slow
def test_wheel_installed_elsewhere_trains_evaluates_predicts_and_lists_tables(
    cifar10_root: Path, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, REPO],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("cifar_resnets-*.whl")
    bin_dir = _fresh_environment(tmp_path / "env")
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed"]
        + [wheel],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CIFAR_DATA")}

    def run(command: str, *args: str) -> str:
        proc = subprocess.run(
            [bin_dir / command, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{command} {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    where = run("python", "-c", "import cifar_resnets.conf as c; print(c.__file__)")
    assert Path(where).resolve().is_relative_to((tmp_path / "env").resolve()), where

    run_dir = work / "run"
    run(
        "cifar-train",
        "trainer=cpu",
        f"data.root={cifar10_root}",  # real images (1,000 test) where the offline copy is there
        "data.val_size=100",
        "data.num_train=256",
        "data.batch_size=32",
        "trainer.max_steps=4",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    assert "he2016_table6" in run("cifar-reproduce", "--list")
    assert "accuracy" in run("cifar-eval", f"ckpt={checkpoint}", "batch_size=1000").lower()
    test_batch = cifar10_root / "cifar-10-batches-py" / "test_batch"
    run("cifar-predict", "--ckpt", str(checkpoint), "--input", str(test_batch), "--out", "preds.csv")
    images, _ = load_cifar_pickle(test_batch)
    assert len((work / "preds.csv").read_text().splitlines()) == 1 + len(images)
