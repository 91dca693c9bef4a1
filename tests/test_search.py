"""cifar-search: an Optuna study whose trials are real training runs, resumed after a kill, with failing
and pruned trials, its best trial as a Hydra experiment that cifar-train composes, and one-line refusals.

The searches run ``python -m cifar_resnets.cli.search`` as users run it, on the real CIFAR-10 subset
(depth-8 ResNet, 256 training and 200 validation images, 2 epochs: about a second a trial). The study
lives in SQLite in the search folder; the tests read it back through ``optuna.load_study``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from train_helpers import REPO, read_metrics, run_cli, tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import ConfigError
from cifar_resnets.search.settings import search_settings
from cifar_resnets.search.space import parse_space
from cifar_resnets.search.study import run_search

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
STUDY = "resnet20_cifar10"


def search_args(data_root: Path, folder: Path, **extra: object) -> list[str]:
    """A 3-trial search of tiny trials on the real subset, its folder (and SQLite study) in ``folder``."""
    overrides = {
        "model.depth": 8,
        "data.val_size": 200,
        "data.eval_batch_size": 100,
        "trainer.max_epochs": 2,
        "logger": "none",
        "search.dir": str(folder),
        "search.n_trials": 3,
        "search.sampler.n_startup_trials": 3,
        **extra,
    }
    return ["hparams_search=resnet20_cifar10", *tiny_overrides(data_root, **overrides)]


def load_study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{folder / 'study.db'}")


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def search_in_process(args: list[str], worker: Path) -> None:
    """What cifar-search runs once Hydra has composed its config, in this process (no interpreter start)."""
    cfg = compose_train(args, output_dir=worker)
    run_search(cfg, search_settings(cfg))


def _popen_search(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "cifar_resnets.cli.search", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_completed_trial(proc: subprocess.Popen, folder: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the search ended before it was killed:\n{proc.stderr.read()}"
        # Only once the first trial wrote its metrics: by then the search has made its tables and study.
        first_done = (folder / "trials" / "0" / "metrics.json").exists()
        if first_done and load_study(folder).get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
            return
        time.sleep(0.2)
    raise AssertionError("no trial completed in time")


@pytest.fixture(scope="module")
def resumed_search(tmp_path_factory, small_real_cifar10: Path) -> dict:
    """A search killed (SIGKILL) once its first trial completed, then run again with the same command."""
    work = tmp_path_factory.mktemp("search")
    folder = work / "search"
    args = search_args(small_real_cifar10, folder)
    proc = _popen_search(args, work)
    try:
        _wait_for_completed_trial(proc, folder)
        first = folder / "trials" / "0"
        before = {name: (first / name).read_bytes() for name in ("metrics.json", "config.yaml")}
        mtimes = {name: (first / name).stat().st_mtime_ns for name in before}
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = {t.number: t.state for t in load_study(folder).get_trials()}
    rerun = run_cli("cifar_resnets.cli.search", args, cwd=work, timeout=300)
    return {"folder": folder, "before": before, "mtimes": mtimes, "killed": killed, "rerun": rerun}


@pytest.mark.slow
def test_a_killed_search_resumes_to_n_trials_without_repeating_a_finished_one(resumed_search: dict) -> None:
    folder: Path = resumed_search["folder"]
    study = load_study(folder)
    done = finished(study)
    assert len(done) == 3, [(t.number, t.state) for t in study.trials]
    assert len({t.number for t in done}) == 3
    assert len({tuple(sorted(t.params.items())) for t in done}) == 3  # the rerun drew new values
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    # The trial the kill interrupted (if it had started) stays RUNNING until its heartbeat is stale,
    # and is not counted: the rerun ran the trials still missing, numbered after it.
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) <= 1 and all(t.number in resumed_search["killed"] for t in running)
    assert resumed_search["killed"][0] == optuna.trial.TrialState.COMPLETE
    # The first trial was not run again: its folder is as the killed search left it.
    first = folder / "trials" / "0"
    for name, content in resumed_search["before"].items():
        assert (first / name).read_bytes() == content
        assert (first / name).stat().st_mtime_ns == resumed_search["mtimes"][name]
    # Every trial trained in its own folder, scored on validation only; the objective is its val/acc.
    for trial in done:
        metrics = read_metrics(Path(trial.user_attrs["folder"]))
        assert metrics["status"] == "completed" and metrics["epochs"] == 2
        assert not any(key.startswith("test/") for key in metrics)
        assert trial.value == pytest.approx(metrics["val/acc"])
        assert Path(trial.user_attrs["folder"]) == folder / "trials" / str(trial.number)
    best = json.loads((folder / "best.json").read_text())
    assert best["best"]["number"] == study.best_trial.number and best["trials"]["complete"] == 3
    assert (folder / "experiment" / "best.yaml").is_file()
    assert (folder / "optimization_history.png").stat().st_size > 0
    assert (folder / "param_importances.png").stat().st_size > 0
    assert str(folder / "experiment" / "best.yaml") in resumed_search["rerun"].stdout


@pytest.mark.slow
def test_best_yaml_is_an_experiment_cifar_train_composes(resumed_search: dict, tmp_path: Path) -> None:
    folder: Path = resumed_search["folder"]
    best = load_study(folder).best_trial
    text = (folder / "experiment" / "best.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert f"cifar-train --config-dir {folder} experiment=best" in text
    # Through the suite's compose API, with the search folder on Hydra's search path ...
    cfg = compose_train([f"hydra.searchpath=[file://{folder}]", "experiment=best"])
    for key, value in best.params.items():
        assert OmegaConf.select(cfg, key) == pytest.approx(value), key
    assert cfg.model.depth == 20 and cfg.schedule._target_.endswith("cosine")  # the search's groups
    assert cfg.logger == {} and cfg.test_after_fit is True  # a training run again, tested at its end
    # ... and as the comment in the file says to run it (Hydra prints the composed job config).
    proc = run_cli(
        "cifar_resnets.cli.train",
        ["--config-dir", str(folder), "experiment=best", "--cfg", "job"],
        cwd=tmp_path,
    )
    job = OmegaConf.create(proc.stdout)
    assert job.module.label_smoothing == pytest.approx(best.params["module.label_smoothing"])
    assert job.optim.lr == pytest.approx(best.params["optim.lr"])


@pytest.mark.slow
def test_a_failing_trial_is_recorded_fail_and_the_search_goes_on(
    small_real_cifar10: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "search"
    # The first trial asks for a batch larger than the 256 training images, which the run's config
    # checks refuse; the study is made beforehand only to queue that trial (the search loads it).
    space = {
        "+search.params.data.batch_size": "'choice(64, 4096)'",
        "search.n_trials": 2,
        "trainer.max_epochs": 1,
    }
    args = search_args(small_real_cifar10, folder, **space)
    folder.mkdir()
    study = optuna.create_study(
        study_name=STUDY, storage=f"sqlite:///{folder / 'study.db'}", direction="maximize"
    )
    study.enqueue_trial({"data.batch_size": 4096})
    study.enqueue_trial({"data.batch_size": 64})
    caplog.set_level(logging.INFO, logger="cifar_resnets.search")
    search_in_process(args, tmp_path / "worker")
    trials = load_study(folder).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert "data.batch_size=4096 is larger than the training set" in trials[0].user_attrs["error"]
    assert read_metrics(folder / "trials" / "0")["status"] == "failed"
    assert "trial 0 FAIL: ConfigError: data.batch_size=4096" in caplog.text
    assert "trial 1 COMPLETE: val/acc=" in caplog.text
    assert json.loads((folder / "best.json").read_text())["trials"] == {
        "complete": 1,
        "fail": 1,
        "pruned": 0,
        "running": 0,
        "waiting": 0,
    }


@pytest.mark.slow
def test_a_pruned_trial_stops_as_a_run_and_is_recorded_pruned(
    small_real_cifar10: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "search"
    # No validation accuracy reaches 1.1: the pruner stops the trial at its first report after warm-up.
    pruner = [
        "search.pruner._target_=optuna.pruners.ThresholdPruner",
        "+search.pruner.lower=1.1",
        "search.pruner.n_warmup_steps=0",
        "~search.pruner.n_startup_trials",
    ]
    args = [*search_args(small_real_cifar10, folder, **{"search.n_trials": 1}), *pruner]
    search_in_process(args, tmp_path / "worker")
    (trial,) = load_study(folder).trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["status"] == "pruned"
    assert list(trial.intermediate_values) == [0]  # reported once, at epoch 0, then stopped
    metrics = read_metrics(folder / "trials" / "0")
    assert metrics["status"] == "pruned" and metrics["epochs"] == 1
    assert (folder / "trials" / "0" / "checkpoints" / "last.ckpt").is_file()  # it ended as a run does
    assert not (folder / "experiment" / "best.yaml").exists()  # no trial completed


def test_a_search_without_validation_split_is_refused_in_one_line(
    small_real_cifar10: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "search"
    args = search_args(small_real_cifar10, folder, **{"data.val_size": 0})
    proc = run_cli("cifar_resnets.cli.search", args, cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cifar-search: error: data.val_size=0 "), proc.stderr
    assert not (folder / "study.db").exists() and not (folder / "trials").exists()


def test_a_bad_search_value_is_refused_by_cifar_search(tmp_path: Path) -> None:
    args = ["hparams_search=resnet20_cifar10", "search.n_trials=0", "data.root=/nonexistent/cifar"]
    proc = run_cli("cifar_resnets.cli.search", args, cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "cifar-search: error: search.n_trials=0 must be an integer >= 1"
    assert not (tmp_path / "outputs").exists()


# ----------------------------------------------------------------------------- the search space
@pytest.mark.parametrize(
    "expression,expected",
    [
        ("interval(0.0, 0.2)", optuna.distributions.FloatDistribution(0.0, 0.2)),
        ("tag(log, interval(0.01, 0.5))", optuna.distributions.FloatDistribution(0.01, 0.5, log=True)),
        ("tag(int, interval(1, 5))", optuna.distributions.IntDistribution(1, 5)),
        ("tag(int, log, interval(8, 512))", optuna.distributions.IntDistribution(8, 512, log=True)),
        ("choice(8, 14, 20)", optuna.distributions.CategoricalDistribution([8, 14, 20])),
        ("choice(sgd, adam, true)", optuna.distributions.CategoricalDistribution(["sgd", "adam", True])),
        ("range(1, 10, 2)", optuna.distributions.IntDistribution(1, 9, step=2)),  # stop excluded, as range's
        ("range(0.1, 0.5, 0.1)", optuna.distributions.FloatDistribution(0.1, 0.4, step=0.1)),
        ("tag(log, range(1, 100))", optuna.distributions.IntDistribution(1, 99, log=True)),
    ],
)
def test_sweep_syntax_becomes_an_optuna_distribution(expression: str, expected) -> None:
    (distribution,) = parse_space({"optim": {"lr": expression}}).values()
    assert distribution == expected


def test_flat_and_nested_keys_name_the_same_values() -> None:
    nested = parse_space(
        {"optim": {"lr": "interval(0.1, 0.2)"}, "module": {"label_smoothing": "interval(0, 0.1)"}}
    )
    flat = parse_space({"optim.lr": "interval(0.1, 0.2)", "module.label_smoothing": "interval(0, 0.1)"})
    assert nested == flat and list(flat) == ["optim.lr", "module.label_smoothing"]


@pytest.mark.parametrize(
    "expression,needle",
    [
        ("interval(0.1", "cannot parse"),
        ("0.3", "is a fixed value, not a search space"),
        ("tag(foo, interval(0, 1))", "unknown tag foo"),
        ("tag(log, interval(0, 1))", "low > 0"),
        ("interval(1, 0)", "low <= high"),
        ("range(5, 1)", "holds no value"),
        ("tag(log, range(1, 100, 2))", "step 1"),
        ("choice([1, 2], [3])", "each choice must be"),
    ],
)
def test_a_bad_expression_is_one_line_naming_the_key(expression: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_space({"optim": {"lr": expression}})
    message = str(err.value)
    assert message.startswith("search.params.optim.lr=") or message.startswith(
        "cannot parse search.params.optim.lr="
    )
    assert needle in message and "\n" not in message


def test_help_answers_without_loading_optuna_or_torch(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.argv = ['cifar-search', '--help']\n"
        "from cifar_resnets.cli.search import main\n"
        "try:\n    main()\nexcept SystemExit as exit_:\n    assert exit_.code in (0, None)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'optuna', 'torch', 'lightning'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.startswith("cifar-search: an Optuna search")
        and "hparams_search: resnet20_cifar10" in proc.stdout
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]"
