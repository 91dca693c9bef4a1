"""Impossible configs stop ``cifar-train`` before any data is read or any folder is created.

Each case runs the real Hydra entry point in-process (the same code path as the console script,
without paying for a fresh interpreter per case): exit status 2, one ``cifar-train: error:`` line
that names the key, and no run folder. ``data.root`` points at a folder that does not exist, so a
check that came too late would fail differently (missing data) instead of passing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from train_helpers import run_cli, tiny_overrides

from cifar_resnets.config.checks import ConfigError, check_config
from cifar_resnets.config.compose import compose_train
from cifar_resnets.config.resources import conf_dir
from cifar_resnets.data.synthetic import write_synthetic_cifar


def run_main(args: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """``cifar-train args`` in this process; returns (exit status, error lines on stderr)."""
    from cifar_resnets.cli.train import main

    GlobalHydra.instance().clear()
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
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
    # Lightning would run these for 0 steps and call the run completed.
    ("trainer.max_steps=0", "trainer.max_steps"),
    ("trainer.max_epochs=0 trainer.max_steps=20", "trainer.max_epochs"),
    ("trainer.max_epochs=-1 trainer.max_steps=-1", "trainer.max_epochs=-1 and trainer.max_steps=-1"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches"),
    ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches"),
    ("trainer.devices=0", "trainer.devices"),
    # Not a number at all, or not the kind of number the key takes.
    ("optim.lr=inf", "optim.lr=inf"),
    ("optim.lr=nan", "optim.lr=nan"),
    ("optim.lr='0.1'", "optim.lr='0.1'"),
    ("data.batch_size=64.0", "data.batch_size=64.0"),
    ("data.batch_size=true", "data.batch_size=true"),
    ("seed=-1", "seed"),
    ("augment.mixup_prob=1.5", "augment.mixup_prob=1.5"),
    ("augment=strong augment.mixup_prob=0.6 augment.cutmix_prob=0.6", "augment.cutmix_prob"),
    ("augment.crop_padding=32", "augment.crop_padding"),
    ("data.classes=[3,3]", "data.classes"),
    ("data.classes=[0,10]", "data.classes"),
    ("optim.nesterov=true optim.momentum=0", "optim.momentum"),
    ("model=attention_resnet model.kernel_size=4", "model.kernel_size"),
    ("model=attention_resnet model.widths=[8,8]", "model.widths"),
    ("ckpt_path=/nonexistent/last.ckpt", "ckpt_path"),
    ("model.weights_path=/nonexistent/weights.pt", "model.weights_path"),
    ("callbacks=ema callbacks.ema.decay=1.5", "callbacks.ema.decay"),
    ("run_name=${nope}", "run_name"),
    ("data.batch_size=???", "data.batch_size"),
    # Hydra's own errors: an option or key that does not exist, an override it cannot parse.
    ("model=doesnotexist", "model=doesnotexist"),
    ("optim=nope", "optim=nope"),
    ("data=nope", "data=nope"),
    ("optim.lrr=0.1", "optim.lrr"),
    ("+optim.lr=0.1", "optim.lr"),
    ("~optim.nope", "optim.nope"),
    ("a=b=c=[", "a=b=c=["),
    # Lightning's Trainer flags, judged by Lightning's own registries and precision parser.
    ("trainer.precision=17", "trainer.precision=17"),
    ("trainer.accelerator=tpu", "trainer.accelerator=tpu"),
    ("trainer.accelerator=tpuu", "trainer.accelerator='tpuu'"),
    ("trainer.strategy=dpp", "trainer.strategy='dpp'"),
    ("trainer.devices=[0,1]", "trainer.devices=[0, 1] does not fit trainer.accelerator=cpu"),
    # A key no code reads, added with + (the constructor's signature says what it takes).
    ("+optim.lrr=0.5", "optim.lrr"),
    ("+model.widht=2", "model.widht"),
    ("+callbacks.checkpoint.save_lst=true", "callbacks.checkpoint.save_lst"),
    # An MLflow store that cannot be made: its folder would be below a file.
    ("logger=mlflow logger.mlflow.tracking_uri=sqlite:////dev/null/mlflow.db", "logger.mlflow.tracking_uri"),
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
    assert not (tmp_path / "outputs").exists()


def test_unknown_option_lists_the_valid_ones(tmp_path: Path, monkeypatch, capsys) -> None:
    code, lines = run_main(["optim=nope", f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch, capsys)
    options = ", ".join(sorted(f.stem for f in (conf_dir() / "optim").glob("*.yaml")))
    assert "adam, adamw" in options and "sgd" in options.split(", ")
    expected = f"cifar-train: error: optim=nope is not a config of optim; choose one of {options}"
    assert code == 2 and lines == [expected], lines


def test_missing_config_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    code, lines = run_main(["--config-dir", str(tmp_path / "nope")], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and str(tmp_path / "nope") in lines[0], lines


def test_hydra_full_error_keeps_hydras_own_report(tmp_path: Path, monkeypatch) -> None:
    """HYDRA_FULL_ERROR=1 set by the user: Hydra's exception with its traceback, as Hydra documents."""
    from hydra.errors import MissingConfigException

    from cifar_resnets.cli.train import main

    GlobalHydra.instance().clear()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", ["cifar-train", "model=doesnotexist"])
    with pytest.raises(MissingConfigException):
        main()
    GlobalHydra.instance().clear()
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


def test_hydra_full_error_is_not_left_behind(
    synthetic_cifar10: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """``main`` sets HYDRA_FULL_ERROR only while Hydra composes and checks the config: the run itself
    (and any process it starts, such as DDP ranks) sees the user's environment."""
    seen = []

    def record_the_environment(cfg) -> dict:
        seen.append(os.environ.get("HYDRA_FULL_ERROR"))
        return {}

    monkeypatch.setattr("cifar_resnets.training.train.train", record_the_environment)
    run_main(["model=doesnotexist"], monkeypatch, capsys)
    assert "HYDRA_FULL_ERROR" not in os.environ
    args = [*tiny_overrides(synthetic_cifar10), f"hydra.run.dir={tmp_path / 'run'}"]
    from cifar_resnets.cli.train import main

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["cifar-train", *args])
    main()
    GlobalHydra.instance().clear()
    assert seen == [None] and "HYDRA_FULL_ERROR" not in os.environ


def test_the_checks_and_the_cli_import_no_torch() -> None:
    """Importing torch takes seconds: the answer to a bad config (and to --help) must not wait for it."""
    code = (
        "import sys, cifar_resnets.cli.train, cifar_resnets.config.checks, cifar_resnets.data.augment_spec; "
        "print(sorted(m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_names_the_command(tmp_path: Path) -> None:
    proc = run_cli("cifar_resnets.cli.train", ["--help"], cwd=tmp_path)
    assert proc.stdout.startswith("cifar-train: train one model") and "model: " in proc.stdout


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


MISTYPED_KEYS = [
    ("optim.lrr=0.5", "optim.lrr is not a key of optim; did you mean optim.lr?"),
    ("+optim.lrr=0.5", "optim.lrr is not a setting of SGD; did you mean optim.lr?"),
    ("seeed=1", "seeed is not a key of the config; did you mean seed?"),
    ("trainer.max_epoch=3", "trainer.max_epoch is not a key of trainer; did you mean trainer.max_epochs?"),
    (
        "optim=adam +optim.momentum=0.9",
        "optim.momentum is not a setting of Adam; the keys there are: amsgrad",
    ),
    # An argument the config leaves at its default: adding it is the answer.
    (
        "trainer.fast_dev_run=true",
        "trainer.fast_dev_run is not set in trainer; add it with +trainer.fast_dev_run=...",
    ),
]


@pytest.mark.parametrize("override,line", MISTYPED_KEYS, ids=[m[0] for m in MISTYPED_KEYS])
def test_a_mistyped_key_gets_the_nearest_one(
    tmp_path: Path, override: str, line: str, monkeypatch, capsys
) -> None:
    """Never Hydra's advice ``+optim.lrr=0.5``, which would run and ignore the value."""
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tmp_path / "no-data"), *override.split(), f"hydra.run.dir={run_dir}"]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"cifar-train: error: {line}"), lines
    assert not run_dir.exists()


def test_trainer_flags_refused_as_typed(tmp_path: Path) -> None:
    """``cifar-train trainer.precision=17`` as a subprocess: one line, exit 2, no run folder."""
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tmp_path / "no-data"), "trainer.precision=17", f"hydra.run.dir={run_dir}"]
    proc = run_cli("cifar_resnets.cli.train", args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "cifar-train: error: trainer.precision=17: Precision 17 is invalid"
    )
    assert not run_dir.exists()


def _corrupt_store(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)


def _readonly_store(path: Path) -> None:
    import sqlite3

    sqlite3.connect(path).close()
    path.chmod(0o444)


@pytest.mark.parametrize("make", [_corrupt_store, _readonly_store], ids=["corrupt", "read-only"])
def test_an_unusable_mlflow_store_is_refused_before_the_run_folder(
    tmp_path: Path, make, monkeypatch, capsys
) -> None:
    store = tmp_path / "mlflow.db"
    make(store)
    if make is _readonly_store and os.access(store, os.W_OK):
        pytest.skip("root writes into read-only files")
    before = store.read_bytes()
    run_dir = tmp_path / "run"
    args = [
        *tiny_overrides(tmp_path / "no-data"),
        "logger=mlflow",
        f"logger.mlflow.tracking_uri=sqlite:///{store}",
        f"hydra.run.dir={run_dir}",
    ]
    code, lines = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"cifar-train: error: logger.mlflow.tracking_uri=sqlite:///{store}: {store} ")
    assert not run_dir.exists() and store.read_bytes() == before
