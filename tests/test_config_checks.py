"""Impossible configs stop ``cifar-train`` before any data is read or any folder is created.

Each case runs the real Hydra entry point in-process (the same code path as the console script,
without paying for a fresh interpreter per case): exit status 2, one ``cifar-train: error:`` line
that names the key, and no run folder. ``data.root`` points at a folder that does not exist, so a
check that came too late would fail differently (missing data) instead of passing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from train_helpers import tiny_overrides

from cifar_resnets.config.checks import ConfigError, check_config
from cifar_resnets.config.compose import compose_train
from cifar_resnets.data.synthetic import write_synthetic_cifar


def run_main(args: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """``cifar-train args`` in this process; returns (exit status, error lines on stderr)."""
    from cifar_resnets.cli.train import main

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["cifar-train", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    GlobalHydra.instance().clear()
    err = capsys.readouterr().err
    return exit_info.value.code, [line for line in err.splitlines() if line.startswith("cifar-train: error:")]


BAD_CONFIGS = [
    ("optim.lr=-0.1", "optim.lr"),
    ("data.batch_size=0", "data.batch_size"),
    ("model.depth=21", "model.depth"),
    ("schedule.unit=epoch schedule.milestones=[1,5]", "schedule.milestones"),
    ("schedule.milestones=[0.5,1.5]", "schedule.milestones"),
    ("data.num_train=60000", "data.num_train"),
    ("trainer.max_epochs=0 trainer.max_steps=-1", "trainer.max_epochs"),
    ("logger.tensorboard.flush_secs=0", "logger.tensorboard.flush_secs"),
    ("logger.tensorboard.flush_secs=abc", "logger.tensorboard.flush_secs"),
    ("trainer.profiler=fancy", "trainer.profiler"),
    ("trainer.benchmark=maybe", "trainer.benchmark"),
]


@pytest.mark.parametrize("override,key", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_line_and_no_folder(
    tmp_path: Path, override: str, key: str, monkeypatch, capsys
) -> None:
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tmp_path / "no-data"), *override.split(), f"hydra.run.dir={run_dir}"]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert len(lines) == 1 and key in lines[0], lines
    assert not run_dir.exists()


def test_unwritable_output_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    # A folder below a regular file can never be created (chmod would not stop root, which CI may be).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [*tiny_overrides(tmp_path / "no-data"), f"hydra.run.dir={blocker / 'run'}"]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "hydra.run.dir" in lines[0], lines


def test_unwritable_sweep_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["-m", *tiny_overrides(tmp_path / "no-data"), "seed=1,2", f"hydra.sweep.dir={blocker / 'sweep'}"]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "hydra.sweep.dir" in lines[0], lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("override", ["trainer.accelerator=gpu", "trainer.accelerator=cuda"])
def test_gpu_requested_without_gpu(tmp_path: Path, override: str, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tmp_path / "no-data"), override, f"hydra.run.dir={run_dir}"]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "trainer.accelerator" in lines[0], lines
    assert not run_dir.exists()


def test_more_gpus_than_visible_is_refused() -> None:
    cfg = compose_train(
        tiny_overrides(
            Path("unused"),
            **{
                "trainer.accelerator": "gpu",
                "trainer.devices": 64,
                "data.num_train": None,
                "data.val_size": 0,
            },
        )
    )
    with pytest.raises(ConfigError, match=r"trainer\.(devices|accelerator)"):
        check_config(cfg)


def test_num_train_larger_than_the_files_on_disk(tmp_path: Path, monkeypatch, capsys) -> None:
    """A small copy of CIFAR (a subset, synthetic files) is sized from its files, without reading them."""
    write_synthetic_cifar(tmp_path / "small", "cifar10", num_train=200, num_test=50, seed=0)
    run_dir = tmp_path / "run"
    args = [
        *tiny_overrides(tmp_path / "small", **{"data.num_train": 1000, "data.val_size": 0}),
        f"hydra.run.dir={run_dir}",
    ]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "data.num_train=1000" in lines[0], lines
    assert not run_dir.exists()


def test_good_config_passes_the_checks(synthetic_cifar10: Path) -> None:
    check_config(compose_train(tiny_overrides(synthetic_cifar10)))
