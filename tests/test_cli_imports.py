"""cifar-eval and cifar-predict as subprocesses: they never import Lightning, and --help and argument
errors of them and of cifar-bench answer before torch is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_helpers import REPO, trained_run

# Runs a module as ``python -m`` does and writes the names of every module it imported, at exit.
WRAPPER = """
import atexit, json, runpy, sys
out, module, *args = sys.argv[1:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = [module, *args]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_module(module: str, args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    modules_file = cwd / f"modules_{len(list(cwd.glob('modules_*')))}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(modules_file), module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return proc, set(json.loads(modules_file.read_text()))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, synthetic_cifar10: Path) -> Path:
    return trained_run(tmp_path_factory, synthetic_cifar10) / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_predict_and_eval_never_import_lightning(ckpt: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 32, 32, 3), np.uint8))
    proc, modules = run_module(
        "cifar_resnets.cli.predict", ["--ckpt", str(ckpt), "--input", "x.npy", "--out", "p.csv"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch" in modules and not top_level(modules) & {"lightning", "pytorch_lightning", "hydra"}
    proc, modules = run_module(
        "cifar_resnets.cli.evaluate", [f"ckpt={ckpt}", "device=cpu", f"out_dir={tmp_path / 'eval'}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch" in modules and not top_level(modules) & {"lightning", "pytorch_lightning", "hydra"}
    # A refused checkpoint: one line, exit 2, and still no Lightning.
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    args = ["--ckpt", "notes.ckpt", "--input", "x.npy", "--out", "q.csv"]
    proc, modules = run_module("cifar_resnets.cli.predict", args, tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("cifar-predict: error: notes.ckpt is not a readable checkpoint")
    assert not top_level(modules) & {"lightning", "pytorch_lightning"}


@pytest.mark.parametrize(
    "module, args, code",
    [
        ("cifar_resnets.cli.predict", ["--help"], 0),
        ("cifar_resnets.cli.evaluate", ["--help"], 0),
        ("cifar_resnets.cli.predict", ["--out", "p.csv", "--method", "vote"], 2),
        ("cifar_resnets.cli.predict", ["--out", "p.csv", "--csv", "a.csv", "b.csv", "--ckpt", "x.ckpt"], 2),
        (
            "cifar_resnets.cli.predict",
            ["--out", "p.csv", "--ckpt", "a.ckpt", "--ckpt", "b.ckpt", "--input", "x"],
            2,
        ),
        ("cifar_resnets.cli.evaluate", ["tta=sideways", "ckpt=x.ckpt"], 2),
        ("cifar_resnets.cli.evaluate", [], 2),
        ("cifar_resnets.cli.bench", ["--help"], 0),
        ("cifar_resnets.cli.bench", ["--model", "resnet7"], 2),
    ],
)
def test_help_and_argument_errors_do_not_import_torch(
    tmp_path: Path, module: str, args: list[str], code: int
):
    proc, modules = run_module(module, args, tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "torch" not in top_level(modules), sorted(m for m in modules if m.startswith("torch"))[:5]
    if code == 2:
        assert (
            proc.stderr.strip()
            .splitlines()[-1]
            .startswith(("cifar-predict: error:", "cifar-eval: error:", "cifar-bench: error:"))
        )
