"""The developer instruments of benchmarks/: the raw loop trains what cifar-train trains, and each
instrument runs end to end on the CPU. No timing assertions."""

from __future__ import annotations

import json

import host_step_time
import lightning as L
import plain_recipe
import pytest
import raw_loop
import time_to_accuracy
import torch
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer


def test_raw_loop_trains_the_weights_the_trainer_trains(synthetic_cifar10, tmp_path):
    """Same config, seed and batches: a few steps of the plain loop end where cifar-train's Trainer
    ends, so what the two are timed on is the same training, Lightning aside."""
    steps = 5
    overrides = tiny_overrides(
        synthetic_cifar10,
        **{"model.depth": 8, "data.val_size": 0, "data.batch_size": 32, "trainer.max_steps": steps},
        **{
            "data.loader": "gpu",
            "trainer.deterministic": True,
            "logger": "none",
            "callbacks.checkpoint": None,
        },
    )
    cfg = compose_train(overrides, tmp_path / "trainer")
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    build_trainer(cfg).fit(module, datamodule=datamodule)

    loop = raw_loop.build_raw_loop(compose_train(overrides, tmp_path / "raw"), steps)
    assert list(loop.steps(steps)) == list(range(steps))
    trained, plain = module.net.state_dict(), loop.module.net.state_dict()
    assert trained.keys() == plain.keys()
    for key in trained:
        torch.testing.assert_close(plain[key], trained[key], atol=1e-6, rtol=1e-5, msg=key)
    assert not torch.equal(trained["fc.weight"], build_module(cfg, 10).net.state_dict()["fc.weight"])


def test_raw_loop_measures_the_trainer_and_the_plain_loop(tmp_path):
    out = tmp_path / "raw.json"
    args = [
        "--batch-size",
        "16",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--synthetic-train",
        "64",
        "--json",
        str(out),
    ]
    report = raw_loop.main(args)
    assert json.loads(out.read_text()) == report
    assert [r["path"] for r in report["results"]] == ["cifar-train", "raw"]
    assert all(r["steps"] == 2 and r["images_per_second"] > 0 for r in report["results"])
    trainer, raw = (r["images_per_second"] for r in report["results"])
    assert report["share"] == [
        {"model": "resnet20", "batch_size": 16, "lightning_share": round(1 - trainer / raw, 4)}
    ]
    assert "| resnet20 | 16 | raw |" in report["table"]


def test_raw_loop_refuses_float16_in_one_line(tmp_path, capsys):
    args = ["--synthetic-train", "64", "--batch-size", "16", "--override", "trainer.precision=16-mixed"]
    with pytest.raises(SystemExit) as exit_info:
        raw_loop.main(args)
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("raw_loop.py: error: trainer.precision=16-mixed: the raw loop runs")
    )


def test_host_step_time_times_both_paths_with_the_step_stubbed(tmp_path):
    """The same number of host-only steps timed in the raw loop and in the Trainer."""
    out = tmp_path / "host.json"
    report = host_step_time.main(
        ["--steps", "24", "--batch-size", "4", "--log-every", "5", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == report
    timed = 24 - host_step_time.SKIPPED_STEPS - 1
    assert report["raw"]["steps"] == report["trainer"]["steps"] == timed
    assert 0 < report["raw"]["median_us"] <= report["raw"]["p90_us"]
    assert 0 < report["trainer"]["median_us"] <= report["trainer"]["p90_us"]
    assert report["trainer_extra_us"] == pytest.approx(
        report["trainer"]["median_us"] - report["raw"]["median_us"], abs=0.11
    )
    assert "SYNTHETIC" in report["data"]


@pytest.mark.parametrize(
    "args", [["--data-root", "missing"], ["--model", "resnet21"], ["--steps", "5"], ["--json", "."]]
)
def test_host_step_time_refuses_bad_arguments_in_one_line(tmp_path, capsys, args):
    if args[0] in ("--data-root", "--json"):  # a missing folder; a folder where a file belongs
        args = [args[0], str(tmp_path / args[1])]
    with pytest.raises(SystemExit) as exit_info:
        host_step_time.main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "error:" in lines[-1] and args[0] in lines[-1]


def test_time_to_accuracy_trains_the_recipe_with_and_without_the_recorded_step(tmp_path):
    out = tmp_path / "tta.json"
    small = ["data.batch_size=64", "data.eval_batch_size=128", "trainer.limit_test_batches=2"]
    args = ["--epochs", "1", "--synthetic-train", "256", "--json", str(out)]
    report = time_to_accuracy.main(args + [a for o in small for a in ("--override", o)])
    assert json.loads(out.read_text()) == report
    rows = report["time_to_accuracy"]
    assert [r["variant"] for r in rows] == ["cuda_graph", "eager"]
    assert all(r["model"] == "resnet20" and r["epochs"] == 1 and 0 <= r["test_acc"] <= 1 for r in rows)
    difference = round(100 * (rows[0]["test_acc"] - rows[1]["test_acc"]), 2)
    assert report["accuracy_difference_points"] == difference


def test_plain_recipe_trains_and_records_its_run(synthetic_cifar10, tmp_path, monkeypatch):
    """The plain PyTorch loop of the plain-vs-residual recipe learns the easy synthetic classes and
    writes its settings, curve and test accuracy."""
    out = tmp_path / "plain.json"
    argv = ["plain_recipe.py", "--data-root", str(synthetic_cifar10), "--net", "resnet20",
            "--num-train", "384", "--val-size", "128", "--batch-size", "32", "--epochs", "3",
            "--warmup-steps", "12", "--json", str(out)]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    plain_recipe.main()
    result = json.loads(out.read_text())
    assert (result["net"], result["epochs"], result["shortcut"], len(result["curve"])) == (
        "resnet20",
        3,
        "B",
        3,
    )
    assert result["curve"][-1]["train_loss"] < result["curve"][0]["train_loss"]
    assert result["test_acc"] > 0.3  # ten classes: chance is 0.1
