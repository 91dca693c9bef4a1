"""cifar-train end to end: configs compose, runs write their folder, resume, DDP, real learning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import read_metrics, run_cli, tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.config.resources import conf_dir
from cifar_resnets.hardware import cpu_has_native_bf16
from cifar_resnets.training.train import train

GROUPS = ["data", "model", "optim", "schedule", "augment", "trainer", "callbacks", "logger"]


@pytest.mark.parametrize(
    "group,option",
    [(g, p.stem) for g in GROUPS for p in sorted((conf_dir() / g).glob("*.yaml"))],
)
def test_every_group_option_composes(group: str, option: str) -> None:
    cfg = compose_train([f"{group}={option}"])
    assert cfg.get(group) is not None


def test_train_in_process_returns_metrics(synthetic_cifar10: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(synthetic_cifar10, **{"trainer.max_epochs": 2}), output_dir=tmp_path)
    metrics = train(cfg)
    assert metrics["epochs"] == 2
    assert metrics["steps"] == 2 * (256 // 64)
    assert metrics["params"] == 269_722  # ResNet-20, option A: the paper's 0.27M
    assert 0.0 <= metrics["test/acc"] <= 1.0 and 0.0 <= metrics["val/acc"] <= 1.0
    assert metrics["train_images_per_second"] > 0
    # The CPU fast path, as the run records it: bf16 only where the CPU has native BF16 instructions.
    assert metrics["precision"] == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")
    assert (metrics["loader"], metrics["channels_last"], metrics["device"]) == ("batched", True, "cpu")
    assert metrics["threads"] == torch.get_num_threads() >= 1
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved.pop("provenance") == metrics["provenance"]  # versions, device, commit, times
    assert saved == pytest.approx({k: v for k, v in metrics.items() if k != "provenance"})


@pytest.mark.slow
def test_cli_writes_the_run_folder(synthetic_cifar10: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        "cifar_resnets.cli.train",
        [*tiny_overrides(synthetic_cifar10), f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    printed = proc.stdout + proc.stderr
    assert "litlogger" not in printed and "litmodels" not in printed
    assert printed.count("GPU available") == 1 and "Seed set to 0" in (run_dir / "train.log").read_text()
    assert "not supported by the model summary" not in printed and "LeafSpec" not in printed
    metrics = read_metrics(run_dir)
    for key in ("test/acc", "val/acc", "epochs", "train_seconds", "train_images_per_second", "params"):
        assert key in metrics, key
    assert (run_dir / "config.yaml").read_text().count("resnet20") >= 1
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 256 // 64 and "rng_states" in ckpt
    assert ckpt["hyper_parameters"]["config"]["model"]["name"] == "resnet20"
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in run_dir.iterdir())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(run_dir)).Reload().Tags()["scalars"]
    for tag in ("train/loss_step", "val/acc", "val/loss", "train/images_per_second", "lr-SGD"):
        assert tag in scalars, (tag, scalars)


@pytest.mark.slow
def test_resumed_run_ends_like_an_uninterrupted_one(synthetic_cifar10: Path, tmp_path: Path) -> None:
    """A finished 1-epoch run extended to 3 epochs ends like the 3-epoch run (in process: the CLI's
    resume paths are run as subprocesses by tests/test_resume_faults.py and tests/test_reliability.py)."""
    # A constant lr makes the 1-epoch run the first epoch of the 3-epoch one; EMA state must resume too.
    common = tiny_overrides(
        synthetic_cifar10, **{"trainer.deterministic": True, "schedule": "constant", "callbacks": "ema"}
    )
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    a = train(compose_train([*common, "trainer.max_epochs=3"], output_dir=straight))
    train(compose_train([*common, "trainer.max_epochs=1"], output_dir=interrupted))
    last = interrupted / "checkpoints" / "last.ckpt"
    b = train(compose_train([*common, "trainer.max_epochs=3", f"ckpt_path={last}"], output_dir=interrupted))
    assert a["epochs"] == b["epochs"] == 3
    assert a["steps"] == b["steps"]
    for key in ("test/acc", "test/loss", "val/acc", "val/loss"):
        assert a[key] == b[key], key


@pytest.mark.slow
def test_two_process_ddp_on_cpu(synthetic_cifar10: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    args = tiny_overrides(synthetic_cifar10, **{"trainer": "ddp", "trainer.devices": 2, "data.loader": "gpu"})
    run_cli("cifar_resnets.cli.train", [*args, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    metrics = read_metrics(run_dir)
    # Each of the 2 ranks trains on its own half: 256 images / (64 x 2) = 2 steps per epoch.
    assert metrics["steps"] == 2
    assert 0.0 <= metrics["test/acc"] <= 1.0


def test_unknown_model_lists_the_valid_ones(tmp_path: Path) -> None:
    proc = run_cli("cifar_resnets.cli.train", ["model=resnet21"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    for name in ("resnet20", "resnet56", "plain20", "resnet18"):
        assert name in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_missing_data_root_says_where_and_how(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    proc = run_cli(
        "cifar_resnets.cli.train",
        [*tiny_overrides(missing), f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cifar-train: error:")]
    assert len(lines) == 1, proc.stderr
    assert str(missing) in lines[0] and "data.download=true" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run folder


@pytest.mark.parametrize(
    "override,needle",
    [
        ("optim.lr=-0.1", "optim.lr"),
        ("data.batch_size=0", "data.batch_size"),
        ("model.depth=21", "6n+2"),
        ("schedule.milestones=[1,50]", "schedule.milestones"),
        ("data.num_train=60000", "data.num_train"),
    ],
)
def test_impossible_config_fails_before_any_folder_exists(tmp_path: Path, override: str, needle: str) -> None:
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tmp_path / "data"), override, f"hydra.run.dir={run_dir}"]
    proc = run_cli("cifar_resnets.cli.train", args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr.strip().splitlines()[-1]
    assert not run_dir.exists()


@pytest.mark.slow
def test_resnet20_learns_real_cifar10_on_cpu(real_cifar10: Path, tmp_path: Path) -> None:
    """Two CPU epochs on 10k real images: far above the 10% of chance."""
    overrides = tiny_overrides(
        real_cifar10,
        **{
            "data.val_size": 0,
            "data.num_train": 10_000,
            "data.batch_size": 128,
            "data.eval_batch_size": 1000,
            "trainer.max_epochs": 2,
            "schedule": "onecycle",
            "optim.lr": 0.2,
            "optim.nesterov": True,
            "optim.weight_decay": 5e-4,
            "trainer.log_every_n_steps": 50,
        },
    )
    metrics = train(compose_train(overrides, output_dir=tmp_path))
    assert metrics["test/acc"] >= 0.35, metrics


def test_simple_profiler_reports_the_run(synthetic_cifar10: Path, tmp_path: Path, caplog) -> None:
    """trainer.profiler=simple: the run's log ends with Lightning's profiler report of the fit."""
    extra = {"trainer.profiler": "simple", "trainer.max_steps": 1, "test_after_fit": False}
    with caplog.at_level("INFO"):
        train(compose_train(tiny_overrides(synthetic_cifar10, **extra), output_dir=tmp_path))
    assert "FIT Profiler Report" in caplog.text and "run_training_epoch" in caplog.text


def test_a_training_run_imports_neither_reproduce_nor_bench() -> None:
    """train() and cifar-train's Hydra callbacks load the training package only."""
    code = (
        "import sys\n"
        "import cifar_resnets.cli.train, cifar_resnets.training.train, cifar_resnets.training.run_lock\n"
        "other = ('cifar_resnets.reproduce', 'cifar_resnets.bench')\n"
        "print(sorted(m for m in sys.modules if m.startswith(other)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
