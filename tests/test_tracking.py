"""Tracking: the CSV logger and MLflow hold a run's hyper-parameters and final metrics, the CSV file
survives a resume, and curves are drawn from metrics.csv alone (no TensorBoard files)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from cifar_resnets.reporting.plots import write_training_history
from cifar_resnets.reporting.runs import read_scalars
from cifar_resnets.training.loggers import CSVLogger


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _last_values(path: Path) -> dict[str, float]:
    values: dict[str, float] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            values.update({k: float(v) for k, v in row.items() if v})
    return values


def test_csv_holds_hyperparameters_and_final_metrics(tiny_real_run: Path) -> None:
    metrics = _metrics(tiny_real_run)
    hparams = yaml.safe_load((tiny_real_run / "hparams.yaml").read_text())
    assert hparams["hp/lr"] == 0.01 and hparams["hp/optim"] == "Adam" and hparams["hp/batch_size"] == 64
    assert hparams["config"]["model"]["depth"] == 8  # the full config, as Lightning logs it at fit start
    last = _last_values(tiny_real_run / "metrics.csv")
    for key in ("test/acc", "val/acc", "test/loss", "params", "epochs"):
        assert last[key] == pytest.approx(metrics[key]), key


def test_mlflow_holds_hyperparameters_and_final_metrics(tiny_real_run: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(f"sqlite:///{tiny_real_run}/mlflow.db")
    experiment = client.get_experiment_by_name("cifar_resnets")
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = _metrics(tiny_real_run)
    assert run.info.status == "FINISHED" and run.data.tags["run_dir"] == str(tiny_real_run)
    assert run.data.params["hp/lr"] == "0.01" and run.data.params["hp/label_smoothing"] == "0.0"
    assert run.data.params["config/model/depth"] == "8"
    for key in ("test/acc", "val/acc", "test/loss", "params"):
        assert run.data.metrics[key] == pytest.approx(metrics[key]), key
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert len({m.step for m in history}) >= 2  # one point per epoch, not only the final number


def test_curves_and_plots_come_from_metrics_csv_alone(tiny_real_run: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_real_run / "metrics.csv", tmp_path / "metrics.csv")
    scalars = read_scalars(tmp_path)
    assert len(scalars["val/acc"]) == 2 and len(scalars["train/loss_step"]) >= 4
    assert scalars["val/acc"][-1][1] == pytest.approx(_metrics(tiny_real_run)["val/acc"])
    assert write_training_history(tmp_path).stat().st_size > 0
    if any(tiny_real_run.glob("events.out.tfevents.*")):  # both loggers ran: they agree
        events_only = tmp_path / "events"
        events_only.mkdir()
        for file in tiny_real_run.glob("events.out.tfevents.*"):
            shutil.copy(file, events_only / file.name)
        from_events = read_scalars(events_only)["val/acc"]
        assert [s for s, _ in from_events] == [s for s, _ in scalars["val/acc"]]
        assert [v for _, v in from_events] == pytest.approx([v for _, v in scalars["val/acc"]])


def test_a_resumed_run_appends_to_its_metrics_csv(tmp_path: Path) -> None:
    first = CSVLogger(save_dir=tmp_path, name="", version="", flush_logs_every_n_steps=1)
    first.log_metrics({"train/loss": 2.0}, step=0)
    first.finalize("success")
    (tmp_path / "config.yaml").write_text("seed: 0\n")  # the run folder is not empty on resume
    second = CSVLogger(save_dir=tmp_path, name="", version="", flush_logs_every_n_steps=1)
    second.log_metrics({"train/loss": 1.0, "val/acc": 0.5}, step=5)
    second.finalize("success")
    scalars = read_scalars(tmp_path)
    assert scalars["train/loss"] == [(0, 2.0), (5, 1.0)] and scalars["val/acc"] == [(5, 0.5)]
