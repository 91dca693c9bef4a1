"""A finished run is never overwritten: a new run into its folder is refused, a refused or failed
continuation leaves every file as it was (recorded under ``attempts/``), ``ckpt_path=auto`` on a finished
run changes nothing unless the limits were raised; a failure to write is one line naming the path.

In process through the compose API and ``train()``; the end-to-end cases through ``cifar-train`` are in
``test_cli_refusals_change_no_file_of_the_finished_run``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import fault_injection
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from train_helpers import REPO, read_metrics, run_cli, tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import CheckpointError, ConfigError, RunError
from cifar_resnets.training.resume import resume_command
from cifar_resnets.training.train import train


def _overrides(root: Path, **extra: object) -> list[str]:
    return tiny_overrides(
        root,
        **{
            "model.depth": 8,
            "data.num_train": 64,
            "data.val_size": 0,
            "data.batch_size": 32,
            "trainer.max_epochs": 2,
            "logger": "csv",
            **extra,
        },
    )


@pytest.fixture(scope="module")
def finished_run(synthetic_cifar10: Path, tmp_path_factory) -> Path:
    """A completed 2-epoch, 4-step run, trained once; tests work on copies."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(compose_train(_overrides(synthetic_cifar10), output_dir=run_dir))
    return run_dir


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def test_a_new_run_into_a_finished_runs_folder_is_refused_and_changes_nothing(
    synthetic_cifar10: Path, run: Path, hash_folder
) -> None:
    before = hash_folder(run)
    with pytest.raises(RunError) as info:
        train(compose_train(_overrides(synthetic_cifar10, **{"trainer.max_epochs": 1}), output_dir=run))
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert f"run folder {run} already holds a completed run (2 epochs, 4 steps)" in message
    assert "ckpt_path=auto" in message and "hydra.run.dir=" in message
    assert hash_folder(run) == before


def test_ckpt_auto_on_a_finished_run_says_so_and_changes_nothing(
    synthetic_cifar10: Path, run: Path, hash_folder, caplog
) -> None:
    before = hash_folder(run)
    metrics = train(compose_train(_overrides(synthetic_cifar10, ckpt_path="auto"), output_dir=run))
    assert metrics == read_metrics(run) and metrics["status"] == "completed"
    assert "holds a completed run (2 epochs, 4 steps): nothing to do" in caplog.text
    assert hash_folder(run) == before


def test_ckpt_auto_with_raised_limits_continues_a_finished_run(synthetic_cifar10: Path, run: Path) -> None:
    train(
        compose_train(
            _overrides(synthetic_cifar10, ckpt_path="auto", **{"trainer.max_epochs": 3}), output_dir=run
        )
    )
    metrics = read_metrics(run)
    assert (metrics["status"], metrics["epochs"], metrics["steps"]) == ("completed", 3, 6)


@pytest.mark.parametrize(
    "change, expected",
    [
        ("truncated", "truncated"),
        ("model=resnet32", "it holds model 'resnet20', not this run's model 'resnet32'"),
        ("model.depth=14", "do not fit this run's net"),
    ],
)
def test_a_refused_continuation_keeps_every_file_and_records_the_attempt_beside_them(
    synthetic_cifar10: Path, run: Path, hash_folder, change: str, expected: str
) -> None:
    overrides = _overrides(synthetic_cifar10, ckpt_path="auto", **{"trainer.max_epochs": 3})
    if change == "truncated":
        last = run / "checkpoints" / "last.ckpt"
        last.write_bytes(last.read_bytes()[:5000])
    else:
        overrides.append(change)
    before = hash_folder(run)
    with pytest.raises(CheckpointError) as info:
        train(compose_train(overrides, output_dir=run))
    assert expected in str(info.value) and len(str(info.value).splitlines()) == 1
    assert hash_folder(run, skip=("attempts",)) == before
    [attempt] = (run / "attempts").iterdir()
    record = json.loads((attempt / "metrics.json").read_text())
    assert record["status"] == "refused" and expected in record["error"]
    assert (attempt / "error.txt").is_file()


def test_a_continuation_refused_by_the_config_checks_is_recorded_beside_the_run(
    synthetic_cifar10: Path, run: Path, hash_folder
) -> None:
    """An interrupted run continued with a setting the data cannot meet: its own metrics.json (what
    ckpt_path=auto and cifar-reproduce read) stays; the failure goes under attempts/."""
    metrics = {**read_metrics(run), "status": "interrupted"}
    (run / "metrics.json").write_text(json.dumps(metrics))
    before = hash_folder(run)
    overrides = _overrides(synthetic_cifar10, ckpt_path="auto", **{"data.num_train": 100_000})
    with pytest.raises(ConfigError):
        train(compose_train(overrides, output_dir=run))
    assert hash_folder(run, skip=("attempts",)) == before
    [attempt] = (run / "attempts").iterdir()
    assert json.loads((attempt / "metrics.json").read_text())["status"] == "failed"


def test_no_space_left_names_the_file_and_the_last_good_checkpoint(
    synthetic_cifar10: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    full = "+trainer.plugins=[{_target_:fault_injection.DiskFullCheckpointIO,file:last.ckpt,step:4}]"
    cfg = compose_train([*_overrides(synthetic_cifar10), full], output_dir=run_dir)
    with pytest.raises(RunError) as info:
        train(cfg)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert str(info.value) == (
        f"cannot write {last}: no space left on the device; the last good checkpoint is {last} (step 2): "
        "free some space and continue with ckpt_path=auto"
    )
    assert read_metrics(run_dir)["status"] == "failed"
    # The kept checkpoint is whole: the same command with ckpt_path=auto continues from it.
    train(compose_train([*_overrides(synthetic_cifar10), "ckpt_path=auto"], output_dir=run_dir))
    assert read_metrics(run_dir)["steps"] == 4


def test_a_file_where_the_checkpoint_folder_must_be_is_one_line(
    synthetic_cifar10: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("not a folder\n")
    with pytest.raises(RunError) as info:
        train(compose_train(_overrides(synthetic_cifar10), output_dir=run_dir))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "a file stands where a folder must be" in message
    assert str(run_dir / "checkpoints") in message
    assert (run_dir / "checkpoints").read_text() == "not a folder\n"


def test_every_run_records_what_produced_it(run: Path) -> None:
    provenance = read_metrics(run)["provenance"]
    for key in ("python", "torch", "torchvision", "lightning", "device_name", "command", "started", "ended"):
        assert provenance[key], key
    assert provenance["cuda"] is None and provenance["cudnn"] is None  # a CPU run
    assert "threads" in provenance["device_name"]
    assert provenance["started"].endswith("+00:00") and provenance["started"] <= provenance["ended"]
    if shutil.which("git") and (REPO / ".git").exists():  # run from a checkout: its commit
        assert re.fullmatch(r"[0-9a-f]{40}", provenance["git_commit"]), provenance["git_commit"]
        assert isinstance(provenance["git_dirty"], bool)
    hparams = (run / "hparams.yaml").read_text()  # the CSV logger's hyper-parameters
    assert f"hp/provenance/torch: {provenance['torch']}" in hparams
    assert "hp/provenance/device_name:" in hparams


def test_provenance_without_git_is_null_not_an_error(monkeypatch) -> None:
    from cifar_resnets import provenance

    monkeypatch.setenv("PATH", "/nonexistent")
    record = provenance.provenance("cpu")
    assert record["git_commit"] is None and record["git_dirty"] is None and record["torch"]


@pytest.mark.parametrize("name", ["with space", "nön-ascïi", "it's"])
def test_the_printed_resume_command_parses_in_a_shell_and_in_hydra(tmp_path: Path, name: str) -> None:
    run_dir = tmp_path / name / "run"
    checkpoint = run_dir / "checkpoints" / "epoch000.ckpt"
    args = shlex.split(resume_command(run_dir, checkpoint))
    assert args[0] == "cifar-train"
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(args[1:])}
    assert (parsed["ckpt_path"], parsed["hydra.run.dir"]) == (str(checkpoint), str(run_dir))


@pytest.mark.slow
def test_cli_refusals_change_no_file_of_the_finished_run(
    synthetic_cifar10: Path, finished_run: Path, tmp_path: Path, hash_folder
) -> None:
    """The commands as a user types them: each ends in one line, and every file of the finished run,
    ``.hydra/`` and the log included, is as it was."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    env = {"PYTHONPATH": fault_injection.TESTS_PYTHONPATH}
    args = [*_overrides(synthetic_cifar10), f"hydra.run.dir={run_dir}"]
    before = hash_folder(run_dir)
    cases = [
        ([], 2, f"cifar-train: error: run folder {run_dir} already holds a completed run"),
        (
            ["ckpt_path=auto"],
            0,
            f"cifar-train: run folder {run_dir} holds a completed run (2 epochs, 4 steps)",
        ),
        (
            ["ckpt_path=auto", "trainer.max_epochs=3", "model=resnet32"],
            2,
            "cifar-train: error: "
            + str(run_dir / "checkpoints" / "last.ckpt")
            + ": it holds model 'resnet20'",
        ),
    ]
    for extra, code, line in cases:
        proc = run_cli("cifar_resnets.cli.train", [*args, *extra], tmp_path, check=False, env=env)
        assert proc.returncode == code, proc.stderr[-3000:]
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(line)
        assert hash_folder(run_dir, skip=("attempts",)) == before, extra
    assert len(list((run_dir / "attempts").iterdir())) == 1  # the refused continuation, recorded aside
