"""cifar-bench end to end, as users run it, and the clock of its cifar-train path.

No timing assertions: speed is reported, not asserted.
"""

from __future__ import annotations

import json

import lightning as L
import pytest
from train_helpers import run_cli, tiny_overrides

from cifar_resnets.bench.train_config import REFERENCE_WARMUP, default_warmup
from cifar_resnets.bench.train_path import StepTimer
from cifar_resnets.config.compose import compose_train
from cifar_resnets.training import build


def test_cifar_bench_measures_both_paths_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    args = [
        "--model", "resnet20", "--batch-size", "32", "--steps", "2", "--warmup", "1",
        "--synthetic-train", "128", "--workers", "0", "--json", str(out),
        "--override", "trainer.precision=bf16-mixed",
    ]  # fmt: skip
    proc = run_cli("cifar_resnets.cli.bench", args, cwd=tmp_path)
    assert "| model | batch | path | images/s | x reference |" in proc.stdout
    assert "SYNTHETIC" in proc.stdout
    report = json.loads(out.read_text())
    assert [r["path"] for r in report["results"]] == ["reference", "cifar-train"]
    assert all(r["images_per_second"] > 0 and r["steps"] == 2 for r in report["results"])
    # --override reaches cifar-train, not the reference loop (fp32 by definition).
    assert [r["precision"] for r in report["results"]] == ["32-true", "bf16-mixed"]
    assert report["table6"] == {}  # no batch-128 measurement, no Table 6 estimate


def test_cifar_bench_keeps_finished_measurements_when_a_later_one_is_refused(tmp_path):
    """--json is rewritten after each measurement: batch 256 cannot run on 128 images, and is refused in
    one line after the batch-32 results were written."""
    out = tmp_path / "bench.json"
    args = [
        "--batch-size", "32", "256", "--paths", "reference", "--steps", "1", "--warmup", "0",
        "--synthetic-train", "128", "--workers", "0", "--json", str(out),
    ]  # fmt: skip
    proc = run_cli("cifar_resnets.cli.bench", args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "cifar-bench: error: batch size 256 is larger than the 128 training images"
    )
    assert [(r["path"], r["batch_size"]) for r in json.loads(out.read_text())["results"]] == [
        ("reference", 32)
    ]


@pytest.mark.parametrize(
    "bad", [["--data-root", "nope"], ["--override", "nope.key=1"], ["--override", "trainer.benchmark=maybe"]]
)
def test_cifar_bench_refuses_bad_input_in_one_line(tmp_path, bad):
    value = str(tmp_path / bad[1]) if bad[0] == "--data-root" else bad[1]
    args = [bad[0], value, "--synthetic-train", "64", "--batch-size", "16"]
    proc = run_cli("cifar_resnets.cli.bench", args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    # The line names the bad value itself: the missing folder, or the overridden key.
    assert last.startswith("cifar-bench: error:") and bad[0] in last and value.split("=")[0] in last
    if bad[1] == "trainer.benchmark=maybe":  # refused by cifar-train's own check_config, before any run
        assert "must be true, false or null" in last


def test_cifar_bench_refuses_an_unwritable_json_before_measuring(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("kept\n")  # a file where --json wants a folder
    for target, says in ((tmp_path, "is a folder"), (blocker / "bench.json", "is a file, not a folder")):
        args = [
            "--json",
            str(target),
            "--synthetic-train",
            "64",
            "--batch-size",
            "16",
            "--paths",
            "reference",
        ]
        proc = run_cli("cifar_resnets.cli.bench", args, cwd=tmp_path, check=False)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]  # one line
        assert proc.stderr.startswith(f"cifar-bench: error: --json {target}") and says in proc.stderr
        assert "images/s" not in proc.stdout  # refused before the first measurement
    assert blocker.read_text() == "kept\n"


def test_bench_warmup_covers_graph_recording_and_the_first_logging_step(monkeypatch, tmp_path):
    """The first self.log of a process has a one-time host cost: the default warm-up of cifar-train ends
    after the first logging step, so it is not timed as a per-step cost; graph recording needs 30."""

    def warmup(uses_cuda: bool, log_every: int) -> int:
        monkeypatch.setattr(build, "_uses_cuda", lambda accelerator: uses_cuda)
        return default_warmup(compose_train([f"trainer.log_every_n_steps={log_every}"], tmp_path))

    assert REFERENCE_WARMUP == 20
    assert warmup(False, 50) == 60 > 50
    assert warmup(True, 10) == 30  # the recorded step
    assert warmup(False, 10) == 20
    assert warmup(True, 200) == 210


def _fit(cfg, callbacks):
    L.seed_everything(cfg.seed)
    datamodule = build.build_datamodule(cfg)
    module = build.build_module(cfg, datamodule.num_classes)
    trainer = build.build_trainer(cfg)
    trainer.callbacks.extend(callbacks)
    trainer.fit(module, datamodule=datamodule)


def test_bench_clock_stops_at_the_last_step_not_at_the_end_of_fit(synthetic_cifar10, tmp_path):
    """A plain loop stops its clock after its last step; the cifar-train path must too, or the
    once-per-run end-of-fit work (epoch-end logs, on_train_end hooks) counts as a per-step cost."""
    timer = StepTimer(warmup=1)
    stopped_before: list[str] = []

    class EndOfFit(L.Callback):  # runs after the timer in every hook
        def on_train_epoch_end(self, trainer, pl_module):
            if timer.end is not None:
                stopped_before.append("epoch end")

        def on_train_end(self, trainer, pl_module):
            if timer.end is not None:
                stopped_before.append("train end")

    def tiny(max_steps: int):
        overrides = {"model.depth": 8, "data.num_train": 128, "data.val_size": 0, "data.batch_size": 32}
        extra = {"trainer.max_steps": max_steps, "callbacks.checkpoint": None, "logger": "none"}
        return compose_train(tiny_overrides(synthetic_cifar10, **overrides, **extra), tmp_path)

    _fit(tiny(4), [timer, EndOfFit()])
    assert stopped_before == ["epoch end", "train end"]
    assert timer.steps == 3 and timer.end > timer.start
    # A fit that ends on max_epochs stops the clock at on_train_end.
    timer = StepTimer(warmup=1)
    _fit(tiny(-1), [timer])
    assert timer.end is not None and timer.steps == 128 // 32 - 1
